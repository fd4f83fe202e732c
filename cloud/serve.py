"""`boucle api`: serve the indicator API with uvicorn."""

from __future__ import annotations

import argparse
import ipaddress

from boucle.cli import UserError
from boucle.registry import RegistryError
from boucle.settings import ApiSettings, SettingsError, load_settings


def proxy_options(trusted_proxies: str) -> dict:
    """uvicorn's X-Forwarded-For handling: believed only from the listed proxies (none by default;
    uvicorn's own default trusts any local process, which could then pose as any address)."""
    hosts = [h.strip() for h in trusted_proxies.split(",") if h.strip()]
    for host in hosts:
        try:
            ipaddress.ip_network(host, strict=False)
        except ValueError:
            raise SettingsError(f"BOUCLE_TRUSTED_PROXIES: {host!r} is not an address or network "
                                "(e.g. 127.0.0.1, 10.0.0.0/8, ::1)") from None
    return {"proxy_headers": bool(hosts), "forwarded_allow_ips": ",".join(hosts) or None}


class ServerThread:
    """uvicorn serving an app on a background thread (for `boucle up`, tests, benchmarks)."""

    def __init__(self, app, host: str, port: int, trusted_proxies: str = ""):
        import threading

        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                    **proxy_options(trusted_proxies)))
        self.server.install_signal_handlers = lambda: None  # the caller owns Ctrl-C
        self.thread = threading.Thread(target=self.server.run, name="api", daemon=True)
        self.url = f"http://{host}:{port}"

    def start(self, timeout: float = 30) -> ServerThread:
        """Start and wait until it listens; False `started` means it could not (port taken)."""
        import time

        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    @property
    def started(self) -> bool:
        return bool(self.server.started)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (env BOUCLE_HOST)")
    parser.add_argument("--port", type=int, help="listen port (env BOUCLE_PORT)")
    parser.add_argument("--registry", help="registry TOML file (env BOUCLE_REGISTRY)")
    parser.add_argument("--store", dest="store_url", help="storage URL (env BOUCLE_STORE_URL)")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from boucle.logs import configure_logging
    from cloud.app import create_app
    from cloud.indicators import ReferencesError

    configure_logging()  # BOUCLE_LOG_FORMAT, and credentials in URLs redacted, for uvicorn's lines too
    try:
        settings = load_settings(ApiSettings, host=args.host, port=args.port, registry=args.registry,
                                 store_url=args.store_url)
        proxy_options(settings.trusted_proxies)
        app = create_app(settings)
    except (SettingsError, RegistryError, ReferencesError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"Boucle API on http://{settings.host}:{settings.port}  (dashboard: /, API docs: /docs)", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", log_config=None,
                **proxy_options(settings.trusted_proxies))
    return 0
