"""``:in`` / ``:not-in`` on tokens: the parser turns given ValueSet codes into a token clause."""

from __future__ import annotations

from collections.abc import Mapping

from fhir_server.engine.valuesets import value_set_parameters
from fhir_server.search.parser import ParsedSearch, ValueSetCodes, parse_query
from fhir_server.search.registry import default_registry
from fhir_server.storage.query import ChainClause, TokenClause, TokenValue
from tests.support.factories import NIR_SYSTEM
from tests.unit.search_parser.support import BASE_URL, INDEXER, NOW

LOINC = "http://loinc.org"
VITALS = "http://example.org/ValueSet/vitals"
EXPANSIONS: Mapping[str, ValueSetCodes] = {
    VITALS: ValueSetCodes(((LOINC, "8310-5"), (LOINC, "8867-4"))),
    "ValueSet/temperatures": ValueSetCodes(((LOINC, "8310-5"), (None, "local-temp"))),
    "ValueSet/by-filter": ValueSetCodes(unsupported="the ValueSet 'ValueSet/by-filter' cannot "
                                                    "be expanded here: it uses a filter"),
    "ValueSet/empty": ValueSetCodes(()),
}


def parse(resource_type: str, *params: tuple[str, str],
          value_sets: Mapping[str, ValueSetCodes] | None = EXPANSIONS) -> ParsedSearch:
    return parse_query(resource_type, params, registry=default_registry(), coder=INDEXER,
                       base_url=BASE_URL, now=NOW, value_sets=value_sets)


def test_in_becomes_a_token_clause_of_the_value_set_codes() -> None:
    parsed = parse("Observation", ("code:in", VITALS))
    assert parsed.unsupported == ()
    assert parsed.clauses == (TokenClause("code", (TokenValue(LOINC, "8310-5"),
                                                   TokenValue(LOINC, "8867-4"))),)


def test_not_in_negates_the_same_clause() -> None:
    parsed = parse("Observation", ("code:not-in", VITALS))
    assert parsed.clauses == (TokenClause("code", (TokenValue(LOINC, "8310-5"),
                                                   TokenValue(LOINC, "8867-4")), negate=True),)


def test_comma_ors_value_sets_into_one_clause_without_duplicates() -> None:
    parsed = parse("Observation", ("code:in", f"{VITALS},ValueSet/temperatures"))
    assert parsed.clauses == (TokenClause("code", (
        TokenValue(LOINC, "8310-5"), TokenValue(LOINC, "8867-4"),
        TokenValue(None, "local-temp"))),)


def test_empty_value_set_matches_nothing_or_everything() -> None:
    assert parse("Observation", ("code:in", "ValueSet/empty")).clauses == (
        TokenClause("code", ()),)
    assert parse("Observation", ("code:not-in", "ValueSet/empty")).clauses == (
        TokenClause("code", (), negate=True),)


def test_codes_of_a_sensitive_system_are_searched_by_their_blind_index() -> None:
    value_sets = {"ValueSet/nir": ValueSetCodes(((NIR_SYSTEM, "1800175000001"),))}
    parsed = parse("Patient", ("identifier:in", "ValueSet/nir"), value_sets=value_sets)
    assert parsed.clauses == (TokenClause("identifier", (
        TokenValue(NIR_SYSTEM, f"blind:{NIR_SYSTEM}:1800175000001"),)),)


def test_in_works_inside_a_chain() -> None:
    parsed = parse("DiagnosticReport", ("result.code:in", VITALS))
    assert parsed.unsupported == ()
    assert parsed.clauses == (ChainClause("result", "Observation", (TokenClause("code", (
        TokenValue(LOINC, "8310-5"), TokenValue(LOINC, "8867-4"))),)),)


def test_a_value_set_that_cannot_be_expanded_makes_the_parameter_unsupported() -> None:
    parsed = parse("Observation", ("code:in", "ValueSet/by-filter"), ("status", "final"))
    assert parsed.unknown == ("code:in",)
    assert "uses a filter" in parsed.unsupported[0].reason
    assert parsed.clauses == (TokenClause("status", (TokenValue(None, "final"),)),)


def test_a_value_set_not_expanded_by_the_caller_is_unsupported() -> None:
    parsed = parse("Observation", ("code:not-in", VITALS), value_sets=None)
    assert parsed.unknown == ("code:not-in",)
    assert VITALS in parsed.unsupported[0].reason
    assert "not expanded" in parsed.unsupported[0].reason


def test_in_on_a_contact_point_parameter_is_unsupported() -> None:
    parsed = parse("Patient", ("phone:in", VITALS))
    assert parsed.unknown == ("phone:in",)
    assert ":in" in parsed.unsupported[0].reason


def test_value_set_parameters_lists_each_in_parameter_with_its_references() -> None:
    assert value_set_parameters([
        ("code:in", f"{VITALS}|2.0,ValueSet/temperatures"),
        ("subject:Patient.gender:not-in", "ValueSet/genders"),
        ("code", "8310-5"), ("code:in", ""), ("value\\,x:in", "a\\,b"),
    ]) == (("code:in", (f"{VITALS}|2.0", "ValueSet/temperatures")),
           ("subject:Patient.gender:not-in", ("ValueSet/genders",)),
           ("code:in", ()),
           ("value\\,x:in", ("a,b",)))
