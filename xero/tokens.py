"""Access tokens, refreshed before they expire under a per-connection Redis lock.

Xero rotates refresh tokens: each refresh returns a new one and retires the old. Two workers
refreshing the same connection at once would both spend the same refresh token, so a refresh
happens only while holding `xm:lock:token:{connection_id}`, and the token is re-read under
the lock: whoever comes second finds it already fresh and uses it. A refused refresh marks
the connection `needs_reauth` (its mirrored data stays) and raises ConnectionRevoked.
Client-credentials connections have no refresh token: a new token is simply requested.

Each keeper holds the decrypted access token of each tenant in memory (never logged, never
in a repr) while it has more than `margin` seconds to live. Every call still asks the
database one cheap question first, on a read-only session that never waits behind a writer
(see store.db.read_only_sessions): is the connection still active, and is its token row as
we read it? A removed (`disconnected`) or `needs_reauth` connection, or a token another
process saved meanwhile, sends the call down the full path: the token is read and decrypted
again. The cached token is dropped when Xero answers 401 (`replace_rejected`), on a refresh
that fails, and on `revoke`.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from redis import Redis
from redis.exceptions import LockError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store import connections
from store.db import read_only_sessions, transaction
from store.models import XeroConnection
from store.secrets import TokenBox
from xero.client import ConnectionRevoked, XeroClient, XeroUnavailable

REFRESH_MARGIN = 300.0  # refresh when less than five minutes of life remain
LOCK_SECONDS = 45.0  # longer than one token request can take (connect 5 s + read 30 s)


@dataclass(frozen=True)
class _Held:
    """A tenant's access token as this keeper last read or saved it, and the row it came from."""

    connection_id: int
    stamp: tuple  # the row's (updated_at, token_expires_at) then: a new token saved changes it
    expires_at: float | None
    access_token: str = field(repr=False)


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
        reads: sessionmaker[Session] | None = None,
    ):
        self.sessions = sessions
        self.reads = reads or read_only_sessions(sessions)  # pure reads: never behind a writer
        self.redis = redis
        self.box = box
        self.xero = xero
        self.clock = clock
        self.margin = margin
        self._held: dict[str, _Held] = {}
        self._held_lock = threading.Lock()  # a backfill fetches in a background thread

    def access_token(self, tenant_id: str) -> str:
        """A token with at least `margin` seconds to live, refreshing it first if needed."""
        held = self._still_good(tenant_id)
        if held is not None:
            return held.access_token
        sealed, stamp = self._load_stamped(tenant_id)
        if self._fresh(sealed.token):
            self._hold(tenant_id, sealed, stamp)
            return sealed.token["access_token"]
        return self._refresh(tenant_id, stale=sealed.token.get("access_token"))

    def replace_rejected(self, tenant_id: str, rejected: str) -> str:
        """Xero answered 401 to `rejected`: get a new token (once; the caller gives up after)."""
        self.forget(tenant_id)
        return self._refresh(tenant_id, stale=rejected, force=True)

    def revoke(self, tenant_id: str, reason: str) -> None:
        """Mark the tenant's connection as needing re-authorisation."""
        self.forget(tenant_id)
        with transaction(self.sessions) as session:
            record = connections.find(session, tenant_id)
            if record is not None:
                connections.mark_needs_reauth(session, record.id, reason, self._now())

    def forget(self, tenant_id: str) -> None:
        """Drop the access token held for the tenant: the next call reads it from the database."""
        with self._held_lock:
            self._held.pop(tenant_id, None)

    # -- internals -------------------------------------------------------------------------
    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    def _still_good(self, tenant_id: str) -> _Held | None:
        """The held token, if it has `margin` to live and its row is still active and unchanged."""
        with self._held_lock:
            held = self._held.get(tenant_id)
        if held is None:
            return None
        if not self._fresh({"access_token": held.access_token, "expires_at": held.expires_at}):
            self.forget(tenant_id)
            return None
        with self.reads() as session:
            row = session.execute(
                select(XeroConnection.status, XeroConnection.updated_at, XeroConnection.token_expires_at)
                .where(XeroConnection.id == held.connection_id)
            ).first()
        if row is None or row.status != connections.ACTIVE or (row.updated_at, row.token_expires_at) != held.stamp:
            self.forget(tenant_id)
            return None
        return held

    def _hold(self, tenant_id: str, sealed: connections.SealedToken, stamp: tuple) -> None:
        expires_at = sealed.token.get("expires_at")
        held = _Held(sealed.connection.id, stamp, float(expires_at) if expires_at is not None else None,
                     sealed.token["access_token"])
        with self._held_lock:
            self._held[tenant_id] = held

    def _load(self, tenant_id: str) -> connections.SealedToken:
        return self._load_stamped(tenant_id)[0]

    def _load_stamped(self, tenant_id: str) -> tuple[connections.SealedToken, tuple]:
        """The tenant's token, and the (updated_at, token_expires_at) its row had: one read."""
        with self.reads() as session:
            sealed = connections.load_token(session, self.box, tenant_id)
            row = session.get(XeroConnection, sealed.connection.id)  # the row just read (identity map)
            stamp = (row.updated_at, row.token_expires_at) if row is not None else (None, None)
        if sealed.connection.status != connections.ACTIVE:
            raise ConnectionRevoked(f"connection for tenant {tenant_id} is {sealed.connection.status}")
        return sealed, stamp

    def _fresh(self, token: dict) -> bool:
        expires_at = token.get("expires_at")
        if not token.get("access_token"):
            return False
        return expires_at is None or float(expires_at) > self.clock() + self.margin

    def _refresh(self, tenant_id: str, stale: str | None, force: bool = False) -> str:
        try:
            return self._refresh_locked(tenant_id, stale, force)
        except BaseException:
            self.forget(tenant_id)  # a refused or failed refresh: nothing held outlives it
            raise

    def _refresh_locked(self, tenant_id: str, stale: str | None, force: bool) -> str:
        """The token, refreshed under the connection's lock. What it returns is not held: the
        next call reads it back (with its row's stamp), once."""
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
            with contextlib.suppress(LockError):  # it expired while we worked; nobody else refreshed meanwhile
                lock.release()

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
