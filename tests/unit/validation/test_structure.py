"""Tests for fhir_server.validation.structure: the JSON shape rules of FHIR R4, type by type."""

from __future__ import annotations

import copy
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_server.definitions import resource_types, structure_definitions
from fhir_server.errors import Issue, IssueType
from fhir_server.validation import StructureValidator, validate_structure
from fhir_server.validation.structure import MAX_ISSUES
from tests.unit.validation import examples
from tests.unit.validation.minimal import MinimalBuilder


def where(issues: tuple[Issue, ...]) -> list[str]:
    return [issue.expression[0] for issue in issues]


def only_issue(validator: StructureValidator, resource: dict[str, Any]) -> Issue:
    issues = validator.validate(resource)
    assert len(issues) == 1, issues
    assert issues[0].severity == "error"
    return issues[0]


# --- valid resources ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(examples.VALID))
def test_valid_examples_have_no_issues(validator: StructureValidator, name: str) -> None:
    assert validator.validate(examples.VALID[name]()) == ()


def test_module_level_function_uses_the_core_definitions() -> None:
    assert validate_structure(examples.patient()) == ()
    assert where(validate_structure({"resourceType": "Patient", "foo": 1})) == ["Patient.foo"]


def test_decimal_accepts_json_integers_and_python_decimals(validator: StructureValidator) -> None:
    for value in (37, Decimal("37.20"), -0.5, 1e-7):
        resource = examples.observation()
        resource["valueQuantity"]["value"] = value
        assert validator.validate(resource) == (), value


# --- resourceType ------------------------------------------------------------------------------

def test_missing_resource_type_is_required(validator: StructureValidator) -> None:
    issue = only_issue(validator, {"id": "x"})
    assert issue.issue_type is IssueType.REQUIRED
    assert issue.expression == ("resourceType",)


@pytest.mark.parametrize("value", ["Patients", "DomainResource", "MetadataResource", 3])
def test_unknown_resource_type(validator: StructureValidator, value: Any) -> None:
    issue = only_issue(validator, {"resourceType": value})
    assert issue.issue_type is IssueType.STRUCTURE
    assert "not a known FHIR R4 resource type" in issue.diagnostics


def test_resource_must_be_an_object(validator: StructureValidator) -> None:
    assert where(validator.validate(["Patient"])) == ["Resource"]  # type: ignore[arg-type]


# --- unknown properties ------------------------------------------------------------------------

