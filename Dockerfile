# syntax=docker/dockerfile:1
# Build stage: dependencies into a virtualenv (compilers and caches stay here).
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

# Runtime stage: the venv and the code, owned by root and read-only to the runtime user. Only
# the product: the stand-ins (sandboxes/), tests, benchmarks and clients stay out (.dockerignore).
FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_ENV=production \
    LOG_FORMAT=json \
    PORT=3001
RUN groupadd --gid 10001 billing \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin billing
WORKDIR /srv
COPY --from=build /opt/venv /opt/venv
COPY app ./app
COPY migrations ./migrations
COPY bin ./bin
COPY wsgi.py gunicorn.conf.py ./
USER 10001:10001
EXPOSE 3001
# Liveness only (no database): a slow database must not get the container killed.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3001'), timeout=2)"]
# Serve only; migrations are the separate release step (bin/release).
CMD ["bin/start"]
