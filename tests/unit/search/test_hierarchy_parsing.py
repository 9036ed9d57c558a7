"""The parser's side of token ``:below`` / ``:above`` (given expansions) and of ``:of-type``."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from fhir_server.engine.indexing import Indexer
from fhir_server.errors import ErrorCode, FhirError, IssueType
from fhir_server.search.parser import (
    MAX_OR_VALUES,
    ParsedSearch,
    ValueSetCodes,
    hierarchy_key,
    parse_query,
)
from fhir_server.search.registry import default_registry
from fhir_server.storage.query import ChainClause, TokenClause, TokenValue, UriClause

LESIONS = "http://example.org/CodeSystem/lesions"
PIGMENTED = f"{LESIONS}|pigmented"
EXPANSIONS: Mapping[str, ValueSetCodes] = {
    hierarchy_key("below", PIGMENTED): ValueSetCodes(
        ((LESIONS, "pigmented"), (LESIONS, "melanoma"), (LESIONS, "nevus"))),
    hierarchy_key("above", PIGMENTED): ValueSetCodes(
        ((LESIONS, "pigmented"), (LESIONS, "lesion"))),
    hierarchy_key("below", "melanoma"): ValueSetCodes(((LESIONS, "melanoma"),)),
    hierarchy_key("below", "http://nowhere|x"): ValueSetCodes(
        refused="names the code system 'http://nowhere', whose hierarchy is unknown"),
    hierarchy_key("below", "huge"): ValueSetCodes(
        refused="stands for more than 500 codes", too_costly=True),
}


def _parse(indexer: Indexer, resource_type: str, *params: tuple[str, str],
           value_sets: Mapping[str, ValueSetCodes] | None = EXPANSIONS) -> ParsedSearch:
    return parse_query(resource_type, params, registry=default_registry(), coder=indexer,
                       value_sets=value_sets)


def test_below_and_above_become_token_clauses_of_the_expanded_codes(indexer: Indexer) -> None:
    below = _parse(indexer, "Observation", ("code:below", PIGMENTED))
    assert below.clauses == (TokenClause("code", (
        TokenValue(LESIONS, "pigmented"), TokenValue(LESIONS, "melanoma"),
        TokenValue(LESIONS, "nevus"))),)
    above = _parse(indexer, "Observation", ("code:above", PIGMENTED))
    assert above.clauses == (TokenClause("code", (
        TokenValue(LESIONS, "pigmented"), TokenValue(LESIONS, "lesion"))),)


def test_or_ed_values_merge_without_duplicates_and_chains_work(indexer: Indexer) -> None:
    parsed = _parse(indexer, "DiagnosticReport", ("result.code:below", f"{PIGMENTED},melanoma"))
    assert parsed.clauses == (ChainClause("result", "Observation", (TokenClause("code", (
        TokenValue(LESIONS, "pigmented"), TokenValue(LESIONS, "melanoma"),
        TokenValue(LESIONS, "nevus"))),)),)


def test_a_refused_expansion_is_a_400_naming_the_parameter(indexer: Indexer) -> None:
    with pytest.raises(FhirError) as caught:
        _parse(indexer, "Observation", ("code:below", "http://nowhere|x"))
    assert caught.value.error is ErrorCode.BAD_PARAMETER
    assert caught.value.expression == ("code:below",)
    assert caught.value.diagnostics == ("code:below: 'http://nowhere|x' names the code system "
                                        "'http://nowhere', whose hierarchy is unknown")


def test_too_costly_expansions_carry_a_too_costly_issue(indexer: Indexer) -> None:
    with pytest.raises(FhirError) as caught:
        _parse(indexer, "Observation", ("code:below", "huge"))
    assert [issue.issue_type for issue in caught.value.all_issues()] == [
        IssueType.INVALID, IssueType.TOO_COSTLY]


def test_values_standing_for_too_many_codes_together_are_too_costly(indexer: Indexer) -> None:
    wide = {hierarchy_key("below", f"s|{n}"): ValueSetCodes(
        tuple(("s", f"{n}-{leaf}") for leaf in range(100))) for n in range(6)}
    parts = ",".join(f"s|{n}" for n in range(6))
    with pytest.raises(FhirError) as caught:
        _parse(indexer, "Observation", ("code:below", parts), value_sets=wide)
    assert "600 codes" in caught.value.diagnostics
    (clause,) = _parse(indexer, "Observation", ("code:below", "s|1,s|2"), value_sets=wide).clauses
    assert isinstance(clause, TokenClause) and len(clause.values) == 200


def test_without_expansions_the_parameter_is_unsupported(indexer: Indexer) -> None:
    parsed = _parse(indexer, "Observation", ("code:above", PIGMENTED), value_sets=None)
    assert parsed.unknown == ("code:above",)
    assert "not expanded" in parsed.unsupported[0].reason


def test_uri_parameters_keep_their_own_below_and_above(indexer: Indexer) -> None:
    parsed = _parse(indexer, "CodeSystem", ("system:below", PIGMENTED),
                    ("url:above", "http://example.org/a/b"))
    assert parsed.clauses == (UriClause("system", (PIGMENTED,), "below"),
                              UriClause("url", ("http://example.org/a/b",), "above"))


def test_below_on_a_contact_point_is_unsupported(indexer: Indexer) -> None:
    parsed = _parse(indexer, "Patient", ("phone:below", "melanoma"))
    assert parsed.unknown == ("phone:below",)


def test_of_type_matches_the_clear_and_the_blind_forms(indexer: Indexer) -> None:
    types = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
    parsed = _parse(indexer, "Patient", ("identifier:of-type", f"{types}|INS-NIR|180017512345678"))
    clear, blind = indexer.of_type_codes(types, "INS-NIR", "180017512345678")
    assert clear == "INS-NIR|180017512345678"
    assert blind.startswith("INS-NIR|hmac:") and "180017512345678" not in blind
    assert parsed.clauses == (TokenClause("identifier:of-type", (
        TokenValue(types, clear), TokenValue(types, blind))),)


def test_of_type_blind_forms_depend_on_the_type_coding(indexer: Indexer) -> None:
    value = "180017512345678"
    forms = {indexer.of_type_codes(system, code, value)[1].partition("|")[2]
             for system, code in [("a", "INS-NIR"), ("b", "INS-NIR"), ("a", "NH"),
                                  ("a|b", "c"), ("a", "b|c")]}
    assert len(forms) == 5


def test_of_type_values_count_twice_against_the_limit(indexer: Indexer) -> None:
    parts = ",".join(f"t|MR|{n}" for n in range(MAX_OR_VALUES // 2 + 1))
    with pytest.raises(FhirError) as caught:
        _parse(indexer, "Patient", ("identifier:of-type", parts))
    assert caught.value.all_issues()[-1].issue_type is IssueType.TOO_COSTLY
    within = ",".join(f"t|MR|{n}" for n in range(MAX_OR_VALUES // 2))
    assert _parse(indexer, "Patient", ("identifier:of-type", within)).unsupported == ()
