"""The backfill's phase-advance rule (worker.sync.next_page)."""
from worker.sync import BACKFILL_PHASES, Phase, next_page


def test_a_full_page_is_followed_by_the_next_page_of_the_same_phase():
    assert next_page(Phase.CONTACTS, 0, 1000, 1000) == (Phase.CONTACTS, 1)
    assert next_page(Phase.INVOICES, 4, 1000, 1000) == (Phase.INVOICES, 5)


def test_a_short_page_moves_to_the_first_page_of_the_next_phase():
    assert next_page(Phase.CONTACTS, 3, 999, 1000) == (Phase.INVOICES, 0)
    assert next_page(Phase.CONTACTS, 0, 0, 1000) == (Phase.INVOICES, 0)


def test_a_short_page_of_the_last_phase_ends_the_backfill():
    assert next_page(BACKFILL_PHASES[-1], 7, 10, 1000) is None


def test_the_phases_are_stored_as_their_old_strings():
    assert BACKFILL_PHASES == ("contacts", "invoices")
    assert Phase.PAYMENTS == "payments" and "payments" not in BACKFILL_PHASES
