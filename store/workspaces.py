"""Workspaces and their API keys. Keys are random, shown once, stored as SHA-256 hashes;
a revoked key (revoked_at set) authenticates nothing, nor do the embed tokens and admin
sessions it issued."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from infra.errors import Conflict, NotFound
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


@dataclass(frozen=True)
class KeyRecord:
    """An API key as listed: never the key, only the prefix stored to recognise it."""

    id: int
    workspace_id: int
    scope: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class UnknownKey(NotFound, LookupError):
    """No such key (in this workspace, when one is given)."""


class AlreadyRevoked(Conflict, ValueError):
    """The key was revoked before."""

    def __init__(self, record: KeyRecord):
        when = f" at {record.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if record.revoked_at else ""
        super().__init__(f"API key {record.id} was already revoked{when}")
        self.record = record


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
    row = session.execute(_BY_HASH, {"digest": digest}).one_or_none()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return Caller(workspace_id=row.workspace_id, scope=row.scope)


# built once (every API request asks it); columns, not the entity: nothing to track
_BY_HASH = select(ApiKey.key_hash, ApiKey.workspace_id, ApiKey.scope).where(
    ApiKey.key_hash == bindparam("digest"), ApiKey.revoked_at.is_(None)
)


def workspace_exists(session: Session, workspace_id: int) -> bool:
    return session.get(Workspace, workspace_id) is not None


def list_keys(session: Session, workspace_id: int) -> list[KeyRecord]:
    """Every key of the workspace, revoked ones included, oldest first."""
    rows = session.execute(
        select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.id)
    ).scalars()
    return [_record(row) for row in rows]


def find_key(session: Session, key_id: int, workspace_id: int | None = None) -> KeyRecord | None:
    """The key with this id; given a workspace, only if it belongs to it."""
    query = select(ApiKey).where(ApiKey.id == key_id)
    if workspace_id is not None:
        query = query.where(ApiKey.workspace_id == workspace_id)
    row = session.execute(query).scalar_one_or_none()
    return None if row is None else _record(row)


def key_id_of(session: Session, key: str) -> int | None:
    """The id of a live key given in clear (the one making a request), or None."""
    return session.execute(
        select(ApiKey.id).where(ApiKey.key_hash == key_hash(key), ApiKey.revoked_at.is_(None))
    ).scalar_one_or_none()


def key_is_live(session: Session, key_id: int) -> bool:
    """Whether the key exists and is not revoked: what its tokens and sessions hang on."""
    return session.execute(
        select(ApiKey.id).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
    ).scalar_one_or_none() is not None


def issue_key_record(session: Session, workspace_id: int, scope: str, now: datetime) -> tuple[KeyRecord, str]:
    """Issue a key; return its record and the key in clear (shown once)."""
    key = issue_key(session, workspace_id, scope, now)
    row = session.execute(select(ApiKey).where(ApiKey.key_hash == key_hash(key))).scalar_one()
    return _record(row), key


def revoke_key(session: Session, key_id: int, now: datetime, workspace_id: int | None = None) -> KeyRecord:
    """Set revoked_at once. UnknownKey when there is no such key (in the workspace, if one is
    given); AlreadyRevoked when it was revoked before. The update is conditional, so two
    revocations racing each other cannot both succeed."""
    record = find_key(session, key_id, workspace_id)
    if record is None:
        raise UnknownKey(f"no API key {key_id}")
    done = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise AlreadyRevoked(find_key(session, key_id) or record)
    session.expire_all()
    return KeyRecord(record.id, record.workspace_id, record.scope, record.prefix, record.created_at, now)


def _record(row: ApiKey) -> KeyRecord:
    return KeyRecord(row.id, row.workspace_id, row.scope, row.prefix, row.created_at, row.revoked_at)
