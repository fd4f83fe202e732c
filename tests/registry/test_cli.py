"""The boucle command: every subcommand answers --help; expected failures are one line."""

import tomllib

import pytest

from boucle.cli import SUBCOMMANDS, main
from boucle.registry import hash_key, load_registry
from tests.conftest import EXAMPLE_REGISTRY


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


def key_command(capsys, *argv: str) -> tuple[str, dict, str]:
    """`boucle key ...`: its output, the printed [[api_keys]] entry (parsed as TOML) and the key."""
    assert main(["key", *argv]) == 0
    out = capsys.readouterr().out
    return out, tomllib.loads(out)["api_keys"][0], out.rsplit(": ", 1)[1].strip()


def test_key_prints_an_entry_the_registry_accepts(tmp_path, capsys):
    out, entry, key = key_command(capsys, "ecully-officer", "--territory", "ecully")
    assert entry == {"id": "ecully-officer", "sha256": hash_key(key), "territories": ["ecully"]}
    registry = tmp_path / "registry.toml"
    registry.write_text(EXAMPLE_REGISTRY.read_text("utf-8") + "\n" + out, "utf-8")  # pasted as printed
    loaded = load_registry(registry).api_keys[-1]
    assert loaded.id == "ecully-officer" and not loaded.admin and loaded.territories == ("ecully",)
    assert key_command(capsys, "ops", "--admin")[1]["admin"] is True


@pytest.mark.parametrize("argv", [
    ['intern"\nadmin = true\n#', "--territory", "ecully"],  # the injection of issue 20
    ["intern", "--territory", 'ecully"]\nadmin = true\n#'],
    ["intern", "--site", 'zim-fablab"]\nadmin = true\nx = ["'],
    ["Intern Officer", "--territory", "ecully"],
])
def test_key_refuses_names_that_are_not_registry_ids(capsys, argv):
    assert main(["key", *argv]) == 2
    captured = capsys.readouterr()
    assert "admin" not in captured.out and "[[api_keys]]" not in captured.out  # no entry printed
    assert "is not a registry id" in captured.err and captured.err.count("\n") == 1
