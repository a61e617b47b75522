"""API keys listed, issued and revoked: `flask --app wsgi workspace keys ...` and /api/v1/keys.

Revoking a key ends the key, every embed token it issued and every admin session it opened;
another workspace's keys are never seen, listed or revoked (404, existing or not).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from store import workspaces
from store.db import transaction
from store.models import ApiKey
from tests.integration.admin_flow import Workspace as AdminWorkspace
from tests.integration.admin_flow import bare_app, open_session, token_key  # noqa: F401  (fixtures)
from tests.integration.mirror_rows import contact, invoice, workspace
from tests.integration.test_read_api import Api
from wsgi import runtime

KEYS = "/api/v1/keys"
ONE = "/api/v1/keys/{key_id}"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture
def app(bare_app):
    return bare_app


@pytest.fixture
def two(app):
    """Workspace A (tenant-a: Ann and her invoice, a contact record "ann") and workspace B."""
    with transaction(runtime(app).sessions) as s:
        a = workspace(s, "Acme", "tenant-a")
        b = workspace(s, "Other", "tenant-b")
        s.add_all([contact("tenant-a", "x-ann", "ann@example.com"), invoice("tenant-a", "inv-ann", "x-ann")])
    client = app.test_client()
    put = client.put("/api/v1/contacts/ann", json={"email": "ann@example.com"}, headers=_bearer(a.admin_key))
    assert put.status_code == 200, put.get_json()
    return a, b


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _key_ids(app, workspace_id: int) -> dict[str, int]:
    """scope -> id of the workspace's first key of that scope."""
    with runtime(app).sessions() as s:
        rows = s.execute(select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.id)).scalars()
        found: dict[str, int] = {}
        for row in rows:
            found.setdefault(row.scope, row.id)
        return found


def _embed_token(app, key: str) -> str:
    answer = app.test_client().post("/api/v1/embed-tokens", json={"kind": "contacts", "id": "ann"},
                                    headers=_bearer(key))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["token"]


def _reads(app, bearer: str) -> int:
    return app.test_client().get("/api/v1/contacts/ann/invoices", headers=_bearer(bearer)).status_code


