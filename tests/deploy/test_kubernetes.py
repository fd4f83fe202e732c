"""deploy/kubernetes/, checked without a cluster: every object against the Kubernetes
schemas (kubernetes-validate, which bundles them), then what the schemas cannot say: the
gateways' ids come from their pod names and their settings load, the broker is a 3-node
StatefulSet with a volume per node whose routes name its pods, the API is behind a Service."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from boucle.settings import ApiSettings, GatewaySettings, env_name, load_settings
from tests.conftest import require_binary
from tests.deploy.stack import REPO, nats_server_check

MANIFESTS = REPO / "deploy" / "kubernetes"
KUBERNETES = "1.30.0"  # the oldest version still supported upstream when this was written


def objects() -> list[dict]:
    out = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        out += [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc]
    return out


def one(kind: str, name: str) -> dict:
    found = [o for o in objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} objects"
    return found[0]


def container_env(deployment: dict) -> tuple[dict[str, str], dict[str, dict]]:
    """(plain values, valueFrom sources) of a workload's first container, its envFrom
    ConfigMaps included."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        values.update(one("ConfigMap", source["configMapRef"]["name"])["data"])
    sources = {}
    for var in container.get("env", []):
        if "valueFrom" in var:
            sources[var["name"]] = var["valueFrom"]
        else:
            values[var["name"]] = var["value"]
    return values, sources


