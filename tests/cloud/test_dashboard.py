"""The dashboard page in headless Chromium against a real uvicorn serving simulated data.

Chromium runs the page's own JavaScript (fetching the API with the key from the URL
fragment), then its DOM is dumped and checked; a screenshot goes to tests/artifacts/.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from boucle.registry import RegistryFile
from boucle.settings import ApiSettings, load_settings
from cloud.app import create_app
from cloud.indicators import CATALOGUE
from cloud.indicators.caveats import TEMPLATES
from cloud.serve import ServerThread
from tests.cloud.conftest import ADMIN, ECULLY, KEYS, ZIM_FABLAB
from tests.conftest import EXAMPLE_REGISTRY, REPO, require_binary
from tests.servers import free_port

ARTIFACTS = REPO / "tests" / "artifacts"
PAGE = "/?territory=ecully&from=2026-03-28&to=2026-03-29"


def chromium(tmp_path: Path, url: str, *extra: str) -> str:
    require_binary("chromium", "chromium")
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--window-size=1280,1600", "--virtual-time-budget=20000",
           *extra, url]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _template_regex(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\{\w+\\}", ".+?", re.escape(template)) + "$")


def test_every_caveat_has_a_french_text():
    """The dashboard translates caveats by their English templates: each needs its entry."""
    js = (REPO / "cloud" / "dashboard" / "i18n.js").read_text()
    table = js[js.index("caveats: {"):]
    table = table[:table.index("\n    },")]
    assert set(re.findall(r'"([^"]+)":', table)) == set(TEMPLATES)


def cards(dom: str) -> list[str]:
    return re.findall(r'<article class="card standing-(\w+)" data-id="([\w.]+)"', dom)


@pytest.fixture
def base(served):
    return served().url


def test_french_page_renders_cards_charts_and_map(tmp_path, base):
    dom = chromium(tmp_path, f"{base}{PAGE}#key={ECULLY}", "--lang=fr", "--accept-lang=fr-FR,fr", "--dump-dom")
    assert 'data-state="ready"' in dom, dom[-3000:]
    assert re.search(r'<html lang="fr"', dom)
    found = cards(dom)
    assert len(found) == len(CATALOGUE)
    assert {i for _, i in found} >= {"energy.consumed", "waste.per_capita", "water.night_flow", "data.coverage"}
    assert dom.count('class="coverage') == len(CATALOGUE)  # every card shows its coverage
    assert "better" in {s for s, _ in found}  # waste per inhabitant is far below the ADEME target here
    for label in ("Énergie consommée", "Déchets par habitant", "Couverture des données", "Courbe de charge",
                  "Meilleur que la cible", "couverture 100", "Eau consommée", "Eau par habitant", "Débit de nuit",
                  "Fuites suspectées", "L/hab./jour", "moyenne nationale 145"):
        assert label in dom, label
    assert dom.count('class="site-mark"') == 5  # Écully's five sites on the SVG map
    assert 'class="series series-grid"' in dom and 'class="series series-pv"' in dom
    assert dom.count('class="bar-rect"') >= 2  # waste by stream
    assert "Écully" in dom and "zi-meyzieu" not in dom  # the territory key sees only its territory
    shown = re.findall(r'<p class="caveat">([^<]*)</p>', dom)
    assert shown, "no caveat on the page"
    assert not [c for c in shown if any(_template_regex(t).match(c) for t in TEMPLATES)], shown  # all in French


def test_english_browser_gets_english_and_the_screenshot_is_saved(tmp_path, base):
    dom = chromium(tmp_path, f"{base}{PAGE}#key={ADMIN}", "--lang=en-US", "--accept-lang=en-US,en", "--dump-dom")
    assert 'data-state="ready"' in dom
    assert re.search(r'<html lang="en"', dom)
    assert "Energy consumed" in dom and "Énergie consommée" not in dom
    assert len(cards(dom)) == len(CATALOGUE)
    assert "Water per inhabitant" in dom and "national average 145" in dom
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    chromium(tmp_path, f"{base}{PAGE}#key={ADMIN}", "--lang=fr", "--accept-lang=fr-FR,fr",
             "--hide-scrollbars", f"--screenshot={shot}")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_a_site_key_gets_its_site(tmp_path, base):
    url = f"{base}/?site=zim-fablab&from=2026-03-28&to=2026-03-29#key={ZIM_FABLAB}"
    dom = chromium(tmp_path, url, "--accept-lang=fr-FR,fr", "--dump-dom")
    assert 'data-state="ready"' in dom, dom[-3000:]
    assert len(cards(dom)) == len(CATALOGUE)
    assert '<span id="scope-label" data-i18n="site">Site</span>' in dom
    assert dom.count('class="site-mark"') == 1 and "Fablab" in dom
    assert re.search(r'<section class="panel" hidden="">\s*<h3 data-i18n="opportunities"', dom)  # territory-wide only


def test_without_a_key_the_page_asks_for_one(tmp_path, base):
    dom = chromium(tmp_path, f"{base}/", "--accept-lang=fr-FR,fr", "--dump-dom")
    assert re.search(r'<section id="login" class="login">', dom)  # shown (no hidden attribute)
    assert "Clé d'API" in dom
    assert not cards(dom)


def test_a_wrong_key_is_refused_on_the_page(tmp_path, base):
    dom = chromium(tmp_path, f"{base}/#key=bk_wrong", "--accept-lang=en-US,en", "--dump-dom")
    assert "Key refused" in dom
    assert not cards(dom)


STORED = "({session: sessionStorage.getItem('boucle.key'), local: localStorage.getItem('boucle.key'), " \
         "address: location.href})"
OPTIONS = "Array.from(document.querySelectorAll('#territory option')).map(o => o.value)"
READY = "document.body.dataset.state === 'ready'"
SWAP_SHOWN = "!document.getElementById('key-swap').hidden"


def test_a_key_from_a_link_is_kept_in_the_tab_only_and_leaves_the_address(tab, base):
    tab.goto(f"{base}/")
    tab.eval("localStorage.setItem('boucle.key', 'bk_kept-by-an-older-page')")
    tab.goto(f"{base}{PAGE}#key={ECULLY}")
    tab.wait_for(READY)
    # sessionStorage (this tab, until it closes), not localStorage; the address no longer shows it
    assert tab.eval(STORED) == {"session": ECULLY, "local": None, "address": f"{base}{PAGE}"}


def test_a_link_with_another_key_asks_before_replacing_it(tab, base):
    tab.goto(f"{base}{PAGE}#key={ECULLY}")
    tab.wait_for(READY)
    assert tab.eval(OPTIONS) == ["ecully"]
    # a link with another key, followed in the same tab: asked, not replaced
    other = f"{base}{PAGE}&lang=en"
    tab.goto(f"{other}#key={ADMIN}")
    tab.wait_for(SWAP_SHOWN)
    assert tab.eval(STORED) == {"session": ECULLY, "local": None, "address": other}
    assert "another API key" in tab.eval("document.getElementById('key-swap').textContent")
    tab.wait_for(READY)
    assert tab.eval(OPTIONS) == ["ecully"]  # meanwhile the page goes on with the key in use
    tab.eval("document.getElementById('key-swap-keep').click()")
    assert not tab.eval(SWAP_SHOWN) and tab.eval(STORED)["session"] == ECULLY
    # the same link again, now as a fragment change of this page; this time the user takes it
    tab.goto(f"{other}#key={ADMIN}")
    tab.wait_for(SWAP_SHOWN)
    assert tab.eval(STORED) == {"session": ECULLY, "local": None, "address": other}
    tab.eval("document.getElementById('key-swap-use').click()")
    tab.wait_for(f"{OPTIONS}.length === 3")
    tab.wait_for(READY)
    assert tab.eval(STORED)["session"] == ADMIN and not tab.eval(SWAP_SHOWN)


HOSTILE = """<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>"""


def test_markup_in_registry_names_is_shown_as_text(tmp_path, simulated_db, tab):
    registry = tmp_path / "registry.toml"
    text = EXAMPLE_REGISTRY.read_text("utf-8")
    for name in ('name = "Écully"', 'name = "La Fabrique d\'Écully (Fablab)"'):
        text = text.replace(name, name[:-1] + " " + HOSTILE.replace('"', '\\"') + '"', 1)
    registry.write_text(text, "utf-8")
    port = free_port()
    settings = load_settings(ApiSettings, {}, store_url=f"sqlite:///{simulated_db}", port=port)
    server = ServerThread(create_app(settings, registry_file=RegistryFile(registry), extra_keys=KEYS),
                          "127.0.0.1", port).start()
    try:
        tab.goto(f"{server.url}{PAGE}#key={ECULLY}")
        tab.wait_for(READY)
        assert tab.eval("document.querySelector('#territory option').textContent") == "Écully " + HOSTILE
        assert HOSTILE in tab.eval("document.getElementById('status').textContent")
        assert HOSTILE in tab.eval("document.getElementById('map').textContent")  # the Fablab's mark
        assert tab.eval("document.querySelectorAll('img').length") == 1  # the logo only
        page_scripts = (REPO / "cloud" / "dashboard" / "index.html").read_text().count("<script ")
        assert tab.eval("Array.from(document.scripts).filter(s => s.src.startsWith(location.origin + "
                        "'/dashboard/')).length") == tab.eval("document.scripts.length") == page_scripts  # its own
        assert tab.eval("document.title") != "pwned"
    finally:
        server.stop()


def test_page_and_assets_are_local_and_locked_down(client):
    page = client.get("/", headers={"Accept-Language": "de-DE,de;q=0.9,fr;q=0.8,en;q=0.5"})
    assert page.status_code == 200 and '<html lang="fr"' in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert src.startswith("/"), src  # no CDN, no remote asset
        assert client.get(src).status_code == 200, src
    assert client.get("/", headers={"Accept-Language": "en-GB"}).text.count('<html lang="en"') == 1
    assert client.get("/dashboard/secret.py").status_code == 404
    assert client.get("/dashboard/..%2F__init__.py").status_code == 404
