"""The organisation's time zone and its "today": pure (no I/O; the moment is passed in).

Xero's `Organisation.Timezone` is a value of its TimeZone enum: a Windows zone id upper-cased
with the spaces, dots and minus signs taken out (`NEWZEALANDSTANDARDTIME`,
`AUSCENTRALWSTANDARDTIME` for "Aus Central W. Standard Time", `UTC02` for "UTC-02"; `UTC+12`
and `EASTERNSTANDARDTIME(MEXICO)` keep their `+` and brackets). It is mapped to IANA through
CLDR's windowsZones table as tzlocal ships it (`tzlocal.windows_tz.win_tz`, keyed by the
spaced Windows names), both sides normalised the same way before matching.

Two of Xero's ids name Windows zones that Windows (and so CLDR) has since retired; they are
mapped to the Windows zone that replaced each (`RETIRED`), and CLDR maps that one. Anything
else that does not match (a missing or unknown id) falls back to UTC with `mapped=False`, so
the caller can say plainly that the organisation's dates are being read in UTC.

"Today" for every rule (saved views, status words, overdue totals, the widget) is
`org_today(zone, now)`: the calendar date in the organisation's zone at that moment.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

FALLBACK = "UTC"

# Retired Windows zones still in Xero's TimeZone enum -> the Windows zone that replaced them.
RETIRED = {
    # "Kamchatka Standard Time" (UTC+12): Windows retired it for "Russia Time Zone 11".
    "KAMCHATKASTANDARDTIME": "Russia Time Zone 11",
    # "Mid-Atlantic Standard Time" (UTC-02): Windows retired it for "UTC-02".
    "MIDATLANTICSTANDARDTIME": "UTC-02",
}

_DROPPED = re.compile(r"[\s.\-]")


def normalise(name: str) -> str:
    """A Windows zone name as Xero writes it: upper case, no spaces, dots or minus signs."""
    return _DROPPED.sub("", name.upper())


def _table() -> dict[str, str]:
    table = {normalise(windows): iana for windows, iana in win_tz.items()}
    for xero, windows in RETIRED.items():
        table.setdefault(xero, win_tz[windows])
    return table


_IANA = _table()


@dataclass(frozen=True)
class OrgZone:
    xero: str | None  # as Xero sent it
    iana: str  # e.g. "Pacific/Auckland"; "UTC" when unmapped
    mapped: bool  # False: Xero's id was missing or unknown and we fell back to UTC

    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.iana)

    def warning(self, name: str = "Xero time zone") -> str | None:
        """What to tell people when the zone is a fallback; None when it is the organisation's."""
        if self.mapped:
            return None
        if not self.xero:
            return f"{name} is not known yet; dates use UTC"
        return f"{name} {self.xero!r} is unknown; dates use UTC"


@lru_cache(maxsize=512)
def zone_for(xero_timezone: str | None) -> OrgZone:
    """The organisation's zone for Xero's `Organisation.Timezone` (UTC, unmapped, when unknown)."""
    if xero_timezone is None or not xero_timezone.strip():
        return OrgZone(xero=xero_timezone, iana=FALLBACK, mapped=False)
    iana = _IANA.get(normalise(xero_timezone))
    if iana is None:
        return OrgZone(xero=xero_timezone, iana=FALLBACK, mapped=False)
    try:
        ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):  # tzdata lacks it: never fail a read over it
        return OrgZone(xero=xero_timezone, iana=FALLBACK, mapped=False)
    return OrgZone(xero=xero_timezone, iana=iana, mapped=True)


def org_today(zone: OrgZone, now: datetime) -> date:
    """The organisation's date at `now` (an aware moment, normally UTC)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("org_today needs an aware datetime (UTC), not a naive one")
    return now.astimezone(zone.tzinfo()).date()
