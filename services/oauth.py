"""Pure OAuth2/OIDC helpers: PKCE, state and nonce, the authorize URL, id_token claims. No I/O.

The id_token arrives straight from Xero's token endpoint over TLS, which OIDC Core 3.1.3.7
accepts as proof of origin; `verify_id_token` also checks its RS256 signature against
Xero's JWKS, its issuer, audience, expiry and nonce, because that costs one request.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
from urllib.parse import urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from infra.errors import InputError

CLOCK_SKEW = 120  # seconds of disagreement between our clock and Xero's we tolerate


class BadIdToken(InputError, ValueError):
    """An id_token that is malformed, unsigned by Xero, or not meant for us. Never quotes it."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- PKCE, state, nonce -----------------------------------------------------------------


def new_verifier() -> str:
    """A PKCE code verifier: 64 characters from the unreserved set (RFC 7636 allows 43-128)."""
    return secrets.token_urlsafe(48)


def challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def new_state() -> str:
    return secrets.token_urlsafe(32)


def authorize_url(
    login_url: str, *, client_id: str, redirect_uri: str, scopes: str, state: str, code_challenge: str, nonce: str
) -> str:
    """Xero's consent page for the authorization-code flow with PKCE (S256)."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes.split()),
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            "nonce": nonce,
        }
    )
    return f"{login_url.rstrip('/')}/identity/connect/authorize?{query}"


# --- JWTs -------------------------------------------------------------------------------


def _parts(token: str) -> tuple[dict, dict, bytes, bytes]:
    try:
        head, body, signature = token.split(".")
        header = json.loads(_b64url_decode(head))
        claims = json.loads(_b64url_decode(body))
        signed = f"{head}.{body}".encode("ascii")
        return header, claims, signed, _b64url_decode(signature)
    except (ValueError, AttributeError, UnicodeError) as exc:
        raise BadIdToken("the token is not a well-formed JWT") from exc


def read_claims(token: str) -> dict:
    """The claims of a JWT, unverified: for tokens that came straight from Xero over TLS."""
    claims = _parts(token)[1]
    if not isinstance(claims, dict):
        raise BadIdToken("the token's payload is not a JSON object")
    return claims


def verify_id_token(token: str, jwks: dict, *, issuer: str, audience: str, now: float, nonce: str | None) -> dict:
    """The claims of an id_token signed by a key in `jwks` (RS256) and issued to us, now."""
    header, claims, signed, signature = _parts(token)
    if header.get("alg") != "RS256":
        raise BadIdToken("the id_token is not signed with RS256")
    key = _public_key(jwks, header.get("kid"))
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise BadIdToken("the id_token's signature does not verify") from exc
    if claims.get("iss", "").rstrip("/") != issuer.rstrip("/"):
        raise BadIdToken("the id_token was issued by someone else")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in audiences:
        raise BadIdToken("the id_token was issued to another client")
    if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] + CLOCK_SKEW < now:
        raise BadIdToken("the id_token has expired")
    if nonce is not None and claims.get("nonce") != nonce:
        raise BadIdToken("the id_token's nonce is not the one we sent")
    return claims


def _public_key(jwks: dict, kid: str | None) -> rsa.RSAPublicKey:
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kty") == "RSA"]
    if kid is not None:
        keys = [k for k in keys if k.get("kid") == kid]
    if not keys:
        raise BadIdToken("no key in Xero's JWKS matches the id_token")
    try:
        n = int.from_bytes(_b64url_decode(keys[0]["n"]), "big")
        e = int.from_bytes(_b64url_decode(keys[0]["e"]), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    except (KeyError, ValueError, TypeError) as exc:
        raise BadIdToken("Xero's JWKS holds a key we cannot read") from exc
