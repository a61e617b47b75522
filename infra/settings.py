"""Settings, read from the environment in one place."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE = f"sqlite:///{ROOT / 'var' / 'xero-mirror.db'}"
DEFAULT_SCOPES = (
    "accounting.invoices.read accounting.payments.read accounting.contacts.read "
    "accounting.settings.read offline_access openid profile email"
)


@dataclass(frozen=True)
class Settings:
    """Everything the processes need to know about their surroundings."""

    database_url: str = DEFAULT_SQLITE
    redis_url: str | None = None
    xero_client_id: str = ""
    xero_client_secret: str = field(default="", repr=False)
    xero_webhook_key: str = field(default="", repr=False)
    xero_api_url: str = "https://api.xero.com/api.xro/2.0"
    xero_identity_url: str = "https://identity.xero.com"
    xero_login_url: str = "https://login.xero.com"
    xero_connections_url: str = "https://api.xero.com/connections"
    xero_scopes: str = DEFAULT_SCOPES
    token_keys: tuple[str, ...] = field(default=(), repr=False)
    webhook_max_bytes: int = 1_000_000
    intake_socket: str = ""  # the intake writer process's Unix socket; "" = this process writes (webhook.writer)
    secret_key: str = field(default="", repr=False)  # signs the admin session cookie
    public_url: str = ""  # e.g. https://mirror.example.com; "" derives URLs from the request
    embed_frame_ancestors: str = "*"  # CSP frame-ancestors: who may frame the widget
    embed_poll_seconds: float = 3.0  # how often an open widget refreshes itself
    embed_per_page: int = 10  # the widget's page size

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        defaults = cls()

        def get(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        keys = tuple(k.strip() for k in env.get("TOKEN_KEYS", "").split(",") if k.strip())
        return cls(
            database_url=get("DATABASE_URL", defaults.database_url),
            redis_url=env.get("REDIS_URL", "").strip() or None,
            xero_client_id=get("XERO_CLIENT_ID", ""),
            xero_client_secret=get("XERO_CLIENT_SECRET", ""),
            xero_webhook_key=get("XERO_WEBHOOK_KEY", ""),
            xero_api_url=get("XERO_API_URL", defaults.xero_api_url).rstrip("/"),
            xero_identity_url=get("XERO_IDENTITY_URL", defaults.xero_identity_url).rstrip("/"),
            xero_login_url=get("XERO_LOGIN_URL", defaults.xero_login_url).rstrip("/"),
            xero_connections_url=get("XERO_CONNECTIONS_URL", defaults.xero_connections_url).rstrip("/"),
            xero_scopes=get("XERO_SCOPES", defaults.xero_scopes),
            token_keys=keys,
            webhook_max_bytes=int(get("WEBHOOK_MAX_BYTES", str(defaults.webhook_max_bytes))),
            intake_socket=get("INTAKE_SOCKET", ""),
            secret_key=get("SECRET_KEY", ""),
            public_url=get("PUBLIC_URL", "").rstrip("/"),
            embed_frame_ancestors=frame_ancestors(env.get("EMBED_FRAME_ANCESTORS", "")),
            embed_poll_seconds=_number(env, "EMBED_POLL_SECONDS", defaults.embed_poll_seconds, 0.5, 3600),
            embed_per_page=int(_number(env, "EMBED_PER_PAGE", defaults.embed_per_page, 1, EMBED_MAX_PER_PAGE)),
        )


EMBED_MAX_PER_PAGE = 200  # the read API's own maximum (views/openapi.py MAX_PER_PAGE)
_SOURCE = re.compile(r"[^\s;,'\"]+|'(self|none)'")


def frame_ancestors(value: str) -> str:
    """A CSP frame-ancestors source list ("*" when empty); anything that could end the
    directive early (";", ",", quotes other than 'self'/'none') is refused at start-up."""
    value = " ".join(value.split()) or "*"
    if not all(_SOURCE.fullmatch(part) for part in value.split(" ")):
        raise ValueError(f"EMBED_FRAME_ANCESTORS is not a CSP source list: {value!r}")
    return value


def _number(env, name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number from {low} to {high}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low} to {high}")
    return value
