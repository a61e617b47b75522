"""Run the emulator in a background thread for tests and benchmarks.

    from emulator.testing import run_emulator

    with run_emulator(seed=7, tenants=2, contacts=30, invoices=120) as xero:
        xero.api_url          # http://127.0.0.1:PORT/api.xro/2.0   (XERO_API_URL)
        xero.identity_url     # http://127.0.0.1:PORT               (XERO_IDENTITY_URL; token at /connect/token)
        xero.login_url        # http://127.0.0.1:PORT               (XERO_LOGIN_URL; /identity/connect/authorize)
        xero.connections_url  # http://127.0.0.1:PORT/connections   (XERO_CONNECTIONS_URL)
        xero.client_id, xero.client_secret, xero.webhook_key
        xero.env()            # the XERO_* variables above as a dict
        tenant = xero.state.tenant_ids[0]
        token = xero.state.client_credentials_token()      # Xero token response (all tenants)
        token = xero.state.user_token([tenant])            # consent + code exchange, with refresh_token
        inv = xero.state.create_invoice(tenant, contact_id, "115.00")   # Xero JSON of the new invoice
        xero.state.apply_payment(tenant, inv["InvoiceID"], "50.00")     # part payment -> INVOICE UPDATE
        xero.state.call_count(tenant, "GET /Invoices", 200)
        xero.state.set_faults(error_rate=0.2); xero.state.set_limits(minute=5)
        xero.state.set_webhook_url("http://127.0.0.1:8000/webhooks/xero"); xero.state.wait_for_webhooks()

`run_emulator(**kwargs)` takes any `EmulatorConfig` field (seed, tenants, contacts, invoices,
client_id, client_secret, webhook_key, webhook_url, user_email, limits=Limits(...),
faults=FaultSettings(...), webhook_batch_seconds, ...). `.stop()` (or leaving the `with`) shuts the
server and the webhook thread down.
"""

from __future__ import annotations

import threading
from typing import Self

from werkzeug.serving import WSGIRequestHandler, make_server

from .app import create_app
from .config import EmulatorConfig
from .state import EmulatorState


class QuietHandler(WSGIRequestHandler):
    """No access log lines on stderr during tests."""

    def log_request(self, *args, **kwargs) -> None:
        pass


class RunningEmulator:
    """A live emulator on 127.0.0.1 and its in-process `state`."""

    def __init__(self, config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.state = EmulatorState(config)
        self._server = make_server(
            host, port, create_app(self.state), threaded=True, request_handler=QuietHandler
        )
        self.url = f"http://{host}:{self._server.server_port}"
        self.state.base_url = self.url
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="emulator-http", daemon=True
        )
        self._thread.start()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api.xro/2.0"

    @property
    def identity_url(self) -> str:
        return self.url

    @property
    def login_url(self) -> str:
        return self.url

    @property
    def connections_url(self) -> str:
        return f"{self.url}/connections"

    @property
    def client_id(self) -> str:
        return self.config.client_id

    @property
    def client_secret(self) -> str:
        return self.config.client_secret

    @property
    def webhook_key(self) -> str:
        return self.config.webhook_key

    def env(self) -> dict[str, str]:
        """The XERO_* environment that points a client at this emulator."""
        return {
            "XERO_API_URL": self.api_url,
            "XERO_IDENTITY_URL": self.identity_url,
            "XERO_LOGIN_URL": self.login_url,
            "XERO_CONNECTIONS_URL": self.connections_url,
            "XERO_CLIENT_ID": self.client_id,
            "XERO_CLIENT_SECRET": self.client_secret,
            "XERO_WEBHOOK_KEY": self.webhook_key,
        }

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.state.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run_emulator(host: str = "127.0.0.1", port: int = 0, **config) -> RunningEmulator:
    """Start an emulator (port 0: any free port); keyword arguments are EmulatorConfig fields."""
    return RunningEmulator(EmulatorConfig(**config), host, port)
