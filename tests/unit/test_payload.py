import dataclasses
import json
import re
from datetime import datetime, timezone

import pytest

from webhook.payload import BadPayload, Event, parse

TENANT = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
INVOICE = "ddb7a8b6-2a5f-4a8b-9f25-6c0e0a5e8b1e"


def event(**changes) -> dict:
    base = {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{INVOICE}",
        "resourceId": INVOICE,
        "eventDateUtc": "2024-06-21T01:15:39.902",
        "eventType": "UPDATE",
        "eventCategory": "INVOICE",
        "tenantId": TENANT,
        "tenantType": "ORGANISATION",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def body(*events, first=1, last=1) -> bytes:
    document = {"events": list(events), "firstEventSequence": first, "lastEventSequence": last}
    document["entropy"] = "x"
    return json.dumps(document).encode()


def only(raw: bytes) -> Event:
    (parsed,) = parse(raw)
    return parsed


def test_documented_invoice_event_parses_into_an_event():
    assert only(body(event())) == Event(
        tenant_id=TENANT,
        tenant_type="ORGANISATION",
        category="INVOICE",
        event_type="UPDATE",
        resource_id=INVOICE,
        event_date_utc=datetime(2024, 6, 21, 1, 15, 39, 902000, tzinfo=timezone.utc),
        resource_url=f"https://api.xero.com/api.xro/2.0/Invoices/{INVOICE}",
    )


def test_event_date_without_zone_is_utc():
    moment = only(body(event(eventDateUtc="2024-06-21T01:15:39.902"))).event_date_utc
    assert moment.utcoffset().total_seconds() == 0 and moment.hour == 1


def test_event_date_with_an_offset_is_converted_to_utc():
    moment = only(body(event(eventDateUtc="2024-06-21T03:15:39.902+02:00"))).event_date_utc
    assert moment == datetime(2024, 6, 21, 1, 15, 39, 902000, tzinfo=timezone.utc)
    assert moment.tzinfo == timezone.utc


def test_event_type_and_category_are_case_insensitive_and_upper_cased():
    parsed = only(body(event(eventType="Update", eventCategory="Invoice", tenantType="organisation")))
    assert (parsed.event_type, parsed.category, parsed.tenant_type) == ("UPDATE", "INVOICE", "ORGANISATION")


def test_intent_to_receive_payload_has_no_events():
    itr = b'{"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": "S0m3r4Nd0mt3xt"}'
    assert parse(itr) == []


def test_credit_note_event_keeps_its_data():
    data = {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}
    parsed = only(body(event(eventCategory="CREDITNOTE", eventType="CREATE", data=data)))
    assert parsed.category == "CREDITNOTE" and parsed.data == data


@pytest.mark.parametrize("category", ["SUBSCRIPTION", "BANKTRANSACTION"])
def test_categories_we_do_not_sync_are_still_events(category):
    parsed = only(body(event(eventCategory=category, tenantType="APPLICATION")))
    assert parsed.category == category and parsed.tenant_type == "APPLICATION"


def test_resource_url_is_optional():
    assert only(body(event(resourceUrl=None))).resource_url is None


def test_events_keep_their_order():
    ids = [f"00000000-0000-0000-0000-00000000000{n}" for n in range(5)]
    assert [e.resource_id for e in parse(body(*(event(resourceId=i) for i in ids), last=5))] == ids


def test_events_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        only(body(event())).tenant_id = "other"  # type: ignore[misc]


def test_same_announcement_has_the_same_dedupe_key():
    first = only(body(event()))
    again = only(body(event(eventType="update", eventDateUtc="2024-06-21T01:15:39.902Z")))
    assert first.dedupe_key == again.dedupe_key
    assert len(first.dedupe_key) == 64 and int(first.dedupe_key, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"tenantId": "another-tenant"},
        {"eventCategory": "CONTACT"},
        {"resourceId": "another-resource"},
        {"eventType": "CREATE"},
        {"eventDateUtc": "2024-06-21T01:15:39.903"},
    ],
)
def test_dedupe_key_differs_when_any_identifying_field_differs(change):
    assert only(body(event(**change))).dedupe_key != only(body(event())).dedupe_key


def test_dedupe_keys_sort_in_the_order_of_their_events_times():
    """So the inbox's unique index grows at its end, not on random pages."""
    times = ["0999-01-02T03:04:05", "2024-06-21T01:15:39", "2024-06-21T01:15:39.000001", "2024-06-21T01:15:39.902",
             "2024-06-21T01:15:40Z", "2024-06-21T03:15:40+02:00", "2024-06-21T01:15:41"]
    keys = [only(body(event(eventDateUtc=t))).dedupe_key for t in times]
    assert all(len(k) == 64 for k in keys)
    assert keys[:5] == sorted(keys[:5])
    assert keys[5][:20] == keys[4][:20] == "20240621011540000000"  # the same instant, whatever its offset
    assert keys[4] < keys[6]


def test_dedupe_key_ignores_delivery_details():
    assert only(body(event(), first=7, last=7)).dedupe_key == only(body(event(resourceUrl=None))).dedupe_key


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"entropy": "x"}', "'events'"),
        (b'{"events": {}}', "'events'"),
        (b'{"events": ["x"]}', "events[0] is not an object"),
        (b'{"events": [], "firstEventSequence": -1}', "firstEventSequence"),
        (b'{"events": [], "lastEventSequence": "1"}', "lastEventSequence"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    ],
)
def test_bodies_that_are_not_xeros_shape_are_refused_with_a_reason(raw, message):
    with pytest.raises(BadPayload, match=re.escape(message)):
        parse(raw)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tenantId": None}, r"events\[0\]\.tenantId is missing"),
        ({"resourceId": 42}, r"events\[0\]\.resourceId is missing or not a string"),
        ({"eventType": ""}, r"events\[0\]\.eventType is missing"),
        ({"eventCategory": None}, r"events\[0\]\.eventCategory is missing"),
        ({"tenantType": None}, r"events\[0\]\.tenantType is missing"),
        ({"eventDateUtc": "yesterday"}, r"eventDateUtc is not an ISO-8601 time"),
        ({"tenantId": "t" * 65}, r"tenantId is longer than 64"),
        ({"resourceUrl": 5}, r"resourceUrl is not a string"),
        ({"data": ["ACCRECCREDIT"]}, r"data is not an object"),
    ],
)
def test_an_event_missing_or_mistyping_a_stored_field_is_refused(change, message):
    with pytest.raises(BadPayload, match=message):
        parse(body(event(**change)))


def test_the_error_names_the_offending_event():
    with pytest.raises(BadPayload, match=r"events\[1\]"):
        parse(body(event(), event(tenantId=None)))
