"""Tokens encrypted at rest with Fernet; several keys at once for rotation.

TOKEN_KEYS lists Fernet keys, newest first: the first encrypts, all decrypt.
"""
from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from infra.errors import StorageError


class SecretsError(StorageError):
    """No usable key, or ciphertext no configured key can open. Never carries the secret."""


class TokenBox:
    def __init__(self, keys: tuple[str, ...] | list[str]):
        if not keys:
            raise SecretsError("TOKEN_KEYS is empty: set at least one Fernet key")
        try:
            self._fernet = MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])
        except ValueError as exc:
            raise SecretsError("TOKEN_KEYS holds a key that is not a valid Fernet key") from exc

    def seal(self, token: dict) -> bytes:
        return self._fernet.encrypt(json.dumps(token, sort_keys=True).encode())

    def open(self, ciphertext: bytes) -> dict:
        try:
            return json.loads(self._fernet.decrypt(ciphertext))
        except InvalidToken as exc:
            raise SecretsError("token ciphertext does not open with any TOKEN_KEYS key") from exc

    def rotate(self, ciphertext: bytes) -> bytes:
        """Re-encrypt under the newest key."""
        try:
            return self._fernet.rotate(ciphertext)
        except InvalidToken as exc:
            raise SecretsError("token ciphertext does not open with any TOKEN_KEYS key") from exc


def new_key() -> str:
    return Fernet.generate_key().decode()
