"""Structured (JSON lines) logging shared by every homesearch process.

One JSON object per line keeps logs greppable by humans and parseable by log
shippers (Loki, Cloud Logging) without per-service formats. The current request
id lives in a context variable so every line logged while serving a request
carries it, whichever module logs.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# Attributes every LogRecord has; anything else was passed via `extra=` and is emitted as a field.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """Formats records as one JSON object: ts, level, logger, msg, request_id, extras."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.service:
            payload["service"] = self.service
        rid = request_id_var.get()
        if rid:
            payload["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


def configure_logging(service: str = "", level: str | None = None, json_format: bool | None = None) -> None:
    """Sets up the root logger once per process.

    ``HOMESEARCH_LOG_LEVEL`` (default INFO) and ``HOMESEARCH_LOG_FORMAT``
    (``json`` default, ``text`` for humans at a terminal) apply when arguments
    are not given.
    """
    level = (level or os.environ.get("HOMESEARCH_LOG_LEVEL", "INFO")).upper()
    if json_format is None:
        json_format = os.environ.get("HOMESEARCH_LOG_FORMAT", "json").lower() != "text"
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
