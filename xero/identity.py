"""The admin side of Xero's identity service: code exchange, connections, revocation, JWKS.

xero-python has no authorization-code exchange and sends its client secret in the form body,
so token and revocation requests are plain urllib3 POSTs with HTTP Basic client
authentication (RFC 6749 2.3.1). Listing and deleting connections go through the SDK's
IdentityApi. urllib3's own retries are off: an admin is waiting, and a failure is shown.

Errors: `IdentityRefused` (Xero said no: a bad code, a revoked grant, a refused token) and
`IdentityUnavailable` (network, timeout, 429, 5xx), both `IdentityError`. No message ever
carries a token, a code or a response body beyond Xero's short error code.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import urllib3
from urllib3.util.retry import Retry
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token
from xero_python.exceptions import ApiException, HTTPStatusException
from xero_python.identity import IdentityApi

from infra.errors import UpstreamError
from infra.settings import Settings
from xero.tokens import normalise

TIMEOUT = urllib3.Timeout(connect=5.0, read=15.0)
JWKS_PATH = "/.well-known/openid-configuration/jwks"


class IdentityError(UpstreamError):
    """Talking to Xero's identity service failed. Messages never carry a secret."""


class IdentityRefused(IdentityError):
    """Xero refused the request (`error` is its OAuth error code, e.g. invalid_grant)."""

    def __init__(self, message: str, error: str = ""):
        super().__init__(message)
        self.error = error


class IdentityUnavailable(IdentityError):
    """Xero could not be reached, or answered 429 or 5xx: try again later."""


@dataclass(frozen=True)
class TenantConnection:
    """One entry of GET /connections."""

    id: str
    tenant_id: str
    tenant_name: str
    tenant_type: str
    auth_event_id: str


