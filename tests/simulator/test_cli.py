"""`boucle simulate` on the command line: registry generation, a short backfill with
faults against a real Mosquitto, and one-line errors."""

import json

from boucle.cli import main
from boucle.registry import load_registry
from simulator.ledger import read_ledger
from tests.conftest import EXAMPLE_REGISTRY


def test_generate_registry_prints_a_loadable_registry(tmp_path, capsys):
    assert main(["simulate", "--generate-registry", "2x3x4", "--seed", "5"]) == 0
    path = tmp_path / "gen.toml"
    path.write_text(capsys.readouterr().out)
    assert len(load_registry(path).devices) == 24


def test_bad_input_gives_one_line_errors(capsys):
    assert main(["simulate", "--generate-registry", "2x3"]) == 2
    assert "TERRITORIESxSITESxDEVICES" in capsys.readouterr().err
    assert main(["simulate", "--fault", "kind=flood,start=+1h", "--mqtt-port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("boucle simulate: fault #1 (flood): kind must be one of") and "Traceback" not in err


def test_a_backfill_with_faults_from_the_command_line(tmp_path, mosquitto, capsys):
    ledger = tmp_path / "ledger.jsonl"
    code = main(["simulate", "--mqtt-port", str(mosquitto.port), "--start", "2025-11-20", "--end", "2025-11-20T02:00",
                 "--speed", "0", "--ledger", str(ledger), "--state", str(tmp_path / "state.json"),
                 "--fault", "kind=garbage,start=+10m,count=3,devices=ecully-fablab-grid",
                 "--fault", "kind=reboot,start=+1h,share=0.5"])
    assert code == 0
    out, err = capsys.readouterr()
    assert "(0 duplicates, 3 garbage payloads)" in out and "100.0%" in err
    rows = read_ledger(ledger)
    devices = len(load_registry(EXAMPLE_REGISTRY).devices)
    assert sum(r.get("garbage", 0) for r in rows) == 3
    assert sum(r.get("reboots", 0) for r in rows) == devices // 2
    assert sum(r.get("readings", 0) for r in rows) == sum(7200 // d.interval_s
                                                           for d in load_registry(EXAMPLE_REGISTRY).devices)
    boots = sorted(s["boot"] for s in json.loads((tmp_path / "state.json").read_text()).values())
    assert boots == [1] * (devices - devices // 2) + [2] * (devices // 2)
