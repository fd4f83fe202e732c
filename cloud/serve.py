"""`boucle api`: serve the indicator API with uvicorn."""

from __future__ import annotations

import argparse

from boucle.cli import UserError
from boucle.registry import RegistryError
from boucle.settings import ApiSettings, SettingsError, load_settings


class ServerThread:
    """uvicorn serving an app on a background thread (for `boucle up`, tests, benchmarks)."""

    def __init__(self, app, host: str, port: int):
        import threading

        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
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
        app = create_app(settings)
    except (SettingsError, RegistryError, ReferencesError, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"Boucle API on http://{settings.host}:{settings.port}  (dashboard: /, API docs: /docs)", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", log_config=None)
    return 0
