"""The admin API over a workspace's own API keys, for a CRM's settings screen: list, issue, revoke.

Admin key only (a read key gets 403, an embed token 401); scoped to the caller's workspace, so
another workspace's key id answers 404 exactly as a key id that does not exist. A key cannot
revoke itself (409): rotate by issuing a new admin key, switching to it, then revoking the old
one with it. Revoking ends at once every embed token and admin session the key issued.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from store import workspaces
from store.db import transaction
from views import api

bp = Blueprint("keys", __name__, url_prefix="/api/v1/keys")

KEY_ID = re.compile(r"[0-9]{1,9}")
BODY_MAX = 1024  # {"role": "admin"} is 17 bytes


bp.register_error_handler(api.ApiError, api.api_error)  # the same JSON refusals as the rest of /api/v1
bp.register_error_handler(HTTPException, api.http_error)


@bp.after_request
def _no_store(response):
    response.headers["Cache-Control"] = "no-store"  # an issued key is in the body, once
    return response


@bp.get("")
def list_keys():
    with _session() as s:
        workspace_id, _ = _admin(s)
        keys = workspaces.list_keys(s, workspace_id)
    return jsonify(keys=[_key_json(k) for k in keys])


@bp.post("")
def issue_key():
    with _session() as s:
        workspace_id, _ = _admin(s)
        role = _role()
        record, key = workspaces.issue_key_record(s, workspace_id, role, _now())
    return jsonify(**_key_json(record), key=key), 201


@bp.delete("/<key_id>")
def revoke_key(key_id: str):
    with _session() as s:
        workspace_id, own_id = _admin(s)
        if not KEY_ID.fullmatch(key_id):
            raise api.ApiError(404, "no such API key")
        if int(key_id) == own_id:
            raise api.ApiError(409, "a key cannot revoke itself: revoke it with another admin key or the CLI")
        try:
            record = workspaces.revoke_key(s, int(key_id), _now(), workspace_id=workspace_id)
        except workspaces.UnknownKey:
            raise api.ApiError(404, "no such API key") from None
        except workspaces.AlreadyRevoked as e:
            raise api.ApiError(409, str(e)) from None
    return jsonify(_key_json(record))


# --- plumbing ------------------------------------------------------------------------------


@contextmanager
def _session() -> Iterator[Session]:
    with transaction(current_app.extensions["xm"].sessions) as s:
        yield s


def _admin(s: Session) -> tuple[int, int]:
    """The caller's workspace and key id: an admin key, or 401/403."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    caller = workspaces.authenticate(s, key) if scheme.lower() == "bearer" else None
    key_id = workspaces.key_id_of(s, key) if caller else None
    if caller is None or key_id is None:
        raise api.ApiError(401, "a valid admin API key is required: Authorization: Bearer <key>")
    if not caller.is_admin:
        raise api.ApiError(403, "managing API keys needs an admin API key")
    return caller.workspace_id, key_id


def _role() -> str:
    raw = request.stream.read(BODY_MAX + 1)
    if len(raw) > BODY_MAX:
        raise api.ApiError(413, f"the body is over {BODY_MAX} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict) or set(body) != {"role"} or body["role"] not in workspaces.SCOPES:
        raise api.ApiError(400, 'the body must be {"role": "read"} or {"role": "admin"}')
    return body["role"]


def _key_json(record: workspaces.KeyRecord) -> dict:
    return {
        "id": record.id,
        "role": record.scope,
        "prefix": record.prefix,
        "created_at": _iso(record.created_at),
        "revoked_at": _iso(record.revoked_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _now() -> datetime:
    return datetime.now(UTC)
