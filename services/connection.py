"""The one owner of a workspace's Xero connection: connect, save, remove, reconnect, key rotation.

Connect by OAuth (the admin page): `begin` keeps a random, single-use `state` (ten minutes,
sealed in Redis, bound to the workspace and the admin session that started the flow) and
gives Xero's authorize URL (PKCE). `take_flow` spends the state when Xero sends the admin
back (a state another session brings back is refused and left for its own session to
spend); `consent` exchanges the code with the PKCE verifier, checks the id_token against
Xero's JWKS and our nonce, reads the connections of that consent, and holds the sealed
tokens as a `pending` connection, or, when several organisations were granted, keeps them
(sealed, ten minutes) for `choose`. The pending connection remembers the admin session that
consented: Save (`save`) activates it and queues its backfill for that session only, and
only that session may discard it (`remove` while pending) until the session ends.

Connect by client credentials (the CLI, Xero's custom connections): token, /connections,
/Organisation, the connection stored active and its backfill asked for.

Reconnect is connecting again: a consent for the workspace's own organisation (after it
needs reconnecting) holds its row again, mirrored data and all, until Save; a client-
credentials connect of a connected organisation refreshes its token and makes it active.

Remove (after the admin confirmed which organisation): disconnect locally first (no worker
can load the token any more), cancel the tenant's jobs, delete the Xero connection and revoke
the refresh token, then purge the mirrored data and the workspace's pins of it; the CRM's
records and their links stay. What could not be done at Xero is said in words; the local
disconnect stands.

The SQL is `store.lifecycle`'s and `store.connections`'s, the queue `infra.queue`'s, Xero
`xero/`'s. No token ever reaches an error, a log line or an answer.
"""
from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import cast

from redis import Redis, RedisError

from infra import metrics, queue
from infra.errors import OperationError
from services import admin_sessions, oauth
from services.admin_sessions import digest
from services.jobs import cancel_jobs
from services.runtime import Runtime
from store import connections, lifecycle, mirror
from store.db import transaction
from store.lifecycle import PENDING_ELSEWHERE, Detached, LifecycleError, NothingToRemove, PendingElsewhere
from store.secrets import SecretsError, TokenBox
from xero.client import XeroClient, XeroError
from xero.identity import IdentityClient, IdentityError, IdentityRefused, TenantConnection
from xero.tokens import normalise

log = logging.getLogger(__name__)

STATE_SECONDS = 600
CHOICE_SECONDS = 600
REFRESH_MARGIN = 60
STATE_REFUSED = (
    "This Xero sign-in was refused: it is not one this admin session started, or it was already "
    "used or has expired. Start again with Connect to Xero."
)


class ConnectError(OperationError):
    """A connection was not made as asked; the message says why, fit to show (never a token)."""


class StateRefused(ConnectError):
    """Xero sent the admin back with a state that is unknown, spent, expired or someone else's."""


class ConsentFailed(ConnectError):
    """The code exchange, the id_token or the connections read failed at Xero."""


class NothingGranted(ConnectError):
    """The consent granted no organisation."""


class ChoiceExpired(ConnectError):
    """The organisations granted are no longer kept for a choice."""


class NoneChosen(ConnectError):
    """The organisation chosen is not one of those granted."""


@dataclass(frozen=True)
class Held:
    """A consent held as the workspace's pending connection, waiting for Save."""

    tenant_name: str


@dataclass(frozen=True)
class Choice:
    """Several organisations were granted: the admin picks one (`choose` with this key)."""

    key: str
    granted: list[TenantConnection]


@dataclass(frozen=True)
class Saved:
    connection: connections.ConnectionRecord
    backfill_queued: bool


@dataclass(frozen=True)
class Removed:
    tenant_name: str | None
    user_shared: bool  # Xero access was left unrevoked: the same Xero user connects another workspace
    problems: list[str]  # what could not be undone, in words
    purged: lifecycle.Purged | None = None  # what was deleted of the mirror


