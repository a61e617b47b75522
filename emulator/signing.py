"""RS256 JSON Web Tokens and the JWKS that verifies them (via `cryptography`)."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class InvalidToken(ValueError):
    """Not a JWT we signed."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


class Signer:
    """One RSA key pair per emulator; tokens carry its `kid`."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = hashlib.sha256(public_der).hexdigest()[:32].upper()

    def encode(self, claims: dict) -> str:
        header = {"alg": "RS256", "kid": self.kid, "typ": "JWT", "x5t": b64url(bytes.fromhex(self.kid))}
        signing_input = f"{b64url(_json(header))}.{b64url(_json(claims))}".encode("ascii")
        signature = self._key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode('ascii')}.{b64url(signature)}"

    def decode(self, token: str) -> dict:
        """The claims of a token we signed (expiry is the caller's business)."""
        try:
            head, body, signature = token.split(".")
            self._key.public_key().verify(
                b64url_decode(signature),
                f"{head}.{body}".encode("ascii"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            return json.loads(b64url_decode(body))
        except (ValueError, InvalidSignature, UnicodeError) as exc:
            raise InvalidToken("token signature or format is invalid") from exc

    def jwks(self) -> dict:
        numbers = self._key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.kid,
                    "x5t": b64url(bytes.fromhex(self.kid)),
                    "e": b64url(_int_bytes(numbers.e)),
                    "n": b64url(_int_bytes(numbers.n)),
                }
            ]
        }


def _json(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")
