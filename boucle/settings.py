"""Settings: one dataclass per service, read from BOUCLE_* environment variables and
an optional TOML file (BOUCLE_CONFIG). Environment wins over the file, the file over
the defaults. A bad value raises SettingsError naming the variable and the fix.

Every field's `help` metadata is its documentation (docs/configuration.md is made
from it by `boucle_settings_table()`).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
STORE_URL_HELP = ("Storage: sqlite:///PATH (embedded) or influx+http://HOST:PORT/DATABASE "
                  "(InfluxDB v1-compatible API: 1.x, 2.x with DBRP mapping, 3 Core; influx+https for TLS).")
DEFAULT_REGISTRY = str(Path(__file__).parent / "examples" / "registry.toml")
DEFAULT_DEVICE_KEYS = ".boucle/device-keys"


EXAMPLE_SECRET = "change-me"
"""How example secrets begin (in documentation and older .env.example files): a secret
setting with such a value is refused, since anyone can read it."""


class SettingsError(ValueError):
    """A setting that cannot be used, with the variable that holds it and the fix."""


def setting(default: Any, help: str, secret: bool = False) -> Any:
    return field(default=default, repr=not secret, metadata={"help": help, "secret": secret})


@dataclass(frozen=True)
class MqttSettings:
    mqtt_host: str = setting("127.0.0.1", "MQTT broker host name or address.")
    mqtt_port: int = setting(1883, "MQTT broker TCP port (8883 for TLS).")
    mqtt_username: str = setting("", "MQTT user name (empty: anonymous).")
    mqtt_password: str = setting("", "MQTT password.", secret=True)
    mqtt_tls_ca: str = setting("", "Path of a CA bundle; when set, the connection uses TLS.")
    topic_prefix: str = setting("boucle/v1", "Topic prefix; devices publish under {prefix}/{device}/...")
    mqtt_protocol: str = setting("auto", "auto (MQTT 5, falling back to 3.1.1), 5, or 3.1.1 (amqtt speaks only 3.1.1).")


@dataclass(frozen=True)
class GatewaySettings(MqttSettings):
    client_id: str = setting("boucle-gateway", "Fixed MQTT client id: the broker keeps this session while the gateway "
                                               "is down. The shipped Mosquitto config names sessions by user name instead "
                                               "(use_username_as_clientid): one MQTT user per gateway process there.")
    registry: str = setting(DEFAULT_REGISTRY, "Registry TOML file (territories, sites, devices).")
    device_keys: str = setting(DEFAULT_DEVICE_KEYS, "Device key store (docs/protocol.md, \"Signatures\"): the key "
                                                    "each device signs its telemetry with, written by boucle flash, "
                                                    "mode 600; a missing file holds no key. Re-read when it changes.")
    store_url: str = setting("sqlite:///.boucle/boucle.db", STORE_URL_HELP)
    influx_token: str = setting("", "InfluxDB token (2.x/3) or user:password (1.x) for influx+http URLs.", secret=True)
    influx_precision: str = setting("s", "Timestamp precision of line-protocol writes: s, ms, us or ns.")
    spool_path: str = setting(".boucle/spool.db", "Durable spool (SQLite, WAL) between MQTT and storage.")
    spool_max_rows: int = setting(5_000_000, "Spool bound in messages; past it the gateway stops acking and raises an alarm.")
    metrics_port: int = setting(9108, "Port of the gateway's /metrics (Prometheus) and /healthz; 0 disables.")
    max_future_skew_s: int = setting(300, "Readings stamped further ahead of the gateway clock are dead-lettered.")
    max_payload_bytes: int = setting(8192, "Larger telemetry payloads are dead-lettered (protocol limit 8192).")
    batch_size: int = setting(500, "Messages committed to the store in one transaction at most.")
    session_expiry_s: int = setting(7 * 86400, "How long the broker keeps the gateway's session and queue while it is away.")
    share_group: str = setting("", "The group of gateways that share the work. mqtt input: the shared-subscription "
                                   "group ($share/GROUP/...), empty for a plain subscription; give each process its "
                                   "own client_id. jetstream input: the durable consumer's name (empty: boucle-gateway).")
    input: str = setting("mqtt", "Where the gateway takes messages from: mqtt (a persistent session on one MQTT broker: "
                                 "Mosquitto, amqtt) or jetstream (a durable pull consumer on a NATS cluster whose MQTT "
                                 "gateway the devices publish to; docs/gateway.md).")
    nats_servers: str = setting("nats://127.0.0.1:4222", "jetstream input: comma-separated NATS URLs of the cluster's "
                                                         "nodes (any one is enough to join; the client learns the others). "
                                                         "The MQTT user name, password and CA apply to them too.")
    nats_ack_wait_s: float = setting(60.0, "jetstream input: a message delivered to a gateway and not acked within this "
                                           "is handed to another (a gateway died holding it); longer than a spool "
                                           "commit takes on a loaded machine.")
    aggregate_interval_s: float = setting(5.0, "The longest the aggregate stage waits before looking for rollups to bring up "
                                          "to date (it starts as soon as readings are stored).")
    aggregate_memory_readings: int = setting(3_000_000, "Readings the aggregate stage keeps in memory (the devices' "
                                             "latest UTC day or two: about 40 bytes each), so that rolling up what "
                                             "was just stored does not read it back; past it the devices stored to "
                                             "least recently are read from the store again.")
    ledger_close_after_s: int = setting(6 * 3600, "How long after UTC midnight the ledger stage seals the day before "
                                              "(docs/ledger.md): readings of it stored later make a new version.")
    ledger_interval_s: float = setting(300.0, "How often the ledger stage looks for days to seal and re-checks the "
                                              "recent ones; 0 turns the stage off (run it in one gateway process only).")
    ledger_settle_s: float = setting(60.0, "A ledger entry holds the readings the gateway received up to this long "
                                           "before its round (a write in flight then is committed by the time the "
                                           "day is read); those received later are late readings (a new version).")
    ledger_lookback_days: int = setting(7, "Sealed days the ledger stage re-checks each round for late readings (by "
                                           "count) and, every ledger_audit_rounds rounds, recomputes in full.")
    ledger_audit_rounds: int = setting(288, "Every this many rounds (288: daily at the default interval) the ledger "
                                            "stage recomputes the looked-back days' digests from the stored readings "
                                            "and reports any day that no longer matches its ledger (0: never).")
    dedup_days: int = setting(35, "How long the dedup index remembers a reading identity (days of event time).")
    dead_letters_max_per_device: int = setting(1000, "Dead letters kept per device (the topic's device segment); past "
                                                     "it the device's oldest are dropped, counted, and an ALARM logged.")
    dead_letters_max_device_bytes: int = setting(8 * 2**20, "Bytes of dead letters kept per device (payloads and texts); "
                                                            "past it the device's oldest are dropped. At least 65536.")
    dead_letters_max: int = setting(100_000, "Dead letters kept in all; past it the oldest are dropped.")
    dead_letters_max_bytes: int = setting(256 * 2**20, "Bytes of dead letters kept in all; past it the oldest are "
                                                       "dropped. At least 65536.")


@dataclass(frozen=True)
class ApiSettings:
    host: str = setting("127.0.0.1", "Address the API listens on.")
    port: int = setting(8000, "Port the API listens on.")
    registry: str = setting(DEFAULT_REGISTRY, "Registry TOML file.")
    store_url: str = setting("sqlite:///.boucle/boucle.db", STORE_URL_HELP)
    influx_token: str = setting("", "InfluxDB token (2.x/3) or user:password (1.x) for influx+http URLs.", secret=True)
    cors_origins: str = setting("", "Comma-separated origins allowed by CORS (empty: same origin only).")
    require_keys: bool = setting(True, "Require an API key (X-API-Key header) on /v1 endpoints.")
    online_after_s: int = setting(300, "A device is online when its newest reading arrived less than this ago.")
    rate_limit_per_s: float = setting(10.0, "Tokens per second each API key (or client address, for requests without a known key) gets back on /v1; a request takes one, a costly one more (see cost_per_token); 0 disables rate limiting.")
    rate_limit_burst: int = setting(60, "Tokens a key may spend at once before the rate limit applies (token bucket size).")
    trusted_proxies: str = setting("", "Comma-separated addresses or networks (10.0.0.0/8) of reverse proxies whose X-Forwarded-For names the client; empty: the header is ignored and the peer address is the client.")
    max_request_cost: int = setting(400_000, "Most work one request may ask for, in device-steps (devices in scope × series steps, or × started 30-day months for indicator sets, FIWARE, pooling, symbiosis); costlier requests are refused with 422.")
    cost_per_token: int = setting(20_000, "Device-steps one rate-limit token pays for: a request takes ceil(cost / this) tokens (at least 1, at most the burst) when it is computed, none when cached.")
    key_concurrency: int = setting(4, "Requests of one key (or client address) served at once; more wait their turn without holding a worker thread.")
    request_budget_s: float = setting(10.0, "Seconds of CPU time a series or comparison may compute (its own thread's: time lost to other requests does not count) before it stops with 503; also the longest a request waits for its key's turn before 429; 0 disables both bounds.")
    max_body_bytes: int = setting(65536, "Larger request bodies are refused with 413.")
    max_query_bytes: int = setting(4096, "Longer request targets (path and query string) are refused with 414.")
    cache_entries: int = setting(256, "Indicator results kept in memory per (query, data version); 0 disables the cache.")
    rollup_cache_mb: int = setting(512, "With InfluxDB: megabytes of rollup rows kept in memory and checked against the "
                                   "store before each use, so that a computation reads only the rows changed since "
                                   "(a year of 1,000 devices is about 80 MB); 0 reads every row every time.")
    alerts_db: str = setting("", "The alert book (SQLite: alerts, their deliveries, proposed exchanges); empty: "
                                 "alerts.db beside an SQLite store, else .boucle/alerts.db; off: this process keeps "
                                 "none, evaluates no rule and answers alerts and exchanges 503 (another serves them).")
    alerts_interval_s: float = setting(30.0, "How often the API looks for new data (the store's data version) to "
                                             "evaluate the alert rules on; 0 stops evaluating (the book still answers).")
    alerts_recheck_s: float = setting(300.0, "Rules are evaluated at least this often even without new data (a silent "
                                             "device writes nothing).")
    alerts_webhook_url: str = setting("", "http(s) URL every alert change is POSTed to (empty: no webhook).")
    alerts_webhook_secret: str = setting("", "Shared secret of the webhook's HMAC-SHA256 signature "
                                             "(X-Boucle-Signature); required with a webhook URL.", secret=True)
    alerts_retry_s: float = setting(10.0, "First wait before a failed alert delivery is tried again; it doubles "
                                          "each time, up to an hour.")
    alerts_max_attempts: int = setting(10, "Delivery attempts of one alert change on one channel before giving up.")
    alerts_mqtt_host: str = setting("", "MQTT broker alert changes are published to (empty: none).")
    alerts_mqtt_port: int = setting(1883, "Its port.")
    alerts_mqtt_username: str = setting("", "Its user name (empty: anonymous).")
    alerts_mqtt_password: str = setting("", "Its password.", secret=True)
    alerts_mqtt_tls_ca: str = setting("", "CA bundle for TLS to it (empty: plain TCP).")
    alerts_topic_prefix: str = setting("boucle/alerts", "Alert changes go to {prefix}/{territory} at QoS 1, not "
                                                        "retained.")


@dataclass(frozen=True)
class SimulatorSettings(MqttSettings):
    registry: str = setting(DEFAULT_REGISTRY, "Registry TOML file whose devices are simulated.")
    seed: int = setting(1, "Random seed: same seed, same bytes.")
    ledger: str = setting(".boucle/ledger.jsonl", "Ground-truth ledger file (JSON lines).")
    device_keys: str = setting(DEFAULT_DEVICE_KEYS, "Device key store (the gateway's): the modelled devices it has "
                                                    "a key for sign their telemetry with it, as flashed devices do.")


def env_name(field_name: str) -> str:
    return "BOUCLE_" + field_name.upper()


def load_settings(cls: type[T], env: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Build settings: defaults < BOUCLE_CONFIG file < BOUCLE_* env < keyword overrides."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    config_file = env.get("BOUCLE_CONFIG")
    if config_file:
        try:
            values.update(tomllib.loads(Path(config_file).read_text("utf-8")))
        except FileNotFoundError:
            raise SettingsError(f"BOUCLE_CONFIG={config_file}: no such file; fix the path or unset it") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"BOUCLE_CONFIG={config_file}: not valid TOML ({exc})") from None
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - set(fields)
    if unknown:
        raise SettingsError(f"{config_file}: unknown setting {min(unknown)!r}; "
                            f"known: {', '.join(sorted(fields))}")
    for name in fields:
        if env_name(name) in env:
            values[name] = env[env_name(name)]
    values.update({k: v for k, v in overrides.items() if v is not None})
    for name, value in values.items():
        if fields[name].metadata.get("secret") and str(value).strip().startswith(EXAMPLE_SECRET):
            raise SettingsError(f"{env_name(name)} holds an example value ({EXAMPLE_SECRET}...), which anyone can "
                                "read: set a secret of your own, or generate the stack's with `boucle secrets`")
    return cls(**{name: _coerce(fields[name], value) for name, value in values.items()})


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    kind = f.type if isinstance(f.type, type) else {"int": int, "bool": bool, "str": str, "float": float}[f.type]
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    text = str(value).strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return kind(text)
    except ValueError:
        shown = "***" if f.metadata.get("secret") else repr(value)
        expected = {int: "a whole number", float: "a number", bool: "true or false"}.get(kind, kind.__name__)
        raise SettingsError(f"{env_name(f.name)}={shown}: expected {expected} ({f.metadata['help']})") from None


def settings_table(cls: type) -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting of a settings class."""
    out = []
    for f in dataclasses.fields(cls):
        default = f.default
        if f.name == "registry":
            default = "(bundled example registry)"
        out.append((env_name(f.name), str(default), f.metadata["help"]))
    return out