def test_unknown_property_at_top_and_nested(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["foo"] = "bar"
    resource["name"][0]["nickname"] = "Lou"
    resource["meta"]["resourceType"] = "Meta"
    issues = validator.validate(resource)
    assert where(issues) == ["Patient.meta.resourceType", "Patient.name[0].nickname",
                             "Patient.foo"]
    assert {issue.issue_type for issue in issues} == {IssueType.STRUCTURE}
    assert issues[2].diagnostics == "Patient.foo: unknown element 'foo'"


def test_inherited_resource_elements_are_known(validator: StructureValidator) -> None:
    resource = {"resourceType": "Basic", "code": {"text": "x"}, "id": "b1",
                "meta": {"profile": ["http://example.org/p"]},
                "implicitRules": "http://example.org/rules", "language": "fr-FR"}
    assert validator.validate(resource) == ()


def test_companion_of_a_complex_element_is_unknown(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["_name"] = [{"extension": [{"url": "http://e.org", "valueString": "x"}]}]
    assert where(validator.validate(resource)) == ["Patient._name"]


def test_companion_of_an_element_id_is_unknown(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["name"][0]["_id"] = {"extension": [{"url": "http://e.org", "valueString": "x"}]}
    assert where(validator.validate(resource)) == ["Patient.name[0]._id"]


# --- primitive companions (_name) --------------------------------------------------------------

def test_companion_must_be_an_object(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["_birthDate"] = "1980"
    issue = only_issue(validator, resource)
    assert issue.expression == ("Patient.birthDate",)


def test_companion_content_is_validated_as_element(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["_birthDate"] = {"extension": [{"valueString": "x"}], "value": "1980"}
    issues = validator.validate(resource)
    assert sorted(where(issues)) == ["Patient.birthDate.extension[0].url",
                                     "Patient.birthDate.value"]


def test_companion_null_and_empty(validator: StructureValidator) -> None:
    bad: Any
    for bad in (None, {}):
        resource = examples.patient()
        resource["_birthDate"] = bad
        assert where(validator.validate(resource)) == ["Patient.birthDate"], bad


def test_null_in_primitive_array_needs_a_companion(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["name"][0]["given"] = ["Léa", None]
    issue = only_issue(validator, resource)
    assert issue.expression == ("Patient.name[0].given[1]",)
    assert "null" in issue.diagnostics


def test_null_on_both_sides_of_a_primitive_array(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["name"][0]["given"] = ["Léa", None]
    resource["name"][0]["_given"] = [{"id": "g1"}, None]
    assert where(validator.validate(resource)) == ["Patient.name[0].given[1]"]


def test_companion_array_must_align(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["name"][0]["_given"] = [None, None, {"id": "g3"}]
    issue = only_issue(validator, resource)
    assert issue.expression == ("Patient.name[0].given",)
    assert "aligned" in issue.diagnostics


def test_companion_of_an_array_must_be_an_array(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["name"][0]["_given"] = {"id": "g1"}
    assert where(validator.validate(resource)) == ["Patient.name[0].given"]


def test_companion_array_alone_rejects_nulls(validator: StructureValidator) -> None:
    resource = examples.patient()
    del resource["name"][0]["given"]
    resource["name"][0]["_given"] = [{"id": "g1"}, None]
    assert where(validator.validate(resource)) == ["Patient.name[0].given[1]"]


# --- choice elements ---------------------------------------------------------------------------

def test_two_forms_of_one_choice(validator: StructureValidator) -> None:
    resource = examples.observation()
    resource["valueString"] = "37.2"
    issue = only_issue(validator, resource)
    assert issue.expression == ("Observation.value",)
    assert "valueQuantity" in issue.diagnostics and "valueString" in issue.diagnostics


def test_choice_counts_a_lone_companion(validator: StructureValidator) -> None:
    resource = examples.observation()
    resource["_valueString"] = {"extension": [{"url": "http://e.org", "valueCode": "x"}]}
    assert where(validator.validate(resource)) == ["Observation.value"]


@pytest.mark.parametrize("key", ["valueDecimal", "valueFoo", "value", "valuequantity"])
def test_choice_with_a_type_not_allowed(validator: StructureValidator, key: str) -> None:
    resource = examples.observation()
    del resource["valueQuantity"]
    resource[key] = 1.5
    assert where(validator.validate(resource)) == [f"Observation.{key}"]


def test_choice_value_is_validated_as_its_type(validator: StructureValidator) -> None:
    resource = examples.observation()
    resource["valueQuantity"]["value"] = "37.2"
    issue = only_issue(validator, resource)
    assert issue.expression == ("Observation.value.ofType(Quantity).value",)
    assert issue.issue_type is IssueType.VALUE


def test_required_choice_missing(validator: StructureValidator) -> None:
    resource = {"resourceType": "DeviceRequest", "status": "active", "intent": "order",
                "subject": {"reference": "Patient/1"}}
    issue = only_issue(validator, resource)
    assert issue.expression == ("DeviceRequest.code",)
    assert issue.issue_type is IssueType.REQUIRED
    resource["codeCodeableConcept"] = {"text": "dermatoscope"}
    assert validator.validate(resource) == ()


# --- cardinality -------------------------------------------------------------------------------

def test_single_element_given_as_array(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["gender"] = ["female"]
    resource["maritalStatus"] = [{"text": "married"}]
    assert where(validator.validate(resource)) == ["Patient.gender", "Patient.maritalStatus"]


def test_repeating_element_given_as_single_value(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["name"] = {"family": "Martin"}
    resource["name_"] = 1
    issues = validator.validate(resource)
    assert where(issues) == ["Patient.name", "Patient.name_"]
    assert "must be an array" in issues[0].diagnostics


def test_more_items_than_the_maximum() -> None:
    definitions = copy.deepcopy(structure_definitions())
    for element in definitions["Patient"]["snapshot"]["element"]:
        if element["path"] == "Patient.name":
            element["max"] = "2"
    limited = StructureValidator(definitions)
    resource = examples.patient()
    resource["name"] = [{"family": "A"}, {"family": "B"}, {"family": "C"}]
    issue = only_issue(limited, resource)
    assert issue.expression == ("Patient.name",)
    assert "at most 2" in issue.diagnostics


def test_missing_required_element(validator: StructureValidator) -> None:
    resource = examples.observation()
    del resource["status"]
    del resource["component"][0]["code"]
    issues = validator.validate(resource)
    assert where(issues) == ["Observation.component[0].code", "Observation.status"]
    assert {issue.issue_type for issue in issues} == {IssueType.REQUIRED}


def test_required_primitive_satisfied_by_its_companion(validator: StructureValidator) -> None:
    resource = examples.observation()
    del resource["status"]
    resource["_status"] = {"extension": [{
        "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
        "valueCode": "unknown"}]}
    assert validator.validate(resource) == ()


# --- empty values and null ---------------------------------------------------------------------

@pytest.mark.parametrize(("key", "value", "issue_type"), [
    ("maritalStatus", {}, IssueType.STRUCTURE),
    ("name", [], IssueType.STRUCTURE),
    ("gender", "", IssueType.VALUE),
    ("gender", None, IssueType.STRUCTURE),
    ("maritalStatus", None, IssueType.STRUCTURE),
    ("implicitRules", "", IssueType.VALUE),
])
def test_empty_and_null_values(validator: StructureValidator, key: str, value: Any,
                               issue_type: IssueType) -> None:
    resource = examples.patient()
    resource[key] = value
    issue = only_issue(validator, resource)
    assert issue.expression == (f"Patient.{key}",)
    assert issue.issue_type is issue_type


def test_null_inside_a_complex_array(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["name"].append(None)
    assert where(validator.validate(resource)) == ["Patient.name[1]"]


# --- primitive values --------------------------------------------------------------------------

PRIMITIVE_CASES: list[tuple[str, Any, bool]] = [
    ("Boolean", True, True), ("Boolean", "true", False), ("Boolean", 1, False),
    ("Integer", -5, True), ("Integer", 1.5, False), ("Integer", True, False),
    ("Integer", "5", False), ("Integer", 2**31, False), ("Integer", -(2**31), True),
    ("UnsignedInt", 0, True), ("UnsignedInt", -1, False),
    ("PositiveInt", 1, True), ("PositiveInt", 0, False),
    ("Decimal", 0.25, True), ("Decimal", "0.25", False), ("Decimal", False, False),
    ("Decimal", float("nan"), False),
    ("String", " spaced ", True), ("String", "", False), ("String", 12, False),
    ("Markdown", "**bold**", True), ("Markdown", "", False),
    ("Code", "in-progress", True), ("Code", " leading", False), ("Code", "two  spaces", False),
    ("Id", "a.B-9", True), ("Id", "a_b", False), ("Id", "x" * 65, False),
    ("Uri", "urn:x", True), ("Uri", "has space", False), ("Uri", "", False),
    ("Url", "https://pictaderm.fr", True), ("Url", "https://a b", False),
    ("Canonical", "http://e.org/sd|1", True), ("Canonical", "a b", False),
    ("Oid", "urn:oid:1.2.250.1.71", True), ("Oid", "1.2.250", False),
    ("Uuid", "urn:uuid:0c3a9a3e-6f5b-4f7e-9a55-1f4c6c2b8d11", True),
    ("Uuid", "urn:uuid:0C3A9A3E-6F5B-4F7E-9A55-1F4C6C2B8D11", False),
    ("Base64Binary", "QUJD\nREVG", True), ("Base64Binary", "QUJ", False),
    ("Base64Binary", "QU JD", False),
    ("Date", "1980", True), ("Date", "1980-02", True), ("Date", "2024-02-29", True),
    ("Date", "1980-13-45", False), ("Date", "2023-02-29", False), ("Date", "80-01-01", False),
    ("DateTime", "2024-05-01T10:00:00+02:00", True), ("DateTime", "2024-05-01", True),
    ("DateTime", "2024-05-01T10:00:00", False), ("DateTime", "2024-04-31T10:00:00Z", False),
    ("Instant", "2024-05-01T10:00:00.123Z", True), ("Instant", "2024-05-01", False),
    ("Time", "23:59:59", True), ("Time", "24:00:00", False), ("Time", "10:00", False),
]


@pytest.mark.parametrize(("suffix", "value", "valid"), PRIMITIVE_CASES)
def test_primitive_values(validator: StructureValidator, suffix: str, value: Any,
                          valid: bool) -> None:
    issues = validator.validate(examples.basic_with_extension_value(f"value{suffix}", value))
    if valid:
        assert issues == ()
        return
    assert len(issues) == 1, issues
    type_name = suffix[0].lower() + suffix[1:]
    assert issues[0].expression == (f"Basic.extension[0].value.ofType({type_name})",)
    assert issues[0].issue_type is IssueType.VALUE
    assert type_name in issues[0].diagnostics


def test_date_message_is_readable(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["birthDate"] = "1980-13-45"
    issue = only_issue(validator, resource)
    assert issue.diagnostics == "Patient.birthDate: '1980-13-45' is not a valid date"
    assert issue.expression == ("Patient.birthDate",)


def test_resource_id_follows_the_id_type(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["id"] = "pat_1"
    assert where(validator.validate(resource)) == ["Patient.id"]


def test_primitive_inside_an_array_has_its_index(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["name"][0]["given"][1] = 7
    assert where(validator.validate(resource)) == ["Patient.name[0].given[1]"]


def test_narrative_div_must_be_xhtml(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["text"]["div"] = "Léa Martin"
    resource["text"]["_div"] = {"id": "d"}
    assert where(validator.validate(resource)) == ["Patient.text.div", "Patient.text._div"]


# --- complex types, backbone elements, contentReference ----------------------------------------

def test_complex_element_must_be_an_object(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["name"] = ["Léa Martin"]
    issue = only_issue(validator, resource)
    assert issue.expression == ("Patient.name[0]",)
    assert "HumanName" in issue.diagnostics


def test_quantity_profiles_are_validated_as_quantity(validator: StructureValidator) -> None:
    resource: dict[str, Any] = {"resourceType": "Condition", "subject": {"reference": "Patient/1"},
                "onsetAge": {"value": 12, "unit": "a", "system": "http://unitsofmeasure.org",
                             "code": "a"}}
    assert validator.validate(resource) == ()
    resource["onsetAge"]["comparator"] = ["<"]
    assert where(validator.validate(resource)) == ["Condition.onset.ofType(Age).comparator"]


def test_backbone_element_children(validator: StructureValidator) -> None:
    resource = examples.observation()
    resource["referenceRange"][0]["low"]["value"] = "36"
    resource["referenceRange"][0]["color"] = "red"
    assert where(validator.validate(resource)) == [
        "Observation.referenceRange[0].low.value", "Observation.referenceRange[0].color"]


def test_content_reference_questionnaire_items(validator: StructureValidator) -> None:
    resource = examples.questionnaire()
    nested = resource["item"][0]["item"][1]["item"][0]
    del nested["linkId"]
    nested["colour"] = "red"
    issues = validator.validate(resource)
    assert where(issues) == ["Questionnaire.item[0].item[1].item[0].colour",
                             "Questionnaire.item[0].item[1].item[0].linkId"]
    assert issues[1].issue_type is IssueType.REQUIRED


def test_content_reference_parameters_part(validator: StructureValidator) -> None:
    resource = examples.parameters()
    part = resource["parameter"][2]["part"][1]["part"][0]
    part["valueBoolean"] = "false"
    del part["name"]
    assert where(validator.validate(resource)) == [
        "Parameters.parameter[2].part[1].part[0].value.ofType(boolean)",
        "Parameters.parameter[2].part[1].part[0].name"]


def test_content_reference_keeps_its_own_cardinality(validator: StructureValidator) -> None:
    resource = {"resourceType": "ClaimResponse", "status": "active", "type": {"text": "t"},
                "use": "claim", "patient": {"reference": "Patient/1"},
                "created": "2024-01-01", "insurer": {"reference": "Organization/1"},
                "outcome": "complete",
                "addItem": [{"productOrService": {"text": "x"}}]}
    issue = only_issue(validator, resource)
    assert issue.expression == ("ClaimResponse.addItem[0].adjudication",)
    assert issue.issue_type is IssueType.REQUIRED


# --- resources inside resources ----------------------------------------------------------------

def test_bundle_entry_resources_are_validated(validator: StructureValidator) -> None:
    resource = examples.bundle()
    resource["entry"][0]["resource"]["birthDate"] = "1980-13-45"
    resource["entry"][1]["resource"]["foo"] = 1
    assert where(validator.validate(resource)) == [
        "Bundle.entry[0].resource.birthDate", "Bundle.entry[1].resource.foo"]


def test_bundle_entry_resource_needs_a_known_type(validator: StructureValidator) -> None:
    resource = examples.bundle()
    del resource["entry"][0]["resource"]["resourceType"]
    resource["entry"][1]["resource"]["resourceType"] = "Observations"
    issues = validator.validate(resource)
    assert where(issues) == ["Bundle.entry[0].resource.resourceType",
                             "Bundle.entry[1].resource.resourceType"]
    assert [issue.issue_type for issue in issues] == [IssueType.REQUIRED, IssueType.STRUCTURE]


def test_resource_typed_element_with_a_specific_type(validator: StructureValidator) -> None:
    resource: dict[str, Any] = {
        "resourceType": "Bundle", "type": "transaction-response",
        "entry": [{"response": {"status": "200", "outcome": {"resourceType": "Patient"}}}]}
    issue = only_issue(validator, resource)
    assert issue.expression == ("Bundle.entry[0].response.outcome.resourceType",)
    resource["entry"][0]["response"]["outcome"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational"}]}
    assert validator.validate(resource) == ()


def test_contained_resources_are_validated(validator: StructureValidator) -> None:
    resource = examples.patient_with_contained_and_extensions()
    resource["contained"][0]["name"] = ["Pharmacie"]
    resource["contained"].append({"resourceType": "Practitioner", "active": "yes"})
    assert where(validator.validate(resource)) == ["Patient.contained[0].name",
                                                   "Patient.contained[1].active"]


def test_parameters_resource_is_validated(validator: StructureValidator) -> None:
    resource = examples.parameters()
    resource["parameter"][1]["resource"]["gender"] = 1
    assert where(validator.validate(resource)) == ["Parameters.parameter[1].resource.gender"]


# --- extensions --------------------------------------------------------------------------------

def test_extension_needs_a_url(validator: StructureValidator) -> None:
    resource = examples.patient_with_contained_and_extensions()
    del resource["extension"][0]["extension"][1]["url"]
    issue = only_issue(validator, resource)
    assert issue.expression == ("Patient.extension[0].extension[1].url",)
    assert issue.issue_type is IssueType.REQUIRED


def test_extension_value_any_type_and_nesting(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource["extension"] = [
        {"url": "http://e.org/a", "valueHumanName": {"family": "X"}},
        {"url": "http://e.org/b", "valueAttachment": {"contentType": "image/jpeg"}},
        {"url": "http://e.org/c", "extension": [
            {"url": "d", "extension": [{"url": "e", "valueMeta": {"versionId": "1"}}]}]},
    ]
    assert validator.validate(resource) == ()
    resource["extension"][2]["extension"][0]["extension"][0]["valueMeta"]["versionId"] = ""
    assert where(validator.validate(resource)) == [
        "Patient.extension[2].extension[0].extension[0].value.ofType(Meta).versionId"]


def test_extension_url_is_a_plain_uri(validator: StructureValidator) -> None:
    resource = examples.basic_with_extension_value("valueString", "x")
    resource["extension"][0]["url"] = "not a uri"
    resource["extension"][0]["_url"] = {"id": "u"}
    assert where(validator.validate(resource)) == ["Basic.extension[0].url",
                                                   "Basic.extension[0]._url"]


# --- bounds and performance --------------------------------------------------------------------

def test_issues_are_bounded(validator: StructureValidator) -> None:
    resource = examples.patient()
    resource.update({f"unknown{index}": index for index in range(150)})
    issues = validator.validate(resource)
    assert len(issues) == MAX_ISSUES


def test_absurd_nesting_is_an_issue_not_a_crash(validator: StructureValidator) -> None:
    extension: dict[str, Any] = {"url": "http://e.org", "valueString": "leaf"}
    for _ in range(5000):
        extension = {"url": "http://e.org", "extension": [extension]}
    issue = only_issue(validator, {"resourceType": "Basic", "code": {"text": "x"},
                                   "extension": [extension]})
    assert issue.expression == ("Basic",)
    assert "nested too deeply" in issue.diagnostics


def test_a_large_bundle_validates_quickly(validator: StructureValidator) -> None:
    resource = {"resourceType": "Bundle", "type": "collection",
                "entry": [{"resource": examples.observation()} for _ in range(200)]}
    started = time.perf_counter()
    assert validator.validate(resource) == ()
    assert time.perf_counter() - started < 1.0


# --- every resource type -----------------------------------------------------------------------

BUILDER = MinimalBuilder(structure_definitions())


@pytest.mark.parametrize("resource_type", resource_types())
def test_every_type_accepts_its_minimal_instance(validator: StructureValidator,
                                                 resource_type: str) -> None:
    assert validator.validate(BUILDER.resource(resource_type)) == ()


@pytest.mark.parametrize("resource_type", resource_types())
def test_every_type_reports_each_missing_required_element(validator: StructureValidator,
                                                          resource_type: str) -> None:
    for key in BUILDER.required_keys(resource_type):
        resource = BUILDER.resource(resource_type)
        del resource[key]
        issues = validator.validate(resource)
        assert [issue.issue_type for issue in issues] == [IssueType.REQUIRED], key
        assert issues[0].expression[0].startswith(f"{resource_type}.")


def test_there_are_146_r4_resource_types() -> None:
    assert len(resource_types()) == 146
    assert "SubscriptionStatus" not in resource_types()  # R4B, not R4


def test_non_r4_elements_are_refused() -> None:
    """The shared copy of the definitions carried later and vendor elements: R4 has none."""
    for resource in ({"resourceType": "Patient", "meta": {"project": "x"}},
                     {"resourceType": "Binary", "contentType": "text/plain", "url": "http://x"},
                     {"resourceType": "ResearchStudy", "status": "active", "name": "x"}):
        assert validate_structure(resource), resource


# --- property: an unknown key anywhere is always reported --------------------------------------

def _known_names() -> frozenset[str]:
    names = {"resourceType"}
    for sd in structure_definitions().values():
        for element in sd["snapshot"]["element"]:
            name = element["path"].rpartition(".")[2]
            names.add(name)
            if name.endswith("[x]"):
                names.update(name[:-3] + t["code"][0].upper() + t["code"][1:]
                             for t in element.get("type", []))
    return frozenset(names)


KNOWN_NAMES = _known_names()
UNKNOWN_KEYS = st.text(min_size=1, max_size=12).filter(
    lambda key: key.lstrip("_") not in KNOWN_NAMES)


def _objects(value: Any) -> list[dict[str, Any]]:
    """Every JSON object inside ``value``, itself included."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        found.append(value)
        for child in value.values():
            found.extend(_objects(child))
    elif isinstance(value, list):
        for child in value:
            found.extend(_objects(child))
    return found


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(examples.VALID)), depth_pick=st.integers(min_value=0),
       key=UNKNOWN_KEYS, value=st.one_of(st.text(min_size=1), st.integers(), st.booleans()))
def test_an_unknown_key_at_any_depth_is_reported(name: str, depth_pick: int, key: str,
                                                 value: Any) -> None:
    resource = examples.VALID[name]()
    targets = _objects(resource)
    target = targets[depth_pick % len(targets)]
    target[key] = value
    issues = validate_structure(resource)
    assert issues
    assert any(issue.expression[0].endswith(f".{key}") for issue in issues), issues
