"""The prefix table: each prefix at the boundaries of date and number ranges, and _lastUpdated."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from fhir_server.engine.instants import from_instant, to_instant
from fhir_server.search.prefixes import (
    PREFIXES,
    date_tests,
    last_updated_clause,
    number_range,
    split_prefix,
    value_tests,
)
from fhir_server.storage.query import LastUpdatedClause
from tests.unit.search_parser.support import NOW, passes

MARCH_LOW = "2024-03-01T00:00:00.000000Z"
MARCH_HIGH = "2024-03-31T23:59:59.999999Z"


def shift(instant: str, **delta: float) -> str:
    return to_instant(from_instant(instant) + timedelta(**delta))


def point(instant: str) -> tuple[str, str]:
    return instant, instant


ENTRIES = {
    "at S.low": point(MARCH_LOW),
    "at S.high": point(MARCH_HIGH),
    "just before": point(shift(MARCH_LOW, microseconds=-1)),
    "just after": point(shift(MARCH_HIGH, microseconds=1)),
    "straddles S.low": ("2024-02-15T00:00:00.000000Z", "2024-03-10T00:00:00.000000Z"),
    "straddles S.high": ("2024-03-20T00:00:00.000000Z", "2024-04-10T00:00:00.000000Z"),
    "contains S": ("2024-02-01T00:00:00.000000Z", "2024-04-30T00:00:00.000000Z"),
    "inside S": ("2024-03-05T00:00:00.000000Z", "2024-03-06T00:00:00.000000Z"),
}

# Which entries ``<prefix>2024-03`` matches, per the spec's range rules (see prefixes.py).
EXPECTED = {
    "eq": {"at S.low", "at S.high", "inside S"},
    "ne": {"just before", "just after", "straddles S.low", "straddles S.high", "contains S"},
    "gt": {"just after", "straddles S.high", "contains S"},
    "lt": {"just before", "straddles S.low", "contains S"},
    "ge": {"at S.low", "at S.high", "inside S", "just after", "straddles S.high", "contains S"},
    "le": {"at S.low", "at S.high", "inside S", "just before", "straddles S.low", "contains S"},
    "sa": {"just after"},
    "eb": {"just before"},
    "ap": set(ENTRIES),
}


@pytest.mark.parametrize("prefix", sorted(EXPECTED))
def test_date_prefix_on_each_kind_of_entry(prefix: str) -> None:
    tests = date_tests(prefix, "2024-03", now=NOW)
    matched = {name for name, (low, high) in ENTRIES.items() if passes(tests, low, high)}
    assert matched == EXPECTED[prefix]


def test_every_prefix_has_an_expectation() -> None:
    assert set(PREFIXES) == set(EXPECTED) == {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb",
                                              "ap"}


@pytest.mark.parametrize(("value", "low", "high"), [
    ("2024", "2024-01-01T00:00:00.000000Z", "2024-12-31T23:59:59.999999Z"),
    ("2024-02", "2024-02-01T00:00:00.000000Z", "2024-02-29T23:59:59.999999Z"),
    ("2024-03-05", "2024-03-05T00:00:00.000000Z", "2024-03-05T23:59:59.999999Z"),
    ("2024-03-05T10:30", "2024-03-05T10:30:00.000000Z", "2024-03-05T10:30:59.999999Z"),
    ("2024-03-05T10:30:00+01:00", "2024-03-05T09:30:00.000000Z", "2024-03-05T09:30:00.999999Z"),
    ("2024-03-05T10:30:00-05:00", "2024-03-05T15:30:00.000000Z", "2024-03-05T15:30:00.999999Z"),
    ("2024-03-05T10:30:00", "2024-03-05T10:30:00.000000Z", "2024-03-05T10:30:00.999999Z"),
    ("2024-03-05T10:30:00.250Z", "2024-03-05T10:30:00.250000Z", "2024-03-05T10:30:00.250999Z"),
])
def test_partial_dates_and_zones_at_their_boundaries(value: str, low: str, high: str) -> None:
    eq = date_tests("eq", value, now=NOW)
    assert passes(eq, *point(low)) and passes(eq, *point(high))
    assert not passes(eq, *point(shift(low, microseconds=-1)))
    assert not passes(eq, *point(shift(high, microseconds=1)))
    gt, lt = date_tests("gt", value, now=NOW), date_tests("lt", value, now=NOW)
    assert passes(gt, *point(shift(high, microseconds=1))) and not passes(gt, *point(high))
    assert passes(lt, *point(shift(low, microseconds=-1))) and not passes(lt, *point(low))


def test_date_ap_is_at_least_a_day_around_a_value_that_contains_now() -> None:
    ap = date_tests("ap", "2024-06-15", now=NOW)
    assert passes(ap, *point("2024-06-14T00:00:00.000000Z"))
    assert not passes(ap, *point("2024-06-13T23:59:59.999999Z"))
    assert passes(ap, *point("2024-06-16T23:59:59.999999Z"))
    assert not passes(ap, *point("2024-06-17T00:00:00.000000Z"))


def test_date_ap_widens_by_ten_percent_of_the_gap_to_now() -> None:
    ap = date_tests("ap", "2014", now=NOW)  # about 9.5 years ago: about 345 days each side
    assert passes(ap, *point("2015-12-01T00:00:00.000000Z"))
    assert not passes(ap, *point("2015-12-31T00:00:00.000000Z"))
    assert passes(ap, *point("2013-02-01T00:00:00.000000Z"))
    assert not passes(ap, *point("2013-01-01T00:00:00.000000Z"))


@pytest.mark.parametrize("text", ["2024-13", "2024-02-30", "24", "2024-03-05T25:00", "", "soon",
                                  "2024-03-05T10:30:00+1"])
def test_a_bad_date_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        date_tests("eq", text, now=NOW)


def test_split_prefix() -> None:
    assert split_prefix("ge2024") == ("ge", "2024")
    assert split_prefix("2024") == ("eq", "2024")
    assert split_prefix("xx2024") == ("eq", "xx2024")
    assert split_prefix("-5") == ("eq", "-5")


@pytest.mark.parametrize(("text", "low", "high"), [
    ("100", "99.5", "100.5"),
    ("1e2", "99.5", "100.5"),
    ("100.00", "99.995", "100.005"),
    ("0.1", "0.05", "0.15"),
    ("-3", "-3.5", "-2.5"),
    ("1.5e1", "14.5", "15.5"),
    ("2.50E-1", "0.2495", "0.2505"),
])
def test_number_precision_range(text: str, low: str, high: str) -> None:
    value, range_low, range_high = number_range(text)
    assert (range_low, range_high) == (Decimal(low), Decimal(high))
    assert value == Decimal(text)


@pytest.mark.parametrize("text", ["", "abc", "1.", "1e", "NaN", "Infinity", "1,5", "1e9999",
                                  "0x10"])
def test_a_bad_number_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        number_range(text)


def stored(text: str) -> tuple[float, float]:
    """A stored number's entry: its implicit precision range."""
    _, low, high = number_range(text)
    return float(low), float(high)


