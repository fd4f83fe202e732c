"""Fixtures of the gateway tests."""

import pytest


@pytest.fixture(params=["sqlite", "influx"])
def store_url(request, tmp_path):
    """The same test on the embedded store and on a real InfluxDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'b.db'}"
    influxdb = request.getfixturevalue("influxdb")
    return f"influx+http://127.0.0.1:{influxdb.port}/gateway_test"
