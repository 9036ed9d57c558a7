"""AND-ed ranges on a single-valued parameter become one range test (one index entry)."""

from __future__ import annotations

from fhir_server.search.cardinality import single_valued
from fhir_server.storage.query import Bound, RangeClause
from tests.unit.search_parser.support import parse


def test_single_valued_parameters_are_told_from_the_definitions() -> None:
    assert single_valued("Patient.birthDate", "Patient")
    assert single_valued("Observation.effective", "Observation")  # effective[x], max 1
    assert single_valued("Encounter.period", "Encounter")
    assert not single_valued("Patient.name.family", "Patient")  # name is 0..*
    assert not single_valued("CarePlan.activity.detail.scheduled", "CarePlan")
    assert not single_valued("(Patient.deceased as dateTime)", "Patient")  # not a plain path
    assert not single_valued("Patient.birthDate", "Observation")
    assert not single_valued(None, "Patient")


def test_a_birthdate_range_is_one_clause_whose_tests_combine_both_bounds() -> None:
    parsed = parse("Patient", ("birthdate", "ge1980-01-01"), ("birthdate", "lt1981-01-01"))
    assert len(parsed.clauses) == 1
    clause = parsed.clauses[0]
    assert isinstance(clause, RangeClause) and clause.param == "birthdate"
    # ge = gt or eq, so two tests, each carrying the lt bound too
    assert len(clause.tests) == 2
    upper = Bound("low", "lt", "1981-01-01T00:00:00.000000Z")
    assert all(upper in test.bounds for test in clause.tests)
    assert all(len(test.bounds) >= 2 for test in clause.tests)


def test_clauses_stay_apart_when_the_parameter_may_have_several_values() -> None:
    parsed = parse("CarePlan", ("activity-date", "ge2024-01-01"),
                                ("activity-date", "lt2025-01-01"))
    assert len(parsed.clauses) == 2  # two scheduled dates may each pass one bound


def test_a_lone_range_is_left_as_it_is_and_ne_combines_like_the_others() -> None:
    alone = parse("Patient", ("birthdate", "ge1980-01-01"))
    assert len(alone.clauses) == 1
    with_other = parse("Patient", ("birthdate", "lt1981"), ("gender", "male"),
                       ("birthdate", "ne1980-05-05"))
    ranges = [c for c in with_other.clauses if isinstance(c, RangeClause)]
    assert len(with_other.clauses) == 2 and len(ranges) == 1
    # ne = before or after the day: each alternative also keeps the lt bound
    assert len(ranges[0].tests) == 2
    assert all(Bound("low", "lt", "1981-01-01T00:00:00.000000Z") in test.bounds
               for test in ranges[0].tests)
