"""Bearer tokens, tenant headers, the OAuth2 code flow with PKCE, refresh rotation, revocation."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from xero_python.exceptions import AccountingBadRequestException, HTTPStatusException, NotFoundException

from emulator.testing import run_emulator

from .http import bearer, call
from .sdk import Sdk, sdk_token

SCOPE = "openid profile email offline_access accounting.transactions.read accounting.contacts.read"
REDIRECT = "http://localhost:8000/admin/xero/callback"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_claims(token: str, jwks: dict) -> dict:
    """Verify an RS256 JWT against a JWKS, the way a client would."""
    head, body, signature = token.split(".")
    key = jwks["keys"][0]
    public = rsa.RSAPublicNumbers(
        int.from_bytes(base64.urlsafe_b64decode(key["e"] + "=="), "big"),
        int.from_bytes(base64.urlsafe_b64decode(key["n"] + "=="), "big"),
    ).public_key()
    public.verify(
        base64.urlsafe_b64decode(signature + "=="),
        f"{head}.{body}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    return json.loads(base64.urlsafe_b64decode(body + "=="))


@pytest.fixture(scope="module")
def fresh():
    """A small emulator of its own: these tests advance its clock and revoke its connections."""
    with run_emulator(seed=5, tenants=2, contacts=5, invoices=5) as running:
        yield running


def basic(xero) -> dict:
    raw = f"{xero.client_id}:{xero.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def authorize(xero, tenant_ids, verifier="v" * 50, method="S256") -> str:
    """Open the consent page, tick `tenant_ids`, approve; return the code from the redirect."""
    challenge = b64url(hashlib.sha256(verifier.encode()).digest()) if method == "S256" else verifier
    query = {
        "response_type": "code",
        "client_id": xero.client_id,
        "redirect_uri": REDIRECT,
        "scope": SCOPE,
        "state": "st4te",
        "code_challenge": challenge,
        "code_challenge_method": method,
    }
    page = call("GET", f"{xero.login_url}/identity/connect/authorize?{urlencode(query)}")
    assert page.status == 200 and 'id="approve"' in page.text and xero.state.oauth.user.email in page.text
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    form = list(hidden.items()) + [("tenant", t) for t in tenant_ids] + [("decision", "approve")]
    reply = call("POST", f"{xero.login_url}/identity/connect/authorize", form=form)
    assert reply.status == 302
    location = urlparse(reply.headers["Location"])
    params = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert params["state"] == ["st4te"]
    return params["code"][0]


def exchange(xero, code, verifier="v" * 50):
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    return call("POST", f"{xero.identity_url}/connect/token", headers=basic(xero), form=form)


def test_missing_malformed_and_foreign_tokens_are_401(xero, read_tenant):
    url = f"{xero.api_url}/Invoices?page=1"
    assert call("GET", url, headers={"xero-tenant-id": read_tenant}).status == 401
    bad = call("GET", url, headers=bearer("not-a-jwt", read_tenant))
    assert bad.status == 401 and bad.json()["Title"] == "Unauthorized"
    other = run_emulator(seed=99, tenants=1, contacts=1, invoices=1)
    try:
        stranger = other.state.client_credentials_token()["access_token"]
    finally:
        other.stop()
    assert call("GET", url, headers=bearer(stranger, read_tenant)).status == 401


def test_expired_token_is_401_token_expired(fresh):
    token = fresh.state.client_credentials_token()["access_token"]
    tenant = fresh.state.tenant_ids[0]
    assert call("GET", f"{fresh.api_url}/Organisation", headers=bearer(token, tenant)).status == 200
    fresh.state.advance_clock(1801)
    reply = call("GET", f"{fresh.api_url}/Organisation", headers=bearer(token, tenant))
    assert reply.status == 401 and reply.json()["Detail"].startswith("TokenExpired")


def test_tenant_not_connected_or_missing_is_403(xero, token_urls, write_tenant, other_tenant):
    token = xero.state.user_token([write_tenant])
    sdk = Sdk(xero, sdk_token(token))
    for connection in sdk.identity.get_connections():  # earlier consents by the same user reach further
        if connection.tenant_id == other_tenant:
            sdk.identity.delete_connection(connection.id)
    assert sdk.accounting.get_organisations(write_tenant).organisations
    with pytest.raises(HTTPStatusException) as refused:
        sdk.accounting.get_organisations(other_tenant)
    assert refused.value.status == 403
    missing = call("GET", f"{xero.api_url}/Organisation", headers=bearer(token["access_token"]))
    assert missing.status == 403


def test_code_flow_with_pkce_end_to_end(xero, write_tenant):
    verifier = secrets.token_urlsafe(48)
    code = authorize(xero, [write_tenant], verifier)
    reply = exchange(xero, code, verifier)
    assert reply.status == 200
    token = reply.json()
    assert token["expires_in"] == 1800 and token["token_type"] == "Bearer" and token["refresh_token"]
    jwks = call("GET", f"{xero.identity_url}/.well-known/openid-configuration/jwks").json()
    identity = jwt_claims(token["id_token"], jwks)
    assert identity["email"] == "demo.admin@example.com" and identity["aud"] == xero.client_id
    assert {"given_name", "family_name", "xero_userid", "preferred_username", "iss"} <= set(identity)
    access = jwt_claims(token["access_token"], jwks)
    assert access["exp"] - access["nbf"] == 1800 and access["xero_userid"] == identity["xero_userid"]
    event = access["authentication_event_id"]
    connections = call(
        "GET", f"{xero.connections_url}?authEventId={event}", headers=bearer(token["access_token"])
    )
    assert [c["tenantId"] for c in connections.json()] == [write_tenant]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}", connections.json()[0]["createdDateUtc"])
    reused = exchange(xero, code, verifier)
    assert reused.status == 400 and reused.body == b'{"error":"invalid_grant"}'


def test_wrong_code_verifier_is_refused(xero, write_tenant):
    code = authorize(xero, [write_tenant], "right-verifier-" + "x" * 40)
    assert exchange(xero, code, "wrong-verifier-" + "x" * 40).status == 400


def test_token_endpoint_refuses_bad_client_credentials(xero):
    form = {"grant_type": "client_credentials", "client_id": xero.client_id, "client_secret": "nope"}
    reply = call("POST", f"{xero.identity_url}/connect/token", form=form)
    assert reply.status == 400 and reply.json()["error"] == "invalid_client"


def test_sdk_client_credentials_token(xero, token_urls, read_tenant):
    sdk = Sdk(
        xero, {"access_token": "", "scope": [], "expires_in": 0, "token_type": "Bearer", "expires_at": None}
    )
    token = sdk.client.get_client_credentials_token()
    assert token["access_token"] and "refresh_token" not in token
    assert sdk.accounting.get_organisations(read_tenant).organisations[0].organisation_id == read_tenant


def test_sdk_refreshes_with_rotation_and_old_token_dies_after_grace(fresh, monkeypatch):
    from xero_python.api_client.oauth2 import TokenApi

    monkeypatch.setattr(TokenApi, "refresh_token_url", f"{fresh.identity_url}/connect/token")
    tenant = fresh.state.tenant_ids[0]
    first = fresh.state.user_token([tenant])
    sdk = Sdk(fresh, sdk_token(first, expires_in=30))  # inside the SDK's 60 s buffer: it refreshes
    assert sdk.accounting.get_organisations(tenant).organisations
    assert len(sdk.saved) == 1
    rotated = sdk.saved[0]["refresh_token"]
    assert rotated and rotated != first["refresh_token"]
    grace = call(
        "POST",
        f"{fresh.identity_url}/connect/token",
        headers=basic(fresh),
        form={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert grace.status == 200  # the previous refresh token still works inside the grace period
    fresh.state.advance_clock(31 * 60)
    stale = Sdk(fresh, sdk_token(first, expires_in=30))
    with pytest.raises(AccountingBadRequestException) as refused:
        stale.accounting.get_organisations(tenant)
    assert refused.value.status == 400 and b"invalid_grant" in refused.value.body
    current = Sdk(fresh, {**sdk.token, "expires_at": time.time() + 30})  # the rotated token still refreshes
    assert current.accounting.get_organisations(tenant).organisations


def test_revocation_removes_the_users_connections(fresh, monkeypatch):
    from xero_python.api_client.oauth2 import TokenApi

    monkeypatch.setattr(TokenApi, "revoke_token_url", f"{fresh.identity_url}/connect/revocation")
    tenant = fresh.state.tenant_ids[0]
    sdk = Sdk(fresh, sdk_token(fresh.state.user_token([tenant])))
    other_session = fresh.state.user_token([tenant])
    assert sdk.identity.get_connections()
    sdk.client.revoke_oauth2_token()
    sdk.client.last_response.close()  # the SDK reads revoke answers unbuffered and never releases them
    assert sdk.token["access_token"] is None
    remaining = call("GET", fresh.connections_url, headers=bearer(other_session["access_token"]))
    assert remaining.status == 200 and remaining.json() == []
    gone = call("GET", f"{fresh.api_url}/Organisation", headers=bearer(other_session["access_token"], tenant))
    assert gone.status == 403
    refresh = call(
        "POST",
        f"{fresh.identity_url}/connect/token",
        headers=basic(fresh),
        form={"grant_type": "refresh_token", "refresh_token": other_session["refresh_token"]},
    )
    assert refresh.status == 200  # another token set stays valid, but it reaches no organisation


def test_delete_connection(xero, token_urls, write_tenant, other_tenant):
    sdk = Sdk(xero, sdk_token(xero.state.user_token([write_tenant, other_tenant])))
    connections = {c.tenant_id: c for c in sdk.identity.get_connections()}
    assert set(connections) >= {write_tenant, other_tenant}
    assert sdk.identity.delete_connection(connections[other_tenant].id) is None
    assert other_tenant not in {c.tenant_id for c in sdk.identity.get_connections()}
    with pytest.raises(HTTPStatusException) as refused:
        sdk.accounting.get_organisations(other_tenant)
    assert refused.value.status == 403
    with pytest.raises(NotFoundException):
        sdk.identity.delete_connection(connections[other_tenant].id)
    reply = call("GET", xero.url + "/CONNECTIONS", headers=bearer(sdk.token["access_token"]))
    assert reply.status == 200  # any case


def test_codes_are_short_lived(fresh):
    code = authorize(fresh, [fresh.state.tenant_ids[1]])
    fresh.state.advance_clock(fresh.config.code_ttl + 1)
    assert exchange(fresh, code).body == b'{"error":"invalid_grant"}'
