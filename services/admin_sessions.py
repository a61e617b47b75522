"""Admin sessions and the one-time tickets that open them, kept in Redis under digests.

A ticket (`mint_ticket`, 60 s) names the workspace and the admin key that minted it;
`take_ticket` spends it once. A session is a random id the browser holds in its signed
cookie; Redis keeps the workspace and the key under the id's digest for an hour, so the
server can end it (`end`: sign-out) and every request can check that it still stands
(`find`) and that its key is not revoked (the caller's check, `alive` here).

A ticket opened while a session of another workspace is open becomes a switch offer bound
to that session (`offer_switch`, five minutes): only that session can take it
(`take_switch`), when its admin confirms, and until then the open session stays.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import cast

from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from store.workspaces import key_is_live

TICKET_SECONDS = 60
SWITCH_SECONDS = 300
SESSION_SECONDS = 3600


@dataclass(frozen=True)
class Grant:
    """What a ticket, a switch offer or a session stands for: a workspace, through one key."""

    workspace_id: int
    key_id: int


def digest(secret: str) -> str:
    """Redis keys and the database name a ticket or session by its hash, never by the value."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _dump(grant: Grant, **more: str) -> str:
    return json.dumps({"ws": grant.workspace_id, "key": grant.key_id, **more})


def _load(raw: bytes | None) -> dict | None:
    """A stored grant, or None for nothing or anything malformed (a ticket of an older format)."""
    if raw is None:
        return None
    try:
        found = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(found, dict) or not all(isinstance(found.get(k), int) for k in ("ws", "key")):
        return None
    return found


def _grant(found: dict) -> Grant:
    return Grant(found["ws"], found["key"])


# --- tickets and switch offers ------------------------------------------------------------------


def mint_ticket(redis: Redis, grant: Grant) -> str:
    ticket = secrets.token_urlsafe(32)
    redis.set(f"xm:admin:ticket:{digest(ticket)}", _dump(grant), ex=TICKET_SECONDS)
    return ticket


def take_ticket(redis: Redis, ticket: str) -> Grant | None:
    """The ticket's grant, once: GETDEL, so the second opener finds nothing."""
    found = _load(cast("bytes | None", redis.getdel(f"xm:admin:ticket:{digest(ticket)}"))) if ticket else None
    return _grant(found) if found else None


def offer_switch(redis: Redis, grant: Grant, session_id: str) -> str:
    """Re-mint a spent ticket as an offer only the open session `session_id` can take."""
    offer = secrets.token_urlsafe(32)
    redis.set(f"xm:admin:switch:{digest(offer)}", _dump(grant, sid=digest(session_id)), ex=SWITCH_SECONDS)
    return offer


def take_switch(redis: Redis, offer: str, session_id: str) -> Grant | None:
    """The offer's grant, if it was made to this session; another session's try leaves it be."""
    key = f"xm:admin:switch:{digest(offer)}"
    found = _load(cast("bytes | None", redis.get(key))) if offer else None
    if found is None or found.get("sid") != digest(session_id):
        return None
    return _grant(found) if redis.delete(key) == 1 else None  # two confirmations race: one wins


# --- sessions ----------------------------------------------------------------------------------------


def open_session(redis: Redis, grant: Grant) -> str:
    """A new session's id: the browser's cookie carries it, Redis its grant."""
    session_id = secrets.token_urlsafe(32)
    redis.set(f"xm:admin:session:{digest(session_id)}", _dump(grant), ex=SESSION_SECONDS)
    return session_id


def find(redis: Redis, session_id: str) -> Grant | None:
    """The session's grant while it stands (not ended, not expired)."""
    found = _load(cast("bytes | None", redis.get(f"xm:admin:session:{digest(session_id)}")))
    return _grant(found) if found else None


def end(redis: Redis, session_id: str) -> None:
    redis.delete(f"xm:admin:session:{digest(session_id)}")


def alive(redis: Redis, sessions: sessionmaker[Session], session_digest: str) -> bool:
    """Whether the session with this digest still stands and its key is not revoked."""
    found = _load(cast("bytes | None", redis.get(f"xm:admin:session:{session_digest}")))
    if found is None:
        return False
    with sessions() as s:
        return key_is_live(s, found["key"])
