"""xero.timezones: Xero's Windows zone ids -> IANA (through CLDR), and the organisation's today."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time
from tzlocal.windows_tz import win_tz

from xero import timezones
from xero.timezones import OrgZone, org_today, zone_for

OPENAPI = Path("/work/shared/xero-openapi/xero_accounting.yaml")


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- mapping ------------------------------------------------------------------------------------


@pytest.mark.parametrize("xero, iana", [
    ("NEWZEALANDSTANDARDTIME", "Pacific/Auckland"),
    ("AUSEASTERNSTANDARDTIME", "Australia/Sydney"),
    ("GMTSTANDARDTIME", "Europe/London"),
    ("PACIFICSTANDARDTIME", "America/Los_Angeles"),
    ("EASTERNSTANDARDTIME", "America/New_York"),
    ("EASTERNSTANDARDTIME(MEXICO)", "America/Cancun"),
    ("PACIFICSTANDARDTIME(MEXICO)", "America/Tijuana"),
    ("WAUSTRALIASTANDARDTIME", "Australia/Perth"),  # "W. Australia Standard Time": the dot goes too
    ("AUSCENTRALWSTANDARDTIME", "Australia/Eucla"),
    ("UTC", "Etc/UTC"),
    ("UTC+12", "Etc/GMT-12"),
    ("UTC+13", "Etc/GMT-13"),
    ("UTC11", "Etc/GMT+11"),  # Xero's spelling of "UTC-11"
    ("UTC-11", "Etc/GMT+11"),  # and the Windows one
    ("UTC02", "Etc/GMT+2"),
    ("KAMCHATKASTANDARDTIME", "Asia/Kamchatka"),  # retired Windows zone: via "Russia Time Zone 11"
    ("MIDATLANTICSTANDARDTIME", "Etc/GMT+2"),  # retired Windows zone: via "UTC-02"
    ("New Zealand Standard Time", "Pacific/Auckland"),  # the spaced Windows name works as well
    ("newzealandstandardtime", "Pacific/Auckland"),
])
def test_xero_ids_map_to_iana(xero, iana):
    zone = zone_for(xero)
    assert zone == OrgZone(xero=xero, iana=iana, mapped=True)
    assert zone.tzinfo() == ZoneInfo(iana)
    assert zone.warning() is None


@pytest.mark.parametrize("xero", ["MARSSTANDARDTIME", "", "   ", None, "UTC+02"])
def test_an_unknown_or_missing_id_falls_back_to_utc_unmapped(xero):
    zone = zone_for(xero)
    assert (zone.xero, zone.iana, zone.mapped) == (xero, "UTC", False)
    assert zone.tzinfo() == ZoneInfo("UTC")
    assert "dates use UTC" in zone.warning()


def test_the_warning_names_the_unknown_id():
    warning = zone_for("MARSSTANDARDTIME").warning()
    assert warning == "Xero time zone 'MARSSTANDARDTIME' is unknown; dates use UTC"


def test_zone_for_is_cached():
    assert zone_for("NEWZEALANDSTANDARDTIME") is zone_for("NEWZEALANDSTANDARDTIME")


def test_normalising_cldr_names_loses_none_of_them():
    """No two Windows names collapse into one id once spaces, dots and minus signs are gone."""
    assert len({timezones.normalise(name) for name in win_tz}) == len(win_tz)


def test_the_retired_ids_are_absent_from_cldr_and_their_successors_present():
    """The override table is only for ids CLDR truly lacks, and points at zones CLDR has."""
    cldr = {timezones.normalise(name) for name in win_tz}
    for xero, successor in timezones.RETIRED.items():
        assert xero not in cldr
        assert successor in win_tz


def test_every_value_of_xeros_timezone_enum_maps():
    yaml = pytest.importorskip("yaml")
    if not OPENAPI.exists():
        pytest.skip(f"{OPENAPI} is absent")
    spec = yaml.safe_load(OPENAPI.read_text())
    enum = spec["components"]["schemas"]["TimeZone"]["enum"]
    assert len(enum) > 100
    unmapped = [value for value in enum if not zone_for(value).mapped]
    assert unmapped == []
    for value in enum:
        ZoneInfo(zone_for(value).iana)  # tzdata knows every one
    # the only ones that need the override table are the retired Windows zones
    cldr = {timezones.normalise(name) for name in win_tz}
    assert sorted(v for v in enum if v not in cldr) == sorted(timezones.RETIRED)


# --- today ----------------------------------------------------------------------------------------

AUCKLAND = zone_for("NEWZEALANDSTANDARDTIME")
LOS_ANGELES = zone_for("PACIFICSTANDARDTIME")


@pytest.mark.parametrize("zone, moment, today", [
    # Auckland in December is NZDT, UTC+13
    (AUCKLAND, "2026-12-05T10:59:59Z", date(2026, 12, 5)),  # 23:59:59 on the 5th
    (AUCKLAND, "2026-12-05T11:00:00Z", date(2026, 12, 6)),  # midnight: the 6th already
    # Los Angeles in December is PST, UTC-8
    (LOS_ANGELES, "2026-12-06T07:59:59Z", date(2026, 12, 5)),
    (LOS_ANGELES, "2026-12-06T08:00:00Z", date(2026, 12, 6)),
    # the same moment is two dates apart across the Pacific
    (AUCKLAND, "2026-12-05T12:00:00Z", date(2026, 12, 6)),
    (LOS_ANGELES, "2026-12-05T12:00:00Z", date(2026, 12, 5)),
])
def test_org_today_on_both_sides_of_midnight(zone, moment, today):
    with freeze_time(moment):
        assert org_today(zone, _now()) == today


def test_org_today_across_auckland_dst_start():
    """NZDT begins 2026-09-27 02:00 NZST (14:00Z on the 26th): midnight moves from 12:00Z to 11:00Z."""
    with freeze_time("2026-09-26T11:59:59Z"):  # 23:59:59 NZST on the 26th
        assert org_today(AUCKLAND, _now()) == date(2026, 9, 26)
    with freeze_time("2026-09-26T12:00:00Z"):
        assert org_today(AUCKLAND, _now()) == date(2026, 9, 27)
    with freeze_time("2026-09-27T10:59:59Z"):  # 23:59:59 NZDT on the 27th
        assert org_today(AUCKLAND, _now()) == date(2026, 9, 27)
    with freeze_time("2026-09-27T11:00:00Z"):
        assert org_today(AUCKLAND, _now()) == date(2026, 9, 28)


def test_org_today_across_los_angeles_dst_end():
    """PDT ends 2026-11-01 02:00 PDT (09:00Z): midnight moves from 07:00Z to 08:00Z."""
    with freeze_time("2026-11-01T06:59:59Z"):  # 23:59:59 PDT on 31 October
        assert org_today(LOS_ANGELES, _now()) == date(2026, 10, 31)
    with freeze_time("2026-11-01T07:00:00Z"):
        assert org_today(LOS_ANGELES, _now()) == date(2026, 11, 1)
    with freeze_time("2026-11-02T07:59:59Z"):  # 23:59:59 PST on 1 November: a 25-hour day
        assert org_today(LOS_ANGELES, _now()) == date(2026, 11, 1)
    with freeze_time("2026-11-02T08:00:00Z"):
        assert org_today(LOS_ANGELES, _now()) == date(2026, 11, 2)


def test_unmapped_zone_gives_the_utc_date():
    zone = zone_for("MARSSTANDARDTIME")
    with freeze_time("2026-12-05T23:59:59Z"):
        assert org_today(zone, _now()) == date(2026, 12, 5)
    with freeze_time("2026-12-06T00:00:00Z"):
        assert org_today(zone, _now()) == date(2026, 12, 6)


def test_org_today_accepts_any_aware_moment():
    moment = datetime(2026, 12, 6, 0, 30, tzinfo=timezone(timedelta(hours=13)))  # 11:30Z on the 5th
    assert org_today(AUCKLAND, moment) == date(2026, 12, 6)
    assert org_today(LOS_ANGELES, moment) == date(2026, 12, 5)


def test_org_today_refuses_a_naive_moment():
    with pytest.raises(ValueError):
        org_today(AUCKLAND, datetime(2026, 12, 5, 12, 0))
