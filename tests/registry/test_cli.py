"""The boucle command: every subcommand answers --help; expected failures are one line."""

import pytest

from boucle.cli import SUBCOMMANDS, main


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: boucle " + command)
    assert " ".join(SUBCOMMANDS[command][1].split()) in " ".join(out.split())


def test_bad_setting_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("BOUCLE_MQTT_PORT", "not-a-port")
    assert main(["gateway"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "BOUCLE_MQTT_PORT='not-a-port'" in err
