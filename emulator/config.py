"""Start-up settings of one emulator instance: credentials, seed sizes, limits, faults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_CLIENT_ID = "0E6F1C5A9B2D4C7E8F1A3B5C7D9E1F20"
DEFAULT_CLIENT_SECRET = "emulator-client-secret-5m8Qv2Lr7Tz4Wp1Ky6Nd"
DEFAULT_WEBHOOK_KEY = "emulator-webhook-key-Jh3Xb9Fs2Ka7Qe5Ru8Vc1Mn4Pw6Ty0Lz"


@dataclass
class Limits:
    """Xero's rate limits (per tenant: minute, day, concurrent; per app: minute)."""

    minute: int = 60
    day: int = 5000
    concurrent: int = 5
    app_minute: int = 10000


@dataclass
class FaultSettings:
    """Injected misbehaviour; rates are probabilities in [0, 1]."""

    latency_ms: int = 0
    latency_jitter_ms: int = 0
    error_rate: float = 0.0
    error_status: int = 503
    rate_limit_rate: float = 0.0
    rate_limit_next: int = 0
    rate_limit_retry_after: int = 1
    timeout_rate: float = 0.0
    timeout_seconds: float = 5.0
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_delay_rate: float = 0.0
    webhook_delay_seconds: float = 2.0
    webhook_reorder_rate: float = 0.0
    webhook_reorder_seconds: float = 1.0


@dataclass
class EmulatorConfig:
    """Everything an emulator needs to start; `from_env` fills credentials from XERO_*."""

    seed: int = 1
    tenants: int = 2
    contacts: int = 50
    invoices: int = 200
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    webhook_key: str = DEFAULT_WEBHOOK_KEY
    webhook_url: str | None = None
    user_email: str = "demo.admin@example.com"
    user_given_name: str = "Demo"
    user_family_name: str = "Admin"
    provider_name: str = "Xero Mirror (emulated)"
    issuer: str | None = None  # None: the emulator's own base URL
    access_token_ttl: int = 1800
    refresh_grace_seconds: int = 1800
    refresh_idle_days: int = 60
    code_ttl: int = 300
    client_scopes: str = (
        "accounting.transactions.read accounting.invoices.read accounting.payments.read "
        "accounting.contacts.read accounting.settings.read"
    )
    limits: Limits = field(default_factory=Limits)
    faults: FaultSettings = field(default_factory=FaultSettings)
    fault_seed: int | None = None
    webhook_batch_seconds: float = 0.2
    webhook_max_batch: int = 100
    webhook_retry_window: float = 60.0
    webhook_timeout: float = 5.0
    timezone: str | None = None  # every organisation's Timezone (a TimeZone enum value); None: per profile
    merge_moves_invoices_updated: bool = True  # a contact merge gives each moved invoice a new UpdatedDateUTC
    unpaged_line_items: bool = False  # un-paged lists carry LineItems too (Xero's text implies not)

    @classmethod
    def from_env(cls, environ=None, **overrides) -> EmulatorConfig:
        """Credentials from XERO_CLIENT_ID / XERO_CLIENT_SECRET / XERO_WEBHOOK_KEY, else defaults."""
        env = os.environ if environ is None else environ
        values = {
            "client_id": env.get("XERO_CLIENT_ID") or DEFAULT_CLIENT_ID,
            "client_secret": env.get("XERO_CLIENT_SECRET") or DEFAULT_CLIENT_SECRET,
            "webhook_key": env.get("XERO_WEBHOOK_KEY") or DEFAULT_WEBHOOK_KEY,
        }
        values.update(overrides)
        return cls(**values)
