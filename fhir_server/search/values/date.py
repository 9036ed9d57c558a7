"""Date values → ``DateEntry`` [low, high] as fixed-width UTC instants (inclusive).

date, dateTime, instant (and a string that reads as one): the range its precision covers
(``fhir_range``); Period: from its start's low (or the lowest instant) to its end's high (or the
highest); Timing: each event. A value that does not parse gives no entry.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir_server.engine.instants import fhir_range
from fhir_server.search.values import Converter, IdentifierProtection
from fhir_server.storage.index import DateEntry, IndexEntry

LOWEST = "0001-01-01T00:00:00.000000Z"
HIGHEST = "9999-12-31T23:59:59.999999Z"
_DATES = frozenset({"date", "dateTime", "instant", "string"})


def converter(value_type: str | None, protection: IdentifierProtection) -> Converter | None:
    """The date converter for values of one FHIR type (None: decided per value)."""
    if value_type in _DATES:
        return add_date
    if value_type == "Period":
        return add_period
    if value_type == "Timing":
        return add_timing
    if value_type is None:
        return add_any
    return None


def date_range(value: Any) -> tuple[str, str] | None:
    """The instants a date value covers, or None when it is not a date.

    A full date (``1980-02-03``, the common birthDate) is its UTC day, as ``fhir_range`` says,
    without the general parse; everything else goes through ``fhir_range``.
    """
    if not isinstance(value, str):
        return None
    try:
        if len(value) == 10 and value[4] == "-" and value[7] == "-":
            day = dt.date.fromisoformat(value).isoformat()
            return f"{day}T00:00:00.000000Z", f"{day}T23:59:59.999999Z"
        return fhir_range(value)
    except ValueError:
        return None


def add_date(code: str, value: Any, out: list[IndexEntry]) -> None:
    covered = date_range(value)
    if covered is not None:
        out.append(DateEntry(code, covered[0], covered[1]))


def add_period(code: str, value: Any, out: list[IndexEntry]) -> None:
    if type(value) is not dict:
        return
    start, end = value.get("start"), value.get("end")
    if start is None and end is None:
        return
    low = date_range(start) if start is not None else (LOWEST, LOWEST)
    high = date_range(end) if end is not None else (HIGHEST, HIGHEST)
    if low is not None and high is not None:
        out.append(DateEntry(code, low[0], high[1]))


def add_timing(code: str, value: Any, out: list[IndexEntry]) -> None:
    if type(value) is dict and type(events := value.get("event")) is list:
        for event in events:
            add_date(code, event, out)


def add_any(code: str, value: Any, out: list[IndexEntry]) -> None:
    """For values whose type is only known at run time: a date string, a Period or a Timing."""
    if isinstance(value, str):
        add_date(code, value, out)
    elif type(value) is dict:
        if "event" in value or "repeat" in value:
            add_timing(code, value, out)
        else:
            add_period(code, value, out)
