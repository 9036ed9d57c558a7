"""Tests for the expansion side of fhir_server.validation.terminology: listing a ValueSet's codes
with displays and designations, and saying why when it cannot."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.validation.terminology import (
    CannotExpand,
    ExpansionTooLarge,
    Terminology,
    core_terminology,
    fold,
    index_code_system,
    same_language,
)

CS = "http://example.org/cs"


def _code_system(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "CodeSystem", "url": CS, "version": "2", "language": "fr",
            "content": "complete", "property": [{"code": "kind", "type": "code"}],
            "concept": [
                {"code": "a", "display": "Été", "designation": [{"language": "en",
                                                                  "value": "Summer"}],
                 "property": [{"code": "kind", "valueCode": "x"}],
                 "concept": [{"code": "a1", "display": "Juillet"},
                             {"code": "a2", "display": "Août"}]},
                {"code": "b", "display": "Hiver"}], **extra}


def _value_set(url: str, **compose: Any) -> dict[str, Any]:
    return {"resourceType": "ValueSet", "url": url, "compose": compose}


def _codes(terminology: Terminology, value_set: dict[str, Any]) -> list[str]:
    return [code.code for code in terminology.expand(value_set)]


def test_index_keeps_document_order_details_and_parents() -> None:
    index = index_code_system(_code_system())
    assert list(index.concepts) == ["a", "a1", "a2", "b"]
    assert index.parents("a2") == ("a",) and index.parents("a") == ()
    details = index.concepts["a"]
    assert details.display == "Été" and details.designations[0].value == "Summer"
    assert details.properties == (("kind", "valueCode", "x"),)
    assert (index.version, index.language) == ("2", "fr")


def test_whole_system_filters_and_excludes() -> None:
    terminology = Terminology([_code_system()], core=False)
    whole = _value_set("http://example.org/vs", include=[{"system": CS}],
                       exclude=[{"system": CS, "concept": [{"code": "a1"}]}])
    assert _codes(terminology, whole) == ["a", "a2", "b"]
    below = _value_set("http://example.org/below", include=[{"system": CS, "filter": [
        {"property": "concept", "op": "descendent-of", "value": "a"}]}])
    assert _codes(terminology, below) == ["a1", "a2"]
    regex = _value_set("http://example.org/regex", include=[{"system": CS, "filter": [
        {"property": "code", "op": "regex", "value": "a\\d"}]}])
    assert _codes(terminology, regex) == ["a1", "a2"]


def test_listed_concepts_keep_their_display_or_take_the_code_systems() -> None:
    terminology = Terminology([_code_system()], core=False)
    listed = _value_set("http://example.org/vs", include=[
        {"system": CS, "concept": [{"code": "b", "display": "L'hiver"}, {"code": "a"}]},
        {"system": "urn:ietf:bcp:13", "concept": [{"code": "image/png", "display": "PNG"}]}])
    codes = terminology.expand(listed)
    assert [(c.code, c.display) for c in codes] == [("b", "L'hiver"), ("a", "Été"),
                                                    ("image/png", "PNG")]
    assert codes[1].display_in("en") == "Summer" and codes[1].display_in("fr-FR") == "Été"
    assert codes[0].version == "2" and codes[2].version is None


def test_nested_value_sets_intersect_and_cycles_are_refused() -> None:
    inner = _value_set("http://example.org/inner", include=[{"system": CS}])
    outer = _value_set("http://example.org/outer", include=[
        {"system": CS, "concept": [{"code": "b"}, {"code": "zz"}],
         "valueSet": ["http://example.org/inner"]}])
    terminology = Terminology([_code_system(), inner, outer], core=False)
    assert _codes(terminology, outer) == ["b"]
    cycle = _value_set("http://example.org/cycle", include=[
        {"valueSet": ["http://example.org/cycle"]}])
    with pytest.raises(CannotExpand, match="cycle"):
        terminology.expand(cycle)
    missing = _value_set("http://example.org/m", include=[{"valueSet": ["http://none"]}])
    with pytest.raises(CannotExpand, match="http://none"):
        terminology.expand(missing)


@pytest.mark.parametrize(("part", "reason"), [
    ({"system": "http://snomed.info/sct"}, "does not hold"),
    ({"system": CS, "filter": [{"property": "other", "op": "=", "value": "x"}]},
     "not supported"),
    ({"system": CS, "filter": [{"property": "code", "op": "regex", "value": "("}]},
     "not a valid regular expression"),
])
def test_what_cannot_be_expanded_says_why(part: dict[str, Any], reason: str) -> None:
    terminology = Terminology([_code_system()], core=False)
    with pytest.raises(CannotExpand, match=reason):
        terminology.expand(_value_set("http://example.org/vs", include=[part]))


def test_fragments_cannot_be_expanded_whole_and_limits_hold() -> None:
    fragment = Terminology([_code_system(content="fragment")], core=False)
    with pytest.raises(CannotExpand, match="complete"):
        fragment.expand(_value_set("http://example.org/vs", include=[{"system": CS}]))
    terminology = Terminology([_code_system()], core=False)
    with pytest.raises(ExpansionTooLarge):
        terminology.expand(_value_set("http://example.org/vs", include=[{"system": CS}]),
                           limit=3)


def test_a_value_set_without_compose_uses_its_expansion() -> None:
    stored = {"resourceType": "ValueSet", "url": "http://example.org/vs", "expansion": {
        "contains": [{"system": CS, "code": "p", "contains": [{"system": CS, "code": "c"}]},
                     {"system": CS, "code": "q"}]}}
    assert _codes(Terminology(core=False), stored) == ["p", "c", "q"]
    with pytest.raises(CannotExpand, match="neither"):
        Terminology(core=False).expand({"resourceType": "ValueSet", "url": "http://x"})


def test_overlay_replaces_by_url_and_shares_other_indexes() -> None:
    base = Terminology([_code_system()])
    gender = base.code_system("http://hl7.org/fhir/administrative-gender")
    replaced = base.overlaid([{**_code_system(), "concept": [{"code": "only"}]}])
    mine, original = replaced.code_system(CS), base.code_system(CS)
    assert mine is not None and mine.codes == {"only"}
    assert original is not None and original.codes == {"a", "a1", "a2", "b"}
    assert replaced.code_system("http://hl7.org/fhir/administrative-gender") is gender


def test_describe_finds_a_code_in_its_system_or_as_listed() -> None:
    photo = _value_set("http://example.org/photo", include=[
        {"system": "urn:ietf:bcp:13", "concept": [{"code": "image/png", "display": "PNG"}]}])
    terminology = Terminology([_code_system(), photo], core=False)
    assert terminology.describe(CS, "a1") is not None
    listed = terminology.describe(None, "image/png", photo)
    assert listed is not None and listed.display == "PNG"
    assert terminology.describe("urn:ietf:bcp:13", "image/gif", photo) is None


def test_core_value_sets_expand_from_the_vendored_code_systems() -> None:
    codes = core_terminology().expand(core_terminology().value_set(
        "http://hl7.org/fhir/ValueSet/task-status") or {})
    assert [c.code for c in codes][:3] == ["draft", "requested", "received"]


def test_text_folding_and_languages() -> None:
    assert fold("Médecin Généraliste") == "medecin generaliste"
    assert same_language("en", "en-GB") and same_language("EN-gb", "en")
    assert not same_language("en", "fr") and not same_language("en", "eng")
