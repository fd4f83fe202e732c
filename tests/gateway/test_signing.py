"""The gateway's signature check as the service assembles it: the key store and the
registry's `signed` rule, both re-read when their files change (gateway.service)."""

from boucle.device_keys import generate_key
from boucle.settings import GatewaySettings, load_settings
from gateway.output import parse_batch
from gateway.service import Gateway
from gateway.spool import Spooled
from tests.conftest import EXAMPLE_REGISTRY

NOW = 1767225600
UNSIGNED = b'{"v":1,"device":"%s","boot":1,"readings":[{"seq":1,"ts":1767225000,"energy_wh":5}]}'


def test_keys_and_required_devices_follow_their_files(tmp_path):
    registry, keys = tmp_path / "registry.toml", tmp_path / "device-keys"
    registry.write_text(EXAMPLE_REGISTRY.read_text())
    gateway = Gateway(load_settings(GatewaySettings, {}, registry=str(registry), device_keys=str(keys),
                                    store_url=f"sqlite:///{tmp_path / 'boucle.db'}",
                                    spool_path=str(tmp_path / "spool.db"), metrics_port=0))
    try:
        assert gateway.signing().keys == {} and not gateway.signing().required
        key = generate_key()
        keys.write_text(f"ecully-fablab-grid:{key}\n")
        registry.write_text(EXAMPLE_REGISTRY.read_text().replace(
            'population = 18512\n', 'population = 18512\nsigned = "required"\n', 1))
        signing = gateway.signing()
        assert signing.keys == {"ecully-fablab-grid": bytes.fromhex(key)}
        assert "ecully-bakery-grid" in signing.required and "zim-metal-grid" not in signing.required

        messages = [Spooled(i + 1, NOW, f"boucle/v1/{d}/telemetry", UNSIGNED % d.encode(), False)
                    for i, d in enumerate(("ecully-fablab-grid", "ecully-bakery-grid", "zim-metal-grid"))]
        parsed = parse_batch(messages, "boucle/v1", None, now=NOW, max_future_skew_s=300, max_payload_bytes=8192,
                             signing=signing)
        assert sorted((d.device, d.error) for d in parsed.letters) == [
            ("ecully-bakery-grid", "bad_signature"), ("ecully-fablab-grid", "bad_signature")]
        assert [r[0] for r in parsed.readings] == ["zim-metal-grid"]
    finally:
        gateway.spool.close()
