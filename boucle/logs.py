"""Logging for the services: one line per event, as text or as JSON (BOUCLE_LOG_FORMAT)."""

from __future__ import annotations

import json
import logging
import os
import time


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def configure_logging(default_level: int = logging.INFO) -> None:
    """Log to stderr; BOUCLE_LOG_FORMAT=json for JSON lines, BOUCLE_LOG_LEVEL to change the level."""
    handler = logging.StreamHandler()
    if os.environ.get("BOUCLE_LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("BOUCLE_LOG_LEVEL", logging.getLevelName(default_level)).upper())
