"""Fixtures for the workshop tests: a registry copy, an image cache, and a real Mosquitto
started with a password file and ACL in the format `boucle flash` writes."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_REGISTRY, require_binary
from tests.servers import Mosquitto
from workshop import credentials, images

OBSERVER = "workshop-observer"
OBSERVER_PASSWORD = "observer-secret-for-tests"


def fake_image(family: images.ChipFamily, size: int = 64 * 1024) -> bytes:
    """Bytes shaped like an ESP image header for the family (magic 0xE9, chip id at 12)."""
    header = bytearray(24)
    header[0] = 0xE9
    header[12:14] = family.image_chip_id.to_bytes(2, "little")
    return bytes(header) + bytes((i * 7) % 251 for i in range(size - 24))


@pytest.fixture
def registry_copy(tmp_path) -> Path:
    path = tmp_path / "registry.toml"
    shutil.copyfile(EXAMPLE_REGISTRY, path)
    return path


@pytest.fixture
def image_dir(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    lines = []
    for family in images.FAMILIES.values():
        name = f"{family.board}-20260829-v1.29.0.bin"
        data = fake_image(family)
        (folder / name).write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
    (folder / images.MANIFEST).write_text("\n".join(lines) + "\n")
    return folder


@dataclass
class AuthBroker:
    server: Mosquitto
    password_file: Path
    acl_file: Path

    @property
    def port(self) -> int:
        return self.server.port

    def reload_command(self) -> str:
        assert self.server.proc is not None
        return f"kill -HUP {self.server.proc.pid}"


@pytest.fixture
def auth_broker(tmp_path):
    """Mosquitto with allow_anonymous false, a password file and an ACL: an observer
    account that may read everything, as the workshop machine has."""
    require_binary("mosquitto", "mosquitto")
    folder = tmp_path / "broker"
    folder.mkdir()
    password_file = folder / "passwd"
    acl_file = folder / "acl"
    password_file.write_text(credentials.with_password("", OBSERVER, credentials.hash_password(OBSERVER_PASSWORD)))
    acl_file.write_text(f"user {OBSERVER}\ntopic readwrite #\n")
    server = Mosquitto(folder, extra_config=(f"allow_anonymous false\npassword_file {password_file}\n"
                                             f"acl_file {acl_file}\n")).start()
    yield AuthBroker(server, password_file, acl_file)
    server.stop()
