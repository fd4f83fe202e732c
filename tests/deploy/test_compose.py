"""docker-compose.yml, .env.example and the Dockerfile, checked without a Docker engine:
the services get only settings the code reads, every setting they need, and every file
they mount; the Python image installs the project."""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import importlib
import os
import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from boucle.cli import SUBCOMMANDS, build_parser
from boucle.registry import load_registry
from boucle.settings import ApiSettings, GatewaySettings, SimulatorSettings, env_name, load_settings
from tests.conftest import require_binary
from tests.deploy.stack import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    REPO,
    SECOND_GATEWAY,
    MissingVariable,
    host_path_of,
    interpolate,
    load_compose,
    mounts,
    nats_server_check,
    read_env_file,
    stack_env,
    under_volume,
    variables,
)

# `boucle <subcommand>` -> the settings class that subcommand loads.
SETTINGS_OF = {"gateway": GatewaySettings, "api": ApiSettings, "simulate": SimulatorSettings}
# What a containerised service cannot run on defaults: where the broker, the store and the
# registry are, its credentials, and files that must live on a volume.
REQUIRED = {
    "gateway": {"mqtt_host", "mqtt_username", "mqtt_password", "client_id", "share_group", "registry",
                "store_url", "influx_token", "spool_path"},
    "api": {"host", "registry", "store_url", "influx_token"},
    "simulate": {"mqtt_host", "mqtt_username", "mqtt_password", "registry", "ledger"},
}
DATA_FILES = {"gateway": ["spool_path"], "simulate": ["ledger"]}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def python_services(compose: dict) -> dict[str, tuple[dict, type]]:
    out = {}
    for name, svc in compose["services"].items():
        if svc.get("build"):
            out[name] = (svc, SETTINGS_OF[svc["command"][0]])
    return out


def test_compose_file_parses_and_has_the_stack(compose):
    services = compose["services"]
    assert set(services) == {"mosquitto", "influxdb", "gateway", "api", "simulator", "grafana",
                             "nats-1", "nats-2", "nats-3", "cluster-gateway-1", "cluster-gateway-2"}
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2.")
    assert services["influxdb"]["image"].startswith("influxdb:2.7")
    assert services["simulator"]["profiles"] == ["demo"]
    assert [svc["command"][0] for svc in (services["gateway"], services["api"], services["simulator"])] == \
        ["gateway", "api", "simulate"]
    for name, svc in services.items():
        assert svc.get("restart") == "unless-stopped", name
        image = svc["image"]
        assert re.search(r":\d+\.\d+\.\d+(-[a-z]+)?$", image), f"{name}: image {image} is not pinned to a version"
        if name != "simulator":  # a batch-like demo client: nothing to probe
            assert svc["healthcheck"]["test"], name
    for volume in compose["volumes"]:
        assert any(m.source == volume for svc in services.values() for m in mounts(svc)), f"unused volume {volume}"
    for name, svc in services.items():
        for m in mounts(svc):
            if not m.is_bind:
                assert m.source in compose["volumes"], f"{name}: volume {m.source} is not declared"


def test_docker_compose_validates_the_file(tmp_path):
    """The Compose implementation itself (schema, interpolation, profiles, depends_on)."""
    require_binary("docker-compose", "docker-compose")
    generated = tmp_path / ".env"
    generated.write_text("".join(f"{k}={v}\n" for k, v in stack_env().items()))
    env_file = ["--env-file", str(generated)]
    for profile in ("demo", "cluster"):
        ok = subprocess.run(["docker-compose", "-f", str(COMPOSE_FILE), *env_file, "--profile", profile, "config", "-q"],
                            check=False, capture_output=True, text=True, cwd=REPO)
        assert ok.returncode == 0, (profile, ok.stderr)
    # Without the secrets (nothing, or .env.example as shipped) it refuses to start,
    # naming what is missing.
    for unset in (REPO / "tests" / "deploy" / "empty.env", ENV_EXAMPLE):
        bare = subprocess.run(["docker-compose", "-f", str(COMPOSE_FILE), "--env-file", str(unset), "config", "-q"],
                              check=False, capture_output=True, text=True, cwd=REPO,
                              env={"PATH": "/usr/bin:/bin:/usr/local/bin"})
        assert bare.returncode != 0, unset
        assert "set " in bare.stderr and "in .env" in bare.stderr, bare.stderr
    scaled = subprocess.run(["docker-compose", "-f", str(COMPOSE_FILE), "-f", str(SECOND_GATEWAY), *env_file,
                             "config", "-q"], check=False, capture_output=True, text=True, cwd=REPO)
    assert scaled.returncode == 0, scaled.stderr