def configuration_markdown() -> str:
    """docs/configuration.md, made from the settings classes (a test keeps it current)."""
    parts = ["# Configuration\n",
             "Every service reads `BOUCLE_*` environment variables, then an optional TOML file named by",
             "`BOUCLE_CONFIG` whose keys are the setting names in lower case without the prefix",
             "(`mqtt_host = \"broker\"`). Environment wins over the file, the file over the defaults.",
             "A bad value stops the service with the variable's name and what it expects.\n",
             "This page is generated from `boucle/settings.py` (`python -m boucle.settings > docs/configuration.md`).\n",
             "Logging, for every service: `BOUCLE_LOG_FORMAT` = `text` (default) or `json` (one JSON",
             "object per line: time, level, logger, message), `BOUCLE_LOG_LEVEL` = `INFO`, `WARNING`, ...\n"]
    for title, cls in (("Gateway (`boucle gateway`)", GatewaySettings), ("API (`boucle api`)", ApiSettings),
                       ("Simulator (`boucle simulate`)", SimulatorSettings)):
        parts.append(f"## {title}\n\n| variable | default | meaning |\n|---|---|---|")
        for name, default, meaning in settings_table(cls):
            parts.append(f"| `{name}` | `{default}` | {meaning} |")
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    print(configuration_markdown(), end="")
