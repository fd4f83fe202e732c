"""The alert rules, the alert book's life cycle and the delivery arithmetic, without I/O
(the book on a real SQLite file)."""

from __future__ import annotations

import hashlib
import hmac

from boucle.registry import AlertSettings
from cloud.alerts import rules
from cloud.alerts.delivery import backoff_s, signature
from cloud.alerts.texts import LANGS
from cloud.alerts.texts import messages as texts_of
from cloud.book import Book
from cloud.rounds import BinForecast

NOW = 1_780_000_000
DEFAULTS = AlertSettings()


def test_device_silent_after_n_intervals_and_never_heard():
    assert rules.device_silent("m1", 60, NOW - 600, NOW, DEFAULTS, "t", "s") is None  # exactly 10 intervals
    found = rules.device_silent("m1", 60, NOW - 601, NOW, DEFAULTS, "t", "s")
    assert found is not None and found.key == "device_silent:m1" and found.detail["interval_s"] == 60
    assert "never" in rules.device_silent("m1", 60, None, NOW, DEFAULTS, "t", "s").message
    strict = AlertSettings(silent_intervals=2)
    assert rules.device_silent("m1", 60, NOW - 121, NOW, strict, "t", "s") is not None


def test_data_gap_finds_the_longest_hole_only_past_the_limit():
    times = [NOW - 3600 + 60 * i for i in range(20)] + [NOW - 3600 + 60 * 30 + 60 * i for i in range(10)]
    found = rules.data_gap("m1", 60, times, DEFAULTS, "t", "s")
    assert found is not None
    assert found.detail["missing_readings"] == 10  # readings 20..29 missing: an 11-minute hole
    small = [NOW - 600 + 60 * i for i in range(5)] + [NOW - 600 + 60 * 9]  # a 5-interval hole is allowed
    assert rules.data_gap("m1", 60, small, DEFAULTS, "t", "s") is None
    assert rules.data_gap("m1", 60, [NOW], DEFAULTS, "t", "s") is None


def test_bin_overflow_before_the_next_round():
    rising = BinForecast("b1", NOW, 70.0, 10.0)  # reaches 90% in 2 days
    assert rules.bin_overflow(rising, NOW + 3 * 86400, 90, "t", "s") is not None
    assert rules.bin_overflow(rising, NOW + 2 * 86400 + 1, 90, "t", "s") is not None
    assert rules.bin_overflow(rising, NOW + 2 * 86400, 90, "t", "s") is None  # reaches it at the round
    assert rules.bin_overflow(BinForecast("b1", NOW, 10.0, 0.0), NOW + 30 * 86400, 90, "t", "s") is None
    full = rules.bin_overflow(BinForecast("b1", NOW, 95.0, 0.0), NOW + 1, 90, "t", "s")
    assert full is not None and full.severity == "critical"


def test_base_load_against_the_median_of_the_nights_before():
    nights = {f"2026-11-{d:02d}": 200.0 for d in range(1, 10)}
    assert rules.base_load_high("s1", {**nights, "2026-11-10": 290.0}, DEFAULTS, "t") is None  # ratio 1.45
    found = rules.base_load_high("s1", {**nights, "2026-11-10": 320.0}, DEFAULTS, "t")
    assert found is not None and found.detail["usual_w"] == 200.0 and found.detail["night"] == "2026-11-10"
    # 1.5 x a small load, but less than 100 W more: not worth an alert
    small = {f"2026-11-{d:02d}": 20.0 for d in range(1, 10)}
    assert rules.base_load_high("s1", {**small, "2026-11-10": 60.0}, DEFAULTS, "t") is None
    assert rules.base_load_high("s1", {"2026-11-01": 1.0, "2026-11-02": 900.0}, DEFAULTS, "t") is None  # too few


