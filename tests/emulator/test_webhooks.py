"""Signed, batched webhooks after mutations; retries; the intent-to-receive handshake."""

from __future__ import annotations

import json
import re
import time

import pytest

from .receiver import Receiver, signature_valid


@pytest.fixture
def receiver(xero):
    """A receiver subscribed for the duration of one test."""
    xero.state.wait_for_webhooks()
    made = []

    def subscribe(**options):
        receiver = Receiver(xero.webhook_key, **options)
        made.append(receiver)
        xero.state.set_webhook_url(receiver.url)
        return receiver

    yield subscribe
    xero.state.wait_for_webhooks()
    xero.state.set_webhook_url(None)
    for receiver in made:
        receiver.stop()


def events_of(posts) -> list[dict]:
    return [event for body, _, _ in posts for event in json.loads(body)["events"]]


def test_payment_sends_signed_invoice_update(xero, receiver, write_tenant, customer):
    state = xero.state
    invoice = state.create_invoice(write_tenant, customer, "230.00")
    state.wait_for_webhooks()
    inbox = receiver()
    state.apply_payment(write_tenant, invoice["InvoiceID"], "100.00", reference="First installment")
    body, signature, status = inbox.wait_for(1)[0]
    assert status == 200
    assert signature_valid(body, signature, xero.webhook_key)
    assert not signature_valid(body, signature, "some-other-key")
    payload = json.loads(body)
    assert set(payload) == {"events", "firstEventSequence", "lastEventSequence", "entropy"}
    [event] = payload["events"]
    assert event["eventCategory"] == "INVOICE" and event["eventType"] == "UPDATE"
    assert event["resourceId"] == invoice["InvoiceID"] and event["tenantId"] == write_tenant
    assert event["resourceUrl"] == f"{xero.api_url}/Invoices/{invoice['InvoiceID']}"
    assert event["tenantType"] == "ORGANISATION"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", event["eventDateUtc"])


def test_creates_and_deletes_batch_into_one_post_with_rising_sequences(xero, receiver, write_tenant):
    state = xero.state
    inbox = receiver()
    contact = state.create_contact(write_tenant, "Batch Ltd", "batch@example.com")
    invoice = state.create_invoice(write_tenant, contact["ContactID"], "50.00")
    payment = state.apply_payment(write_tenant, invoice["InvoiceID"])
    state.delete_payment(write_tenant, payment["PaymentID"])
    state.wait_for_webhooks()
    events = events_of(inbox.received)
    kinds = [(e["eventCategory"], e["eventType"], e["resourceId"]) for e in events]
    assert kinds == [
        ("CONTACT", "CREATE", contact["ContactID"]),
        ("INVOICE", "CREATE", invoice["InvoiceID"]),
        ("INVOICE", "UPDATE", invoice["InvoiceID"]),
        ("INVOICE", "UPDATE", invoice["InvoiceID"]),
    ]
    payloads = [json.loads(body) for body, _, _ in inbox.received]
    assert len(payloads) < len(events)  # batched
    sequences = [(p["firstEventSequence"], p["lastEventSequence"]) for p in payloads]
    assert all(first <= last for first, last in sequences)
    assert [s[0] for s in sequences] == sorted(s[0] for s in sequences)


def test_failed_deliveries_are_retried(xero, receiver, write_tenant):
    inbox = receiver(fail_first=2)
    contact = xero.state.create_contact(write_tenant, "Retry Ltd")
    posts = inbox.wait_for(3)
    assert [status for _, _, status in posts[:3]] == [500, 500, 200]
    assert posts[0][0] == posts[2][0]  # the same bytes each time
    xero.state.wait_for_webhooks()
    delivery = next(d for d in xero.state.webhook_deliveries() if contact["ContactID"] in d["body"])
    assert delivery["outcome"] == "delivered" and [a["status"] for a in delivery["attempts"]] == [
        500,
        500,
        200,
    ]


def test_without_url_events_are_only_recorded(xero, write_tenant):
    xero.state.set_webhook_url(None)
    before = len(xero.state.webhook_deliveries())
    contact = xero.state.create_contact(write_tenant, "Quiet Ltd")
    assert xero.state.webhook_events()[-1]["resourceId"] == contact["ContactID"]
    assert xero.state.wait_for_webhooks(2) and len(xero.state.webhook_deliveries()) == before


def test_intent_to_receive_passes_for_a_verifying_receiver(xero, receiver):
    inbox = receiver()
    result = xero.state.intent_to_receive()
    assert result["passed"]
    assert {r["correctly_signed"] for r in result["results"]} == {True, False}
    assert {r["status"] for r in result["results"]} == {200, 401}
    for body, _, _ in inbox.received:
        assert json.loads(body) == {
            **json.loads(body),
            "events": [],
            "firstEventSequence": 0,
            "lastEventSequence": 0,
        }


def test_intent_to_receive_fails_for_a_receiver_that_accepts_anything(xero, receiver):
    receiver(always_ok=True)
    result = xero.state.intent_to_receive()
    assert not result["passed"]
    assert [r["ok"] for r in result["results"] if not r["correctly_signed"]] == [False, False]


def test_dropped_and_duplicated_deliveries(xero, receiver, write_tenant):
    inbox = receiver()
    xero.state.set_faults(webhook_drop_rate=1.0)
    dropped = xero.state.create_contact(write_tenant, "Dropped Ltd")
    xero.state.wait_for_webhooks()
    assert inbox.received == []
    assert any(
        d["outcome"] == "dropped" and dropped["ContactID"] in d["body"]
        for d in xero.state.webhook_deliveries()
    )
    xero.state.set_faults(webhook_drop_rate=0.0, webhook_duplicate_rate=1.0)
    xero.state.create_contact(write_tenant, "Twice Ltd")
    posts = inbox.wait_for(2)
    assert posts[0][0] == posts[1][0]


def test_delayed_and_reordered_deliveries(xero, receiver, write_tenant):
    inbox = receiver()
    xero.state.set_faults(webhook_reorder_rate=1.0, webhook_reorder_seconds=0.4)
    first = xero.state.create_contact(write_tenant, "Held back Ltd")
    xero.state.wait_for_webhooks()  # nothing else arrives meanwhile: it is just late
    held = xero.state.create_contact(write_tenant, "Late Ltd")
    time.sleep(0.15)  # its batch is formed (and held back) before the next event exists
    xero.state.set_faults(webhook_reorder_rate=0.0)
    overtaking = xero.state.create_contact(write_tenant, "Early Ltd")
    xero.state.wait_for_webhooks()
    order = [e["resourceId"] for e in events_of(inbox.received)]
    assert order[0] == first["ContactID"]
    assert order.index(overtaking["ContactID"]) < order.index(held["ContactID"])


def test_delayed_delivery_arrives_late(xero, receiver, write_tenant):
    inbox = receiver()
    xero.state.set_faults(webhook_delay_rate=1.0, webhook_delay_seconds=0.4)
    started = time.monotonic()
    contact = xero.state.create_contact(write_tenant, "Slow Ltd")
    inbox.wait_for(1)
    assert time.monotonic() - started >= 0.4
    delivery = next(d for d in xero.state.webhook_deliveries() if contact["ContactID"] in d["body"])
    assert delivery["faults"] == ["delay"] and delivery["outcome"] == "delivered"
