"""Fixtures shared by the broker tests (Mosquitto and NATS)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def clients() -> Iterator[list]:
    """MQTT test clients (test_broker_config.Client) a test made; closed after it."""
    made: list = []
    yield made
    for c in made:
        c.close()