class IdentityClient:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._http = urllib3.PoolManager(retries=False, timeout=TIMEOUT)
        base = settings.xero_connections_url
        if base.lower().endswith("/connections"):
            base = base[: -len("/connections")]
        self._connections_base = base

    # -- token endpoint ------------------------------------------------------------------
    def exchange_code(self, code: str, redirect_uri: str, verifier: str) -> dict:
        """The token set for an authorization code, as the worker keeps tokens (xero.tokens)."""
        requested_at = time.time()
        answer = self._post_form(
            "/connect/token",
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier},
        )
        if not answer.get("access_token"):
            raise IdentityUnavailable("Xero's token endpoint answered without an access token")
        return normalise(answer, requested_at)

    def refresh(self, refresh_token: str, scope: list[str]) -> dict:
        requested_at = time.time()
        answer = self._post_form(
            "/connect/token", {"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": " ".join(scope)}
        )
        return normalise(answer, requested_at, previous={"refresh_token": refresh_token, "scope": scope})

    def revoke(self, refresh_token: str) -> None:
        """Revoke a refresh token: Xero ends the token set and the user's connections to this app."""
        self._post_form("/connect/revocation", {"token": refresh_token}, want_json=False)

    def jwks(self) -> dict:
        url = self.settings.xero_identity_url + JWKS_PATH
        response = self._request("GET", url, headers={"Accept": "application/json"})
        if response.status != 200:
            raise IdentityUnavailable(f"Xero's JWKS answered {response.status}")
        return _json(response.data, "JWKS")

    def _post_form(self, path: str, fields: dict[str, str], want_json: bool = True) -> dict:
        basic = f"{quote(self.settings.xero_client_id, safe='')}:{quote(self.settings.xero_client_secret, safe='')}"
        headers = urllib3.make_headers(basic_auth=basic)
        headers.update({"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
        response = self._request("POST", self.settings.xero_identity_url + path, headers=headers,
                                 body=urlencode(fields))
        if response.status == 200:
            return _json(response.data, "token endpoint") if want_json else {}
        if response.status == 429 or response.status >= 500:
            raise IdentityUnavailable(f"Xero's identity service answered {response.status}")
        error = _oauth_error(response.data)
        raise IdentityRefused(f"Xero refused the request ({error or response.status})", error)

    def _request(self, method: str, url: str, **kwargs) -> urllib3.BaseHTTPResponse:
        try:
            return self._http.request(method, url, **kwargs)
        except urllib3.exceptions.HTTPError as exc:
            raise IdentityUnavailable(f"Xero's identity service is unreachable ({type(exc).__name__})") from None

    # -- connections (xero-python's IdentityApi) -----------------------------------------
    def connections(self, access_token: str, auth_event_id: str | None = None) -> list[TenantConnection]:
        """The organisations this token may read; with `auth_event_id`, those one consent granted."""
        kwargs = {"auth_event_id": auth_event_id} if auth_event_id else {}
        body = _json(self._identity(access_token, "get_connections", **kwargs), "connections")
        if not isinstance(body, list):
            raise IdentityUnavailable("Xero's connections answer is not a list")
        return [
            TenantConnection(
                id=str(c.get("id", "")), tenant_id=str(c.get("tenantId", "")).lower(),
                tenant_name=str(c.get("tenantName") or ""), tenant_type=str(c.get("tenantType") or ""),
                auth_event_id=str(c.get("authEventId") or ""),
            )
            for c in body
            if isinstance(c, dict) and c.get("tenantId")
        ]

    def delete_connection(self, access_token: str, connection_id: str) -> bool:
        """Disconnect one organisation from this app; False if Xero had no such connection."""
        try:
            self._identity(access_token, "delete_connection", connection_id)
        except IdentityRefused as exc:
            if exc.error == "not_found":
                return False
            raise
        return True

    def _identity(self, access_token: str, method: str, *args, **kwargs) -> bytes:
        client = self._sdk_client(access_token)
        try:
            return _sdk_call(getattr(IdentityApi(client, base_url=self._connections_base), method), *args, **kwargs)
        finally:
            client.rest_client.pool_manager.clear()

    def _sdk_client(self, access_token: str) -> ApiClient:
        config = Configuration()  # every Configuration() is a copy of the first: set the token afterwards
        config.oauth2_token = OAuth2Token(client_id=self.settings.xero_client_id)
        client = ApiClient(
            config,
            pool_threads=1,
            oauth2_token_getter=lambda: {  # "always valid" to the SDK: it must never refresh by itself
                "access_token": access_token, "token_type": "Bearer", "scope": [], "expires_in": None,
                "expires_at": None,
            },
            oauth2_token_saver=_never_saves,
        )
        pool = client.rest_client.pool_manager
        pool.connection_pool_kw["retries"] = Retry(total=0, respect_retry_after_header=False)
        pool.connection_pool_kw["timeout"] = TIMEOUT
        return client

    def close(self) -> None:
        self._http.clear()

    def __enter__(self) -> IdentityClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _sdk_call(method, *args, **kwargs) -> bytes:
    try:
        response = method(*args, _preload_content=False, _request_timeout=(5.0, 15.0), **kwargs)
        try:
            return response.data
        finally:
            response.release_conn()
    except HTTPStatusException as exc:
        status = exc.status or 0
        if status == 429 or status >= 500:
            raise IdentityUnavailable(f"Xero's connections endpoint answered {status}") from None
        if status == 404:
            raise IdentityRefused("Xero has no such connection (404)", "not_found") from None
        raise IdentityRefused(f"Xero refused the connections request ({status})", f"http_{status}") from None
    except ApiException as exc:
        raise IdentityUnavailable(f"Xero's connections endpoint failed ({exc.reason})") from None
    except urllib3.exceptions.HTTPError as exc:
        raise IdentityUnavailable(f"Xero's connections endpoint is unreachable ({type(exc).__name__})") from None


def _never_saves(token: dict) -> None:
    raise AssertionError("the SDK must never refresh tokens itself")


def _json(data: bytes | None, what: str):
    try:
        return json.loads(data or b"")
    except ValueError:
        raise IdentityUnavailable(f"Xero's {what} answered something that is not JSON") from None


def _oauth_error(data: bytes | None) -> str:
    """Xero's OAuth error code (invalid_grant, ...), kept only if it looks like one."""
    try:
        error = json.loads(data or b"{}").get("error")
    except (ValueError, AttributeError):
        return ""
    return error if isinstance(error, str) and re.fullmatch(r"[a-z_]{1,64}", error) else ""
