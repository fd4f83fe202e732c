"""The clustered broker's users as `boucle flash` writes them (workshop.nats_authorization):
the same device rule as Mosquitto's ACL, one line per device between the markers of
deploy/nats/authorization.conf, replaced on re-provisioning, put back on failure.
What NATS then does with the file: tests/deploy/test_nats_authorization.py."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from boucle.cli import main
from tests.deploy.stack import REPO
from tests.workshop.test_flash import Bench, bench  # noqa: F401 - the fixture
from workshop import credentials, nats_authorization

SHIPPED = REPO / "deploy" / "nats" / "authorization.conf"


def _permissions(line: str) -> dict:
    return json.loads(re.search(r"permissions: (\{.*\})\}$", line).group(1))


def test_device_line_carries_the_device_grants_as_subjects():
    hashed = nats_authorization.hash_password("device-secret")
    text = nats_authorization.with_device(SHIPPED.read_text(), "esp32-a1b2c3", hashed, "boucle/v1")
    line = nats_authorization.device_users(text)["esp32-a1b2c3"]
    grants = credentials.device_grants("esp32-a1b2c3", "boucle/v1")
    assert grants.publish == ("boucle/v1/esp32-a1b2c3/#",) and grants.subscribe == ("boucle/v1/esp32-a1b2c3/cmd",)
    assert _permissions(line) == {"publish": {"allow": ["boucle.v1.esp32-a1b2c3.>"]},
                                  "subscribe": {"allow": ["boucle.v1.esp32-a1b2c3.cmd", "$MQTT.sub.>"]}}
    assert 'allowed_connection_types: ["MQTT"]' in line
    assert nats_authorization.check_password("device-secret", re.search(r'password: "([^"]+)"', line).group(1))
    # The service accounts and the closing of the users list are untouched.
    assert text.replace(line, "").split() == SHIPPED.read_text().split()


def test_reprovisioning_replaces_the_line_and_keeps_the_others():
    text = SHIPPED.read_text()
    for device, secret in (("esp32-000001", "a"), ("esp32-000002", "b"), ("esp32-000001", "c")):
        text = nats_authorization.with_device(text, device, nats_authorization.hash_password(secret), "boucle/v1")
    users = nats_authorization.device_users(text)
    assert sorted(users) == ["esp32-000001", "esp32-000002"]
    assert nats_authorization.check_password("c", re.search(r'password: "([^"]+)"', users["esp32-000001"]).group(1))


@pytest.mark.parametrize("bad", ["esp32.x", "a b", 'a"b', ""])
def test_ids_that_are_no_plain_subject_are_refused(bad):
    with pytest.raises(ValueError):
        nats_authorization.with_device(SHIPPED.read_text(), bad, "$2b$04$x", "boucle/v1")


def test_a_file_without_the_markers_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="BEGIN devices"):
        nats_authorization.with_device("authorization { users: [] }\n", "esp32-000001", "$2b$04$x", "boucle/v1")


def test_nats_filter():
    assert nats_authorization.nats_filter("boucle/v1/+/cmd/#") == "boucle.v1.*.cmd.>"
    with pytest.raises(ValueError):
        nats_authorization.nats_filter("boucle/v1.1/x")


def test_flash_adds_the_device_to_the_nats_users(bench: Bench):  # noqa: F811
    users = bench.tmp_path / "authorization.conf"
    shutil.copyfile(SHIPPED, users)
    bench.add("/dev/ttyFAKE0", chip="ESP32-S3", mac="34:85:18:a1:b2:c3")
    assert main(bench.argv("/dev/ttyFAKE0", extra=("--nats-authorization-file", str(users)))) == 0
    config = bench.boards["/dev/ttyFAKE0"].config
    line = nats_authorization.device_users(users.read_text())["esp32-a1b2c3"]
    assert nats_authorization.check_password(config["mqtt"]["password"], re.search(r'password: "([^"]+)"', line).group(1))


def test_a_silent_device_leaves_the_nats_users_as_they_were(bench: Bench):  # noqa: F811
    users = bench.tmp_path / "authorization.conf"
    shutil.copyfile(SHIPPED, users)
    bench.add("/dev/ttyFAKE0", online=False)
    assert main(bench.argv("/dev/ttyFAKE0", extra=("--nats-authorization-file", str(users),
                                                   "--verify-timeout", "1.5"))) == 1
    assert users.read_text() == SHIPPED.read_text()