def test_second_gateway_differs_only_by_its_session_spool_and_ledger(compose):
    extra = yaml.safe_load(interpolate(SECOND_GATEWAY.read_text("utf-8"), stack_env()))
    first, second = compose["services"]["gateway"], extra["services"]["gateway-2"]
    differ = {k for k in first["environment"].keys() | second["environment"].keys()
              if first["environment"].get(k) != second["environment"].get(k)}
    # Its own MQTT identity: the broker names sessions by user name (mosquitto.conf); the
    # first gateway alone seals the ledger (docs/ledger.md).
    assert differ == {"BOUCLE_CLIENT_ID", "BOUCLE_MQTT_USERNAME", "BOUCLE_MQTT_PASSWORD", "BOUCLE_LEDGER_INTERVAL_S"}
    assert second["environment"]["BOUCLE_LEDGER_INTERVAL_S"] == "0" and "BOUCLE_LEDGER_INTERVAL_S" not in first["environment"]
    assert second["environment"]["BOUCLE_MQTT_USERNAME"] == second["environment"]["BOUCLE_CLIENT_ID"]
    for key in ("image", "command", "depends_on", "healthcheck", "restart", "stop_grace_period"):
        assert first[key] == second[key], key
    spools = [next(m.source for m in mounts(svc) if m.target == "/var/lib/boucle/spool") for svc in (first, second)]
    assert spools[0] != spools[1] and spools[1] in extra["volumes"]
    assert {m.target for m in mounts(first)} == {m.target for m in mounts(second)}


def test_secrets_have_no_default_in_the_compose_file():
    for name in ("MQTT_GATEWAY_PASSWORD", "MQTT_SIMULATOR_PASSWORD", "INFLUXDB_ADMIN_PASSWORD",
                 "INFLUXDB_ADMIN_TOKEN", "INFLUXDB_GATEWAY_TOKEN", "INFLUXDB_API_TOKEN",
                 "GRAFANA_ADMIN_PASSWORD", "GRAFANA_INFLUX_PASSWORD"):
        env = dict(stack_env())
        del env[name]
        with pytest.raises(MissingVariable, match=name):
            load_compose(env)


def test_env_example_lists_exactly_the_variables_the_compose_file_uses():
    used = variables(COMPOSE_FILE.read_text("utf-8")) | variables(SECOND_GATEWAY.read_text("utf-8"))
    listed = read_env_file()
    assert set(used) == set(listed)
    text = ENV_EXAMPLE.read_text("utf-8")
    for name, default in used.items():
        # Each variable is explained by the comment block right above it.
        block = text.split(f"\n{name}=")[0].rsplit("\n\n", 1)[-1]
        assert "# " in block.splitlines()[-1], f"{name} has no explanation in .env.example"
        if default is not None:
            assert listed[name] == default, f"{name}: .env.example says {listed[name]!r}, compose default {default!r}"
            assert "Default:" in block, f"{name}: default not stated in .env.example"


def test_boucle_settings_in_env_example_default_to_the_code_defaults():
    defaults = {}
    for cls in SETTINGS_OF.values():
        for f in dataclasses.fields(cls):
            defaults[env_name(f.name)] = f.default
    for name, value in read_env_file().items():
        if name.startswith("BOUCLE_"):
            assert name in defaults, f".env.example: {name} is not a Boucle setting"
            expected = defaults[name]
            shown = str(expected).lower() if isinstance(expected, bool) else str(expected)
            assert value == shown, f"{name}={value!r} but the code's default is {shown!r}"


def test_python_services_get_only_settings_their_code_reads(compose):
    services = python_services(compose)
    assert set(services) == {"gateway", "api", "simulator", "cluster-gateway-1", "cluster-gateway-2"}
    for name, (svc, cls) in services.items():
        known = {env_name(f.name) for f in dataclasses.fields(cls)} | {"BOUCLE_CONFIG"}
        unknown = set(svc["environment"]) - known
        assert not unknown, f"{name}: {sorted(unknown)} are not {cls.__name__} settings"