NUMBER_EXPECTED = {
    # stored values:   99     99.5   99.6  100   100.0  100.4  100.5  101
    "eq": {"99.5", "99.6", "100", "100.0", "100.4", "100.5"},
    "ne": {"99", "101"},
    "gt": {"100.4", "100.5", "101"},
    "lt": {"99", "99.5", "99.6"},
    "ge": {"100", "100.0", "100.4", "100.5", "101"},
    "le": {"99", "99.5", "99.6", "100", "100.0"},
    "sa": {"100.4", "100.5", "101"},
    "eb": {"99", "99.5", "99.6"},
    "ap": {"99", "99.5", "99.6", "100", "100.0", "100.4", "100.5", "101"},
}


@pytest.mark.parametrize("prefix", sorted(NUMBER_EXPECTED))
def test_number_prefix_against_stored_values_around_100(prefix: str) -> None:
    tests = value_tests(prefix, "100")
    values = ["99", "99.5", "99.6", "100", "100.0", "100.4", "100.5", "101"]
    assert {v for v in values if passes(tests, *stored(v))} == NUMBER_EXPECTED[prefix]


def test_number_comparisons_are_exact_on_exact_entries() -> None:
    for prefix, below, equal, above in [("gt", False, False, True), ("ge", False, True, True),
                                        ("lt", True, False, False), ("le", True, True, False)]:
        tests = value_tests(prefix, "100")
        assert [passes(tests, v, v) for v in (99.999, 100.0, 100.001)] == [below, equal, above]


