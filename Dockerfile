FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_ENV=production \
    PORT=3001

WORKDIR /srv
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY app ./app
COPY migrations ./migrations
COPY stripe_sandbox ./stripe_sandbox
COPY wsgi.py gunicorn.conf.py ./

RUN useradd --create-home --uid 10001 billing && chown -R billing /srv
USER billing

EXPOSE 3001
# Migrate, then serve. Production refuses to start without its secrets (see README).
CMD ["sh", "-c", "flask --app wsgi db upgrade && exec gunicorn -c gunicorn.conf.py wsgi:app"]