def test_python_services_get_every_setting_they_need_and_the_loader_accepts_them(compose):
    services = compose["services"]
    for name, (svc, cls) in python_services(compose).items():
        command = svc["command"][0]
        env = {k: str(v) for k, v in svc["environment"].items()}
        missing = {f for f in REQUIRED[command] if env_name(f) not in env or env[env_name(f)] == ""}
        assert not missing, f"{name}: no value for {sorted(env_name(f) for f in missing)}"
        settings = load_settings(cls, env)  # the real loader: types, unknown keys
        if hasattr(settings, "mqtt_host"):
            assert settings.mqtt_host in services
            # Mosquitto's plain listener inside the network; NATS's MQTT listener is TLS only.
            assert (settings.mqtt_port, bool(settings.mqtt_tls_ca)) == \
                ((8883, True) if settings.mqtt_host.startswith("nats-") else (1883, False))
            if settings.mqtt_tls_ca:
                assert host_path_of(svc, settings.mqtt_tls_ca) == REPO / "deploy" / "certs" / "ca.crt"
        if hasattr(settings, "store_url"):
            assert settings.store_url == "influx+http://influxdb:8086/boucle"
            assert settings.influx_token == stack_env()["INFLUXDB_ADMIN_TOKEN"]
        if hasattr(settings, "host"):
            assert settings.host == "0.0.0.0"
            assert f"{settings.port}" == svc["ports"][0].split(":")[-1]
        registry = host_path_of(svc, settings.registry)
        assert registry is not None and registry.is_file(), f"{name}: {settings.registry} is not a mounted file"
        assert load_registry(registry).devices
        for field in DATA_FILES.get(command, []):
            path = getattr(settings, field)
            assert under_volume(svc, path, named=True), f"{name}: {path} is not on a named volume"


def parse_command(argv: list[str]) -> argparse.Namespace:
    """A service's command line parsed by the real `boucle` parser of that subcommand."""
    parser = build_parser()
    module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    module.configure(sub.choices[argv[0]])
    return parser.parse_args(argv)


@pytest.mark.parametrize("service", ["gateway", "api", "simulator"])
def test_service_command_is_accepted_by_its_subcommand(compose, service):
    svc = compose["services"][service]
    args = parse_command(svc["command"])
    # Files named on the command line live on the service's volume.
    for value in vars(args).values():
        if isinstance(value, str) and value.startswith("/var/lib/boucle/"):
            assert under_volume(svc, value, named=True), f"{service}: {value} is not on a named volume"


def test_gateway_health_probe_uses_its_metrics_port(compose):
    gw = compose["services"]["gateway"]
    settings = load_settings(GatewaySettings, {k: str(v) for k, v in gw["environment"].items()})
    assert f"127.0.0.1:{settings.metrics_port}/healthz" in " ".join(gw["healthcheck"]["test"])


def test_every_bind_mount_exists_in_the_repository(compose):
    for name, svc in compose["services"].items():
        for m in mounts(svc):
            if m.is_bind:
                assert m.host_path().exists(), f"{name}: mounts {m.source}, which does not exist"
                assert m.read_only, f"{name}: {m.source} should be mounted read-only"


def test_broker_config_refers_only_to_mounted_files(compose):
    mosquitto = compose["services"]["mosquitto"]
    conf = host_path_of(mosquitto, "/mosquitto/config/mosquitto.conf")
    assert conf == REPO / "deploy" / "mosquitto" / "mosquitto.conf"
    generated = {"ca.crt", "server.crt", "server.key"}  # by deploy/certs/make-certs.sh
    script = (REPO / "deploy" / "certs" / "make-certs.sh").read_text()
    for line in conf.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key in ("password_file", "acl_file", "cafile", "certfile", "keyfile"):
            host = host_path_of(mosquitto, value)
            assert host is not None, f"{value} is not under a mount"
            if host.name in generated:
                assert host.parent == REPO / "deploy" / "certs" and host.name in script
            else:
                assert host.is_file(), f"{value} -> {host} does not exist"
        if key == "persistence_location":
            assert under_volume(mosquitto, value, named=True)


def test_plain_mqtt_and_influxdb_are_published_on_loopback_only(compose):
    services = compose["services"]
    plain = [p for p in services["mosquitto"]["ports"] if p.endswith(":1883")]
    assert plain == ["127.0.0.1:1883:1883"]
    assert any(p.endswith(":8883") for p in services["mosquitto"]["ports"])
    assert all(p.startswith("127.0.0.1:") for p in services["influxdb"]["ports"])


