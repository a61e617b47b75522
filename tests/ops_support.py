"""Helpers for the operations tests: the app and its `ops` CLI, Prometheus scrapes, signed
webhooks made from what the emulator announced, and an in-process RQ worker.

Its `app` fixture, like tests.worker_support's (emulator, settings, runtime, connected, ...),
is a plugin of tests/conftest.py (`pytest_plugins`): test modules import only the helpers.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rq import SimpleWorker
from sqlalchemy import select

from infra import queue
from infra.settings import Settings
from store import workspaces
from store.db import transaction
from store.models import InboxEvent, XeroConnection
from webhook import batcher
from webhook.signature import sign
from wsgi import close_app, create_app

Sample = tuple[str, frozenset]


@pytest.fixture
def app(settings: Settings) -> Iterator:
    app = create_app(settings)
    yield app
    close_app(app)


def ops(app, *args: str, expect: int = 0):
    """Run `flask --app wsgi ops ARGS` through Click's test runner; the result (stdout separate)."""
    result = app.test_cli_runner().invoke(args=["ops", *args])
    assert result.exit_code == expect, result.output
    return result


def status_of(app, tenant_id: str) -> dict:
    [tenant] = json.loads(ops(app, "status", "--tenant", tenant_id, "--json").stdout)["tenants"]
    return tenant


def scrape(client) -> dict[Sample, float]:
    """GET /metrics, parsed: {(sample name, frozenset of labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[Sample, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def run_worker(redis) -> None:
    """A real RQ worker in this process over the project's queues, until they are empty."""
    SimpleWorker(queue.queues(redis), connection=redis).work(burst=True, with_scheduler=True)


def xero_body(events) -> bytes:
    """A webhook delivery as Xero sends it, for `Announced` events (tests.worker_support)."""
    items = [
        {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/{e.category.title()}s/{e.resource_id}",
            "resourceId": e.resource_id,
            "eventDateUtc": e.event_date_utc.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
            "eventType": e.event_type,
            "eventCategory": e.category,
            "tenantId": e.tenant_id,
            "tenantType": e.tenant_type,
        }
        for e in events
    ]
    n = len(items)
    return json.dumps({"events": items, "firstEventSequence": min(n, 1), "lastEventSequence": n,
                       "entropy": "ops-test"}).encode()


def post_webhook(client, body: bytes, key: str):
    """POST a signed delivery; once answered, wait for the intake's background wake (prompt)."""
    response = client.post("/webhooks/xero", data=body, headers={"x-xero-signature": sign(body, key)},
                           content_type="application/json")
    assert batcher.settle_all(2.0), "the wake after the commit took more than 2 s"
    return response


def customer_of(emulator, tenant_id: str) -> str:
    return next(c["ContactID"] for c in emulator.state.snapshot(tenant_id)["Contacts"] if c["IsCustomer"])


def admin_key(sessions, tenant_id: str) -> str:
    with transaction(sessions) as session:
        workspace_id = session.scalars(
            select(XeroConnection.workspace_id).where(XeroConnection.tenant_id == tenant_id)
        ).one()
        return workspaces.issue_key(session, workspace_id, "admin", datetime.now(timezone.utc))


def inbox_states(sessions, tenant_id: str) -> dict[int, tuple]:
    with sessions() as session:
        return {
            row.id: (row.state, row.processed_at)
            for row in session.scalars(select(InboxEvent).where(InboxEvent.tenant_id == tenant_id))
        }
