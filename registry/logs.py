"""Structured logs: one JSON object per line (REGISTRY_LOG_FORMAT=json)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

# Attributes every LogRecord has; anything else was passed with `extra=` and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        # Unknown objects (a request, a socket) become their repr rather than breaking the line.
        return json.dumps(entry, default=repr, ensure_ascii=False)


class PoolConnectErrors(logging.Filter):
    """The web process's connection pool (psycopg_pool) logs every failed attempt of its
    background workers to connect, many a second while the database is down. They are kept
    back: the last one is named in the one line each failed request writes (registry.outage)."""

    last: str = ""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("error connecting"):
            return True
        PoolConnectErrors.last = " ".join(message.partition(": ")[2].split())
        return False
