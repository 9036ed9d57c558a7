"""The search-parameter registry: lookups, per-type expressions, Resource-level parameters."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.definitions import load_bundle, resource_types
from fhir_server.search.registry import (
    Component,
    ParamType,
    SearchParam,
    SearchRegistry,
    default_registry,
    expression_for,
)

RESOURCE_LEVEL = ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_content",
                  "_list", "_has", "_type", "_query")


def test_a_parameter_of_a_type_is_found_by_code() -> None:
    family = default_registry().param("Patient", "family")
    assert family == SearchParam(
        code="family", url="http://hl7.org/fhir/SearchParameter/individual-family",
        type=ParamType.STRING,
        base=("Patient", "Practitioner"), expression="Patient.name.family")


def test_the_expression_keeps_only_the_branches_of_the_type_asked_for() -> None:
    registry = default_registry()
    family = registry.param("Practitioner", "family")
    assert family is not None
    assert family.expression == "Practitioner.name.family"
    phone = registry.param("RelatedPerson", "phone")
    assert phone is not None
    assert phone.expression == "RelatedPerson.telecom.where(system='phone')"


def test_parenthesised_and_choice_branches_are_kept_for_their_type() -> None:
    registry = default_registry()
    context = registry.param("Library", "context")
    assert context is not None
    assert context.expression == "(Library.useContext.value as CodeableConcept)"
    value_string = registry.param("Observation", "value-string")
    assert value_string is not None
    assert value_string.expression == ("(Observation.value as string) | "
                                       "(Observation.value as CodeableConcept).text")


def test_a_type_named_inside_another_type_name_is_not_confused() -> None:
    # "Observation" is a prefix of "ObservationDefinition": only whole names select a branch.
    assert expression_for("Observation.code | ObservationDefinition.code", "Observation",
                          frozenset({"Observation", "ObservationDefinition"})) == \
        "Observation.code"
    assert expression_for("Observation.code", "Patient", frozenset({"Observation"})) is None


def test_branches_without_a_type_are_kept() -> None:
    name = default_registry().param("InsurancePlan", "name")
    assert name is not None
    assert name.expression == "name | alias"


@pytest.mark.parametrize("resource_type", ["Patient", "Task", "Bundle", "Binary"])
def test_resource_level_parameters_apply_to_every_type(resource_type: str) -> None:
    params = default_registry().params_for(resource_type)
    assert set(RESOURCE_LEVEL) <= set(params)
    assert params["_tag"].expression == "Resource.meta.tag"
    assert params["_tag"].type is ParamType.TOKEN
    assert params["_profile"].type is ParamType.URI
    assert params["_has"].type is ParamType.SPECIAL


def test_domain_resource_parameters_skip_types_that_are_not_domain_resources() -> None:
    registry = default_registry()
    assert registry.param("Patient", "_text") is not None
    assert registry.param("Bundle", "_text") is None
    assert registry.param("Parameters", "_text") is None


def test_every_official_parameter_is_registered_for_each_of_its_bases() -> None:
    registry = default_registry()
    for definition in load_bundle("search-parameters"):
        for base in definition["base"]:
            if base in ("Resource", "DomainResource"):
                continue
            param = registry.param(base, definition["code"])
            assert param is not None, (base, definition["code"])
            assert param.url == definition["url"]
            assert param.type == definition["type"]


def test_every_type_has_its_own_parameters_and_an_expression_where_r4_gives_one() -> None:
    registry = default_registry()
    for resource_type in resource_types():
        own = [p for p in registry.params_for(resource_type).values()
               if p.base[0] not in ("Resource", "DomainResource")]
        for param in own:
            if param.type is not ParamType.SPECIAL:
                assert param.expression, (resource_type, param.code)


def test_targets_and_components_are_carried() -> None:
    registry = default_registry()
    subject = registry.param("Observation", "subject")
    assert subject is not None
    assert set(subject.targets) == {"Group", "Device", "Patient", "Location"}
    composite = registry.param("Observation", "combo-code-value-quantity")
    assert composite is not None
    assert composite.type is ParamType.COMPOSITE
    assert composite.expression == "Observation | Observation.component"
    assert composite.components == (
        Component("http://hl7.org/fhir/SearchParameter/Observation-combo-code", "code"),
        Component("http://hl7.org/fhir/SearchParameter/Observation-combo-value-quantity",
                  "value.as(Quantity)"))


def test_by_url_gives_the_whole_definition() -> None:
    param = default_registry().by_url("http://hl7.org/fhir/SearchParameter/individual-family")
    assert param is not None
    assert param.base == ("Patient", "Practitioner")
    assert param.expression == "Patient.name.family | Practitioner.name.family"
    assert default_registry().by_url("http://example.org/nothing") is None


def test_unknown_types_and_codes_give_nothing() -> None:
    registry = default_registry()
    assert registry.param("Patient", "no-such-param") is None
    assert registry.params_for("NotAType") == {}


def test_a_registry_can_be_built_from_other_search_parameters() -> None:
    url = "https://pictaderm.fr/fhir/SearchParameter/Patient-nir-holder"
    custom: dict[str, Any] = {
        "resourceType": "SearchParameter", "code": "nir-holder", "url": url,
        "type": "token", "base": ["Patient"],
        "expression": "Patient.identifier.where(system='urn:oid:1.2.250.1.213.1.4.8')",
    }
    registry = SearchRegistry([*load_bundle("search-parameters"), custom])
    param = registry.param("Patient", "nir-holder")
    assert param is not None
    assert param.type is ParamType.TOKEN
    assert registry.by_url(url) is not None
    assert default_registry().param("Patient", "nir-holder") is None


def test_the_default_registry_is_built_once() -> None:
    assert default_registry() is default_registry()