def _one_line_error(result, text: str) -> None:
    """A refusal: exit code 1 as the other commands' (ClickException), one line, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and text in lines[0], result.output
    assert "Traceback" not in result.output


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_lists_issues_and_revokes_keys_and_never_shows_a_secret(app, two):
    a, b = two
    runner = app.test_cli_runner()

    listed = runner.invoke(args=["workspace", "keys", "list", "--workspace", str(a.id), "--json"])
    assert listed.exit_code == 0, listed.output
    answer = json.loads(listed.output)
    assert answer["workspace_id"] == a.id
    assert [(k["role"], k["revoked_at"]) for k in answer["keys"]] == [("admin", None), ("read", None)]
    assert {k["prefix"] for k in answer["keys"]} == {a.admin_key[:10], a.read_key[:10]}
    assert a.admin_key not in listed.output and a.read_key not in listed.output
    assert b.admin_key[:10] not in listed.output  # another workspace's keys are not listed

    issued = runner.invoke(args=["workspace", "keys", "issue", "--workspace", str(a.id), "--role", "read", "--json"])
    assert issued.exit_code == 0, issued.output
    new = json.loads(issued.output)
    assert new["role"] == "read" and new["key"].startswith("xm_") and new["prefix"] == new["key"][:10]
    assert _reads(app, new["key"]) == 200  # the printed key is a working key of workspace A

    table = runner.invoke(args=["workspace", "keys", "list", "--workspace", str(a.id)])
    assert table.exit_code == 0
    lines = table.output.strip().splitlines()
    assert lines[0].split() == ["ID", "ROLE", "PREFIX", "CREATED", "REVOKED"] and len(lines) == 4
    assert new["key"] not in table.output and f"{new['prefix']}…" in table.output

    revoked = runner.invoke(args=["workspace", "keys", "revoke", str(new["id"]), "--json"])
    assert revoked.exit_code == 0, revoked.output
    gone = json.loads(revoked.output)
    assert gone["id"] == new["id"] and gone["revoked_at"] and gone["workspace_id"] == a.id
    assert _reads(app, new["key"]) == 401
    assert _reads(app, a.read_key) == 200  # the workspace's other keys live on

    after = json.loads(runner.invoke(args=["workspace", "keys", "list", "--workspace", str(a.id), "--json"]).output)
    assert [k["revoked_at"] is not None for k in after["keys"]] == [False, False, True]

    text = runner.invoke(args=["workspace", "keys", "issue", "--workspace", str(a.id), "--role", "admin"])
    assert text.exit_code == 0 and "shown once" in text.output
    key = text.output.strip().splitlines()[-1]
    assert key.startswith("xm_") and _reads(app, key) == 200
    text_revoke = runner.invoke(args=["workspace", "keys", "revoke", str(_id_of(app, key))])
    assert text_revoke.exit_code == 0 and text_revoke.output.startswith("revoked admin key ")


def _id_of(app, key: str) -> int:
    with runtime(app).sessions() as s:
        found = workspaces.key_id_of(s, key)
    assert found is not None
    return found


def test_cli_refuses_in_one_line_with_exit_code_1(app, two):
    a, _ = two
    runner = app.test_cli_runner()
    read_id = _key_ids(app, a.id)["read"]

    _one_line_error(runner.invoke(args=["workspace", "keys", "revoke", "999999"]), "no API key 999999")
    assert runner.invoke(args=["workspace", "keys", "revoke", str(read_id)]).exit_code == 0
    _one_line_error(runner.invoke(args=["workspace", "keys", "revoke", str(read_id), "--json"]),
                    f"API key {read_id} was already revoked at ")
    _one_line_error(runner.invoke(args=["workspace", "keys", "list", "--workspace", "4242"]), "no workspace 4242")
    _one_line_error(runner.invoke(args=["workspace", "keys", "issue", "--workspace", "4242", "--role", "read"]),
                    "no workspace 4242")
    with runtime(app).sessions() as s:  # nothing was issued for the missing workspace
        assert s.execute(select(ApiKey).where(ApiKey.workspace_id == 4242)).first() is None

    for args in (["issue", "--workspace", str(a.id), "--role", "owner"], ["revoke", "seven"],
                 ["issue", "--role", "read"]):
        bad = runner.invoke(args=["workspace", "keys", *args])
        assert bad.exit_code == 2 and "Traceback" not in bad.output, bad.output  # click's usage errors


def test_revoking_a_key_ends_its_embed_tokens(app, two):
    a, _ = two
    ids = _key_ids(app, a.id)
    read_token = _embed_token(app, a.read_key)
    admin_token = _embed_token(app, a.admin_key)
    browser = open_session(app, AdminWorkspace(a.id, a.admin_key, a.read_key))
    assert _reads(app, read_token) == 200 and _reads(app, admin_token) == 200
    assert browser.get("/admin/xero").status_code == 200

    runner = app.test_cli_runner()
    assert runner.invoke(args=["workspace", "keys", "revoke", str(ids["read"])]).exit_code == 0
    assert _reads(app, read_token) == 401  # the read key's token is dead: the widget's calls are refused
    assert _reads(app, admin_token) == 200  # the admin key's token is not
    assert browser.get("/admin/xero").status_code == 200  # nor the session the admin key opened

    assert runner.invoke(args=["workspace", "keys", "revoke", str(ids["admin"])]).exit_code == 0
    assert _reads(app, admin_token) == 401


def test_revoking_a_key_ends_the_admin_sessions_it_opened(app, two):
    a, _ = two
    ids = _key_ids(app, a.id)
    browser = open_session(app, AdminWorkspace(a.id, a.admin_key, a.read_key))
    assert browser.get("/admin/xero").status_code == 200
    assert app.test_cli_runner().invoke(args=["workspace", "keys", "revoke", str(ids["admin"])]).exit_code == 0
    answer = browser.get("/admin/xero")
    assert answer.status_code in (401, 403), answer.status_code  # the admin session it opened is over
    assert browser.get("/admin/xero").status_code in (401, 403)  # and stays over


# --- the API -----------------------------------------------------------------------------------


def test_api_lists_issues_and_revokes_within_the_callers_workspace(app, two):
    a, b = two
    api = Api(app.test_client(), a.admin_key)

    listed = api.get(KEYS, documented=KEYS).get_json()["keys"]
    assert [(k["role"], k["prefix"], k["revoked_at"]) for k in listed] == [
        ("admin", a.admin_key[:10], None), ("read", a.read_key[:10], None)]
    assert "key" not in listed[0]

    issued = api.call("POST", KEYS, json={"role": "admin"}, documented=KEYS)
    assert issued.status_code == 201 and issued.headers["Cache-Control"] == "no-store"
    new = issued.get_json()
    assert new["role"] == "admin" and new["key"].startswith("xm_") and new["revoked_at"] is None
    assert len(api.get(KEYS, documented=KEYS).get_json()["keys"]) == 3

    # rotation: the new admin key revokes the old one, which then opens nothing
    rotated = Api(app.test_client(), new["key"])
    old_id = listed[0]["id"]
    gone = rotated.delete(f"{KEYS}/{old_id}", documented=ONE)
    assert gone.status_code == 200 and gone.get_json()["id"] == old_id and gone.get_json()["revoked_at"]
    assert api.get(KEYS, documented=KEYS).status_code == 401
    again = rotated.delete(f"{KEYS}/{old_id}", documented=ONE)
    assert again.status_code == 409 and "already revoked" in again.get_json()["error"]

    # workspace B sees only its own keys and cannot touch A's (404, as for a key that does not exist)
    other = Api(app.test_client(), b.admin_key)
    assert {k["prefix"] for k in other.get(KEYS, documented=KEYS).get_json()["keys"]} == {
        b.admin_key[:10], b.read_key[:10]}
    read_a = _key_ids(app, a.id)["read"]
    for key_id in (read_a, new["id"], 999_999_999, 0):
        answer = other.delete(f"{KEYS}/{key_id}", documented=ONE)
        assert answer.status_code == 404 and answer.get_json() == {"error": "no such API key"}
    assert _reads(app, a.read_key) == 200 and _reads(app, new["key"]) == 200


def test_api_admin_keys_only_and_never_revoking_itself(app, two):
    a, _ = two
    api = Api(app.test_client(), a.admin_key)
    ids = _key_ids(app, a.id)
    token = _embed_token(app, a.admin_key)

    for bearer, status in ((a.read_key, 403), (token, 401), (None, 401), ("xm_not-a-key", 401)):
        assert api.get(KEYS, key=bearer, documented=KEYS).status_code == status
        assert api.call("POST", KEYS, key=bearer, json={"role": "admin"}, documented=KEYS).status_code == status
        assert api.delete(f"{KEYS}/{ids['read']}", key=bearer, documented=ONE).status_code == status
    assert _reads(app, a.read_key) == 200  # none of those revoked anything

    own = api.delete(f"{KEYS}/{ids['admin']}", documented=ONE)
    assert own.status_code == 409 and "cannot revoke itself" in own.get_json()["error"]
    assert _reads(app, a.admin_key) == 200


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'{"role": "owner"}', b'{"role": ["admin"]}', b'{"role": "read", "x": 1}',
    b'{"scope": "read"}', b"[" * 500 + b"]" * 500, b'{"role": "\xff"}',
])
def test_api_bad_bodies_answer_400(app, two, body):
    a, _ = two
    api = Api(app.test_client(), a.admin_key)
    answer = api.call("POST", KEYS, data=body, content_type="application/json", documented=KEYS)
    assert answer.status_code == 400, answer.get_json()
    assert len(_key_ids(app, a.id)) == 2 and len(api.get(KEYS, documented=KEYS).get_json()["keys"]) == 2


def test_api_oversized_body_and_odd_ids(app, two):
    a, _ = two
    api = Api(app.test_client(), a.admin_key)
    big = api.call("POST", KEYS, data=b'{"role": "read", "pad": "' + b"x" * 70_000 + b'"}',
                   content_type="application/json", documented=KEYS)
    assert big.status_code == 413
    client = app.test_client()
    for path in ("/api/v1/keys/abc", "/api/v1/keys/-1", "/api/v1/keys/1e3", "/api/v1/keys/" + "9" * 40,
                 "/api/v1/keys/1/2"):
        answer = client.delete(path, headers=_bearer(a.admin_key))
        assert answer.status_code == 404 and answer.is_json, (path, answer.status_code)
    put = client.put(KEYS, headers=_bearer(a.admin_key))
    assert put.status_code == 405 and put.is_json


# --- the repository ----------------------------------------------------------------------------


def test_repository_revokes_once_and_scopes_by_workspace(sessions):
    with transaction(sessions) as s:
        a = workspace(s, "Acme", None)
        b = workspace(s, "Other", None)
    with transaction(sessions) as s:
        record, key = workspaces.issue_key_record(s, a.id, "read", NOW)
        assert workspaces.key_id_of(s, key) == record.id and workspaces.key_is_live(s, record.id)
        with pytest.raises(ValueError):
            workspaces.issue_key(s, a.id, "owner", NOW)
    with transaction(sessions) as s:
        with pytest.raises(workspaces.UnknownKey):
            workspaces.revoke_key(s, record.id, NOW, workspace_id=b.id)
        assert workspaces.find_key(s, record.id, b.id) is None
        done = workspaces.revoke_key(s, record.id, NOW, workspace_id=a.id)
        assert done.revoked_at == NOW
    with transaction(sessions) as s:
        with pytest.raises(workspaces.AlreadyRevoked):
            workspaces.revoke_key(s, record.id, NOW)
        with pytest.raises(workspaces.UnknownKey):
            workspaces.revoke_key(s, 10**9, NOW)
        assert not workspaces.key_is_live(s, record.id) and workspaces.key_id_of(s, key) is None
        assert workspaces.authenticate(s, key) is None
        assert [k.scope for k in workspaces.list_keys(s, a.id)] == ["admin", "read", "read"]
        assert [k.revoked_at for k in workspaces.list_keys(s, a.id)][-1] == NOW
        assert workspaces.workspace_exists(s, a.id) and not workspaces.workspace_exists(s, 10**9)
