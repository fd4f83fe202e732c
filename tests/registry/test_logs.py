"""Service logs: credentials inside URLs never reach a log line, text or JSON."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from boucle.logs import JsonFormatter, TextFormatter, redact_credentials


@pytest.mark.parametrize("text,expected", [
    ("influx+http://alice:s3cret@db:8086/boucle", "influx+http://***@db:8086/boucle"),
    ("InfluxDB /query at http://alice:p@ss/w0rd@127.0.0.1:8086: refused",  # '@' and '/' in the password
     "InfluxDB /query at http://***@127.0.0.1:8086: refused"),
    ("token only: https://t0ken@example.org/x and http://plain:8086/", "token only: https://***@example.org/x and http://plain:8086/"),
    ("url='http://u:p@h/' ok", "url='http://***@h/' ok"),
    ('at http://alice:"s3cret"@db:8086', "at http://***@db:8086"),
    ("no url here, mail bob@example.org", "no url here, mail bob@example.org"),
    ("sqlite:///.boucle/boucle.db", "sqlite:///.boucle/boucle.db"),
])
def test_credentials_in_urls_are_redacted(text, expected):
    assert redact_credentials(text) == expected


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_both_log_formats_redact_messages_and_tracebacks(formatter):
    error = ConnectionError("InfluxDB at " + "http://alice:s3cret@db:8086 refused")
    try:
        raise error
    except ConnectionError:
        record = logging.LogRecord("boucle.api", logging.ERROR, __file__, 1, "store %s down",
                                   ("influx+http://alice:s3cret@db:8086/boucle",), sys.exc_info())
    line = formatter.format(record)
    assert "s3cret" not in line and "alice" not in line, line
    assert line.count("***@db:8086") == 2, line  # the message and the exception
    if isinstance(formatter, JsonFormatter):
        assert json.loads(line)["message"] == "store influx+http://***@db:8086/boucle down"
