"""The device key store (boucle.device_keys) and the registry's `signed` rule, as the
gateway's parse stage gets them (gateway.service.Gateway.signing)."""

import logging

import pytest

from boucle.device_keys import KeyStoreError, KeyStoreFile, generate_key, parse_keys, with_key
from boucle.registry import load_registry
from tests.conftest import EXAMPLE_REGISTRY

EXAMPLE = EXAMPLE_REGISTRY.read_text()


def test_lines_are_set_replaced_and_read_back():
    a, b = generate_key(), generate_key()
    assert a != b and len(bytes.fromhex(a)) == 32
    text = with_key("# device keys\n", "ecully-fablab-grid", a)
    text = with_key(text, "ecully-bakery-grid", b)
    text = with_key(text, "ecully-fablab-grid", b)  # re-provisioned: a new key replaces the old
    assert text.startswith("# device keys\n")
    assert parse_keys(text) == {"ecully-bakery-grid": bytes.fromhex(b), "ecully-fablab-grid": bytes.fromhex(b)}
    with pytest.raises(ValueError):
        with_key(text, "Not An Id", a)


@pytest.mark.parametrize("line", ["ecully-fablab-grid:" + "AB" * 32, "ecully-fablab-grid:abcd", "no-colon",
                                  "ecully-fablab-grid " + "ab" * 32])
def test_a_bad_line_names_its_number_and_never_the_key(line):
    with pytest.raises(KeyStoreError) as info:
        parse_keys(f"# ok\n\n{line}\n", "keys")
    message = str(info.value)
    assert message.startswith("keys:3:") and "64 lower-case hex digits" in message
    assert (line.partition(":")[2] or line) not in message


def test_a_device_twice_is_refused():
    key = generate_key()
    with pytest.raises(KeyStoreError, match="keys:2: device 'dev-one' has a key already"):
        parse_keys(f"dev-one:{key}\ndev-one:{key}\n", "keys")


def test_the_file_is_reread_when_it_changes_and_a_broken_edit_keeps_the_last_good(tmp_path, caplog):
    path = tmp_path / "device-keys"
    store = KeyStoreFile(path)
    assert store.current() == {}  # no file yet: nobody signs
    key = generate_key()
    path.write_text(f"dev-one:{key}\n")
    path.chmod(0o600)
    assert store.current() == {"dev-one": bytes.fromhex(key)}
    with caplog.at_level(logging.WARNING, "boucle.device_keys"):
        path.write_text(f"dev-one:{key}\ngarbage\n")
        path.chmod(0o644)
        assert store.current() == {"dev-one": bytes.fromhex(key)}
    assert store.rejected and ":2:" in store.rejected
    assert "readable by other users" in caplog.text and key not in caplog.text


def test_signed_required_per_territory_with_a_device_override(tmp_path):
    assert load_registry(EXAMPLE_REGISTRY).unsigned_refused() == frozenset()  # migration default: optional
    text = EXAMPLE.replace('population = 18512\n', 'population = 18512\nsigned = "required"\n', 1)
    text = text.replace('id = "ecully-fablab-grid"\n', 'id = "ecully-fablab-grid"\nsigned = "optional"\n', 1)
    path = tmp_path / "registry.toml"
    path.write_text(text)
    reg = load_registry(path)
    refused = reg.unsigned_refused()
    assert refused == {d.id for d in reg.devices_of("ecully")} - {"ecully-fablab-grid"}
    assert refused and not refused & {d.id for d in reg.devices_of("zi-meyzieu")}
