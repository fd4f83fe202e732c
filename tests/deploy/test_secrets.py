"""Nothing that ships accepts a known password: `.env.example` and the broker's password
file hold no secret, `boucle secrets` generates them, and the services refuse a value
left from an example."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from boucle.settings import GatewaySettings, SettingsError, load_settings
from tests.deploy.stack import ENV_EXAMPLE, REPO, read_env_file
from workshop.credentials import check_password, password_users
from workshop.stack_secrets import BROKER_ACCOUNTS, SECRETS, STARTS_AS, with_secrets


def test_nothing_shipped_holds_a_secret():
    assert password_users((REPO / "deploy" / "mosquitto" / "passwd").read_text()) == {}
    shipped = read_env_file()
    assert all(shipped[name] == "" for name in (*SECRETS, *STARTS_AS))


def test_with_secrets_generates_each_unset_secret_once_and_keeps_the_rest():
    template = ENV_EXAMPLE.read_text("utf-8")
    text, values, generated = with_secrets(template)
    assert set(generated) == set(SECRETS) | set(STARTS_AS)
    assert len({values[name] for name in SECRETS}) == len(SECRETS)  # all different
    assert all(len(values[name]) >= 24 for name in SECRETS)
    assert all(values[name] == values[source] for name, source in STARTS_AS.items())
    # Only the secrets' lines changed; comments and settings are as shipped.
    before, after = template.splitlines(), text.splitlines()
    assert [line.partition("=")[0] for line in before] == [line.partition("=")[0] for line in after]
    assert {a for a, b in zip(before, after) if a != b} == {f"{n}=" for n in generated}
    # Again: nothing to do. An example value left in place is replaced.
    assert with_secrets(text) == (text, values, [])
    edited = text.replace(f"GRAFANA_ADMIN_PASSWORD={values['GRAFANA_ADMIN_PASSWORD']}",
                          "GRAFANA_ADMIN_PASSWORD=change-me-grafana")
    _, again, regenerated = with_secrets(edited)
    assert regenerated == ["GRAFANA_ADMIN_PASSWORD"] and not again["GRAFANA_ADMIN_PASSWORD"].startswith("change-me")


def test_boucle_secrets_writes_a_private_env_file_and_the_service_accounts(tmp_path):
    env, passwd = tmp_path / ".env", tmp_path / "passwd"
    passwd.write_text("")

    def run(*extra: str) -> str:
        done = subprocess.run([sys.executable, "-m", "boucle", "secrets", "--env", str(env), "--template",
                               str(ENV_EXAMPLE), "--password-file", str(passwd), *extra],
                              check=False, capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = run()
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    values = read_env_file(env)
    assert not any(values[name] in out for name in SECRETS)
    accounts = password_users(passwd.read_text())
    assert set(accounts) == {"boucle-gateway", "boucle-gateway-2"}  # no simulator without --demo
    for name, user in BROKER_ACCOUNTS.items():
        if user in accounts:
            assert check_password(values[name], accounts[user])
    run("--demo")
    assert read_env_file(env) == values  # kept
    accounts = password_users(passwd.read_text())
    assert check_password(values["MQTT_SIMULATOR_PASSWORD"], accounts["boucle-simulator"])


@pytest.mark.parametrize("name", ["mqtt_password", "influx_token"])
def test_services_refuse_an_example_secret(name):
    with pytest.raises(SettingsError, match=f"BOUCLE_{name.upper()}.*boucle secrets"):
        load_settings(GatewaySettings, {f"BOUCLE_{name.upper()}": "change-me-gateway"})
    assert getattr(load_settings(GatewaySettings, {f"BOUCLE_{name.upper()}": "s3cret-of-mine"}), name)
