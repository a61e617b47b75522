"""Access tokens, refreshed before they expire under a per-connection Redis lock.

Xero rotates refresh tokens: each refresh returns a new one and retires the old. Two workers
refreshing the same connection at once would both spend the same refresh token, so a refresh
happens only while holding `xm:lock:token:{connection_id}`, and the token is re-read under
the lock: whoever comes second finds it already fresh and uses it. A refused refresh marks
the connection `needs_reauth` (its mirrored data stays) and raises ConnectionRevoked.
Client-credentials connections have no refresh token: a new token is simply requested.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

from redis import Redis
from redis.exceptions import LockError
from sqlalchemy.orm import Session, sessionmaker

from store import connections
from store.db import transaction
from store.secrets import TokenBox
from worker.xero import ConnectionRevoked, XeroClient, XeroUnavailable

REFRESH_MARGIN = 300.0  # refresh when less than five minutes of life remain
LOCK_SECONDS = 45.0  # longer than one token request can take (connect 5 s + read 30 s)


class TokenKeeper:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        redis: Redis,
        box: TokenBox,
        xero: XeroClient,
        clock: Callable[[], float] = time.time,
        margin: float = REFRESH_MARGIN,
    ):
        self.sessions = sessions
        self.redis = redis
        self.box = box
        self.xero = xero
        self.clock = clock
        self.margin = margin

    def access_token(self, tenant_id: str) -> str:
        """A token with at least `margin` seconds to live, refreshing it first if needed."""
        sealed = self._load(tenant_id)
        if self._fresh(sealed.token):
            return sealed.token["access_token"]
        return self._refresh(tenant_id, stale=sealed.token.get("access_token"))

    def replace_rejected(self, tenant_id: str, rejected: str) -> str:
        """Xero answered 401 to `rejected`: get a new token (once; the caller gives up after)."""
        return self._refresh(tenant_id, stale=rejected, force=True)

    def revoke(self, tenant_id: str, reason: str) -> None:
        """Mark the tenant's connection as needing re-authorisation."""
        with transaction(self.sessions) as session:
            record = connections.find(session, tenant_id)
            if record is not None:
                connections.mark_needs_reauth(session, record.id, reason, self._now())

    # -- internals -------------------------------------------------------------------------
    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    def _load(self, tenant_id: str) -> connections.SealedToken:
        with self.sessions() as session:
            sealed = connections.load_token(session, self.box, tenant_id)
        if sealed.connection.status != connections.ACTIVE:
            raise ConnectionRevoked(f"connection for tenant {tenant_id} is {sealed.connection.status}")
        return sealed

    def _fresh(self, token: dict) -> bool:
        expires_at = token.get("expires_at")
        if not token.get("access_token"):
            return False
        return expires_at is None or float(expires_at) > self.clock() + self.margin

    def _refresh(self, tenant_id: str, stale: str | None, force: bool = False) -> str:
        connection_id = self._load(tenant_id).connection.id
        lock = self.redis.lock(f"xm:lock:token:{connection_id}", timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS)
        if not lock.acquire():
            raise XeroUnavailable("another worker is still refreshing this connection's token")
        try:
            sealed = self._load(tenant_id)  # re-read under the lock: someone may have refreshed
            token = sealed.token
            if token.get("access_token") != stale and self._fresh(token):
                return token["access_token"]
            if not force and self._fresh(token):
                return token["access_token"]
            new = self._request(sealed)
            with transaction(self.sessions) as session:
                connections.save_token(session, self.box, sealed.connection.id, new, self._now())
            return new["access_token"]
        finally:
            try:
                lock.release()
            except LockError:  # it expired while we worked; nobody else refreshed meanwhile
                pass

    def _request(self, sealed: connections.SealedToken) -> dict:
        token = sealed.token
        requested_at = self.clock()
        try:
            if sealed.connection.grant_type == connections.CLIENT_CREDENTIALS:
                answer = self.xero.client_credentials_token()
            else:
                if not token.get("refresh_token"):
                    raise ConnectionRevoked("the connection has no refresh token: it must be re-authorised")
                answer = self.xero.refresh_token(token["refresh_token"], token.get("scope") or [])
        except ConnectionRevoked as exc:
            with transaction(self.sessions) as session:
                connections.mark_needs_reauth(session, sealed.connection.id, str(exc), self._now())
            raise
        return normalise(answer, requested_at, previous=token)


def normalise(answer: dict, requested_at: float, previous: dict | None = None) -> dict:
    """A token endpoint answer as we keep it: scope as a list, an absolute `expires_at`."""
    previous = previous or {}
    scope = answer.get("scope", previous.get("scope") or [])
    expires_in = int(answer.get("expires_in") or 1800)
    return {
        "access_token": answer["access_token"],
        "refresh_token": answer.get("refresh_token") or previous.get("refresh_token"),
        "id_token": answer.get("id_token"),
        "token_type": answer.get("token_type") or "Bearer",
        "scope": scope.split() if isinstance(scope, str) else list(scope),
        "expires_in": expires_in,
        "expires_at": requested_at + expires_in,
    }
