"""Search prefixes (eq ne gt lt ge le sa eb ap) turned into bounds on an index entry's range.

Spec: https://hl7.org/fhir/R4/search.html#prefix (prefixes), #number, #date, #quantity.

Every date, number and quantity index entry is a closed range E = [E.low, E.high]: the span a
date covers at its precision, or the implicit precision range of a stored number. The search
value gives S = [S.low, S.high] the same way, and v is the number as written. ``RULES`` below is
the only place where a prefix gets its meaning; the stores only compare ranges.

Dates follow the spec's range wording literally:
- eq: S fully contains E; ne: it does not (some end of E lies outside S);
- gt: the range above S overlaps E (E.high > S.high); lt: the range below S overlaps E;
- ge: gt, or S fully contains E; le: lt, or S fully contains E (the spec's "or" read as a union,
  so ``ge2024`` does not match a period that started in 2023 and ended inside 2024);
- sa: E starts after S ends; eb: E ends before S starts;
- ap: E overlaps S widened on both sides by 10 % of the gap between now and S, at least a day.

Numbers and quantities: the search value's precision range counts for eq, ne and ap only; the
other prefixes compare with v itself, as the spec says ("the implicit precision of the number is
ignored"). A stored value p is held as [p-d, p+d]:
- gt and sa: E.low > v; lt and eb: E.high < v; ge: E.high >= v; le: E.low <= v. Exact when the
  stored value is exact (d = 0) or has the search value's precision; they can only err when the
  search value is the more precise (``gt37.9`` misses a stored ``38``);
- eq: E overlaps S, ends excluded; ne: E does not overlap S. Exact for stored values of the
  search's precision (99 and 101 never match ``100`` = [99.5, 100.5]). A stored value on an end of
  S matches when it has a precision range (99.5 and 100.5 both match ``100``) and does not when
  it is exact, where the spec's half-open [99.5, 100.5) would take 99.5 but not 100.5;
- ap: E overlaps S widened to v +/- 10 % of |v|.

``ne`` is expanded per entry (some value of the resource differs), which keeps OR lists and
AND-ed parameters composable and never matches a resource that has no value at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Final, Literal, TypeAlias

from fhir_server.engine.instants import fhir_range, from_instant, to_instant
from fhir_server.storage.query import Bound, LastUpdatedClause, RangeTest

Field: TypeAlias = Literal["low", "high"]
Op: TypeAlias = Literal["lt", "le", "gt", "ge"]
Anchor: TypeAlias = Literal["S.low", "S.high", "A.low", "A.high", "v"]
Condition: TypeAlias = tuple[Field, Op, Anchor]
Rule: TypeAlias = tuple[tuple[Condition, ...], ...]
"""Alternatives (OR), each a set of conditions (AND) on one entry: ``E.<field> <op> <anchor>``.
Anchors: S = the search value's range, A = its widened range for ``ap``, v = the written number."""


@dataclass(frozen=True, slots=True)
class PrefixRule:
    """What one prefix means, for date entries and for number/quantity entries."""

    date: Rule
    value: Rule


_WITHIN: Final = (("low", "ge", "S.low"), ("high", "le", "S.high"))
_OVERLAPS_A: Final = (("low", "le", "A.high"), ("high", "ge", "A.low"))

RULES: Final = MappingProxyType({
    #      date entries                                     number and quantity entries
    "eq": PrefixRule(date=(_WITHIN,),
                     value=((("low", "lt", "S.high"), ("high", "gt", "S.low")),)),
    "ne": PrefixRule(date=((("low", "lt", "S.low"),), (("high", "gt", "S.high"),)),
                     value=((("high", "le", "S.low"),), (("low", "ge", "S.high"),))),
    "gt": PrefixRule(date=((("high", "gt", "S.high"),),),
                     value=((("low", "gt", "v"),),)),
    "lt": PrefixRule(date=((("low", "lt", "S.low"),),),
                     value=((("high", "lt", "v"),),)),
    "ge": PrefixRule(date=((("high", "gt", "S.high"),), _WITHIN),
                     value=((("high", "ge", "v"),),)),
    "le": PrefixRule(date=((("low", "lt", "S.low"),), _WITHIN),
                     value=((("low", "le", "v"),),)),
    "sa": PrefixRule(date=((("low", "gt", "S.high"),),),
                     value=((("low", "gt", "v"),),)),
    "eb": PrefixRule(date=((("high", "lt", "S.low"),),),
                     value=((("high", "lt", "v"),),)),
    "ap": PrefixRule(date=(_OVERLAPS_A,), value=(_OVERLAPS_A,)),
})

PREFIXES: Final = tuple(RULES)
_AP_FRACTION: Final = Decimal("0.1")
_AP_MIN_DATE_MARGIN: Final = timedelta(days=1)
_NUMBER_RE: Final = re.compile(r"^[+-]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d{1,3})?$")


