"""Dashboard views of issue 17 in headless Chromium (DevTools): the comparison toggle.
Each view's screenshot is written to docs/screenshots/ (committed: the docs show them)."""

from __future__ import annotations

import json
import urllib.request

import pytest

from cloud.indicators import CATALOGUE
from tests.cloud.conftest import ADMIN
from tests.conftest import REPO

SCREENSHOTS = REPO / "docs" / "screenshots"
DAY_29 = "/?territory=ecully&from=2026-03-29&to=2026-03-29"  # the day before it has readings too
READY = "document.body.dataset.state === 'ready'"
CHANGES = "Array.from(document.querySelectorAll('.card .change')).map(p => [p.closest('.card').dataset.id, p.className, p.textContent])"


@pytest.fixture
def base(served):
    return served().url


def test_the_compare_toggle_shows_each_indicator_against_the_previous_period(tab, base):
    tab.goto(f"{base}{DAY_29}&lang=en#key={ADMIN}")
    tab.wait_for(READY)
    assert tab.eval(CHANGES) == []  # no comparison until asked
    tab.eval("const s = document.getElementById('compare'); s.value = 'previous'; "
             "s.dispatchEvent(new Event('change'))")
    tab.wait_for(f"{CHANGES}.length === {len(CATALOGUE)}")
    tab.wait_for(READY)
    changes = {i: (cls, text) for i, cls, text in tab.eval(CHANGES)}
    kinds = {cls.split()[-1] for cls, _ in changes.values()}
    assert {"change-better", "change-worse"} <= kinds, changes  # some go each way between two days
    text = changes["energy.consumed"][1]
    assert " against " in text and "%" in text
    assert tab.eval("getComputedStyle(document.querySelector('.change-better')).color") == "rgb(47, 125, 79)"
    assert tab.eval("getComputedStyle(document.querySelector('.change-worse')).color") == "rgb(184, 50, 42)"
    tab.screenshot(SCREENSHOTS / "compare-previous.png")
    tab.eval("document.getElementById('lang').click()")  # French
    assert " par rapport à " in tab.eval("document.querySelector('.card .change').textContent")
    assert tab.eval("document.querySelector('#compare option[value=year]').textContent") == "Même période, un an avant"


PAGE_2D = "/?territory=ecully&from=2026-03-28&to=2026-03-29"
DRILL_READY = "document.getElementById('drill-view').dataset.state === 'ready'"


BIN_CELLS = ("Object.fromEntries(Array.from(document.querySelectorAll('#drill-view tr.bin')).map(r => [r.dataset.device, "
             "[r.querySelector('.bin-fill').dataset.fill, r.querySelector('.fill-value').textContent, "
             "r.querySelector('.weight').textContent]]))")


def api_get(base: str, path: str) -> dict:
    request = urllib.request.Request(base + path, headers={"X-API-Key": ADMIN})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def text(tab, selector: str) -> list[str]:
    return tab.eval(f"Array.from(document.querySelectorAll({selector!r})).map(n => n.textContent)")


def test_ranking_site_page_and_device_health_views(tab, base):
    # ranking: Écully's sites by energy, highest first; a site's name opens its page
    tab.goto(f"{base}{PAGE_2D}&view=ranking&lang=en#key={ADMIN}")
    tab.wait_for(READY)
    tab.wait_for(DRILL_READY)
    ranked = tab.eval("Array.from(document.querySelectorAll('#drill-view tbody tr')).map(r => r.dataset.site)")
    assert len(ranked) == 5 and "ecully-fablab" in ranked
    values = [float(v.split()[0].replace(",", "")) for v in text(tab, "#drill-view tbody td.num")
              if v[0].isdigit()]
    assert values == sorted(values, reverse=True) and values
    tab.eval("const s = document.getElementById('rank-per'); s.value = 'm2'; s.dispatchEvent(new Event('change'))")
    tab.wait_for("document.querySelector('#drill-view td.num') && "
                 "document.querySelector('#drill-view td.num').textContent.includes('/m²')")
    tab.screenshot(SCREENSHOTS / "ranking.png", selector="#drilldown")

    tab.eval("document.querySelector('#drill-view .site-link[data-site=\"ecully-bakery\"]').click()")
    tab.wait_for("document.getElementById('drill-view').dataset.view === 'site'")
    tab.wait_for(DRILL_READY)
    assert text(tab, "#drill-view .site-name") == ["Boulangerie du Centre"]
    assert "Tu-Sa 06:30-19:30" in text(tab, "#drill-view .opening-hours")[0]
    assert tab.eval("document.querySelectorAll('#drill-view tr.bin').length") >= 1  # its bins
    assert tab.eval("document.querySelectorAll('#site-chart .series-grid').length") == 1  # its load curve
    assert "ecully-bakery-grid" in text(tab, "#drill-view tr[data-device] td:first-child")  # its devices
    assert any("Energy consumed" in row for row in text(tab, "#drill-view tr[data-id]"))  # its indicators
    # its bins' fill and weight now: the API's device health (newest readings)
    api = api_get(base, "/v1/sites/ecully-bakery/device-health?from=2026-03-28&to=2026-03-30")
    bins = {d["id"]: d for d in api["devices"] if d["kind"] == "waste"}
    shown = tab.eval(BIN_CELLS)
    assert set(shown) == set(bins) and all(b["fill_pct"] is not None for b in bins.values())
    for device, (fill, fill_text, weight_text) in shown.items():
        assert float(fill) == bins[device]["fill_pct"]
        assert fill_text == f"{bins[device]['fill_pct']:.0f} %"
        assert weight_text == f"{bins[device]['weight_kg']:g} kg"
    assert bins["ecully-bakery-bin-bio"]["fill_pct"] > 0  # a bin with something in it
    tab.screenshot(SCREENSHOTS / "site-page.png", selector="#drilldown")

    # device health: which sensor to visit (the readings are from long ago: all offline)
    tab.eval("document.getElementById('lang').click()")  # French: the same figures, its words
    tab.wait_for(DRILL_READY)
    tab.wait_for("document.documentElement.lang === 'fr'")
    assert "Remplissage" in text(tab, "#drill-view th") and "Poids" in text(tab, "#drill-view th")
    assert {d: (f, w) for d, (f, _, w) in tab.eval(BIN_CELLS).items()} == {
        d: (f, w.replace(".", ",")) for d, (f, _, w) in shown.items()}
    tab.eval("document.getElementById('lang').click()")  # back to English
    tab.wait_for("document.documentElement.lang === 'en'")
    tab.wait_for(DRILL_READY)

    tab.eval("document.querySelector('#drilldown [data-view=health]').click()")
    tab.wait_for("document.getElementById('drill-view').dataset.view === 'health'")
    tab.wait_for(DRILL_READY)
    rows = tab.eval("document.querySelectorAll('#drill-view tbody tr').length")
    assert rows == 17  # Écully's devices
    assert text(tab, ".to-visit-count") == ["17 of 17 devices to visit"]
    assert all(v.startswith("offline: no reading received for") for v in text(tab, "#drill-view td.visit"))
    tab.screenshot(SCREENSHOTS / "device-health.png", selector="#drilldown")
    tab.eval("document.getElementById('lang').click()")
    tab.wait_for(DRILL_READY)
    assert "capteurs à visiter" in text(tab, ".to-visit-count")[0]
