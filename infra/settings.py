"""Settings, read from the environment in one place (`Settings.from_env`) by each process's entry point."""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from infra.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE = f"sqlite:///{ROOT / 'var' / 'xero-mirror.db'}"
DEFAULT_SCOPES = (
    "accounting.invoices.read accounting.payments.read accounting.contacts.read "
    "accounting.settings.read offline_access openid profile email"
)


@dataclass(frozen=True)
class XeroLimits:
    """Xero's per-tenant limits the rate governor budgets against (worker.governor.Budget)."""

    per_minute: int = 60  # XERO_MINUTE_LIMIT
    concurrent: int = 5  # XERO_CONCURRENT_LIMIT
    per_day: int = 5000  # XERO_DAY_LIMIT; assumed until Xero's headers say otherwise, unless `day_limit_set`
    day_limit_set: bool = False  # XERO_DAY_LIMIT was given: never learn another


@dataclass(frozen=True)
class WorkerOptions:
    """The worker's own knobs (seconds unless named otherwise)."""

    reconcile_seconds: float = 3600.0  # healthy cadence's base interval (worker.cadence)
    relay_seconds: float = 5.0
    backfill_slice_seconds: float = 20.0
    lease_seconds: float = 60.0  # a job's hold on its tenant; a killed worker's hold lapses after this
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    retry_attempts: int = 8
    busy_retry_seconds: float = 2.0
    maintenance_seconds: int = 60


CPU_AFFINITY_MODES = ("auto", "off")
INTAKE_WRITER_MODES = ("process", "in-process")


