"""Logging for the services: one line per event, as text or as JSON (BOUCLE_LOG_FORMAT).

Every line goes through `redact_credentials`: a URL's user name and password (a
`BOUCLE_STORE_URL` like `influx+http://user:password@host/db`, in a message or in a
traceback) never reach the log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time

# after a scheme's "://", everything up to the last "@" of the word: user[:password]@ (a
# password may hold '@', '/' or quotes when written unencoded; redacting a little more is fine)
_URL_CREDENTIALS = re.compile(r"(?<=://)\S*@")


def redact_credentials(text: str) -> str:
    """`text` with the user name and password of every URL in it replaced by `***`."""
    return _URL_CREDENTIALS.sub("***@", text)


class TextFormatter(logging.Formatter):
    """`time level logger message`, credentials in URLs redacted."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact_credentials(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name,
               "message": redact_credentials(record.getMessage())}
        if record.exc_info:
            doc["exception"] = redact_credentials(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False)


def configure_logging(default_level: int = logging.INFO) -> None:
    """Log to stderr; BOUCLE_LOG_FORMAT=json for JSON lines, BOUCLE_LOG_LEVEL to change the level."""
    handler = logging.StreamHandler()
    json_lines = os.environ.get("BOUCLE_LOG_FORMAT", "text").lower() == "json"
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("BOUCLE_LOG_LEVEL", logging.getLevelName(default_level)).upper())
