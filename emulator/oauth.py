"""Xero's identity service in memory: consent codes (PKCE), rotating refresh tokens,
JWT access tokens, custom-connection tokens, revocation and tenant connections."""

from __future__ import annotations

import base64
import hashlib
import random
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .clock import Clock
from .config import EmulatorConfig
from .signing import InvalidToken, Signer, b64url


class OAuthError(Exception):
    """An OAuth2 error answered as 400 {"error": ...}."""

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(description or error)
        self.error = error
        self.description = description


class Unauthorized(Exception):
    """A missing, malformed, expired or revoked access token."""

    def __init__(self, detail: str = "AuthenticationUnsuccessful", expired: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.expired = expired


@dataclass
class User:
    user_id: str
    subject: str
    email: str
    given_name: str
    family_name: str


@dataclass
class Grant:
    """One token set: what a consent (or a client-credentials request) produced."""

    grant_id: str
    client_id: str
    scope: str
    auth_event_id: str
    session_id: str
    auth_time: int
    user: User | None
    revoked: bool = False

    @property
    def owner(self) -> str:
        return self.user.user_id if self.user else f"app:{self.client_id}"


@dataclass
class Connection:
    connection_id: str
    owner: str
    client_id: str
    tenant_id: str
    auth_event_id: str
    created: datetime
    updated: datetime


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    scope: str
    challenge: str | None
    method: str
    nonce: str | None
    auth_event_id: str
    expires_at: float
    used: bool = False


@dataclass
class RefreshRecord:
    grant_id: str
    last_used_at: float
    superseded_at: float | None = None
    revoked: bool = False


@dataclass
class AccessRecord:
    grant_id: str
    expires_at: float
    revoked: bool = False


class AuthServer:
    """All identity state of one emulator; every public method is thread-safe."""

    def __init__(
        self,
        config: EmulatorConfig,
        clock: Clock,
        signer: Signer,
        tenant_names: Callable[[], dict[str, str]],
        rng: random.Random,
    ) -> None:
        self.config, self.clock, self.signer, self.tenant_names = config, clock, signer, tenant_names
        self._rng = rng
        self._lock = threading.RLock()
        self.user = User(
            user_id=self._uuid(),
            subject=uuid.UUID(int=rng.getrandbits(128)).hex,
            email=config.user_email,
            given_name=config.user_given_name,
            family_name=config.user_family_name,
        )
        self._codes: dict[str, AuthCode] = {}
        self._grants: dict[str, Grant] = {}
        self._refresh: dict[str, RefreshRecord] = {}
        self._access: dict[str, AccessRecord] = {}
        self._connections: dict[str, Connection] = {}

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    # -- client authentication ------------------------------------------------------------
    def check_client(self, client_id: str | None, client_secret: str | None) -> None:
        if client_id != self.config.client_id or not secrets.compare_digest(
            (client_secret or "").encode(), self.config.client_secret.encode()
        ):
            raise OAuthError("invalid_client")

    # -- consent --------------------------------------------------------------------------
    def approve(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        scope: str,
        tenant_ids: list[str],
        code_challenge: str | None,
        code_challenge_method: str | None,
        nonce: str | None,
    ) -> str:
        """The demo user consents for `tenant_ids`: connections are made and a code is issued."""
        with self._lock:
            names = self.tenant_names()
            unknown = [t for t in tenant_ids if t not in names]
            if unknown or not tenant_ids:
                raise OAuthError("invalid_request", "choose at least one known organisation")
            event = self._uuid()
            for tenant_id in tenant_ids:
                self._connect(self.user.user_id, client_id, tenant_id, event)
            code = secrets.token_urlsafe(32)
            self._codes[code] = AuthCode(
                client_id=client_id,
                redirect_uri=redirect_uri,
                scope=scope,
                challenge=code_challenge,
                method=(code_challenge_method or "plain"),
                nonce=nonce,
                auth_event_id=event,
                expires_at=self.clock.time() + self.config.code_ttl,
            )
            return code

    def _connect(self, owner: str, client_id: str, tenant_id: str, event: str) -> Connection:
        now = self.clock.now()
        for connection in self._connections.values():
            if (connection.owner, connection.client_id, connection.tenant_id) == (
                owner,
                client_id,
                tenant_id,
            ):
                connection.auth_event_id, connection.updated = event, now
                return connection
        connection = Connection(self._uuid(), owner, client_id, tenant_id, event, now, now)
        self._connections[connection.connection_id] = connection
        return connection

    # -- token endpoint -------------------------------------------------------------------
    def exchange_code(
        self, *, client_id: str, code: str, redirect_uri: str | None, code_verifier: str | None, issuer: str
    ) -> dict:
        with self._lock:
            record = self._codes.get(code or "")
            if record is None or record.used or record.client_id != client_id:
                raise OAuthError("invalid_grant")
            record.used = True
            if record.expires_at <= self.clock.time():
                raise OAuthError("invalid_grant", "authorization code expired")
            if record.redirect_uri and redirect_uri != record.redirect_uri:
                raise OAuthError("invalid_grant", "redirect_uri does not match")
            if record.challenge and not _pkce_ok(record.challenge, record.method, code_verifier):
                raise OAuthError("invalid_grant", "code_verifier does not match code_challenge")
            grant = self._new_grant(client_id, record.scope, record.auth_event_id, self.user)
            return self._token_response(grant, issuer, nonce=record.nonce)

    def refresh(self, *, client_id: str, refresh_token: str, issuer: str) -> dict:
        """Rotate: a new refresh token each time; the previous one works for the grace period."""
        with self._lock:
            now = self.clock.time()
            record = self._refresh.get(refresh_token or "")
            if record is None or record.revoked:
                raise OAuthError("invalid_grant")
            grant = self._grants[record.grant_id]
            if grant.revoked or grant.client_id != client_id:
                raise OAuthError("invalid_grant")
            if (
                record.superseded_at is not None
                and now - record.superseded_at > self.config.refresh_grace_seconds
            ):
                raise OAuthError("invalid_grant")
            if now - record.last_used_at > self.config.refresh_idle_days * 86400:
                raise OAuthError("invalid_grant")
            if record.superseded_at is None:
                record.superseded_at = now
            return self._token_response(grant, issuer)

    def client_credentials(self, *, client_id: str, scope: str | None, issuer: str) -> dict:
        """A custom-connection token, connected to every organisation."""
        with self._lock:
            owner = f"app:{client_id}"
            existing = [c for c in self._connections.values() if c.owner == owner]
            event = existing[0].auth_event_id if existing else self._uuid()
            if not existing:
                for tenant_id in self.tenant_names():
                    self._connect(owner, client_id, tenant_id, event)
            grant = self._new_grant(client_id, scope or self.config.client_scopes, event, None)
            return self._token_response(grant, issuer, refresh=False)

    def revoke(self, *, client_id: str, token: str) -> None:
        """Revoking a refresh token ends its token set and removes the user's connections."""
        with self._lock:
            record = self._refresh.get(token or "")
            if record is not None:
                grant = self._grants[record.grant_id]
                if grant.client_id == client_id:
                    self._revoke_grant(grant)
                return
            try:
                jti = self.signer.decode(token).get("jti")
            except InvalidToken:
                return
            if jti in self._access:
                self._access[jti].revoked = True

    def _revoke_grant(self, grant: Grant) -> None:
        grant.revoked = True
        for record in self._refresh.values():
            if record.grant_id == grant.grant_id:
                record.revoked = True
        for record in self._access.values():
            if record.grant_id == grant.grant_id:
                record.revoked = True
        for cid in [
            c.connection_id
            for c in self._connections.values()
            if c.owner == grant.owner and c.client_id == grant.client_id
        ]:
            del self._connections[cid]

    def _new_grant(self, client_id: str, scope: str, event: str, user: User | None) -> Grant:
        grant = Grant(
            grant_id=self._uuid(),
            client_id=client_id,
            scope=scope,
            auth_event_id=event,
            session_id=secrets.token_hex(16),
            auth_time=int(self.clock.time()),
            user=user,
        )
        self._grants[grant.grant_id] = grant
        return grant

    def _token_response(
        self, grant: Grant, issuer: str, refresh: bool = True, nonce: str | None = None
    ) -> dict:
        now = int(self.clock.time())
        access_token = self._access_token(grant, issuer, now)
        body = {}
        scopes = grant.scope.split()
        if grant.user is not None and "openid" in scopes:
            body["id_token"] = self._id_token(grant, issuer, now, access_token, nonce)
        body.update(access_token=access_token, expires_in=self.config.access_token_ttl, token_type="Bearer")
        if refresh and grant.user is not None and "offline_access" in scopes:
            token = secrets.token_hex(32)
            self._refresh[token] = RefreshRecord(grant.grant_id, last_used_at=self.clock.time())
            body["refresh_token"] = token
        body["scope"] = grant.scope
        return body

    def _access_token(self, grant: Grant, issuer: str, now: int) -> str:
        jti = secrets.token_hex(16)
        expires = now + self.config.access_token_ttl
        claims = {
            "nbf": now,
            "exp": expires,
            "iss": issuer,
            "aud": f"{issuer}/resources",
            "client_id": grant.client_id,
        }
        if grant.user is not None:
            claims.update(
                sub=grant.user.subject,
                auth_time=grant.auth_time,
                xero_userid=grant.user.user_id,
                global_session_id=grant.session_id,
                sid=grant.session_id,
            )
        claims.update(jti=jti, authentication_event_id=grant.auth_event_id, scope=grant.scope.split())
        self._access[jti] = AccessRecord(grant.grant_id, expires)
        return self.signer.encode(claims)

    def _id_token(self, grant: Grant, issuer: str, now: int, access_token: str, nonce: str | None) -> str:
        user = grant.user
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        claims = {
            "nbf": now,
            "exp": now + 300,
            "iss": issuer,
            "aud": grant.client_id,
            "iat": now,
            "at_hash": b64url(digest[:16]),
            "sid": grant.session_id,
            "sub": user.subject,
            "auth_time": grant.auth_time,
            "idp": "Xero",
            "xero_userid": user.user_id,
            "global_session_id": grant.session_id,
            "preferred_username": user.email,
            "email": user.email,
            "given_name": user.given_name,
            "family_name": user.family_name,
            "amr": ["pwd"],
        }
        if nonce:
            claims["nonce"] = nonce
        return self.signer.encode(claims)

    # -- resource side --------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Grant:
        """The grant behind a valid `Authorization: Bearer` header, else Unauthorized."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized()
        try:
            claims = self.signer.decode(token.strip())
        except InvalidToken:
            raise Unauthorized() from None
        with self._lock:
            record = self._access.get(claims.get("jti", ""))
            if record is None or record.revoked or self._grants[record.grant_id].revoked:
                raise Unauthorized()
            if record.expires_at <= self.clock.time():
                expired = datetime.fromtimestamp(record.expires_at, UTC)
                raise Unauthorized(
                    f"TokenExpired: token expired at {expired:%m/%d/%Y %H:%M:%S}", expired=True
                )
            return self._grants[record.grant_id]

    def may_access(self, grant: Grant, tenant_id: str | None) -> bool:
        if not tenant_id:
            return False
        wanted = tenant_id.strip().lower()
        with self._lock:
            return any(c.tenant_id == wanted for c in self._owned(grant))

    def connections(self, grant: Grant, auth_event_id: str | None = None) -> list[dict]:
        with self._lock:
            names = self.tenant_names()
            return [
                connection_json(c, names.get(c.tenant_id, ""))
                for c in self._owned(grant)
                if not auth_event_id or c.auth_event_id == auth_event_id.lower()
            ]

    def delete_connection(self, grant: Grant, connection_id: str) -> bool:
        with self._lock:
            connection = self._connections.get(connection_id.lower())
            if connection is None or connection not in self._owned(grant):
                return False
            del self._connections[connection.connection_id]
            return True

    def _owned(self, grant: Grant) -> list[Connection]:
        return [
            c for c in self._connections.values() if c.owner == grant.owner and c.client_id == grant.client_id
        ]

    # -- in-process shortcut --------------------------------------------------------------
    def issue_user_token(self, tenant_ids: list[str] | None, scope: str, issuer: str) -> dict:
        """Consent + code exchange in one step, for tests that need a user token set."""
        code = self.approve(
            client_id=self.config.client_id,
            redirect_uri="",
            scope=scope,
            tenant_ids=tenant_ids or list(self.tenant_names()),
            code_challenge=None,
            code_challenge_method=None,
            nonce=None,
        )
        return self.exchange_code(
            client_id=self.config.client_id, code=code, redirect_uri="", code_verifier=None, issuer=issuer
        )


def _pkce_ok(challenge: str, method: str, verifier: str | None) -> bool:
    if not verifier:
        return False
    if method.upper() == "S256":
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=")
        return secrets.compare_digest(computed.decode("ascii"), challenge)
    return secrets.compare_digest(verifier, challenge)


def connection_json(connection: Connection, tenant_name: str) -> dict:
    return {
        "id": connection.connection_id,
        "authEventId": connection.auth_event_id,
        "tenantId": connection.tenant_id,
        "tenantType": "ORGANISATION",
        "tenantName": tenant_name,
        "createdDateUtc": xero_identity_time(connection.created),
        "updatedDateUtc": xero_identity_time(connection.updated),
    }


def xero_identity_time(moment: datetime) -> str:
    """Identity's date format: 7 fractional digits, no offset (2019-12-07T18:46:19.5165400)."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}0"
