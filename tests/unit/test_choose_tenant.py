"""services.connection.choose_tenant: which of /connections' entries a client-credentials connect takes."""
import pytest

from services.connection import ConnectError, choose_tenant, digest

ACME = {"id": "c1", "tenantId": "AAAA-1", "tenantName": "Acme", "tenantType": "ORGANISATION"}
BETA = {"id": "c2", "tenantId": "bbbb-2", "tenantName": "Beta", "tenantType": "ORGANISATION"}
PRACTICE = {"id": "c3", "tenantId": "pppp-3", "tenantName": "Practice", "tenantType": "PRACTICE"}


def test_the_only_organisation_is_taken_when_none_is_named():
    assert choose_tenant([ACME, PRACTICE], None) is ACME


def test_an_entry_without_a_type_counts_as_an_organisation():
    untyped = {"id": "c4", "tenantId": "cccc-4", "tenantName": "Untyped"}
    assert choose_tenant([untyped], None) is untyped


def test_the_named_organisation_is_found_whatever_the_case():
    assert choose_tenant([ACME, BETA], "aaaa-1") is ACME
    assert choose_tenant([ACME, BETA], "BBBB-2") is BETA


def test_several_organisations_and_none_named_asks_for_tenant_listing_them():
    with pytest.raises(ConnectError, match=r"--tenant: AAAA-1 \(Acme\), bbbb-2 \(Beta\)"):
        choose_tenant([ACME, BETA], None)


def test_no_organisation_at_all_says_none():
    with pytest.raises(ConnectError, match="--tenant: none"):
        choose_tenant([PRACTICE], None)


def test_a_named_tenant_that_is_not_an_organisation_of_the_app_is_refused():
    with pytest.raises(ConnectError, match="tenant pppp-3 is not among this app's connections"):
        choose_tenant([ACME, PRACTICE], "pppp-3")


def test_redis_keys_name_a_secret_by_its_hash_never_the_value():
    named = digest("s3cret-state")
    assert named != "s3cret-state" and "s3cret" not in named and len(named) == 64
    assert digest("s3cret-state") == named
