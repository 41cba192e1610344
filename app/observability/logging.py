"""One log format for the app and gunicorn: JSON lines in production, readable text in
development (`LOG_FORMAT=json|text`). Every line carries the request id of the request it
belongs to; `log_event` adds structured fields (method, route, status, duration_ms, ...)."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from app.observability.request_id import current_request_id

# LogRecord's own attributes; anything else on a record came from `extra=` and is a field.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
_HANDLER_MARK = "_billing_log_handler"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
            "pid": record.process,
        }
        for key, value in _fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = {k: v for k, v in _fields(record).items() if v is not None}
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            fields["request_id"] = request_id
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        if not extra:
            return text
        head, sep, trace = text.partition("\n")
        return f"{head} {extra}{sep}{trace}"


def log_format(app_env: str | None = None, configured: str | None = None) -> str:
    """`LOG_FORMAT` when set, else JSON in production and text elsewhere."""
    choice = (configured if configured is not None else os.environ.get("LOG_FORMAT", "")).lower()
    if choice in ("json", "text"):
        return choice
    env = app_env if app_env is not None else os.environ.get("APP_ENV", "development")
    return "json" if env == "production" else "text"


def make_formatter(fmt: str | None = None) -> logging.Formatter:
    """Used by the app and by gunicorn.conf.py's logconfig_dict."""
    return JsonFormatter() if (fmt or log_format()) == "json" else TextFormatter()


def configure_logging(level: str, fmt: str) -> None:
    """Replace our stderr handler on the root logger (idempotent across app instances)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(make_formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level)
    # The SDK logs every request at INFO; our gateway logs one line per call itself.
    logging.getLogger("stripe").setLevel(max(logging.WARNING, root.level))


def log_event(logger: str, message: str, *, level: int = logging.INFO, **fields: Any) -> None:
    logging.getLogger(logger).log(level, message, extra=fields)
