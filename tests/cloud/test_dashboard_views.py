"""Dashboard views of issue 17 in headless Chromium (DevTools): the comparison toggle.
Each view's screenshot is written to docs/screenshots/ (committed: the docs show them)."""

from __future__ import annotations

import csv
import io
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


# the page's requests are noted, the file it links kept (the page's CSP refuses reading a blob:
# URL back) and its download link not followed (no file written)
WATCH_EXPORT = """(() => {
  window.requested = [];
  const fetchIt = window.fetch, link = URL.createObjectURL;
  window.fetch = (url, options) => { window.requested.push(String(url)); return fetchIt(url, options); };
  URL.createObjectURL = file => { window.linked = file; return link(file); };
  document.addEventListener('click', e => {
    if (e.target.download) { e.preventDefault(); window.downloaded = { href: e.target.href, name: e.target.download }; }
  }, true);
})()"""


def export(tab) -> tuple[str, str, list[dict]]:
    """Click the page's CSV button: the request it made, the file name, the CSV's rows."""
    tab.eval("window.downloaded = null; window.requested = []; document.getElementById('export').click()")
    tab.wait_for("window.downloaded")
    (url,) = [u for u in tab.eval("window.requested") if "format=csv" in u]
    name = tab.eval("window.downloaded.name")
    return url, name, list(csv.DictReader(io.StringIO(tab.eval("window.linked.text()"))))


def number_or_null(cell: str) -> str:
    return cell if cell else "null"


def test_the_csv_export_follows_the_compare_toggle_and_the_period_shown(tab, base):
    tab.goto(f"{base}{DAY_29}&lang=en#key={ADMIN}")
    tab.wait_for(READY)
    tab.eval(WATCH_EXPORT)
    url, name, rows = export(tab)  # no comparison: no change columns
    assert "from=2026-03-29&to=2026-03-30" in url and "compare=" not in url
    assert "compare" not in rows[0] and name == "boucle-ecully-2026-03-29.csv"

    tab.eval("const s = document.getElementById('compare'); s.value = 'previous'; "
             "s.dispatchEvent(new Event('change'))")
    tab.wait_for(f"{CHANGES}.length === {len(CATALOGUE)}")
    tab.wait_for(READY)
    url, name, rows = export(tab)
    assert "compare=previous" in url and "from=2026-03-29&to=2026-03-30" in url
    assert name == "boucle-ecully-2026-03-29-vs-previous.csv"
    assert [r["id"] for r in rows] == tab.eval("Array.from(document.querySelectorAll('.card')).map(c => c.dataset.id)")
    shown = {i: (cls, text) for i, cls, text in tab.eval(CHANGES)}
    for r in rows:
        assert r["from"].startswith("2026-03-29") and r["to"].startswith("2026-03-30")
        assert (r["compare"], r["compared_from"][:10], r["compared_to"][:10]) == ("previous", "2026-03-28", "2026-03-29")
        # the CSV's change, drawn by the page's own change line, is the card's
        improved = {"true": "true", "false": "false", "": "null"}[r["improved"]]
        drawn = tab.eval(
            f"(() => {{ const p = BoucleCompare.changeLine({{ compare: {json.dumps(r['compare'])}, "
            f"delta: {number_or_null(r['delta'])}, delta_pct: {number_or_null(r['delta_pct'])}, "
            f"value: {number_or_null(r['compared_value'])}, improved: {improved} }}, BoucleApp.t, BoucleApp.number); "
            "return [p.className, p.textContent]; })()")
        assert tuple(drawn) == shown[r["id"]], r["id"]
    assert {r["improved"] for r in rows} >= {"true", "false"}  # some each way: the columns carry something

    tab.eval("document.getElementById('preset').value = 'custom'; const f = document.getElementById('from'); "
             "f.value = '2026-03-28'; f.dispatchEvent(new Event('change'))")  # two days shown: the export's too
    tab.wait_for(READY)
    tab.wait_for("document.querySelector('.card .change')")
    url, name, rows = export(tab)
    assert "from=2026-03-28&to=2026-03-30&compare=previous" in url
    assert {(r["from"][:10], r["compared_from"][:10]) for r in rows} == {("2026-03-28", "2026-03-26")}


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
    assert text(tab, "#drill-view tr.bin td.visit") == [" · ".join(r["messages"]["fr"] for r in bins[d]["visit_reasons"])
                                                        for d in tab.eval(BIN_CELLS)]
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
    # each reason in the page's language: the API's messages, the English ones its `visit`
    api = api_get(base, "/v1/territories/ecully/device-health?from=2026-03-28&to=2026-03-30")["devices"]
    visits = "Object.fromEntries(Array.from(document.querySelectorAll('#drill-view tbody tr')).map(r => " \
             "[r.dataset.device, r.querySelector('td.visit').textContent]))"
    assert tab.eval(visits) == {d["id"]: " · ".join(d["visit"]) for d in api}
    assert all(d["visit"] == [r["messages"]["en"] for r in d["visit_reasons"]] for d in api)
    tab.eval("document.getElementById('lang').click()")
    tab.wait_for("document.documentElement.lang === 'fr'")
    tab.wait_for(DRILL_READY)
    assert "capteurs à visiter" in text(tab, ".to-visit-count")[0]
    french = tab.eval(visits)
    assert french == {d["id"]: " · ".join(r["messages"]["fr"] for r in d["visit_reasons"]) for d in api}
    assert all(v.startswith("hors ligne : aucune mesure reçue depuis ") and v.endswith(" jours")
               for v in french.values())
