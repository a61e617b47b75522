"""Connecting a workspace to an organisation with the client-credentials grant (Xero's
custom connections): token, /connections, /Organisation, the sealed connection, a backfill."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from redis import Redis, RedisError
from sqlalchemy.orm import Session, sessionmaker

from store import connections
from infra import metrics
from infra.settings import Settings
from store.db import transaction
from store.models import Workspace
from store.secrets import SecretsError, TokenBox
from worker import sync
from infra import queue
from xero.tokens import normalise
from xero.client import XeroClient, XeroError


class ConnectError(Exception):
    """The connection cannot be made as asked; the message says why (never a token)."""


@dataclass(frozen=True)
class Connected:
    connection: connections.ConnectionRecord
    backfill_queued: bool


def connect_client_credentials(
    settings: Settings,
    sessions: sessionmaker[Session],
    redis: Redis | None,
    workspace_id: int,
    tenant_id: str | None = None,
) -> Connected:
    """Obtain a client-credentials token, pick the tenant from /connections, store the
    connection (token sealed) and ask for its backfill."""
    with sessions() as session:
        if session.get(Workspace, workspace_id) is None:
            raise ConnectError(f"no workspace {workspace_id}")
    try:
        box = TokenBox(settings.token_keys)
    except SecretsError as exc:
        raise ConnectError(str(exc)) from None
    meter = (lambda t, n: metrics.egress(redis, t, n)) if redis is not None else None
    client = XeroClient(settings, on_bytes=meter)  # the organisation read is egress like any other
    requested = time.time()
    try:
        token = normalise(client.client_credentials_token(), requested)
        tenants = client.connections(token["access_token"])
    except XeroError as exc:
        raise ConnectError(f"Xero refused the client-credentials connection: {exc}") from None
    chosen = _choose(tenants, tenant_id)
    try:
        org = client.organisation(chosen["tenantId"], token["access_token"])
    except XeroError:
        org = {}  # short code, currency, time zone: the connection stands without them (read again later)
    now = datetime.now(timezone.utc)
    with transaction(sessions) as session:
        try:
            record = connections.connect(
                session, box, workspace_id=workspace_id, tenant_id=chosen["tenantId"],
                token=token, now=now, grant_type=connections.CLIENT_CREDENTIALS,
                tenant_name=chosen.get("tenantName") or org.get("Name"), xero_connection_id=chosen.get("id"),
                auth_event_id=chosen.get("authEventId"), short_code=org.get("ShortCode"),
                base_currency=org.get("BaseCurrency"), organisation=org,
            )
        except ValueError as exc:
            raise ConnectError(str(exc)) from None
    sync.start_backfill(sessions, record.tenant_id)
    queued = False
    if redis is not None:
        try:
            queued = queue.enqueue(redis, queue.BACKFILL, record.tenant_id)
        except RedisError:
            queued = False  # the workers' ticker starts the backfill of every live tenant anyway
    return Connected(record, queued)


def _choose(tenants: list[dict], tenant_id: str | None) -> dict:
    organisations = [t for t in tenants if t.get("tenantType", "ORGANISATION") == "ORGANISATION"]
    if tenant_id:
        for tenant in organisations:
            if str(tenant.get("tenantId", "")).lower() == tenant_id.lower():
                return tenant
        raise ConnectError(f"tenant {tenant_id} is not among this app's connections")
    if len(organisations) == 1:
        return organisations[0]
    names = ", ".join(f"{t.get('tenantId')} ({t.get('tenantName')})" for t in organisations) or "none"
    raise ConnectError(f"choose one organisation with --tenant: {names}")
