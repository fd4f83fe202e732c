"""`boucle bench --quick`: every benchmark runs against real servers and writes its rows,
the report and the plots. Figures are printed, never asserted (no timing assertions)."""

import json

import pytest
from PIL import Image

from bench.run import BENCHMARKS
from boucle.cli import main
from tests.conftest import require_binary


@pytest.fixture
def servers_available():
    require_binary("mosquitto", "mosquitto")
    require_binary("influxd", "influxdb")
    require_binary("node", "nodejs")  # MicroPython (WebAssembly) for the firmware heap figure


def test_quick_run_writes_every_row_the_report_and_the_plots(tmp_path, servers_available):
    out = tmp_path / "report"
    code = main(["bench", "--quick", "--out", str(out)])

    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    failures = {r["bench"]: r["error"] for r in rows if r["error"]}
    assert failures == {}, failures
    assert code == 0
    assert {r["bench"] for r in rows} == set(BENCHMARKS)
    for row in rows:
        assert isinstance(row["value"], (int, float)) and row["value"] > 0, row
        if row["ceiling"] is not None:
            assert row["ratio"] == pytest.approx(row["value"] / row["ceiling"])

    report = (out / "report.md").read_text()
    for row in rows:
        assert row["figure"] in report
    for key in ("CPU", "cores", "memory", "Python", "Mosquitto", "InfluxDB"):
        assert f"| {key} |" in report
    for plot in ("throughput.png", "latency.png"):
        assert f"]({plot})" in report
        with Image.open(out / plot) as image:
            assert image.format == "PNG" and image.width > 100

    latency = results["data"]["latency"]
    assert latency["devices"] >= 1000
    assert latency["unseen"] == 0 and len(latency["latencies_ms"]) == latency["published"]


def test_a_failing_benchmark_gets_a_failed_row_and_exit_code_1(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no node: the firmware heap figure cannot be measured
    out = tmp_path / "report"
    assert main(["bench", "--quick", "--only", "firmware", "--out", str(out)]) == 1
    report = (out / "report.md").read_text()
    assert "**failed**: RuntimeError: node not found" in report
    assert "node not found" in (out / "firmware-error.txt").read_text()


def test_outside_a_checkout_bench_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    import bench.run

    monkeypatch.setattr(bench.run, "REPO", tmp_path)
    assert main(["bench", "--quick", "--only", "firmware", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "source checkout" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