@dataclass(frozen=True)
class Connected:
    connection: connections.ConnectionRecord
    backfill_queued: bool


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ConnectionService:
    """A connection's life, over the runtime's database, Redis and settings."""

    def __init__(self, runtime: Runtime, now: Callable[[], datetime] = _utcnow):
        self.rt = runtime
        self.now = now

    def _box(self) -> TokenBox:
        return TokenBox(self.rt.settings.token_keys)

    def _redis_or_none(self) -> Redis | None:
        try:
            return self.rt.redis
        except RuntimeError:
            return None  # REDIS_URL unset

    def _client(self) -> XeroClient:
        """The Xero client whose reads are metered as egress under their tenant, when Redis is there."""
        redis = self._redis_or_none()
        return XeroClient(self.rt.settings, on_bytes=(lambda t, n: metrics.egress(redis, t, n)) if redis else None)

    # --- connect by OAuth ----------------------------------------------------------------------

    def begin(self, workspace_id: int, session_id: str, redirect_uri: str) -> str:
        """Xero's authorize URL for a new consent; its state is kept for `take_flow`."""
        settings = self.rt.settings
        verifier, state, nonce = oauth.new_verifier(), oauth.new_state(), secrets.token_urlsafe(16)
        flow = {"ws": workspace_id, "sid": digest(session_id), "verifier": verifier, "nonce": nonce,
                "redirect_uri": redirect_uri}
        self.rt.redis.set(f"xm:admin:state:{digest(state)}", self._box().seal(flow), ex=STATE_SECONDS)
        return oauth.authorize_url(
            settings.xero_login_url, client_id=settings.xero_client_id, redirect_uri=redirect_uri,
            scopes=settings.xero_scopes, state=state, code_challenge=oauth.challenge(verifier), nonce=nonce,
        )

    def take_flow(self, state: str, workspace_id: int, session_id: str | None) -> dict:
        """Spend the state Xero sent back: the flow `begin` kept, if it is this session's.

        A state brought back by another session is refused without being spent, so a foreign
        callback cannot burn the flow of the session that owns it."""
        key = f"xm:admin:state:{digest(state)}"
        raw = cast("bytes | None", self.rt.redis.get(key)) if state else None
        flow = self._box().open(raw) if raw is not None else None
        mine = flow is not None and flow["ws"] == workspace_id and session_id is not None \
            and flow["sid"] == digest(session_id)
        if not mine or self.rt.redis.delete(key) != 1:  # spent once: a replay racing us finds it gone
            log.warning("admin callback refused: unknown, replayed or foreign state",
                        extra={"workspace_id": workspace_id})
            raise StateRefused(STATE_REFUSED)
        return cast(dict, flow)

    def consent(self, workspace_id: int, flow: dict, code: str) -> Held | Choice:
        """Exchange the code; hold the one organisation granted, or keep several for `choose`."""
        try:
            with IdentityClient(self.rt.settings) as identity:
                token, email, granted = self._exchange(identity, code, flow)
        except (IdentityError, oauth.BadIdToken) as exc:
            log.warning("admin callback failed", extra={"workspace_id": workspace_id, "error": str(exc)})
            raise ConsentFailed(f"Connecting to Xero failed: {exc}. Start again with Connect to Xero.") from None
        if not granted:
            raise NothingGranted("Xero granted access to no organisation. Start again and choose one.")
        if len(granted) == 1:
            return self._hold(workspace_id, token, email, granted[0], granted, flow["sid"])
        key = secrets.token_urlsafe(16)
        stash = {"token": token, "email": email, "granted": [asdict(c) for c in granted], "sid": flow["sid"]}
        self.rt.redis.set(f"xm:admin:choice:{digest(key)}", self._box().seal(stash), ex=CHOICE_SECONDS)
        return Choice(key, granted)

    def choose(self, workspace_id: int, key: str | None, tenant_id: str) -> Held:
        """Hold the organisation the admin picked among those `consent` kept (for the session
        that consented, which alone holds the key)."""
        raw = self._take(f"xm:admin:choice:{digest(key)}") if key else None
        if raw is None:
            raise ChoiceExpired("That choice has expired. Start again with Connect to Xero.")
        stash = self._box().open(raw)
        granted = [TenantConnection(**c) for c in stash["granted"]]
        chosen = next((c for c in granted if c.tenant_id == tenant_id.lower()), None)
        if chosen is None:
            self._discard(stash["token"], stash["email"], granted, revoke=True)
            raise NoneChosen("No organisation was chosen. Start again with Connect to Xero.")
        return self._hold(workspace_id, stash["token"], stash["email"], chosen, granted, stash["sid"])

    def _take(self, key: str) -> bytes | None:
        """A kept choice, once: GETDEL, so a replay finds nothing."""
        return cast("bytes | None", self.rt.redis.getdel(key))  # the client does not decode responses

    def _exchange(
        self, identity: IdentityClient, code: str, flow: dict
    ) -> tuple[dict, str | None, list[TenantConnection]]:
        """Exchange the code; the token set, the consenting user's email, the organisations granted."""
        settings = self.rt.settings
        token = identity.exchange_code(code, flow["redirect_uri"], flow["verifier"])
        email = None
        if token.get("id_token"):
            claims = oauth.verify_id_token(token["id_token"], identity.jwks(), issuer=settings.xero_identity_url,
                                           audience=settings.xero_client_id, now=time.time(), nonce=flow["nonce"])
            email = claims.get("email")
        token["id_token"] = None  # read once, never kept
        try:
            event = oauth.read_claims(token["access_token"]).get("authentication_event_id")
        except oauth.BadIdToken:
            event = None  # not a JWT: fall back to every organisation the token may read
        return token, email, identity.connections(token["access_token"], event or None)

    def _hold(self, workspace_id: int, token: dict, email: str | None, chosen: TenantConnection,
              granted: list[TenantConnection], started_by: str) -> Held:
        """Keep the chosen organisation as the pending connection, or refuse and undo the grant."""
        organisation = self._organisation(chosen.tenant_id, token["access_token"])
        try:
            with transaction(self.rt.sessions) as s:
                lifecycle.hold_pending(
                    s, self._box(), workspace_id=workspace_id, tenant_id=chosen.tenant_id, token=token,
                    now=self.now(), tenant_name=chosen.tenant_name or organisation.get("Name"),
                    xero_connection_id=chosen.id, auth_event_id=chosen.auth_event_id or None,
                    connected_email=email, organisation=organisation, started_by=started_by,
                )
        except LifecycleError as exc:
            self._discard(token, email, granted, revoke=True)
            log.info("xero connection refused", extra={"workspace_id": workspace_id, "tenant_id": chosen.tenant_id,
                                                       "reason": type(exc).__name__})
            raise
        self._discard(token, email, [c for c in granted if c.id != chosen.id], revoke=False)
        return Held(chosen.tenant_name)

    def _organisation(self, tenant_id: str, access_token: str) -> dict:
        """Xero's Organisation record (ShortCode, BaseCurrency, Timezone), if it answers: nice to
        have (reconciliation reads it again while the time zone is unknown)."""
        try:
            return self._client().organisation(tenant_id, access_token)
        except XeroError as exc:
            log.info("organisation not read", extra={"tenant_id": tenant_id, "error": str(exc)})
            return {}

    def _discard(self, token: dict, email: str | None, unwanted: list[TenantConnection], revoke: bool) -> None:
        """Undo what a consent made that we keep no use for, sparing what another workspace stands on."""
        with self.rt.sessions() as s:
            doomed = [c for c in unwanted if not lifecycle.in_use(s, c.id)]
            revoke = revoke and bool(token.get("refresh_token")) and not lifecycle.user_connects_elsewhere(s, email)
        try:
            with IdentityClient(self.rt.settings) as identity:
                for connection in doomed:
                    identity.delete_connection(token["access_token"], connection.id)
                if revoke:
                    identity.revoke(token["refresh_token"])
        except IdentityError as exc:
            log.warning("unused Xero grant not fully undone", extra={"error": str(exc)})

    # --- connect by client credentials ---------------------------------------------------------

    def connect_client_credentials(self, workspace_id: int, tenant_id: str | None = None) -> Connected:
        """Obtain a client-credentials token, pick the tenant from /connections, store the
        connection (token sealed) and ask for its backfill."""
        sessions = self.rt.sessions
        with sessions() as session:
            if not lifecycle.workspace_exists(session, workspace_id):
                raise ConnectError(f"no workspace {workspace_id}")
        try:
            box = self._box()
        except SecretsError as exc:
            raise ConnectError(str(exc)) from None
        redis = self._redis_or_none()
        client = self._client()  # the organisation read is egress like any other
        requested = time.time()
        try:
            token = normalise(client.client_credentials_token(), requested)
            tenants = client.connections(token["access_token"])
        except XeroError as exc:
            raise ConnectError(f"Xero refused the client-credentials connection: {exc}") from None
        chosen = choose_tenant(tenants, tenant_id)
        try:
            org = client.organisation(chosen["tenantId"], token["access_token"])
        except XeroError:
            org = {}  # short code, currency, time zone: the connection stands without them (read again later)
        with transaction(sessions) as session:
            try:
                record = connections.connect(
                    session, box, workspace_id=workspace_id, tenant_id=chosen["tenantId"],
                    token=token, now=self.now(), grant_type=connections.CLIENT_CREDENTIALS,
                    tenant_name=chosen.get("tenantName") or org.get("Name"), xero_connection_id=chosen.get("id"),
                    auth_event_id=chosen.get("authEventId"), short_code=org.get("ShortCode"),
                    base_currency=org.get("BaseCurrency"), organisation=org,
                )
            except ValueError as exc:
                raise ConnectError(str(exc)) from None
        with transaction(sessions) as session:
            mirror.request_backfill(session, record.tenant_id)
        queued = False
        if redis is not None:
            try:
                queued = queue.enqueue(redis, queue.BACKFILL, record.tenant_id)
            except RedisError:
                queued = False  # the workers' ticker starts the backfill of every live tenant anyway
        return Connected(record, queued)

    # --- save, remove, rotate ------------------------------------------------------------------

    def save(self, workspace_id: int, session_id: str | None) -> Saved:
        """The pending connection becomes active and its backfill is queued (LifecycleError if
        none is pending; PendingElsewhere unless `session_id` is the admin session that
        consented: an API key, None, never is); `backfill_queued` is False when Redis could
        not be reached."""
        started_by = digest(session_id) if session_id else None
        with transaction(self.rt.sessions) as s:
            record = lifecycle.activate(s, self._box(), workspace_id, self.now(), started_by)
        log.info("xero connection saved", extra={"workspace_id": workspace_id, "tenant_id": record.tenant_id})
        try:
            queue.enqueue(self.rt.redis, queue.BACKFILL, record.tenant_id)
            queue.wake(self.rt.redis, [record.tenant_id])  # what Xero announced while it waited (e.g. for re-consent)
        except RedisError:
            log.warning("backfill not queued: Redis unavailable", extra={"tenant_id": record.tenant_id})
            return Saved(record, backfill_queued=False)
        return Saved(record, backfill_queued=True)

    def may_remove(self, workspace_id: int, session_id: str | None) -> str | None:
        """Whether this caller may remove (or discard) the workspace's connection: the digest of
        the session whose consent is pending (None if nothing is), or PendingElsewhere when
        that is another admin session that still stands."""
        with self.rt.sessions() as s:
            starter = lifecycle.pending_session(s, workspace_id)
        if starter and (session_id is None or digest(session_id) != starter) \
                and admin_sessions.alive(self.rt.redis, self.rt.sessions, starter):
            raise PendingElsewhere(PENDING_ELSEWHERE)
        return starter

    def remove(self, workspace_id: int, session_id: str | None, confirmed: str | None = None) -> Removed:
        """Disconnect, cancel the tenant's jobs, undo the grant at Xero, purge the mirrored data
        (NothingToRemove if the workspace has no connection). A pending connection is discarded
        only by the admin session that consented, or by any admin once that session has ended
        (PendingElsewhere otherwise). `confirmed`, the tenant id the admin confirmed removing:
        when another organisation's connection stands by then, NotTheOneConfirmed and nothing
        changes. The CRM's records and links stay (store.lifecycle.purge)."""
        starter = self.may_remove(workspace_id, session_id)
        with transaction(self.rt.sessions) as s:
            if lifecycle.pending_session(s, workspace_id) != starter:  # another consent came in meanwhile
                raise PendingElsewhere(PENDING_ELSEWHERE)
            detached = lifecycle.detach(s, self._box(), workspace_id, self.now(), confirmed)
        if detached is None:
            raise NothingToRemove("There is no Xero connection to remove.")
        problems = []
        guards = [queue.guard_key(kind, detached.tenant_id) for kind in queue.QUEUE]
        try:
            cancel_jobs(self.rt.redis, detached.tenant_id, guards)
        except RedisError:
            problems.append("its queued jobs could not be cancelled now; they will find no connection and stop.")
        problems += self._undo_at_xero(detached)
        with transaction(self.rt.sessions) as s:
            purged = lifecycle.purge(s, workspace_id, detached.tenant_id)
        log.info("xero connection removed", extra={"workspace_id": workspace_id, "tenant_id": detached.tenant_id,
                                                   "problems": len(problems)})
        return Removed(detached.tenant_name, detached.user_shared, problems, purged)

    def _undo_at_xero(self, detached: Detached) -> list[str]:
        """Delete the Xero connection and revoke the refresh token; what could not be done, in words.

        A grant Xero already refuses (invalid_grant, 401) has nothing left to undo.
        """
        token = detached.token
        if not token.get("access_token"):
            return []
        problems: list[str] = []
        with IdentityClient(self.rt.settings) as identity:
            try:
                if token.get("refresh_token") and float(token.get("expires_at") or 0) < time.time() + REFRESH_MARGIN:
                    token = identity.refresh(token["refresh_token"], token.get("scope") or [])
            except IdentityError as exc:
                return [] if _already_withdrawn(exc) else [_problem(exc)]
            steps: list[Callable[[], object]] = []
            connection_id = detached.xero_connection_id
            if connection_id:
                steps.append(lambda: identity.delete_connection(token["access_token"], connection_id))
            if token.get("refresh_token") and not detached.user_shared:
                steps.append(lambda: identity.revoke(token["refresh_token"]))
            for step in steps:
                try:
                    step()
                except IdentityError as exc:
                    if not _already_withdrawn(exc) and _problem(exc) not in problems:
                        problems.append(_problem(exc))
        return problems

    def rotate_tokens(self) -> int:
        """Re-encrypt every sealed token under the newest TOKEN_KEYS key; how many."""
        with transaction(self.rt.sessions) as session:
            return lifecycle.rotate_tokens(session, self._box())


def choose_tenant(tenants: list[dict], tenant_id: str | None) -> dict:
    """The organisation to connect among /connections' entries: the one asked for, or the only one."""
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


def _already_withdrawn(exc: IdentityError) -> bool:
    return isinstance(exc, IdentityRefused) and exc.error in ("invalid_grant", "http_401")


def _problem(exc: IdentityError) -> str:
    if isinstance(exc, IdentityRefused):
        return f"Xero refused to disconnect it ({exc}); remove the app in Xero's Connected Apps to be sure."
    return "Xero could not be reached to disconnect it there; remove the app in Xero's Connected Apps."