@dataclass(frozen=True)
class WebServer:
    """How the Procfile's `web` runs (gunicorn.conf.py): its processes, threads, port and CPUs."""

    workers: int = 1  # WEB_CONCURRENCY
    threads: int = 16  # WEB_THREADS
    port: str = "8000"  # PORT
    access_log: str | None = "-"  # WEB_ACCESS_LOG; set empty, None: no access log
    intake_writer: str = "process"  # INTAKE_WRITER: a writer process, or each worker commits its own
    cpu_affinity: str = "auto"  # WEB_CPU_AFFINITY: `auto` pins processes to CPUs (webhook/cpus.py), `off` not


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
    app_env: str = ""  # APP_ENV: "production" refuses weak settings (`production_refusal`)
    trusted_hosts: tuple[str, ...] = ()  # TRUSTED_HOSTS: the Host headers answered (Flask's); () = any
    metrics_token: str = field(default="", repr=False)  # METRICS_TOKEN: /metrics's bearer; "" = open
    metrics_public: bool = False  # METRICS_PUBLIC=1: production may serve /metrics without a token
    xero_limits: XeroLimits = field(default_factory=XeroLimits)
    worker: WorkerOptions = field(default_factory=WorkerOptions)
    web: WebServer = field(default_factory=WebServer)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in `environ` (os.environ when None); a bad value raises, naming the variable."""
        env = os.environ if environ is None else environ
        defaults = cls()

        def get(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        keys = tuple(k.strip() for k in env.get("TOKEN_KEYS", "").split(",") if k.strip())
        settings = cls(
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
            xero_limits=_xero_limits(env),
            worker=_worker_options(env),
            web=_web_server(env),
            app_env=app_env(env.get("APP_ENV", "")),
            trusted_hosts=tuple(h.strip() for h in env.get("TRUSTED_HOSTS", "").split(",") if h.strip()),
            metrics_token=get("METRICS_TOKEN", ""),
            metrics_public=_flag(env, "METRICS_PUBLIC"),
        )
        refusal = settings.production_refusal()
        if refusal:
            raise ConfigError(refusal)
        return settings

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def secure_cookies(self) -> bool:
        """Whether cookies we set say `Secure`: in production, or behind an https PUBLIC_URL."""
        return self.production or self.public_url.startswith("https://")

    def production_refusal(self) -> str | None:
        """Why production (APP_ENV=production) must not start with these settings, in one line
        naming the variable; None when it may, and always None outside production."""
        if not self.production:
            return None
        if len(self.secret_key.encode()) < MIN_SECRET_BYTES:
            return (f"SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes in production "
                    "(python -c 'import secrets; print(secrets.token_urlsafe(48))')")
        public = urlsplit(self.public_url)
        if public.scheme != "https" or not public.hostname:
            return "PUBLIC_URL must be this server's https:// address in production, e.g. https://mirror.example.com"
        wide = [source for source in self.embed_frame_ancestors.split(" ") if _any_site(source)]
        if wide:  # unset is "*"
            return (f"EMBED_FRAME_ANCESTORS must name the CRM origins that may frame the widget in "
                    f"production (e.g. https://crm.example.com), not unset or {wide[0]!r}")
        if not self.metrics_token and not self.metrics_public:
            return ("METRICS_TOKEN must be set in production (the bearer /metrics asks for), "
                    "or METRICS_PUBLIC=1 to serve /metrics to anyone")
        if self.metrics_token and len(self.metrics_token.encode()) < MIN_SECRET_BYTES:
            return f"METRICS_TOKEN must be at least {MIN_SECRET_BYTES} bytes in production"
        return None


MIN_SECRET_BYTES = 32  # SECRET_KEY's and METRICS_TOKEN's least length in production
APP_ENVS = ("production", "development", "test")


def app_env(value: str) -> str:
    """APP_ENV, checked: empty, or one of APP_ENVS (a misspelt `prod` must not skip the checks)."""
    value = value.strip().lower()
    if value and value not in APP_ENVS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(APP_ENVS)} (or unset), not {value!r}")
    return value


def _any_site(source: str) -> bool:
    """A frame-ancestors source that lets any site frame us: `*`, a bare scheme, `https://*`."""
    return source == "*" or source.endswith(":") or source.split("://", 1)[-1] == "*"


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, not {value!r}")


def from_env_or_exit(environ: Mapping[str, str] | None = None) -> Settings:
    """`Settings.from_env` for a process's entry point: a setting it refuses ends the process
    (status 1) with its one line on stderr, not a traceback."""
    try:
        return Settings.from_env(environ)
    except ConfigError as error:
        print(f"xero-mirror will not start: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def _xero_limits(env: Mapping[str, str]) -> XeroLimits:
    def number(name: str, default: int) -> int:
        value = env.get(name, "").strip()
        return int(value) if value else default

    base = XeroLimits()
    return XeroLimits(
        per_minute=number("XERO_MINUTE_LIMIT", base.per_minute),
        concurrent=number("XERO_CONCURRENT_LIMIT", base.concurrent),
        per_day=number("XERO_DAY_LIMIT", base.per_day),
        day_limit_set=bool(env.get("XERO_DAY_LIMIT", "").strip()),
    )


def _worker_options(env: Mapping[str, str]) -> WorkerOptions:
    base = WorkerOptions()

    def get(name: str, default):
        value = env.get(name, "").strip()
        return type(default)(value) if value else default

    return WorkerOptions(
        reconcile_seconds=get("RECONCILE_SECONDS", base.reconcile_seconds),
        relay_seconds=get("RELAY_SECONDS", base.relay_seconds),
        backfill_slice_seconds=get("BACKFILL_SLICE_SECONDS", base.backfill_slice_seconds),
        lease_seconds=get("WORKER_LEASE_SECONDS", base.lease_seconds),
        retry_base_seconds=get("RETRY_BASE_SECONDS", base.retry_base_seconds),
        retry_max_seconds=get("RETRY_MAX_SECONDS", base.retry_max_seconds),
        retry_attempts=get("RETRY_ATTEMPTS", base.retry_attempts),
        busy_retry_seconds=get("BUSY_RETRY_SECONDS", base.busy_retry_seconds),
        maintenance_seconds=get("WORKER_MAINTENANCE_SECONDS", base.maintenance_seconds),
    )


def _web_server(env: Mapping[str, str]) -> WebServer:
    base = WebServer()
    return WebServer(
        workers=int(env.get("WEB_CONCURRENCY", str(base.workers))),
        threads=int(env.get("WEB_THREADS", str(base.threads))),
        port=env.get("PORT", base.port),
        access_log=env.get("WEB_ACCESS_LOG", base.access_log) or None,
        intake_writer=intake_writer(env.get("INTAKE_WRITER", "")),
        cpu_affinity=cpu_affinity(env.get("WEB_CPU_AFFINITY", "")),
    )


def cpu_affinity(value: str) -> str:
    """WEB_CPU_AFFINITY, checked: `auto` (when empty) or `off`, in any case."""
    value = (value or "auto").strip().lower()
    if value not in CPU_AFFINITY_MODES:
        raise RuntimeError(f"WEB_CPU_AFFINITY must be one of {', '.join(CPU_AFFINITY_MODES)}, not {value!r}")
    return value


def intake_writer(value: str) -> str:
    """INTAKE_WRITER, checked: `process` (when empty) or `in-process`."""
    value = value.strip() or "process"
    if value not in INTAKE_WRITER_MODES:
        raise RuntimeError(f"INTAKE_WRITER must be 'process' or 'in-process', not {value!r}")
    return value


EMBED_MAX_PER_PAGE = 200  # the read API's own maximum (views/openapi.py MAX_PER_PAGE)
_SOURCE = re.compile(r"[^\s;,'\"]+|'(self|none)'")


def frame_ancestors(value: str) -> str:
    """A CSP frame-ancestors source list ("*" when empty); anything that could end the
    directive early (";", ",", quotes other than 'self'/'none') is refused at start-up."""
    value = " ".join(value.split()) or "*"
    if not all(_SOURCE.fullmatch(part) for part in value.split(" ")):
        raise ConfigError(f"EMBED_FRAME_ANCESTORS is not a CSP source list: {value!r}")
    return value


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number from {low} to {high}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be a number from {low} to {high}")
    return value
