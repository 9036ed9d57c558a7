"""Code system hierarchies for token ``:below`` / ``:above``: reading them, walking them, and
which parameters are expanded."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.engine.code_hierarchy import (
    MAX_CODES,
    CodeHierarchy,
    TooManyCodes,
    hierarchy_modifier,
    hierarchy_of,
    official_hierarchies,
    official_systems_defining,
)

URL = "http://example.org/CodeSystem/lesions"


def _code_system(*concepts: dict[str, Any], **content: Any) -> dict[str, Any]:
    return {"resourceType": "CodeSystem", "url": URL, "status": "active",
            "content": "complete", "concept": list(concepts), **content}


def _hierarchy(*concepts: dict[str, Any], **content: Any) -> CodeHierarchy:
    found = hierarchy_of(_code_system(*concepts, **content))
    assert found is not None
    return found


NESTED = _hierarchy(
    {"code": "lesion", "concept": [
        {"code": "pigmented", "concept": [{"code": "melanoma"}, {"code": "nevus"}]},
        {"code": "inflammatory", "concept": [{"code": "eczema"}]}]})


def test_nested_concepts_give_codes_children_and_parents() -> None:
    assert NESTED.codes == {"lesion", "pigmented", "melanoma", "nevus", "inflammatory",
                            "eczema"}
    assert NESTED.children["lesion"] == ("pigmented", "inflammatory")
    assert NESTED.parents["melanoma"] == ("pigmented",)
    assert "lesion" not in NESTED.parents


def test_below_and_above_include_the_code_nearest_first() -> None:
    assert NESTED.below("lesion") == ("lesion", "pigmented", "inflammatory", "melanoma",
                                      "nevus", "eczema")
    assert NESTED.below("pigmented") == ("pigmented", "melanoma", "nevus")
    assert NESTED.below("eczema") == ("eczema",)
    assert NESTED.above("nevus") == ("nevus", "pigmented", "lesion")
    assert NESTED.above("lesion") == ("lesion",)


def test_parent_and_child_properties_add_links_and_several_parents() -> None:
    hierarchy = _hierarchy(
        {"code": "lesion", "property": [{"code": "child", "valueCode": "tumour"}]},
        {"code": "benign"},
        {"code": "tumour"},
        {"code": "nevus", "property": [{"code": "parent", "valueCode": "tumour"},
                                       {"code": "parent", "valueCode": "benign"}]})
    assert hierarchy.above("nevus") == ("nevus", "tumour", "benign", "lesion")
    assert hierarchy.below("lesion") == ("lesion", "tumour", "nevus")


def test_properties_declared_with_the_standard_uris_count_whatever_their_code() -> None:
    hierarchy = _hierarchy(
        {"code": "lesion"},
        {"code": "nevus", "property": [{"code": "subsumedBy", "valueCode": "lesion"},
                                       {"code": "partOf", "valueCode": "skin"}]},
        {"code": "skin"},
        property=[{"code": "subsumedBy", "type": "code",
                   "uri": "http://hl7.org/fhir/concept-properties#parent"},
                  {"code": "partOf", "type": "code"}])
    assert hierarchy.above("nevus") == ("nevus", "lesion")
    assert hierarchy.below("skin") == ("skin",)


def test_links_to_undefined_codes_and_to_itself_are_left_out() -> None:
    hierarchy = _hierarchy({"code": "nevus", "property": [
        {"code": "parent", "valueCode": "nowhere"}, {"code": "parent", "valueCode": "nevus"}]})
    assert hierarchy.above("nevus") == ("nevus",)
    assert hierarchy.parents == {}


def test_cycles_end() -> None:
    hierarchy = _hierarchy(
        {"code": "a", "concept": [{"code": "b", "concept": [{"code": "c"}]}]},
        {"code": "c-again", "property": [{"code": "child", "valueCode": "a"},
                                         {"code": "parent", "valueCode": "c"}]})
    assert set(hierarchy.below("a")) == {"a", "b", "c", "c-again"}
    assert set(hierarchy.above("a")) == {"a", "c-again", "c", "b"}


def test_deep_nesting_is_read_without_recursion() -> None:
    depth = 5_000
    root: dict[str, Any] = {"code": "level-0"}
    node = root
    for level in range(1, depth):
        child: dict[str, Any] = {"code": f"level-{level}"}
        node["concept"] = [child]
        node = child
    hierarchy = _hierarchy(root)
    assert len(hierarchy.codes) == depth
    assert len(hierarchy.above(f"level-{depth - 1}", limit=depth)) == depth


def test_walks_stop_past_their_limit() -> None:
    hierarchy = _hierarchy({"code": "root", "concept": [
        {"code": f"leaf-{n}"} for n in range(MAX_CODES)]})
    with pytest.raises(TooManyCodes):
        hierarchy.below("root")
    assert len(hierarchy.below("root", limit=MAX_CODES + 1)) == MAX_CODES + 1
    assert hierarchy.above("leaf-7") == ("leaf-7", "root")


@pytest.mark.parametrize(("meaning", "is_a"), [
    (None, True), ("is-a", True), ("part-of", False), ("grouped-by", False),
    ("classified-with", False)])
def test_only_is_a_hierarchies_are_subsumptions(meaning: str | None, is_a: bool) -> None:
    content = {} if meaning is None else {"hierarchyMeaning": meaning}
    assert _hierarchy({"code": "a"}, **content).is_a is is_a


def test_malformed_content_is_skipped_and_a_code_system_needs_a_url() -> None:
    malformed: list[Any] = ["not a concept", {"display": "no code", "concept": [{"code": "x"}]},
                            {"code": 7}, {"code": "y", "property": "not a list"}]
    hierarchy = hierarchy_of({"url": URL, "concept": malformed})
    assert hierarchy is not None and hierarchy.codes == {"x", "y"}
    assert hierarchy_of({"resourceType": "CodeSystem", "concept": [{"code": "a"}]}) is None


def test_official_code_systems_are_vendored_with_their_hierarchies() -> None:
    clinical = official_hierarchies()["http://terminology.hl7.org/CodeSystem/condition-clinical"]
    assert clinical.below("inactive") == ("inactive", "remission", "resolved")
    assert clinical.above("recurrence") == ("recurrence", "active")
    act_reason = official_hierarchies()["http://terminology.hl7.org/CodeSystem/v3-ActReason"]
    assert act_reason.is_a and len(act_reason.codes) > 200
    assert "NH" in official_hierarchies()["http://terminology.hl7.org/CodeSystem/v2-0203"].codes


def test_official_systems_defining_a_code() -> None:
    assert official_systems_defining("relapse") == (
        "http://terminology.hl7.org/CodeSystem/condition-clinical",)
    assert len(official_systems_defining("active")) > 1
    assert official_systems_defining("no-such-code-anywhere") == ()


@pytest.mark.parametrize(("name", "modifier"), [
    ("code:below", "below"),
    ("code:above", "above"),
    ("subject:Patient.gender:below", "below"),
    ("_has:Observation:patient:code:above", "above"),
    ("type:below", "below"),
    ("my-custom-parameter:below", "below"),
    ("url:below", None),
    ("_profile:above", None),
    ("_id:below", None),
    ("code", None),
    ("code:in", None),
])
def test_which_parameters_are_expanded(name: str, modifier: str | None) -> None:
    assert hierarchy_modifier(name) == modifier
