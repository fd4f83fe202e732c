"""The dashboard's operations views in headless Chromium (DevTools protocol) against a real
uvicorn on the simulated store: alerts (acknowledged with the page's button), the
collection round of a day, exchanges proposed from a symbiosis match and accepted; in
English, then in French. A screenshot of each view goes to tests/artifacts/ (copied to
docs/screenshots/)."""

from __future__ import annotations

import base64

import pytest

from boucle.registry import RegistryFile
from boucle.settings import ApiSettings, load_settings
from cloud.app import create_app
from cloud.serve import ServerThread
from tests.cloud.conftest import ECULLY, KEYS
from tests.cloud.devtools import DevToolsTab
from tests.conftest import EXAMPLE_REGISTRY, REPO
from tests.servers import free_port

ARTIFACTS = REPO / "tests" / "artifacts"
PAGE = "/?territory=ecully&from=2026-03-28&to=2026-03-29&lang=en"
OPS_READY = "document.body.dataset.ops === 'ready'"
TEXTS = "[...document.querySelectorAll('{}')].map(n => n.textContent)"


@pytest.fixture
def tab(tab):
    """The page tab, at a desktop size for the screenshots."""
    tab.call("Emulation.setDeviceMetricsOverride", width=1280, height=1000, deviceScaleFactor=1, mobile=False)
    return tab


def screenshot(tab: DevToolsTab, element: str, name: str) -> bytes:
    rect = tab.eval(f"(() => {{ const r = document.getElementById('{element}').getBoundingClientRect(); "
                    "return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}; })()")
    shot = tab.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip={**rect, "scale": 1})
    data = base64.b64decode(shot["data"])
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.png").write_bytes(data)
    return data


def test_alerts_rounds_and_exchanges_views(tmp_path, simulated_db, tab):
    # Écully's bins fill about 20% a day: with rounds due at 35%, some must be emptied Monday
    registry = tmp_path / "registry.toml"
    registry.write_text(EXAMPLE_REGISTRY.read_text("utf-8").replace(
        'round_days = "Mo-Fr", round_time = "06:00" }', 'round_days = "Mo-Fr", round_time = "06:00", '
        'threshold_pct = 35 }', 1), "utf-8")
    port = free_port()
    settings = load_settings(ApiSettings, {}, store_url=f"sqlite:///{simulated_db}", port=port,
                             alerts_db=str(tmp_path / "alerts.db"), alerts_interval_s=0)
    app = create_app(settings, registry_file=RegistryFile(registry), extra_keys=KEYS)
    # the simulated readings end on 2026-03-29: today every sensor is silent
    opened = app.state.alerts.evaluate()
    ecully = [a for a in opened if a["territory"] == "ecully"]
    assert ecully and {a["rule"] for a in ecully} == {"device_silent"}
    server = ServerThread(app, "127.0.0.1", port).start()
    try:
        tab.goto(f"{server.url}{PAGE}#key={ECULLY}")
        tab.wait_for(OPS_READY)

        rows = tab.eval(TEXTS.format("#alerts-list tr[data-alert]"))
        assert len(rows) == len(ecully) and all("Silent sensor" in r and "Acknowledge" in r for r in rows)
        assert "zim-" not in " ".join(rows)  # the Écully key sees Écully's alerts only
        shown = tab.eval(TEXTS.format("#alerts-list .alert-message"))
        assert sorted(shown) == sorted(a["messages"]["en"] for a in ecully)  # each alert's own message
        assert all(" (more than 10 intervals of " in m for m in shown)
        assert screenshot(tab, "alerts-view", "alerts")[:8] == b"\x89PNG\r\n\x1a\n"
        tab.eval("document.querySelector('#alerts-list tr[data-alert] button').click()")
        tab.wait_for("document.querySelector('#alerts-list .status-acknowledged')")
        [acked] = app.state.alerts.book.alerts(["ecully"], "acknowledged")
        assert acked["acknowledged_by"] == "ecully-officer"
        assert "by ecully-officer" in tab.eval(
            f"document.querySelector('#alerts-list tr[data-alert=\"{acked['id']}\"]').textContent")

        summary = tab.eval("document.querySelector('#rounds-list .round-summary').textContent")
        assert "Round of" in summary and "threshold 35 %" in summary
        collect = tab.eval(TEXTS.format("#rounds-list .round-collect tbody tr"))
        assert collect, "no bin to collect at 35%"
        distances = tab.eval("[...document.querySelectorAll('#rounds-list .round-collect tbody tr')]"
                             ".map(r => parseFloat(r.cells[3].textContent))")
        assert len(distances) == len(collect) and all(d > 0 for d in distances)
        assert distances == sorted(distances)  # nearest the depot first
        screenshot(tab, "rounds-view", "rounds")

        matches = tab.eval(TEXTS.format("#exchange-matches .match"))
        assert any("ecully-joinery → ecully-fablab" in m for m in matches)
        tab.eval("document.querySelector('#exchange-matches .match button').click()")
        tab.wait_for("document.querySelector('#exchanges-list .status-proposed')")
        tab.eval("[...document.querySelectorAll('#exchanges-list button')].find(b => b.textContent === 'Accept').click()")
        tab.wait_for("document.querySelector('#exchanges-list .status-accepted')")
        [x] = app.state.alerts.book.exchanges(["ecully"])
        assert (x["status"], x["material"], x["kg"]) == ("accepted", "wood", 80.0)
        screenshot(tab, "exchanges-view", "exchanges")

        tab.eval("document.getElementById('lang').click()")
        tab.wait_for("document.getElementById('h-alerts').textContent === 'Alertes'")
        french = tab.eval("document.getElementById('operations').textContent")
        for text in ("Capteur muet", "prise en compte", "Prendre en compte", "Tournée de collecte", "À vider",
                     "Échanges enregistrés", "accepté", "Marquer réalisé"):
            assert text in french, text
        shown = tab.eval(TEXTS.format("#alerts-list .alert-message"))
        assert sorted(shown) == sorted(a["messages"]["fr"] for a in ecully)  # and in French
        assert all(" (plus de 10 intervalles de " in m for m in shown)
    finally:
        server.stop()