def test_influxdb_bucket_is_the_database_the_services_use(compose):
    services = compose["services"]
    bucket = services["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_BUCKET"]
    for name in ("gateway", "api"):
        assert services[name]["environment"]["BOUCLE_STORE_URL"].rsplit("/", 1)[1] == bucket
    init = host_path_of(services["influxdb"], "/docker-entrypoint-initdb.d")
    scripts = sorted(init.glob("*.sh"))
    assert scripts and all(s.stat().st_mode & 0o111 for s in scripts)
    text = "".join(s.read_text() for s in scripts)
    assert "influx v1 dbrp create" in text and "influx v1 auth create" in text
    for script in scripts:
        assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    # Every variable the init script needs reaches the container.
    for var in set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", text)) - {"DOCKER_INFLUXDB_INIT_BUCKET_ID"}:
        assert var in services["influxdb"]["environment"], f"init script reads {var}, not given to influxdb"


def test_grafana_provisioning_variables_reach_grafana(compose):
    grafana = compose["services"]["grafana"]
    provisioning = host_path_of(grafana, "/etc/grafana/provisioning")
    datasource = (provisioning / "datasources" / "influxdb.yml").read_text()
    for var in re.findall(r"\$([A-Z][A-Z0-9_]+)", datasource):
        assert var in grafana["environment"], f"datasource uses ${var}, not given to grafana"
    dashboards = (provisioning / "dashboards" / "boucle.yml").read_text()
    path = re.search(r"path: (\S+)", dashboards).group(1)
    folder = host_path_of(grafana, path)
    assert sorted(p.name for p in folder.glob("*.json")) == ["energy.json", "waste.json"]


# --- the Python image ---------------------------------------------------------------------

DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / "deploy" / "Dockerfile.dockerignore"


def ignored(rel: str, patterns: list[str]) -> bool:
    """Docker's exclusion for the simple patterns used here: a path, a glob, or **/glob."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatchcase(p, pattern[3:]) for p in parts):
                return True
        elif any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
            return True
    return False


def build_context() -> list[str]:
    """Files the Docker builder receives for deploy/Dockerfile (repository-relative)."""
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    files = []
    for folder, dirs, names in os.walk(REPO):
        rel_dir = os.path.relpath(folder, REPO)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirs[:] = [d for d in dirs if not ignored(rel_dir + d, patterns)]
        files += [rel_dir + n for n in names if not ignored(rel_dir + n, patterns)]
    return files


def test_dockerfile_is_pinned_slim_and_non_root():
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert bases and all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", b) for b in bases), bases
    assert re.findall(r"^USER (\S+)", text, re.MULTILINE)[-1] not in ("root", "0")
    assert "--constraint deploy/constraints.txt ." in text


def test_build_context_has_every_package_and_no_secret():
    context = build_context()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    tool = project["tool"]["setuptools"]
    for package in tool["packages"]:
        top = package.split(".")[0]
        where = "/".join([tool.get("package-dir", {}).get(top, top), *package.split(".")[1:]])
        assert any(f.startswith(where + "/") and f.endswith(".py") for f in context), \
            f"package {package} is not in the build context"
    assert "pyproject.toml" in context and "deploy/constraints.txt" in context
    for secret in (".env", "deploy/certs/ca.key", "deploy/certs/server.key"):
        assert ignored(secret, [p.strip() for p in DOCKERIGNORE.read_text().splitlines()
                                if p.strip() and not p.startswith("#")]), f"{secret} would reach the builder"
    assert not any(f.startswith((".venv/", ".git/")) for f in context)


def test_constraints_pin_every_runtime_dependency():
    pins = {}
    for line in (REPO / "deploy" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    for text in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned: run .venv/bin/python deploy/pin_constraints.py"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"{req.name}=={pins[name]} does not satisfy {req.specifier}: run deploy/pin_constraints.py"


def test_the_build_context_builds_every_package(tmp_path):
    """What `pip install .` builds from exactly the files the builder receives: setuptools'
    build_py, reading pyproject.toml's packages, package-dir and package-data."""
    context = tmp_path / "src"
    for rel in build_context():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, context / rel)
    (context / "README.md").touch()  # as the Dockerfile does when there is none
    out = tmp_path / "lib"
    build = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()",
                            "-q", "build_py", "--build-lib", str(out)],
                           cwd=context, check=False, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    for package in project["tool"]["setuptools"]["packages"]:
        folder = out / package.replace(".", "/")
        assert any(folder.glob("*.py")), f"{package} missing from the build"
    assert (out / "boucle" / "examples" / "registry.toml").is_file()


