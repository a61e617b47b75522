"""What the widget reads beyond the lists and totals, over a real database (and Redis for the
webhook check): the count of every saved view, where else a searched number is, how fresh the
mirror is, conditional polls (ETag, 304) and the embed refusals said precisely."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import delete, update

from infra import metrics
from infra.settings import Settings
from store.db import transaction
from store.models import ApiKey, CrmRecord, InboxEvent, SyncState
from views import freshness
from wsgi import close_app, create_app

from .test_read_api import SYNCED, Api, T, _zoned, api, ws  # noqa: F401 (fixtures)

SECRET = "widget-reads-secret"
NOW = "2026-11-25 09:00:00"  # a minute after SYNCED (08:59:30Z)


@pytest.fixture
def app(database_url, redis_url):
    app = create_app(Settings(
        database_url=database_url, redis_url=redis_url, xero_api_url="http://127.0.0.1:9", secret_key=SECRET
    ))
    freshness.forget()
    yield app
    close_app(app)


def summary(api) -> dict:
    return api.get("/api/v1/contacts/c1/summary").json


def listed(api, query: str) -> dict:
    return api.get(f"/api/v1/contacts/c1/invoices?{query}").json


def _inbox(sessions, received: datetime, state: str = "pending", key: str = "e-1") -> None:
    with transaction(sessions) as s:
        s.add(InboxEvent(
            dedupe_key=key, tenant_id=T, tenant_type="ORGANISATION", category="INVOICE", event_type="UPDATE",
            resource_id="i-today", event_date_utc=received, received_at=received, state=state,
        ))


# --- counts and elsewhere ----------------------------------------------------------------------


@freeze_time(NOW)
def test_the_summary_counts_every_saved_view_as_its_list_does(api):
    assert api.put("/api/v1/contacts/c1/pins/i-paid").status_code == 200
    counts = summary(api)["counts"]
    assert counts == {"unpaid": 3, "overdue": 1, "open": 2, "paid": 1, "pinned": 1, "all": 5}
    for view, n in counts.items():  # what each list holds, bills left out as the list leaves them
        assert listed(api, f"view={view}&per_page=1")["total"] == n, view


@freeze_time(NOW)
def test_a_search_says_in_which_other_views_the_number_matches(api):
    body = listed(api, "view=unpaid&q=INV-0004")  # the paid one
    assert body["invoices"] == [] and body["elsewhere"] == [{"view": "paid", "count": 1}]
    body = listed(api, "view=paid&q=inv-000")
    assert [i["number"] for i in body["invoices"]] == ["INV-0004"]
    assert body["elsewhere"] == [
        {"view": "unpaid", "count": 3}, {"view": "overdue", "count": 1}, {"view": "open", "count": 2}
    ]
    assert listed(api, "view=paid&q=INV-0004&from=2026-10-05")["elsewhere"] == []  # the dates hold too
    assert listed(api, "view=paid&q=BILL")["elsewhere"] == []  # sales only, as the list
    assert listed(api, "view=unpaid&q=BILL&type=bill")["elsewhere"] == [{"view": "paid", "count": 1}]
    assert listed(api, "view=unpaid")["elsewhere"] is None  # no search, no question


# --- freshness ---------------------------------------------------------------------------------


@freeze_time(NOW)
def test_fresh_with_nothing_waiting(api):
    assert summary(api)["freshness"] == {
        "last_synced_at": SYNCED.isoformat(), "state": "fresh", "reason": None,
    }


def test_stale_when_changes_wait_over_five_minutes(api, sessions):
    _inbox(sessions, datetime(2026, 11, 25, 8, 55, 0, tzinfo=UTC))
    _inbox(sessions, datetime(2026, 11, 25, 8, 40, 0, tzinfo=UTC), state="done", key="e-0")  # settled: no lag
    with freeze_time("2026-11-25 08:59:59"):  # waiting 4:59
        assert summary(api)["freshness"]["state"] == "fresh"
    with freeze_time("2026-11-25 09:00:01"):  # waiting 5:01
        fresh = summary(api)["freshness"]
    assert fresh["state"] == "stale" and fresh["reason"] == freshness.LAGGING
    assert "5 minutes" in fresh["reason"]


@freeze_time(NOW)
def test_stale_when_webhooks_look_broken(api, app, sessions):
    redis = app.extensions["xm"].redis
    metrics.reconciled(redis, T, 3, datetime(2026, 11, 25, 8, 0, tzinfo=UTC))  # no webhook announced them
    with transaction(sessions) as s:
        s.execute(update(SyncState).where(SyncState.tenant_id == T)
                  .values(last_webhook_at=datetime(2026, 11, 25, 7, 0, tzinfo=UTC)))
    fresh = summary(api)["freshness"]
    assert fresh["state"] == "stale" and fresh["reason"] == freshness.WEBHOOKS_BROKEN
    with transaction(sessions) as s:  # a webhook arrived since: deliveries work
        s.execute(update(SyncState).where(SyncState.tenant_id == T)
                  .values(last_webhook_at=datetime(2026, 11, 25, 8, 30, tzinfo=UTC)))
    assert summary(api)["freshness"]["state"] == "fresh"


@freeze_time(NOW)
def test_stale_before_the_first_sync(api, sessions):
    with transaction(sessions) as s:
        s.execute(delete(SyncState))
    assert summary(api)["freshness"] == {"last_synced_at": None, "state": "stale", "reason": freshness.NEVER_SYNCED}


def test_an_unreachable_redis_claims_nothing_and_is_asked_once_in_a_while(database_url, ws, monkeypatch):
    app = create_app(Settings(database_url=database_url, redis_url="redis://127.0.0.1:9/0",
                              xero_api_url="http://127.0.0.1:9"))
    freshness.forget()
    asked = []
    real = metrics.reconcile_records
    monkeypatch.setattr(metrics, "reconcile_records", lambda *a: asked.append(1) or real(*a))
    try:
        api = Api(app.test_client(), ws.admin_key)
        assert api.put("/api/v1/contacts/c1", json={"email": "ann@example.com"}).status_code == 200
        with freeze_time(NOW):
            assert [summary(api)["freshness"]["state"] for _ in range(3)] == ["fresh"] * 3
        assert len(asked) == 1
    finally:
        close_app(app)


# --- conditional polls -------------------------------------------------------------------------


URLS = [
    "/api/v1/contacts/c1/summary",
    "/api/v1/contacts/c1/invoices?view=unpaid&q=INV&page=1&per_page=10",
    "/api/v1/invoices/i-tomorrow/payments",
]


@pytest.mark.parametrize("url", URLS)
def test_an_unchanged_read_answers_304_with_no_body(api, url):
    client, auth = api.client, {"Authorization": f"Bearer {api.key}"}
    with freeze_time(NOW):
        first = client.get(url, headers=auth)
        assert first.status_code == 200 and first.headers["Cache-Control"] == "private, no-cache"
        etag = first.headers["ETag"]
        assert etag.startswith('"') and not etag.startswith("W/")  # strong
        again = client.get(url, headers={**auth, "If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    with freeze_time("2026-11-25 09:00:17"):  # later the same day: the same body, the same tag
        assert client.get(url, headers={**auth, "If-None-Match": etag}).status_code == 304
        other = client.get(url, headers={**auth, "If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.data == first.data


def test_a_change_in_the_mirror_or_the_organisations_date_changes_the_etag(api, sessions):
    client, auth = api.client, {"Authorization": f"Bearer {api.key}"}
    url = "/api/v1/contacts/c1/summary"
    _zoned(sessions, "NEWZEALANDSTANDARDTIME")  # Pacific/Auckland: 2026-11-25 begins at 11-24 11:00Z
    with freeze_time("2026-11-24 10:59:59"):
        before = client.get(url, headers=auth)
        assert client.get(url, headers={**auth, "If-None-Match": before.headers["ETag"]}).status_code == 304
    with freeze_time("2026-11-24 11:00:00"):  # Auckland's midnight: a new today, a new body
        after = client.get(url, headers={**auth, "If-None-Match": before.headers["ETag"]})
        assert after.status_code == 200 and after.json["today"] == "2026-11-25"
        with transaction(sessions) as s:
            s.execute(update(SyncState).where(SyncState.tenant_id == T)
                      .values(last_success_at=SYNCED + timedelta(hours=3)))
        synced = client.get(url, headers={**auth, "If-None-Match": after.headers["ETag"]})
        assert synced.status_code == 200 and synced.headers["ETag"] != after.headers["ETag"]


def test_errors_and_writes_carry_no_etag(api):
    client, auth = api.client, {"Authorization": f"Bearer {api.key}"}
    assert "ETag" not in client.get("/api/v1/contacts/nobody/summary", headers=auth).headers
    assert "ETag" not in client.put("/api/v1/contacts/c1/pins/i-today", headers=auth).headers


# --- refusals ----------------------------------------------------------------------------------


def _access(api, token: str, record: str = "c1"):
    return api.client.post(f"/embed/contacts/{record}/access", headers={"Authorization": f"Bearer {token}"})


def _token(api, record: str = "c1") -> str:
    response = api.client.post("/api/v1/embed-tokens", json={"kind": "contacts", "id": record},
                               headers={"Authorization": f"Bearer {api.key}"})
    assert response.status_code == 200, response.json
    return response.json["token"]


def test_each_refusal_says_its_own_reason(api, sessions):
    token = _token(api)
    assert _access(api, token).status_code == 204
    tampered = token[:-2] + ("xy" if not token.endswith("xy") else "zz")
    bad = _access(api, tampered)
    assert bad.status_code == 401 and "not valid" in bad.json["error"] and "expired" not in bad.json["error"]
    with freeze_time(datetime.now(UTC) + timedelta(hours=1, seconds=1)):
        late = _access(api, token)
    assert late.status_code == 401 and "has expired" in late.json["error"]
    other = _access(api, token, record="c2")
    assert other.status_code == 404 and other.json["error"] == "This link is for a different record."
    with transaction(sessions) as s:  # the record went from the CRM's side
        s.execute(delete(CrmRecord).where(CrmRecord.external_id == "c1"))
    gone = _access(api, token)
    assert gone.status_code == 404 and "contact is not known" in gone.json["error"]
    with transaction(sessions) as s:
        s.execute(update(ApiKey).values(revoked_at=datetime.now(UTC)))
    revoked = _access(api, token)
    assert revoked.status_code == 401 and "revoked" in revoked.json["error"]