def test_book_open_acknowledge_resolve_and_reopen(tmp_path):
    book = Book(tmp_path / "alerts.db")
    silent = rules.device_silent("m1", 60, None, NOW, DEFAULTS, "t", "s")
    evaluated = {("t", "device_silent")}
    [opened] = book.apply([silent], evaluated, NOW, ["webhook"])
    assert opened["status"] == "open" and opened["opened"] == NOW
    assert book.apply([silent], evaluated, NOW + 60, ["webhook"]) == []  # still the same alert
    acked = book.acknowledge(opened["id"], "ecully-officer", NOW + 120, ["webhook"])
    assert (acked["status"], acked["acknowledged"], acked["acknowledged_by"]) == ("acknowledged", NOW + 120,
                                                                                  "ecully-officer")
    assert book.apply([], {("other", "device_silent")}, NOW + 130) == []  # another territory's turn
    [resolved] = book.apply([], evaluated, NOW + 180, ["webhook"])
    assert (resolved["id"], resolved["status"], resolved["resolved"]) == (opened["id"], "resolved", NOW + 180)
    [again] = book.apply([silent], evaluated, NOW + 240, ["webhook"])
    assert again["id"] != opened["id"] and again["status"] == "open"
    assert [d.alert for d in book.due(NOW + 240)] == [opened["id"]] * 3 + [again["id"]]
    assert [a["status"] for a in book.alerts(["t"])] == ["open", "resolved"]
    assert book.alerts(["nowhere"]) == []


def test_signature_and_back_off():
    body = b'{"id": 1}'
    expected = hmac.new(b"s" * 32, b"1780000000." + body, hashlib.sha256).hexdigest()
    assert signature("s" * 32, "1780000000", body) == "sha256=" + expected
    assert [backoff_s(n, 10) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert backoff_s(30, 10) == 3600


def test_every_rule_speaks_english_and_french_and_the_book_carries_both(tmp_path):
    found = [
        rules.bin_overflow(BinForecast("b1", NOW, 70.0, 10.0), NOW + 3 * 86400, 90, "t", "s"),
        rules.device_silent("m1", 60, NOW - 601, NOW, DEFAULTS, "t", "s"),
        rules.device_silent("m2", 60, None, NOW, DEFAULTS, "t", "s"),
        rules.data_gap("m3", 60, [NOW - 3600, NOW - 1800, NOW - 1740], DEFAULTS, "t", "s"),
        rules.base_load_high("s1", {**{f"2026-11-{d:02d}": 200.0 for d in range(1, 10)}, "2026-11-10": 320.0},
                             DEFAULTS, "t"),
        rules.water_leak("s2", 4, "2026-11-10", "t"),
    ]
    assert {f.rule for f in found} == set(rules.RULES)
    book = Book(tmp_path / "alerts.db")
    kept = {a["subject"]: a for a in book.apply(found, {("t", r) for r in rules.RULES}, NOW)}
    for f in found:
        texts = kept[f.subject]["messages"]
        assert set(texts) == set(LANGS) and texts["en"] == f.message
        assert texts["fr"] != texts["en"] and f.subject in texts["fr"]
    assert kept["m3"]["messages"] == {"en": "m3 has a 30 min gap from 2026-05-28T19:26:40Z (about 29 readings "
                                            "missing)",
                                      "fr": "m3 a un trou de 30 min à partir du 2026-05-28T19:26:40Z (environ 29 "
                                            "mesures manquantes)"}
    assert kept["m2"]["messages"]["fr"].startswith("m2 n'a jamais envoyé de mesure (plus de 10 intervalles")
    assert kept["s2"]["messages"]["fr"] == ("s2 : l'eau a coulé chaque nuit pendant 4 nuits (jusqu'au 2026-11-10) "
                                            ": une fuite ?")
    # an alert whose detail cannot fill the template (kept by an older version) keeps its message in each
    assert texts_of("data_gap", "m1", {"from": "x"}, "old text") == {"en": "old text", "fr": "old text"}