@pytest.mark.parametrize("obj", objects(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_every_object_validates_against_the_kubernetes_schema(obj):
    try:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_a_broken_object_is_refused():
    """The validator does refuse: a Deployment whose replicas is a word, an unknown field."""
    gateway = one("Deployment", "boucle-gateway")
    for broken in ({**gateway, "spec": {**gateway["spec"], "replicas": "two"}},
                   {**gateway, "spec": {**gateway["spec"], "replica": 2}}):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_gateways_name_themselves_after_their_pod_and_share_one_consumer():
    gateway = one("Deployment", "boucle-gateway")
    values, sources = container_env(gateway)
    assert sources["BOUCLE_CLIENT_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    known = {env_name(f) for f in GatewaySettings.__dataclass_fields__} | {"BOUCLE_CONFIG", "BOUCLE_LOG_FORMAT"}
    assert set(values) | set(sources) <= known, sorted(set(values) | set(sources) - known)
    # The real loader accepts them (a pod name and secrets stand in for what Kubernetes fills).
    settings = load_settings(GatewaySettings, {**values, **{name: "boucle-gateway-7d9c-x2x4z" if "fieldRef" in src
                                                             else "s" * 24 for name, src in sources.items()}})
    assert settings.input == "jetstream" and settings.share_group
    assert settings.client_id == "boucle-gateway-7d9c-x2x4z"
    assert gateway["spec"]["replicas"] >= 2
    broker = one("StatefulSet", "nats")
    pods = {f"{broker['metadata']['name']}-{i}.{broker['spec']['serviceName']}" for i in range(broker["spec"]["replicas"])}
    assert {url.split("//")[1].rsplit(":", 1)[0] for url in settings.nats_servers.split(",")} == pods
    assert settings.mqtt_host in {o["metadata"]["name"] for o in objects() if o["kind"] == "Service"}
    # The spool, the registry and the CA are on the pod's volumes.
    spec = gateway["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for path in (settings.spool_path, settings.registry, settings.mqtt_tls_ca):
        assert any(path.startswith(mount + "/") and mounts[mount] in volumes for mount in mounts), path
    # Time to drain the spool on SIGTERM, beyond the gateway's own 30 s drain bound per stage.
    assert spec["terminationGracePeriodSeconds"] >= 60


def test_exactly_one_gateway_replica_seals_the_ledger_and_never_two_at_once():
    """InfluxDB has no conditional write: two processes sealing at once can both write an
    entry (a false ALARM after). One sealing replica across the manifests, in a workload
    that never runs two pods of it at once, with the same pod as the scaled gateways' but
    for the ledger stage (docs/ledger.md, "One sealer")."""
    sealing, pods = [], {}
    for obj in objects():
        if obj["kind"] not in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"):
            continue
        container = obj["spec"]["template"]["spec"]["containers"][0]
        if container.get("args", [])[:1] != ["gateway"]:
            continue
        values, sources = container_env(obj)
        settings = load_settings(GatewaySettings, {**values, **{n: "boucle-gateway-x" if "fieldRef" in s else "s" * 24
                                                                for n, s in sources.items()}})
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        pods[name] = obj["spec"]["template"]["spec"]
        if settings.ledger_interval_s > 0:
            assert obj["kind"] in ("Deployment", "StatefulSet"), name
            sealing += [name] * obj["spec"].get("replicas", 1)
    assert sealing == ["StatefulSet/boucle-gateway-sealer"]
    sealer = one("StatefulSet", "boucle-gateway-sealer")
    # A StatefulSet replaces its pod only once the old one is gone (a rollout, a lost node).
    assert sealer["spec"].get("updateStrategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
    assert sealer["spec"].get("podManagementPolicy", "OrderedReady") == "OrderedReady"
    assert one("Service", sealer["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    scaled = one("Deployment", "boucle-gateway")
    assert scaled["spec"]["replicas"] >= 2 and "Deployment/boucle-gateway" in pods
    # The sealer's pods are not the Deployment's (its selector does not take them).
    assert not scaled["spec"]["selector"]["matchLabels"].items() <= sealer["spec"]["template"]["metadata"]["labels"].items()

    def without_ledger(spec: dict) -> dict:
        container = spec["containers"][0]
        env = [e for e in container["env"] if e["name"] != "BOUCLE_LEDGER_INTERVAL_S"]
        return {**spec, "containers": [{**container, "env": env}]}

    assert without_ledger(pods["Deployment/boucle-gateway"]) == without_ledger(pods["StatefulSet/boucle-gateway-sealer"])
    # Both check signatures against the key store (the ledger counts the readings checked).
    for spec in pods.values():
        mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert "/etc/boucle/keys" in mounts


def test_broker_is_three_nodes_each_with_its_volume_and_routes_to_its_pods(tmp_path):
    broker = one("StatefulSet", "nats")
    spec = broker["spec"]
    assert spec["replicas"] == 3
    assert one("Service", spec["serviceName"])["spec"]["clusterIP"] == "None"
    claims = [t["metadata"]["name"] for t in spec["volumeClaimTemplates"]]
    container = spec["template"]["spec"]["containers"][0]
    assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]}[claims[0]] == "/data"
    args = container["args"]
    assert args[args.index("--name") + 1] == "$(POD_NAME)"
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"]
    config = one("ConfigMap", "nats-config")["data"]["nats.conf"]
    assert "store_dir: /data" in config
    routes = re.findall(r"nats-route://([\w.-]+):6222", config)
    assert sorted(routes) == [f"nats-{i}.{spec['serviceName']}" for i in range(3)]
    # Every variable the config reads (itself and the files it includes) reaches the container.
    includes = re.findall(r"^include \./(\S+)$", config, re.MULTILINE)
    included = [(REPO / "deploy" / "nats" / name).read_text() for name in includes]
    assert included, "the broker's config reads deploy/nats/authorization.conf"
    # (a variable is a value `$NAME`; "$MQTT.sub.>" and "$JS.API..." in quotes are subjects)
    variables = set(re.findall(r":\s*\$([A-Z][A-Z0-9_]+)", "\n".join([config, *included])))
    assert {"MQTT_GATEWAY_PASSWORD", "MQTT_SIMULATOR_PASSWORD"} <= variables
    for var in variables:
        assert any(e["name"] == var for e in container["env"]), var
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/nats/authorization.conf"]["subPath"] == "authorization.conf"
    assert one("PodDisruptionBudget", "nats")["spec"]["maxUnavailable"] == 1
    require_binary("nats-server", "nats-server")
    require_binary("openssl", "openssl")
    checked = nats_server_check(config, tmp_path, {var: "x" * 24 for var in variables}, "/etc/nats/certs", "tls")
    assert checked.returncode == 0, checked.stderr


def test_api_is_behind_a_service_that_selects_its_pods():
    api = one("Deployment", "boucle-api")
    service = one("Service", "boucle-api")
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    ports = {p["name"] for p in api["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert all(p["targetPort"] in ports for p in service["spec"]["ports"])
    values, sources = container_env(api)
    settings = load_settings(ApiSettings, {**values, **{name: "s" * 24 for name in sources}})
    assert settings.host == "0.0.0.0" and settings.require_keys
    assert f"{settings.port}" == str(api["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"])


def test_every_secret_and_configmap_referenced_is_made_by_the_readme():
    readme = (MANIFESTS / "README.md").read_text("utf-8")
    made = {o["metadata"]["name"] for o in objects() if o["kind"] == "ConfigMap"}
    text = "\n".join(Path(p).read_text() for p in sorted(MANIFESTS.glob("*.yaml")))
    for name, key in re.findall(r"secretKeyRef: \{name: ([\w-]+), key: ([\w-]+)\}", text):
        assert f"secret generic {name}" in readme and f"--from-literal={key}=" in readme, (name, key)
    for name in re.findall(r"secretName: ([\w-]+)", text):
        assert f"secret generic {name}" in readme, name
    for name in re.findall(r"configMap(?:Ref)?: \{name: ([\w-]+)\}", text):
        assert name in made or f"create configmap {name}" in readme, name


def _uses(dependant, call) -> bool:
    return dependant.call is call or any(_uses(d, call) for d in dependant.dependencies)


def test_alerts_are_evaluated_by_exactly_one_replica_with_its_book_on_a_volume():
    """One API Deployment keeps the alert book (one replica, Recreate, the book on a
    PersistentVolumeClaim) and evaluates; every other keeps none (BOUCLE_ALERTS_DB=off); the
    Ingress sends every path whose route needs the book to the one that keeps it."""
    from fastapi.routing import APIRoute

    import cloud
    from cloud.alert_routes import get_alerts
    from cloud.alerts.service import NO_BOOK, book_path

    apis = [o for o in objects() if o["kind"] == "Deployment"
            and o["spec"]["template"]["spec"]["containers"][0]["args"][:1] == ["api"]]
    loaded = {}
    for api in apis:
        values, sources = container_env(api)
        loaded[api["metadata"]["name"]] = load_settings(ApiSettings, {**values, **{n: "s" * 24 for n in sources}})
    keepers = [a for a in apis if loaded[a["metadata"]["name"]].alerts_db != NO_BOOK]
    assert len(keepers) == 1 and len(apis) >= 2, [a["metadata"]["name"] for a in keepers]
    (keeper,) = keepers
    settings = loaded[keeper["metadata"]["name"]]
    assert settings.alerts_interval_s > 0  # it evaluates
    assert keeper["spec"]["replicas"] == 1 and keeper["spec"]["strategy"]["type"] == "Recreate"
    spec = keeper["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = [m for m in spec["containers"][0]["volumeMounts"] if book_path(settings).startswith(m["mountPath"] + "/")]
    assert len(mounts) == 1 and not mounts[0].get("readOnly")
    claim = one("PersistentVolumeClaim", volumes[mounts[0]["name"]]["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsUser"]  # the volume is writable
    assert sum(a["spec"]["replicas"] for a in apis if a is not keeper) >= 2  # the rest scales

    def served_by(service_name: str) -> str:
        selector = one("Service", service_name)["spec"]["selector"]
        (api,) = [a for a in apis if selector.items() <= a["spec"]["template"]["metadata"]["labels"].items()]
        return api["metadata"]["name"]

    (ingress,) = [o for o in objects() if o["kind"] == "Ingress"]
    paths = [(p["path"], served_by(p["backend"]["service"]["name"])) for rule in ingress["spec"]["rules"]
             for p in rule["http"]["paths"]]

    def routed(path: str) -> str:  # the longest matching Prefix, element-wise, as Kubernetes does
        matching = [(prefix, to) for prefix, to in paths
                    if prefix == "/" or path == prefix or path.startswith(prefix.rstrip("/") + "/")]
        return max(matching, key=lambda m: len(m[0]))[1]

    routers = [getattr(importlib.import_module(f"cloud.{m.name}"), "router", None)
               for m in pkgutil.iter_modules(cloud.__path__)]
    book_routes = [r.path for router in routers if router is not None for r in router.routes
                   if isinstance(r, APIRoute) and _uses(r.dependant, get_alerts)]
    assert "/v1/alerts/{alert_id}/acknowledge" in book_routes and "/v1/exchanges" in book_routes
    for path in book_routes:
        assert routed(path) == keeper["metadata"]["name"], path
    assert routed("/v1/territories/ecully/indicators") != keeper["metadata"]["name"]
    assert routed("/") != keeper["metadata"]["name"]
