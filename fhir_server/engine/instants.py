"""Instants and FHIR date ranges as fixed-width UTC strings, so that string order is time order."""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<z>Z|[+-]\d{2}:\d{2})?)?)?)?$")


def to_instant(moment: datetime) -> str:
    """A timezone-aware datetime as a fixed-width UTC instant string."""
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def now_instant() -> str:
    """The current time as a fixed-width UTC instant."""
    return to_instant(datetime.now(UTC))


def instant_after(previous: str) -> str:
    """Now, or one microsecond after ``previous`` when the clock has not moved past it."""
    current = now_instant()
    if current > previous:
        return current
    return to_instant(from_instant(previous) + timedelta(microseconds=1))


def from_instant(value: str) -> datetime:
    """Parse a fixed-width instant produced by ``to_instant``."""
    return datetime.strptime(value, _FORMAT).replace(tzinfo=UTC)


def fhir_range(value: str) -> tuple[str, str]:
    """The [low, high] instants covered by a FHIR date, dateTime or instant value.

    ``2024`` covers the whole year, ``2024-03`` the month, ``2024-03-05`` the day, a dateTime
    down to its precision. A value without a zone is read as UTC (documented choice).
    Raises ValueError for anything that is not a FHIR date/dateTime/instant.
    """
    match = _DATE_RE.match(value.strip())
    if not match:
        raise ValueError(f"not a FHIR date or dateTime: {value!r}")
    parts = match.groupdict()
    year = int(parts["y"])
    month = int(parts["m"]) if parts["m"] else None
    day = int(parts["d"]) if parts["d"] else None
    zone = parts["z"]
    tz: timezone = UTC
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(timedelta(minutes=sign * (int(zone[1:3]) * 60 + int(zone[4:6]))))
    if month is None:
        low = datetime(year, 1, 1, tzinfo=tz)
        high = datetime(year + 1, 1, 1, tzinfo=tz)
    elif day is None:
        low = datetime(year, month, 1, tzinfo=tz)
        high = low + timedelta(days=monthrange(year, month)[1])
    elif parts["H"] is None:
        low = datetime(year, month, day, tzinfo=tz)
        high = low + timedelta(days=1)
    else:
        hour, minute = int(parts["H"]), int(parts["M"])
        if parts["S"] is None:
            low = datetime(year, month, day, hour, minute, tzinfo=tz)
            high = low + timedelta(minutes=1)
        else:
            fraction = parts["f"] or ""
            micro = int((fraction + "000000")[:6]) if fraction else 0
            low = datetime(year, month, day, hour, minute, int(parts["S"]), micro, tzinfo=tz)
            step = timedelta(microseconds=10 ** (6 - min(len(fraction), 6))) if fraction \
                else timedelta(seconds=1)
            high = low + step
    return to_instant(low), to_instant(high - timedelta(microseconds=1))


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(instant: str) -> str:
    """An instant as an HTTP date (RFC 9110 IMF-fixdate), for Last-Modified. On every answer."""
    moment = datetime.fromisoformat(instant)
    return (f"{_DAYS[moment.weekday()]}, {moment.day:02d} {_MONTHS[moment.month - 1]} "
            f"{moment.year:04d} {instant[11:19]} GMT")


def parse_http_date(value: str) -> str | None:
    """An HTTP date header as an instant, or None when it cannot be parsed."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return to_instant(parsed)