def split_prefix(text: str) -> tuple[str, str]:
    """``("ge", "2024")`` for ``"ge2024"``; ``("eq", text)`` when no prefix is written."""
    if text[:2] in RULES:
        return text[:2], text[2:]
    return "eq", text


def number_range(text: str) -> tuple[Decimal, Decimal, Decimal]:
    """The written number and its implicit precision range: ``(v, low, high)``.

    ``100`` → [99.5, 100.5], ``100.00`` → [99.995, 100.005]. Exponent notation never makes the
    precision coarser than units: ``1e2`` reads as ``100``. Raises ValueError for a non-number.
    """
    if not _NUMBER_RE.match(text):
        raise ValueError(f"not a number: {text!r}")
    value = Decimal(text)
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    half_step = Decimal(5).scaleb(min(exponent, 0) - 1)
    return value, value - half_step, value + half_step


def date_tests(prefix: str, text: str, *, now: datetime) -> tuple[RangeTest, ...]:
    """The tests an entry must pass for ``<prefix><date>``. Raises ValueError for a bad date."""
    low, high = fhir_range(text)
    margin = _date_margin(low, high, now)
    anchors: dict[Anchor, str | float] = {
        "S.low": low, "S.high": high,
        "A.low": to_instant(from_instant(low) - margin),
        "A.high": to_instant(from_instant(high) + margin)}
    return _tests(RULES[prefix].date, anchors)


def value_tests(prefix: str, text: str, *, system: str | None = None,
                code: str | None = None, factor: Decimal = Decimal(1)) -> tuple[RangeTest, ...]:
    """The tests a number or quantity entry must pass for ``<prefix><number>``.

    ``factor``: the number and its precision range are first multiplied by it (a quantity
    converted to its canonical unit). Raises ValueError when ``text`` is not a number.
    """
    value, low, high = (bound * factor for bound in number_range(text))
    spread = abs(value) * _AP_FRACTION
    anchors: dict[Anchor, str | float] = {
        "S.low": float(low), "S.high": float(high), "v": float(value),
        "A.low": float(min(low, value - spread)), "A.high": float(max(high, value + spread))}
    return _tests(RULES[prefix].value, anchors, system=system, code=code)


def last_updated_clause(prefix: str, text: str, *, now: datetime) -> LastUpdatedClause | None:
    """``_lastUpdated`` as one interval of instants: the date rules applied to a point entry.

    None when the prefix selects two disjoint intervals (``ne``), which the clause cannot hold.
    Raises ValueError for a bad date.
    """
    intervals = [_point_interval(test) for test in date_tests(prefix, text, now=now)]
    merged: LastUpdatedClause | None = intervals[0]
    for interval in intervals[1:]:
        merged = _merge(merged, interval) if merged is not None else None
    return merged


def _date_margin(low: str, high: str, now: datetime) -> timedelta:
    """10 % of the gap between now and [low, high], and at least one day."""
    start, end = from_instant(low), from_instant(high)
    gap = start - now if now < start else now - end if now > end else timedelta(0)
    return max(gap * float(_AP_FRACTION), _AP_MIN_DATE_MARGIN)


def _tests(rule: Rule, anchors: dict[Anchor, str | float], *, system: str | None = None,
           code: str | None = None) -> tuple[RangeTest, ...]:
    return tuple(RangeTest(tuple(Bound(field, op, anchors[anchor])
                                 for field, op, anchor in alternative), system, code)
                 for alternative in rule)


def _point_interval(test: RangeTest) -> LastUpdatedClause:
    """The points p for which every bound of ``test`` holds when E.low = E.high = p."""
    low: str | None = None
    high: str | None = None
    low_inclusive = high_inclusive = True
    for bound in test.bounds:
        assert isinstance(bound.value, str)
        if bound.op in ("gt", "ge"):
            low, low_inclusive = bound.value, bound.op == "ge"
        else:
            high, high_inclusive = bound.value, bound.op == "le"
    return LastUpdatedClause(low, high, low_inclusive, high_inclusive)


def _merge(a: LastUpdatedClause, b: LastUpdatedClause) -> LastUpdatedClause | None:
    """The union of two intervals when it is one interval, else None."""
    if b.low is None or (a.low is not None and a.low > b.low):
        a, b = b, a
    touches = (a.high is None or b.low is None or a.high > b.low
               or (a.high == b.low and (a.high_inclusive or b.low_inclusive)))
    if not touches:
        return None
    if a.high is None or (b.high is not None and a.high > b.high):
        high, high_inclusive = a.high, a.high_inclusive
    elif a.high == b.high:
        high, high_inclusive = a.high, a.high_inclusive or b.high_inclusive
    else:
        high, high_inclusive = b.high, b.high_inclusive
    low_inclusive = a.low_inclusive or (a.low == b.low and b.low_inclusive)
    return LastUpdatedClause(a.low, high, low_inclusive, high_inclusive)
