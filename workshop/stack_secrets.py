"""`boucle secrets`: the compose stack's secrets, generated on the machine that runs it.

Nothing that ships accepts a known password: `.env.example` leaves every secret empty and
`deploy/mosquitto/passwd` holds no account. This command fills the env file (made from
`.env.example` when it does not exist yet): every secret that is empty, or still holds an
example value (`change-me...`), gets a new random value; secrets already set are kept. It
then sets the broker's service accounts in the password file to the MQTT passwords of the
env file. Both files change together or not at all (workshop.transaction); a new env
file is created with mode 600. Values are never printed.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from boucle.cli import UserError
from boucle.settings import EXAMPLE_SECRET
from workshop.credentials import (
    check_password,
    generate_password,
    hash_password,
    password_users,
    with_password,
)
from workshop.transaction import FileTransaction, TransactionError

BROKER_ACCOUNTS = {
    "MQTT_GATEWAY_PASSWORD": "boucle-gateway",
    "MQTT_GATEWAY_2_PASSWORD": "boucle-gateway-2",
    "MQTT_SIMULATOR_PASSWORD": "boucle-simulator",
}
"""env variable -> the broker user whose password it is."""
DEMO_ACCOUNTS = frozenset({"boucle-simulator"})
"""Accounts made only with --demo: a production broker has no simulator that may publish
for every device."""
SECRETS = (*BROKER_ACCOUNTS, "INFLUXDB_ADMIN_PASSWORD", "INFLUXDB_ADMIN_TOKEN",
           "GRAFANA_ADMIN_PASSWORD", "GRAFANA_INFLUX_PASSWORD")
STARTS_AS = {"INFLUXDB_GATEWAY_TOKEN": "INFLUXDB_ADMIN_TOKEN", "INFLUXDB_API_TOKEN": "INFLUXDB_ADMIN_TOKEN"}
"""Secrets that start equal to another (the services' InfluxDB tokens start as the admin
token until scoped tokens replace them: docs/operations.md, "Tokens")."""

_LINE = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def unset(value: str) -> bool:
    """Whether a secret still needs a value: empty, or an example anyone can read."""
    return value.strip() == "" or value.strip().startswith(EXAMPLE_SECRET)


def with_secrets(env_text: str) -> tuple[str, dict[str, str], list[str]]:
    """The env file's text with its unset secrets generated: (text, every value, names
    generated). Comments, order and the other variables are kept as they are."""
    values = {m["name"]: m["value"].strip() for m in map(_LINE.match, env_text.splitlines()) if m}
    missing = [name for name in (*SECRETS, *STARTS_AS) if name not in values]
    if missing:
        raise UserError(f"the env file has no line for {', '.join(missing)}: "
                        "start from the .env.example of this version")
    generated = []
    for name in SECRETS:
        if unset(values[name]):
            values[name] = generate_password()
            generated.append(name)
    for name, source in STARTS_AS.items():
        if unset(values[name]):
            values[name] = values[source]
            generated.append(name)

    def line(text: str) -> str:
        m = _LINE.match(text)
        return f"{m['name']}={values[m['name']]}" if m and m["name"] in generated else text

    return "\n".join(map(line, env_text.splitlines())) + "\n", values, generated


def with_accounts(passwd_text: str, values: dict[str, str], demo: bool) -> tuple[str, list[str]]:
    """The password file with each service account's password set to the env file's
    (accounts already matching are left alone): (text, users changed)."""
    users = password_users(passwd_text)
    changed = []
    for name, user in BROKER_ACCOUNTS.items():
        if user in DEMO_ACCOUNTS and not demo:
            continue
        if user not in users or not check_password(values[name], users[user]):
            passwd_text = with_password(passwd_text, user, hash_password(values[name]))
            changed.append(user)
    return passwd_text, changed


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default=".env", help="env file to fill (default: .env)")
    parser.add_argument("--template", default=".env.example",
                        help="what a new env file starts from (default: .env.example)")
    parser.add_argument("--password-file", default="deploy/mosquitto/passwd",
                        help="Mosquitto password file (default: deploy/mosquitto/passwd)")
    parser.add_argument("--demo", action="store_true",
                        help="also create the broker account of the demo simulator (compose profile demo)")


def run(args: argparse.Namespace) -> int:
    env, passwd = Path(args.env), Path(args.password_file)
    source = env if env.exists() else Path(args.template)
    try:
        env_text = source.read_text("utf-8")
        passwd_text = passwd.read_text("utf-8") if passwd.exists() else ""
    except OSError as exc:
        raise UserError(f"cannot read {exc.filename}: {exc.strerror}") from None
    new_env, values, generated = with_secrets(env_text)
    new_passwd, accounts = with_accounts(passwd_text, values, args.demo)
    changes = FileTransaction()
    if generated or not env.exists():
        changes.stage(env, new_env)
    if accounts:
        changes.stage(passwd, new_passwd)
    try:
        changes.commit()
    except TransactionError as exc:
        raise UserError(str(exc)) from None
    print(f"{env}: " + (f"generated {', '.join(generated)}" if generated else "every secret already set"))
    print(f"{passwd}: " + (f"set the password of {', '.join(accounts)}" if accounts else "accounts up to date"))
    if accounts:
        print("A running broker reads the new accounts after: docker compose kill -s HUP mosquitto")
    return 0
