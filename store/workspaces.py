"""Workspaces and their API keys. Keys are random, shown once, stored as SHA-256 hashes."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import ApiKey, Workspace

SCOPES = ("read", "admin")
KEY_PREFIX = "xm_"


@dataclass(frozen=True)
class Caller:
    """Who is calling: the workspace every query is scoped to, and what the key may do."""

    workspace_id: int
    scope: str

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"


def key_hash(key: str) -> str:
    """The form api_keys.key_hash holds: a key is never stored, only this digest."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_workspace(session: Session, name: str, now: datetime) -> Workspace:
    workspace = Workspace(name=name, created_at=now)
    session.add(workspace)
    session.flush()
    return workspace


def issue_key(session: Session, workspace_id: int, scope: str, now: datetime) -> str:
    """Create a key and return it in clear: the only time it is ever seen."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(workspace_id=workspace_id, key_hash=key_hash(key), prefix=key[:10], scope=scope, created_at=now))
    session.flush()
    return key


def authenticate(session: Session, key: str | None) -> Caller | None:
    """The caller a bearer key stands for, or None. The lookup is by hash; the final
    comparison is constant-time so a near-miss and a far miss cost the same."""
    if not key or not key.startswith(KEY_PREFIX):
        return None
    digest = key_hash(key)
    row = session.execute(
        select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    ).scalar_one_or_none()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return Caller(workspace_id=row.workspace_id, scope=row.scope)
