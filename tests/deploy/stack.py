"""The compose stack as data: docker-compose.yml read with .env.example, as Compose would.

Pure functions, so the deployment tests can check the stack without a Docker engine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
SECOND_GATEWAY = REPO / "deploy" / "compose" / "gateway-2.yml"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}; $$ is a literal $.
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?)(?P<arg>[^}]*))?\}")


class MissingVariable(ValueError):
    """A ${NAME:?...} variable that the environment does not provide."""


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=value lines of a .env file (comments and blank lines skipped)."""
    env: dict[str, str] = {}
    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path.name}: line {line!r} is not KEY=value")
        env[key.strip()] = value.strip()
    return env


@cache
def stack_env() -> dict[str, str]:
    """.env.example with its secrets generated, as `boucle secrets` fills it (one set of
    values per test session)."""
    from workshop.stack_secrets import with_secrets

    return with_secrets(ENV_EXAMPLE.read_text("utf-8"))[1]


def variables(text: str) -> dict[str, str | None]:
    """Every ${NAME...} in `text` and its inline default (None when it has none)."""
    found: dict[str, str | None] = {}
    for m in _VARIABLE.finditer(text):
        if m.group("name"):
            default = m.group("arg") if m.group("op") in (":-", "-") else None
            found.setdefault(m.group("name"), default)
    return found


def interpolate(text: str, env: dict[str, str]) -> str:
    """Substitute variables the way Compose does (the subset used in this repository)."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise MissingVariable(f"{name}: {arg}")
        return value or ""

    return _VARIABLE.sub(one, text)


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml parsed after interpolation with `env` (default: .env.example with
    generated secrets)."""
    env = stack_env() if env is None else env
    return yaml.safe_load(interpolate(COMPOSE_FILE.read_text("utf-8"), env))


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith((".", "/"))

    def host_path(self) -> Path:
        return (REPO / self.source).resolve()


def mounts(service: dict[str, Any]) -> list[Mount]:
    out = []
    for spec in service.get("volumes", []):
        parts = spec.split(":")
        out.append(Mount(parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return out


def host_path_of(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository path a container path comes from, through the service's bind mounts."""
    for m in sorted(mounts(service), key=lambda m: -len(m.target)):
        if m.is_bind and (container_path == m.target or container_path.startswith(m.target + "/")):
            return m.host_path() / container_path[len(m.target):].lstrip("/")
    return None


def under_volume(service: dict[str, Any], container_path: str, named: bool) -> bool:
    """Whether a container path lies in one of the service's named volumes (or bind mounts)."""
    for m in mounts(service):
        if m.is_bind != named and container_path.startswith(m.target.rstrip("/") + "/"):
            return True
    return False


def nats_server_check(config: str, workdir: Path, env: dict[str, str], certs_at: str,
                      cert_name: str) -> subprocess.CompletedProcess:
    """`nats-server -t` on a NATS config meant for a container: its certificate folder
    (`certs_at`, files `{cert_name}.crt` and `.key`) and /data moved under `workdir`, with a
    throwaway certificate, and only `env` (and PATH) as its environment."""
    certs = workdir / "certs"
    certs.mkdir(exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=nats",
                    "-keyout", str(certs / f"{cert_name}.key"), "-out", str(certs / f"{cert_name}.crt")],
                   check=True, capture_output=True)
    conf = workdir / "nats.conf"
    conf.write_text(config.replace(certs_at, str(certs)).replace("/data", str(workdir / "data")))
    for name in re.findall(r"^include \./(\S+)$", config, re.MULTILINE):  # read beside the config
        shutil.copyfile(REPO / "deploy" / "nats" / name, workdir / name)
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    return subprocess.run([binary, "-t", "-c", str(conf), "--name", "nats-check"],
                          env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, check=False)
