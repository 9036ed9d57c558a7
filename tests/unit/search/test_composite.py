"""Composite extraction: one entry per context element, pairing its own components."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.definitions import load_bundle
from fhir_server.engine.indexing import Indexer
from fhir_server.search.extract import Extractor
from fhir_server.search.registry import SearchParam, SearchRegistry, default_registry
from fhir_server.search.values import IdentifierProtection
from fhir_server.search.values.composite import (
    MAX_PAIRS,
    UnsupportedComposite,
    composite_shape,
    has_supported_layout,
)
from fhir_server.storage.index import CompositeEntry, IndexEntry

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
CUSTOM = "https://pictaderm.fr/fhir/SearchParameter"


def _composites(entries: tuple[IndexEntry, ...], param: str) -> set[CompositeEntry]:
    return {entry for entry in entries if isinstance(entry, CompositeEntry)
            and entry.param == param}


def _coded(code: str, system: str = LOINC) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _mm_hg(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}


def _blood_pressure(systolic: float, diastolic: float) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": _coded("85354-9"),
            "component": [{"code": _coded(SYSTOLIC), "valueQuantity": _mm_hg(systolic)},
                          {"code": _coded(DIASTOLIC), "valueQuantity": _mm_hg(diastolic)}]}


def _pressure(param: str, code: str, value: float) -> CompositeEntry:
    return CompositeEntry(param, LOINC, code, value_system=UCUM, value_code="mm[Hg]",
                          low=value - 0.5, high=value + 0.5)


def test_each_component_pairs_its_own_code_and_value(indexer: Indexer) -> None:
    entries = indexer.extract(_blood_pressure(120, 150))
    param = "component-code-value-quantity"
    assert _composites(entries, param) == {_pressure(param, SYSTOLIC, 120),
                                           _pressure(param, DIASTOLIC, 150)}
    # mm[Hg] is outside the UCUM table: no canonical entries
    assert _composites(entries, f"{param}:canonical") == set()
    # the Observation itself has no value: code-value-quantity gives nothing
    assert _composites(entries, "code-value-quantity") == set()


def test_combo_pairs_the_observation_and_each_component(indexer: Indexer) -> None:
    observation = _blood_pressure(120, 80)
    observation["valueQuantity"] = _mm_hg(100)
    param = "combo-code-value-quantity"
    assert _composites(indexer.extract(observation), param) == {
        _pressure(param, "85354-9", 100), _pressure(param, SYSTOLIC, 120),
        _pressure(param, DIASTOLIC, 80)}


def test_a_convertible_unit_also_gives_the_canonical_entry(indexer: Indexer) -> None:
    observation = {"resourceType": "Observation", "status": "final", "code": _coded("2345-7"),
                   "valueQuantity": {"value": 5.4, "system": UCUM, "code": "mg"}}
    entries = indexer.extract(observation)
    [written] = _composites(entries, "code-value-quantity")
    [converted] = _composites(entries, "code-value-quantity:canonical")
    assert (written.value_code, written.low, written.high) == ("mg", 5.35, 5.45)
    assert converted.value_system == UCUM and converted.value_code == "canonical:g"
    assert converted.low == pytest.approx(0.00535) and converted.high == pytest.approx(0.00545)
    assert (converted.system, converted.code) == (LOINC, "2345-7")
    # combo reads the same element and components: the same pairs, under its own names
    [combo] = _composites(entries, "combo-code-value-quantity:canonical")
    assert combo == CompositeEntry("combo-code-value-quantity:canonical", LOINC, "2345-7",
                                   value_system=UCUM, value_code="canonical:g",
                                   low=converted.low, high=converted.high)


def test_every_coding_pairs_with_every_value_of_the_element(indexer: Indexer) -> None:
    concept = {"coding": [{"system": "http://snomed.info/sct", "code": "1"},
                          {"system": "http://snomed.info/sct", "code": "2"}],
               "text": "only text"}
    observation = {"resourceType": "Observation", "status": "final",
                   "code": {"coding": [{"system": LOINC, "code": "a"}, {"code": "b"}],
                            "text": "no code"},
                   "valueCodeableConcept": concept}
    found = _composites(indexer.extract(observation), "code-value-concept")
    assert {(e.system, e.code, e.value_system, e.value_code) for e in found} == {
        (LOINC, "a", "http://snomed.info/sct", "1"), (LOINC, "a", "http://snomed.info/sct", "2"),
        (None, "b", "http://snomed.info/sct", "1"), (None, "b", "http://snomed.info/sct", "2")}


def test_dates_strings_and_concepts_as_second_components(indexer: Indexer) -> None:
    dated = {"resourceType": "Observation", "status": "final", "code": _coded("x"),
             "valuePeriod": {"start": "2024-03-05", "end": "2024-03-07"}}
    assert _composites(indexer.extract(dated), "code-value-date") == {CompositeEntry(
        "code-value-date", LOINC, "x", low="2024-03-05T00:00:00.000000Z",
        high="2024-03-07T23:59:59.999999Z")}
    texted = {"resourceType": "Observation", "status": "final", "code": _coded("y"),
              "valueString": "Lésion Pigmentée"}
    assert _composites(indexer.extract(texted), "code-value-string") == {CompositeEntry(
        "code-value-string", LOINC, "y", normalized="lesion pigmentee",
        exact="Lésion Pigmentée")}


def test_group_characteristics_pair_their_code_with_their_token_value(indexer: Indexer) -> None:
    group = {"resourceType": "Group", "type": "person", "actual": True, "characteristic": [
        {"code": _coded("phototype", "urn:pictaderm:c"), "exclude": False,
         "valueCodeableConcept": _coded("IV", "urn:pictaderm:fitzpatrick")},
        {"code": _coded("smoker", "urn:pictaderm:c"), "exclude": False, "valueBoolean": True},
        {"code": _coded("weight", "urn:pictaderm:c"), "exclude": False,
         "valueQuantity": {"value": 70, "system": UCUM, "code": "kg"}}]}
    found = _composites(indexer.extract(group), "characteristic-value")
    assert {(e.code, e.value_system, e.value_code) for e in found} == {
        ("phototype", "urn:pictaderm:fitzpatrick", "IV"), ("smoker", None, "true")}


def test_document_relationship_follows_its_expressions(indexer: Indexer) -> None:
    """Its definitions are listed in swapped order: the code comes first, the target second."""
    document = {"resourceType": "DocumentReference", "status": "current", "content": [],
                "relatesTo": [{"code": "replaces", "target": {"reference": "DocumentReference/d0"}},
                              {"code": "appends",
                               "target": {"reference": "https://other.example/DocumentReference/9"}}]}
    assert _composites(indexer.extract(document), "relationship") == {
        CompositeEntry("relationship", None, "replaces", target_type="DocumentReference",
                       target_id="d0"),
        CompositeEntry("relationship", None, "appends", target_type="DocumentReference",
                       target_id="9", url="https://other.example/DocumentReference/9")}


def test_use_context_ranges_give_quantity_entries(indexer: Indexer) -> None:
    library = {"resourceType": "Library", "status": "active", "type": _coded("logic-library"),
               "useContext": [{"code": {"system": "http://terminology.hl7.org/CodeSystem/"
                                                  "usage-context-type", "code": "age"},
                               "valueRange": {"low": {"value": 18, "system": UCUM, "code": "a"}}}]}
    [entry] = _composites(indexer.extract(library), "context-type-quantity")
    assert (entry.code, entry.value_code, entry.low, entry.high) == ("age", "a", 17.5,
                                                                     float("inf"))


def test_pairs_per_element_are_bounded(indexer: Indexer) -> None:
    codings = [{"system": LOINC, "code": str(n)} for n in range(MAX_PAIRS)]
    observation = {"resourceType": "Observation", "status": "final",
                   "code": {"coding": codings},
                   "valueCodeableConcept": {"coding": [{"code": "a"}, {"code": "b"}]}}
    assert len(_composites(indexer.extract(observation), "code-value-concept")) == MAX_PAIRS


def test_wrong_shapes_give_no_composite_entry(indexer: Indexer) -> None:
    odd = {"resourceType": "Observation", "status": "final", "code": "not a concept",
           "component": ["x", {"code": 3, "valueQuantity": {"value": "abc"}},
                         {"code": _coded(SYSTOLIC), "valueQuantity": {"value": 120}}]}
    found = {entry for entry in indexer.extract(odd) if isinstance(entry, CompositeEntry)}
    assert found == {CompositeEntry(param, LOINC, SYSTOLIC, low=119.5, high=120.5)
                     for param in ("component-code-value-quantity", "combo-code-value-quantity")}


# --- which composites are supported -------------------------------------------------------------

def _official(resource_type: str, code: str) -> SearchParam:
    param = default_registry().param(resource_type, code)
    assert param is not None
    return param


def test_every_official_composite_but_molecular_sequence_is_supported() -> None:
    registry = default_registry()
    composites = [param for definition in load_bundle("search-parameters")
                  if definition["type"] == "composite"
                  and (param := registry.by_url(definition["url"])) is not None]
    assert len(composites) == 46
    refused = set()
    for param in composites:
        try:
            composite_shape(param, registry)
        except UnsupportedComposite:
            refused.add(param.code)
    assert refused == {"chromosome-variant-coordinate", "chromosome-window-coordinate",
                       "referenceseqid-variant-coordinate", "referenceseqid-window-coordinate"}
    assert not has_supported_layout(_official("MolecularSequence", "chromosome-window-coordinate"))
    assert has_supported_layout(_official("Observation", "combo-code-value-quantity"))


def test_a_composite_needs_known_component_definitions() -> None:
    orphan = _custom_composite("orphan", "RiskAssessment.prediction",
                               ("outcome", f"{CUSTOM}/none"), ("probability", f"{CUSTOM}/none"))
    registry = default_registry().extended([orphan])
    param = registry.param("RiskAssessment", "orphan")
    assert param is not None
    with pytest.raises(UnsupportedComposite, match="not a known parameter"):
        composite_shape(param, registry)


# --- number and uri second components (no official composite has them) --------------------------

def _custom_composite(code: str, context: str, *components: tuple[str, str]) -> dict[str, Any]:
    resource_type = context.split(".")[0]
    return {"resourceType": "SearchParameter", "code": code, "url": f"{CUSTOM}/{code}",
            "type": "composite", "base": [resource_type], "expression": context,
            "component": [{"expression": expression, "definition": definition}
                          for expression, definition in components]}


def _component(code: str, type: str, expression: str) -> dict[str, Any]:
    resource_type = expression.split(".")[0]
    return {"resourceType": "SearchParameter", "code": code, "url": f"{CUSTOM}/{code}",
            "type": type, "base": [resource_type], "expression": expression}


CUSTOM_DEFINITIONS = [
    _component("prediction-outcome", "token", "RiskAssessment.prediction.outcome"),
    _component("prediction-probability", "number", "RiskAssessment.prediction.probability"),
    _custom_composite("outcome-probability", "RiskAssessment.prediction",
                      ("outcome", f"{CUSTOM}/prediction-outcome"),
                      ("probability", f"{CUSTOM}/prediction-probability")),
    _component("item-code", "token", "Questionnaire.item.code"),
    _component("item-definition", "uri", "Questionnaire.item.definition"),
    _custom_composite("item-code-definition", "Questionnaire.item",
                      ("code", f"{CUSTOM}/item-code"), ("definition", f"{CUSTOM}/item-definition")),
]
"""A token-number and a token-uri composite, with their components."""


def custom_registry() -> SearchRegistry:
    return SearchRegistry([*load_bundle("search-parameters"), *CUSTOM_DEFINITIONS])


def test_number_and_uri_second_components_are_extracted(indexer: Indexer) -> None:
    extractor = Extractor(registry=custom_registry(), protection=IdentifierProtection(
        lambda system, value: f"blind:{value}", lambda system: False))
    risk = {"resourceType": "RiskAssessment", "status": "final",
            "subject": {"reference": "Patient/1"},
            "prediction": [{"outcome": _coded("melanoma", "urn:o"), "probabilityDecimal": 0.25},
                           {"outcome": _coded("naevus", "urn:o"),
                            "probabilityRange": {"low": {"value": 0.5}, "high": {"value": 0.7}}}]}
    assert _composites(extractor.extract(risk), "outcome-probability") == {
        CompositeEntry("outcome-probability", "urn:o", "melanoma", low=0.245, high=0.255),
        CompositeEntry("outcome-probability", "urn:o", "naevus", low=0.45, high=0.75)}
    questionnaire = {"resourceType": "Questionnaire", "status": "active", "item": [
        {"linkId": "1", "type": "string", "code": [{"system": "urn:q", "code": "site"}],
         "definition": "https://pictaderm.fr/StructureDefinition/lesion#site"}]}
    assert _composites(extractor.extract(questionnaire), "item-code-definition") == {
        CompositeEntry("item-code-definition", "urn:q", "site",
                       url="https://pictaderm.fr/StructureDefinition/lesion#site")}
