"""Keys live hashed in the registry file; edits are picked up without a restart."""

from __future__ import annotations

import os

import numpy as np
from fastapi.testclient import TestClient

from boucle.registry import RegistryFile, hash_key
from boucle.settings import ApiSettings, load_settings
from cloud.app import create_app
from cloud.dashboard import preferred_language
from cloud.models import plain
from cloud.security import new_key
from tests.conftest import EXAMPLE_REGISTRY

P = {"from": "2026-03-28T01:00:00Z", "to": "2026-03-30T00:00:00Z", "ids": "energy.consumed"}


def entry(key_id: str, key: str, territory: str) -> str:
    return f'\n[[api_keys]]\nid = "{key_id}"\nsha256 = "{hash_key(key)}"\nterritories = ["{territory}"]\n'


def test_registry_keys_work_and_edits_apply_without_restart(tmp_path, simulated_db):
    registry = tmp_path / "registry.toml"
    first, second = new_key(), new_key()
    registry.write_text(EXAMPLE_REGISTRY.read_text("utf-8") + entry("ecully-officer", first, "ecully"), "utf-8")
    assert first not in registry.read_text()  # only the hash is stored
    settings = load_settings(ApiSettings, {}, store_url=f"sqlite:///{simulated_db}", rate_limit_per_s=0.0)
    with TestClient(create_app(settings, registry_file=RegistryFile(registry))) as c:
        assert c.get("/v1/territories/ecully", headers={"X-API-Key": first}).status_code == 200
        assert c.get("/v1/territories/zi-meyzieu", headers={"X-API-Key": first}).status_code == 404
        assert c.get("/v1/territories", headers={"X-API-Key": second}).status_code == 401
        before = c.get("/v1/territories/zi-meyzieu/indicators", params=P, headers={"X-API-Key": first})
        assert before.status_code == 404
        # `boucle key` output appended to the file: the new key works at once
        registry.write_text(registry.read_text("utf-8") + entry("zim-officer", second, "zi-meyzieu"), "utf-8")
        stat = registry.stat()
        os.utime(registry, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        r = c.get("/v1/territories/zi-meyzieu/indicators", params=P, headers={"X-API-Key": second})
        assert r.status_code == 200 and r.headers["x-cache"] == "miss"
        assert c.get("/v1/territories/ecully", headers={"X-API-Key": second}).status_code == 404


def test_language_from_accept_language():
    assert preferred_language("fr-FR,fr;q=0.9,en;q=0.8") == "fr"
    assert preferred_language("en-GB,fr;q=0.5") == "en"
    assert preferred_language("de-DE,de;q=0.9,fr;q=0.7,en;q=0.3") == "fr"
    assert preferred_language("fr;q=0,en") == "en"
    assert preferred_language("") == "en" and preferred_language("zz;q=abc") == "en"


def test_plain_makes_values_json_ready():
    assert plain({"a": np.float64(1.5), "b": [np.int64(2), float("nan")], "c": (1, float("inf"))}) == \
        {"a": 1.5, "b": [2, None], "c": [1, None]}
    assert type(plain(np.int64(3))) is int