# --- the `cluster` profile ------------------------------------------------------------------

NATS_CONF = REPO / "deploy" / "nats" / "nats.conf"


def test_cluster_profile_has_three_nodes_each_with_its_own_name_and_data(compose):
    services = compose["services"]
    nodes = {name: svc for name, svc in services.items() if name.startswith("nats-")}
    assert sorted(nodes) == ["nats-1", "nats-2", "nats-3"]
    for name, svc in nodes.items():
        assert svc["profiles"] == ["cluster"]
        command = svc["command"]
        assert command[command.index("--name") + 1] == name
        assert host_path_of(svc, command[command.index("--config") + 1]) == NATS_CONF
        data = [m.source for m in mounts(svc) if m.target == "/data"]
        assert data == [f"{name}-data"] and data[0] in compose["volumes"]
    # Every node routes to the three (the same file), by their service names.
    routes = re.findall(r"nats-route://([\w-]+):6222", NATS_CONF.read_text())
    assert sorted(routes) == sorted(nodes)
    # The devices' TLS listener on a host port of each node, all different.
    ports = [svc["ports"][0].split(":")[0] for svc in nodes.values()]
    assert len(set(ports)) == 3


def test_cluster_gateways_share_one_consumer_and_differ_only_by_their_id_spool_and_ledger(compose):
    services = compose["services"]
    first, second = services["cluster-gateway-1"], services["cluster-gateway-2"]
    settings = [load_settings(GatewaySettings, {k: str(v) for k, v in g["environment"].items()}) for g in (first, second)]
    for s in settings:
        assert s.input == "jetstream"
        assert sorted(url.split("//")[1].split(":")[0] for url in s.nats_servers.split(",")) == \
            ["nats-1", "nats-2", "nats-3"]
        assert s.share_group == "boucle-gateway"
    differ = {k for k in first["environment"].keys() | second["environment"].keys()
              if first["environment"].get(k) != second["environment"].get(k)}
    assert differ == {"BOUCLE_CLIENT_ID", "BOUCLE_LEDGER_INTERVAL_S"}
    # one gateway seals the ledger (docs/ledger.md: InfluxDB has no conditional write)
    assert [s.ledger_interval_s > 0 for s in settings] == [True, False]
    spools = [next(m.source for m in mounts(g) if m.target == "/var/lib/boucle/spool") for g in (first, second)]
    assert spools[0] != spools[1] and all(s in compose["volumes"] for s in spools)
    # The gateway's MQTT user is one the NATS config knows, with the same password variable.
    assert "include ./authorization.conf" in NATS_CONF.read_text()
    text = (NATS_CONF.parent / "authorization.conf").read_text()
    assert "{user: boucle-gateway, password: $MQTT_GATEWAY_PASSWORD," in text
    assert "MQTT_GATEWAY_PASSWORD" in services["nats-1"]["environment"]
    # make-certs.sh names the nodes, so TLS to nats-1 verifies.
    script = (REPO / "deploy" / "certs" / "make-certs.sh").read_text()
    assert all(f"DNS:{node}" in script for node in ("nats-1", "nats-2", "nats-3"))


def test_nats_config_is_accepted_by_the_real_server(tmp_path):
    """`nats-server -t` (Debian's 2.9) on the shipped file; without its password variables it fails."""
    require_binary("nats-server", "nats-server")
    require_binary("openssl", "openssl")
    env = {"MQTT_GATEWAY_PASSWORD": "x" * 24, "MQTT_SIMULATOR_PASSWORD": "y" * 24}
    ok = nats_server_check(NATS_CONF.read_text(), tmp_path, env, "/etc/nats/certs", "server")
    assert ok.returncode == 0, ok.stderr
    del env["MQTT_GATEWAY_PASSWORD"]
    bad = nats_server_check(NATS_CONF.read_text(), tmp_path, env, "/etc/nats/certs", "server")
    assert bad.returncode != 0 and "MQTT_GATEWAY_PASSWORD" in bad.stderr
