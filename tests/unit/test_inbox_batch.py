"""store_many's pure parts: which delivery claims each event, when each live tenant was last
heard, and what each delivery stored once the INSERT said which events were new."""
from datetime import datetime, timedelta, timezone

from store.inbox import Delivery, Stored, claim, last_heard, outcomes
from store.models import EventState
from webhook.payload import Event

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
TENANT, OTHER = "tenant-a", "tenant-b"


def event(resource_id: str, tenant_id: str = TENANT) -> Event:
    return Event(tenant_id, "ORGANISATION", "INVOICE", "UPDATE", resource_id, NOW)


def keys(claimed) -> list[list[str]]:
    return [[e.resource_id for _, e in events] for events in claimed]


def test_an_event_repeated_in_a_batch_is_claimed_by_its_first_delivery_only():
    a, b, c = event("a"), event("b"), event("c")
    claimed = claim([Delivery(NOW, [a, b]), Delivery(NOW, [b, c]), Delivery(NOW, [a])])
    assert keys(claimed) == [["a", "b"], ["c"], []]
    assert claimed[0][0] == (a.dedupe_key, a)


def test_an_event_repeated_within_one_delivery_is_claimed_once():
    a = event("a")
    assert keys(claim([Delivery(NOW, [a, a])])) == [["a"]]


def test_a_malformed_delivery_claims_nothing():
    assert claim([Delivery(NOW, body=b"junk", error="not JSON")]) == [[]]


def test_last_heard_is_each_live_tenants_latest_delivery_with_a_claimed_event():
    later = NOW + timedelta(seconds=3)
    deliveries = [Delivery(later, [event("a")]), Delivery(NOW, [event("b"), event("c", OTHER)]),
                  Delivery(later + timedelta(seconds=1), [event("a")])]  # a duplicate: not heard
    assert last_heard(deliveries, claim(deliveries), {TENANT: None}) == {TENANT: later}
    assert last_heard(deliveries, claim(deliveries), {}) == {}


def test_outcomes_count_only_new_events_and_list_pending_ids_by_tenant():
    deliveries = [Delivery(NOW, [event("a"), event("b", OTHER)]), Delivery(NOW, [event("a"), event("c")])]
    claimed = claim(deliveries)
    a, b, c = (key for events in claimed for key, _ in events)
    written = [(a, 11, TENANT, "pending"), (b, 12, OTHER, EventState.IGNORED), (c, 13, TENANT, "pending")]

    results, unused = outcomes(deliveries, claimed, {0: 100, 1: 101}, written)

    assert results == [Stored(received=2, inserted=2, delivery_id=100, pending={TENANT: [11]}),
                       Stored(received=2, inserted=1, delivery_id=101, pending={TENANT: [13]})]
    assert unused == []


def test_a_delivery_nothing_new_came_of_keeps_no_delivery_id_and_its_row_is_dropped():
    deliveries = [Delivery(NOW, [event("a")]), Delivery(NOW, [event("b")])]
    claimed = claim(deliveries)
    (b, _), = claimed[1]

    results, unused = outcomes(deliveries, claimed, {0: 100, 1: 101}, [(b, 7, TENANT, "pending")])

    assert results[0] == Stored(received=1, inserted=0)  # "a" was already held
    assert results[1].delivery_id == 101
    assert unused == [100]


def test_a_malformed_delivery_keeps_its_row_and_reports_only_its_id():
    deliveries = [Delivery(NOW, body=b"junk", error="not JSON"), Delivery(NOW, [event("a")])]
    claimed = claim(deliveries)

    results, unused = outcomes(deliveries, claimed, {0: 5, 1: 6}, [])

    assert results[0] == Stored(received=0, inserted=0, delivery_id=5, malformed=True)
    assert results[1] == Stored(received=1, inserted=0)
    assert unused == [6]


def test_the_event_states_are_stored_as_their_old_strings():
    assert [s.value for s in EventState] == ["pending", "enqueued", "done", "failed", "ignored"]
    assert EventState.PENDING == "pending" and f"{EventState.IGNORED}" == "ignored"