def test_number_eq_uses_the_search_precision() -> None:
    precise = value_tests("eq", "100.00")
    assert passes(precise, *stored("100.004")) and not passes(precise, *stored("100.006"))
    assert not passes(precise, 100.005, 100.005)


def test_number_ap_is_ten_percent() -> None:
    ap = value_tests("ap", "100")
    assert passes(ap, *stored("90")) and passes(ap, *stored("110"))
    assert not passes(ap, *stored("89")) and not passes(ap, *stored("111"))
    near_zero = value_tests("ap", "0")
    assert passes(near_zero, 0.4, 0.4) and not passes(near_zero, 0.6, 0.6)


def test_quantity_tests_carry_system_and_code() -> None:
    tests = value_tests("ne", "5.4", system="http://unitsofmeasure.org", code="mg")
    assert len(tests) == 2
    assert {(t.system, t.code) for t in tests} == {("http://unitsofmeasure.org", "mg")}


@pytest.mark.parametrize(("prefix", "expected"), [
    ("eq", LastUpdatedClause(MARCH_LOW, MARCH_HIGH)),
    ("gt", LastUpdatedClause(MARCH_HIGH, None, low_inclusive=False)),
    ("sa", LastUpdatedClause(MARCH_HIGH, None, low_inclusive=False)),
    ("ge", LastUpdatedClause(MARCH_LOW, None)),
    ("lt", LastUpdatedClause(None, MARCH_LOW, high_inclusive=False)),
    ("eb", LastUpdatedClause(None, MARCH_LOW, high_inclusive=False)),
    ("le", LastUpdatedClause(None, MARCH_HIGH)),
])
def test_last_updated_interval(prefix: str, expected: LastUpdatedClause) -> None:
    assert last_updated_clause(prefix, "2024-03", now=NOW) == expected


def test_last_updated_ne_is_not_one_interval() -> None:
    assert last_updated_clause("ne", "2024-03", now=NOW) is None


@pytest.mark.parametrize("prefix", [p for p in PREFIXES if p != "ne"])
def test_last_updated_agrees_with_the_table_on_points(prefix: str) -> None:
    clause = last_updated_clause(prefix, "2024-03", now=NOW)
    assert clause is not None
    for instant in [shift(MARCH_LOW, days=-30), shift(MARCH_LOW, days=-6),
                    shift(MARCH_LOW, microseconds=-1), MARCH_LOW, "2024-03-15T00:00:00.000000Z",
                    MARCH_HIGH, shift(MARCH_HIGH, microseconds=1), shift(MARCH_HIGH, days=8),
                    shift(MARCH_HIGH, days=30)]:
        assert within(clause, instant) == passes(date_tests(prefix, "2024-03", now=NOW),
                                                  instant, instant), (prefix, instant)


def within(clause: LastUpdatedClause, instant: str) -> bool:
    above = clause.low is None or (instant >= clause.low if clause.low_inclusive
                                   else instant > clause.low)
    below = clause.high is None or (instant <= clause.high if clause.high_inclusive
                                    else instant < clause.high)
    return above and below
