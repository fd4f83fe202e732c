"""Dashboard views of issue 17 in headless Chromium (DevTools): the comparison toggle.
Each view's screenshot is written to docs/screenshots/ (committed: the docs show them)."""

from __future__ import annotations

import pytest

from cloud.indicators import CATALOGUE
from tests.cloud.conftest import ADMIN
from tests.cloud.devtools import DevToolsTab
from tests.conftest import REPO

SCREENSHOTS = REPO / "docs" / "screenshots"
DAY_29 = "/?territory=ecully&from=2026-03-29&to=2026-03-29"  # the day before it has readings too
READY = "document.body.dataset.state === 'ready'"
CHANGES = "Array.from(document.querySelectorAll('.card .change')).map(p => [p.closest('.card').dataset.id, p.className, p.textContent])"


@pytest.fixture
def base(served):
    return served().url


@pytest.fixture
def tab(tmp_path):
    opened = DevToolsTab(tmp_path / "devtools-profile")
    yield opened
    opened.close()


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
