"""services.oauth: PKCE, the authorize URL and id_token checks, without a server."""
from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from services import oauth

ISSUER = "https://identity.xero.com"
CLIENT = "0E6F1C5A9B2D4C7E8F1A3B5C7D9E1F20"
NOW = 1_800_000_000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_of(key, kid: str = "k1") -> dict:
    numbers = key.public_key().public_numbers()
    as_bytes = lambda n: n.to_bytes((n.bit_length() + 7) // 8, "big")  # noqa: E731
    return {"keys": [{"kty": "RSA", "kid": kid, "alg": "RS256", "e": b64(as_bytes(numbers.e)),
                      "n": b64(as_bytes(numbers.n))}]}


def sign(key, claims: dict, kid: str = "k1", alg: str = "RS256") -> str:
    head = b64(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64(signature)}"


def claims(**overrides) -> dict:
    base = {"iss": ISSUER, "aud": CLIENT, "exp": NOW + 300, "iat": NOW, "email": "ann@example.com", "nonce": "n1"}
    base.update(overrides)
    return base


def test_challenge_is_the_s256_of_the_verifier_per_rfc_7636():
    # RFC 7636 appendix B
    verifier, challenge = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert oauth.challenge(verifier) == challenge


def test_verifiers_are_long_random_and_unreserved():
    verifiers = {oauth.new_verifier() for _ in range(20)}
    assert len(verifiers) == 20
    unreserved = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    assert all(43 <= len(v) <= 128 and set(v) <= unreserved for v in verifiers)


def test_authorize_url_carries_code_flow_pkce_state_nonce_and_space_joined_scopes():
    url = oauth.authorize_url("https://login.xero.com/", client_id=CLIENT,
                              redirect_uri="https://m.example/admin/xero/callback",
                              scopes="openid  email\naccounting.invoices.read", state="s1", code_challenge="c1",
                              nonce="n1")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "login.xero.com", "/identity/connect/authorize")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {"response_type": "code", "client_id": CLIENT, "redirect_uri": "https://m.example/admin/xero/callback",
                     "scope": "openid email accounting.invoices.read", "state": "s1", "code_challenge": "c1",
                     "code_challenge_method": "S256", "nonce": "n1"}


def test_id_token_signed_by_xero_for_us_yields_its_claims(key):
    token = sign(key, claims())
    got = oauth.verify_id_token(token, jwks_of(key), issuer=ISSUER, audience=CLIENT, now=NOW, nonce="n1")
    assert got["email"] == "ann@example.com"


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"iss": "https://evil.example"}, "issued by someone else"),
        ({"aud": "another-client"}, "another client"),
        ({"exp": NOW - oauth.CLOCK_SKEW - 1}, "expired"),
        ({"nonce": "other"}, "nonce"),
    ],
)
def test_id_token_for_someone_else_or_stale_is_refused(key, overrides, reason):
    token = sign(key, claims(**overrides))
    with pytest.raises(oauth.BadIdToken, match=reason):
        oauth.verify_id_token(token, jwks_of(key), issuer=ISSUER, audience=CLIENT, now=NOW, nonce="n1")


def test_id_token_signed_by_another_key_is_refused(key):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(oauth.BadIdToken, match="signature"):
        oauth.verify_id_token(sign(stranger, claims()), jwks_of(key), issuer=ISSUER, audience=CLIENT, now=NOW,
                              nonce="n1")


def test_id_token_with_a_changed_payload_is_refused(key):
    head, _body, signature = sign(key, claims()).split(".")
    forged = f"{head}.{b64(json.dumps(claims(email='mallory@example.com')).encode())}.{signature}"
    with pytest.raises(oauth.BadIdToken, match="signature"):
        oauth.verify_id_token(forged, jwks_of(key), issuer=ISSUER, audience=CLIENT, now=NOW, nonce="n1")


def test_id_token_with_an_unknown_key_id_or_alg_none_is_refused(key):
    with pytest.raises(oauth.BadIdToken, match="no key"):
        oauth.verify_id_token(sign(key, claims(), kid="k2"), jwks_of(key), issuer=ISSUER, audience=CLIENT, now=NOW,
                              nonce="n1")
    unsigned = ".".join([b64(json.dumps({"alg": "none"}).encode()), b64(json.dumps(claims()).encode()), ""])
    with pytest.raises(oauth.BadIdToken, match="RS256"):
        oauth.verify_id_token(unsigned, jwks_of(key), issuer=ISSUER, audience=CLIENT, now=NOW, nonce="n1")


@pytest.mark.parametrize("garbage", ["", "abc", "a.b", "a.b.c.d", "!!.??.**"])
def test_malformed_tokens_raise_bad_id_token_without_quoting_them(garbage):
    with pytest.raises(oauth.BadIdToken) as caught:
        oauth.read_claims(garbage)
    assert garbage not in str(caught.value) or garbage == ""


def test_read_claims_reads_the_authentication_event_of_an_access_token():
    body = b64(json.dumps({"authentication_event_id": "e-1", "scope": ["openid"]}).encode())
    assert oauth.read_claims(f"{b64(b'{}')}.{body}.sig")["authentication_event_id"] == "e-1"

