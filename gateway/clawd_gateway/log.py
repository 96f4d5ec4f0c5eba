"""Structured logs on stderr: one line per event, key=value (or JSON), never a secret.

Fields are passed explicitly by callers; nothing here formats connect params or headers,
so a token cannot reach the log by accident through a generic dump.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_SENSITIVE = ("token", "password", "secret", "authorization")


class _Formatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = dict(getattr(record, "fields", {}) or {})
        for key in list(fields):
            if any(s in key.lower() for s in _SENSITIVE):
                fields[key] = "<redacted>"
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        ts += f".{int(record.msecs):03d}Z"
        if self.as_json:
            obj = {"ts": ts, "level": record.levelname.lower(), "msg": record.getMessage(), **fields}
            return json.dumps(obj, default=str, ensure_ascii=False)
        parts = [ts, f"level={record.levelname.lower()}", f"msg={_quote(record.getMessage())}"]
        parts += [f"{k}={_quote(v)}" for k, v in fields.items()]
        return " ".join(parts)


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


def setup_logging(level: str = "info", as_json: bool = False) -> logging.Logger:
    logger = logging.getLogger("clawd")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(as_json))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return logger


def log(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})
