"""FHIRPath Patch (a Parameters resource) applied to resources: the five operations, value
building from parts, FHIR JSON list rules, the 400/422 split, purity."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_server.engine.patch import apply_fhirpath_patch
from fhir_server.errors import ErrorCode, FhirError

INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"


def patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "pat-1",
        "identifier": [{"system": INS_NIR, "value": "180017512345678"}],
        "name": [{"use": "official", "family": "Martin", "given": ["Claire", "Anne"]},
                 {"use": "maiden", "family": "Durand", "given": ["Claire"]}],
        "telecom": [{"system": "phone", "value": "0601020304", "use": "mobile"}],
        "gender": "female",
        "birthDate": "1980-07-14",
        "extension": [{"url": "http://example.org/fhir/StructureDefinition/phototype",
                       "valueCode": "III"}],
    }


def task() -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "id": "task-1",
        "status": "requested",
        "intent": "order",
        "businessStatus": {"coding": [{"system": "http://example.org/status",
                                       "code": "awaiting-photos"}]},
        "note": [{"text": "Lesion on the left forearm"}, {"text": "Itching for 2 weeks"}],
    }


def observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "obs-1",
        "status": "final",
        "code": {"text": "Lesion diameter"},
        "valueQuantity": {"value": 6, "unit": "mm", "system": "http://unitsofmeasure.org",
                          "code": "mm"},
    }


def operation(kind: str, path: str, *, name: str | None = None,
              value: dict[str, Any] | None = None, **counts: int) -> dict[str, Any]:
    """One ``operation`` parameter; ``value`` is the value part without its name."""
    parts: list[dict[str, Any]] = [{"name": "type", "valueCode": kind},
                                   {"name": "path", "valueString": path}]
    if name is not None:
        parts.append({"name": "name", "valueString": name})
    if value is not None:
        parts.append({"name": "value", **value})
    parts.extend({"name": key, "valueInteger": count} for key, count in counts.items())
    return {"name": "operation", "part": parts}


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


def refusal(resource: dict[str, Any], parameters: Any) -> FhirError:
    with pytest.raises(FhirError) as caught:
        apply_fhirpath_patch(resource, parameters)
    return caught.value


# --- add ----------------------------------------------------------------------------------------

def test_add_a_single_element_to_the_resource() -> None:
    original = task()
    del original["businessStatus"]
    patched = apply_fhirpath_patch(original, patch(operation(
        "add", "Task", name="businessStatus",
        value={"valueCodeableConcept": {"text": "photos received"}})))
    assert patched["businessStatus"] == {"text": "photos received"}
    assert {k: v for k, v in patched.items() if k != "businessStatus"} == original


def test_add_appends_to_an_existing_list() -> None:
    patched = apply_fhirpath_patch(patient(), patch(operation(
        "add", "Patient", name="telecom",
        value={"valueContactPoint": {"system": "email", "value": "c.martin@example.fr"}})))
    assert [t["system"] for t in patched["telecom"]] == ["phone", "email"]


def test_add_to_a_repeating_element_creates_the_list() -> None:
    original = patient()
    del original["identifier"]
    patched = apply_fhirpath_patch(original, patch(operation(
        "add", "Patient", name="identifier",
        value={"valueIdentifier": {"system": INS_NIR, "value": "280017512345678"}})))
    assert patched["identifier"] == [{"system": INS_NIR, "value": "280017512345678"}]


def test_add_a_primitive_to_a_selected_element() -> None:
    patched = apply_fhirpath_patch(patient(), patch(operation(
        "add", "Patient.name.where(use = 'official')", name="given",
        value={"valueString": "Louise"})))
    assert patched["name"][0]["given"] == ["Claire", "Anne", "Louise"]
    assert patched["name"][1] == patient()["name"][1]


def test_add_a_complex_value_given_as_parts() -> None:
    patched = apply_fhirpath_patch(patient(), patch(operation(
        "add", "Patient", name="contact", value={"part": [
            {"name": "name", "valueHumanName": {"family": "Martin", "given": ["Paul"]}},
            {"name": "telecom", "valueContactPoint": {"system": "phone", "value": "0611"}},
            {"name": "period", "part": [{"name": "start", "valueDateTime": "2024-01-01"}]},
        ]})))
    assert patched["contact"] == [{
        "name": {"family": "Martin", "given": ["Paul"]},
        "telecom": [{"system": "phone", "value": "0611"}],
        "period": {"start": "2024-01-01"},
    }]


def test_add_a_choice_element_named_by_its_base() -> None:
    original = observation()
    del original["valueQuantity"]
    patched = apply_fhirpath_patch(original, patch(operation(
        "add", "Observation", name="value", value={"valueString": "about 6 mm"})))
    assert patched["valueString"] == "about 6 mm"


def test_add_an_extension_from_parts() -> None:
    url = "http://example.org/fhir/StructureDefinition/lesion-site"
    patched = apply_fhirpath_patch(observation(), patch(operation(
        "add", "Observation", name="extension", value={"part": [
            {"name": "url", "valueUri": url},
            {"name": "value", "valueCodeableConcept": {"text": "left forearm"}},
        ]})))
    assert patched["extension"] == [{"url": url,
                                     "valueCodeableConcept": {"text": "left forearm"}}]


def test_add_a_single_element_that_is_already_present_is_422() -> None:
    error = refusal(patient(), patch(operation(
        "add", "Patient", name="birthDate", value={"valueDate": "1990-01-01"})))
    assert error.error is ErrorCode.INVALID_RESOURCE
    assert "use replace" in error.diagnostics


def test_add_an_unknown_element_is_422() -> None:
    error = refusal(patient(), patch(operation(
        "add", "Patient", name="shoeSize", value={"valueInteger": 42})))
    assert error.error is ErrorCode.INVALID_RESOURCE
    assert "shoeSize" in error.diagnostics


# --- insert -------------------------------------------------------------------------------------

def test_insert_at_an_index() -> None:
    patched = apply_fhirpath_patch(task(), patch(operation(
        "insert", "Task.note", value={"valueAnnotation": {"text": "Seen by GP"}}, index=1)))
    assert [n["text"] for n in patched["note"]] == [
        "Lesion on the left forearm", "Seen by GP", "Itching for 2 weeks"]


def test_insert_at_the_end_and_into_a_missing_list() -> None:
    original = patient()
    del original["identifier"]
    patched = apply_fhirpath_patch(original, patch(
        operation("insert", "Patient.telecom", index=1,
                  value={"valueContactPoint": {"system": "email", "value": "c@example.fr"}}),
        operation("insert", "Patient.identifier", index=0,
                  value={"valueIdentifier": {"system": INS_NIR, "value": "1800175"}}),
    ))
    assert [t["system"] for t in patched["telecom"]] == ["phone", "email"]
    assert patched["identifier"] == [{"system": INS_NIR, "value": "1800175"}]


def test_insert_a_primitive_into_a_nested_list() -> None:
    patched = apply_fhirpath_patch(patient(), patch(operation(
        "insert", "Patient.name[0].given", value={"valueString": "Marie"}, index=0)))
    assert patched["name"][0]["given"] == ["Marie", "Claire", "Anne"]


def test_insert_beyond_the_end_is_422() -> None:
    error = refusal(task(), patch(operation(
        "insert", "Task.note", value={"valueAnnotation": {"text": "x"}}, index=3)))
    assert error.error is ErrorCode.INVALID_RESOURCE
    assert "index 3" in error.diagnostics


def test_insert_into_a_single_element_is_422() -> None:
    error = refusal(task(), patch(operation(
        "insert", "Task.businessStatus", value={"valueCodeableConcept": {"text": "x"}},
        index=0)))
    assert error.error is ErrorCode.INVALID_RESOURCE
    assert "not a list" in error.diagnostics


def test_insert_where_the_holder_is_ambiguous_is_422() -> None:
    error = refusal(patient(), patch(operation(
        "insert", "Patient.name.given", value={"valueString": "x"}, index=0)))
    assert error.error is ErrorCode.INVALID_RESOURCE
    assert "matches 2" in error.diagnostics


# --- delete -------------------------------------------------------------------------------------

def test_delete_a_list_item_selected_by_a_filter() -> None:
    patched = apply_fhirpath_patch(patient(), patch(operation(
        "delete", "Patient.name.where(use = 'maiden')")))
    assert [n["use"] for n in patched["name"]] == ["official"]


def test_delete_a_single_element() -> None:
    patched = apply_fhirpath_patch(task(), patch(operation("delete", "Task.businessStatus")))
    assert "businessStatus" not in patched
    assert patched["status"] == "requested"


def test_delete_the_last_item_removes_the_list() -> None:
    patched = apply_fhirpath_patch(patient(), patch(operation("delete", "Patient.telecom[0]")))
    assert "telecom" not in patched


def test_delete_the_last_member_removes_the_emptied_object() -> None:
    original = patient()
    original["name"][1] = {"family": "Durand"}
    patched = apply_fhirpath_patch(original, patch(operation(
        "delete", "Patient.name[1].family")))
    assert len(patched["name"]) == 1
    assert patched["name"][0]["family"] == "Martin"


def test_delete_what_matches_nothing_is_a_no_op() -> None:
    original = patient()
    patched = apply_fhirpath_patch(original, patch(operation("delete", "Patient.deceased")))
    assert patched == original


def test_delete_several_matches_is_422() -> None:
    error = refusal(patient(), patch(operation("delete", "Patient.name.given")))
    assert error.error is ErrorCode.INVALID_RESOURCE
    assert "matches 3 elements" in error.diagnostics


def test_delete_an_extension_and_a_primitive_keeps_extensions_aligned() -> None:
    original = patient()
    original["name"][0]["_given"] = [None, {"extension": [
        {"url": "http://example.org/usage", "valueCode": "preferred"}]}]
    patched = apply_fhirpath_patch(original, patch(
        operation("delete", "Patient.name[0].given[0]"),
        operation("delete", "Patient.extension('http://example.org/fhir/StructureDefinition/"
                            "phototype')"),
    ))
    assert patched["name"][0]["given"] == ["Anne"]
    assert patched["name"][0]["_given"] == original["name"][0]["_given"][1:]
    assert "extension" not in patched


# --- replace ------------------------------------------------------------------------------------

def test_replace_primitives() -> None:
    patched = apply_fhirpath_patch(task(), patch(
        operation("replace", "Task.status", value={"valueCode": "in-progress"}),
        operation("replace", "Task.note[1].text", value={"valueMarkdown": "Itching stopped"}),
    ))
    assert patched["status"] == "in-progress"
    assert patched["note"][1]["text"] == "Itching stopped"
    assert list(patched) == list(task())


def test_replace_a_primitive_replaces_its_extensions_too() -> None:
    original = patient()
    original["name"][0]["_given"] = [None, {"extension": [
        {"url": "http://example.org/usage", "valueCode": "preferred"}]}]
    patched = apply_fhirpath_patch(original, patch(operation(
        "replace", "Patient.name[0].given[1]", value={"valueString": "Louise"})))
    assert patched["name"][0]["given"] == ["Claire", "Louise"]
    assert "_given" not in patched["name"][0]


def test_replace_a_list_item_selected_by_a_filter() -> None:
    patched = apply_fhirpath_patch(patient(), patch(operation(
        "replace", "Patient.telecom.where(system = 'phone')",
        value={"valueContactPoint": {"system": "phone", "value": "0699999999"}})))
    assert patched["telecom"] == [{"system": "phone", "value": "0699999999"}]


def test_replace_a_complex_element() -> None:
    patched = apply_fhirpath_patch(task(), patch(operation(
        "replace", "Task.businessStatus",
        value={"valueCodeableConcept": {"coding": [{"system": "http://example.org/status",
                                                    "code": "report-ready"}]}})))
    assert patched["businessStatus"]["coding"][0]["code"] == "report-ready"


def test_replace_an_observation_value_keeping_or_changing_its_type() -> None:
    same_type = apply_fhirpath_patch(observation(), patch(operation(
        "replace", "Observation.value",
        value={"valueQuantity": {"value": 8, "unit": "mm"}})))
    assert same_type["valueQuantity"] == {"value": 8, "unit": "mm"}
    other_type = apply_fhirpath_patch(observation(), patch(operation(
        "replace", "Observation.value", value={"valueString": "8 mm"})))
    assert other_type["valueString"] == "8 mm"
    assert "valueQuantity" not in other_type
    inner = apply_fhirpath_patch(observation(), patch(operation(
        "replace", "Observation.value.value", value={"valueDecimal": 7.5})))
    assert inner["valueQuantity"]["value"] == 7.5


def test_replace_an_extension_value() -> None:
    url = "http://example.org/fhir/StructureDefinition/phototype"
    patched = apply_fhirpath_patch(patient(), patch(operation(
        "replace", f"Patient.extension('{url}').value", value={"valueCode": "IV"})))
    assert patched["extension"] == [{"url": url, "valueCode": "IV"}]


def test_replace_what_matches_nothing_is_422() -> None:
    error = refusal(patient(), patch(operation(
        "replace", "Patient.deceased", value={"valueBoolean": True})))
    assert error.error is ErrorCode.INVALID_RESOURCE
    assert "matches nothing" in error.diagnostics


def test_replace_several_matches_is_422() -> None:
    error = refusal(patient(), patch(operation(
        "replace", "Patient.name.family", value={"valueString": "X"})))
    assert error.error is ErrorCode.INVALID_RESOURCE


# --- move ---------------------------------------------------------------------------------------

def test_move_within_a_list() -> None:
    patched = apply_fhirpath_patch(task(), patch(operation(
        "move", "Task.note", source=1, destination=0)))
    assert [n["text"] for n in patched["note"]] == ["Itching for 2 weeks",
                                                    "Lesion on the left forearm"]


def test_move_out_of_range_is_422() -> None:
    error = refusal(patient(), patch(operation(
        "move", "Patient.name[0].given", source=0, destination=2)))
    assert error.error is ErrorCode.INVALID_RESOURCE
    assert "destination index 2" in error.diagnostics


# --- documents, identity, purity ----------------------------------------------------------------

def test_operations_apply_in_order() -> None:
    patched = apply_fhirpath_patch(observation(), patch(
        operation("delete", "Observation.value"),
        operation("add", "Observation", name="value", value={"valueBoolean": True}),
    ))
    assert patched["valueBoolean"] is True
    assert "valueQuantity" not in patched


@pytest.mark.parametrize("parameters", [
    [],
    {"resourceType": "Patient"},
    {"resourceType": "Parameters"},
    {"resourceType": "Parameters", "parameter": []},
    patch({"name": "patch", "part": []}),
    patch({"name": "operation"}),
    patch({"name": "operation", "part": [{"name": "path", "valueString": "Patient"}]}),
    patch(operation("upsert", "Patient.gender", value={"valueCode": "male"})),
    patch(operation("replace", "Patient.gender")),
    patch(operation("add", "Patient", value={"valueCode": "male"})),
    patch(operation("insert", "Patient.telecom", value={"valueString": "x"})),
    patch(operation("move", "Patient.name", source=0)),
    patch(operation("delete", "Patient.gender", value={"valueCode": "male"})),
    patch(operation("replace", "Patient.name.where(", value={"valueString": "x"})),
    patch(operation("replace", "Patient.gender", value={"valueCode": "male",
                                                        "valueString": "male"})),
    patch(operation("replace", "Patient.gender", value={"part": []})),
    patch(operation("insert", "Patient.telecom.first()", value={"valueString": "x"},
                    index=0)),
    patch(operation("move", "Patient.name", source=-1, destination=0)),
    patch(operation("replace", "Patient.gender.unknownFunction()",
                    value={"valueCode": "male"})),
], ids=["not-parameters", "wrong-resource", "no-parameter", "empty-parameter",
        "not-an-operation", "no-parts", "no-type", "unknown-type", "no-value", "no-name",
        "no-index", "no-destination", "extra-part", "syntax-error", "two-values",
        "empty-parts", "insert-into-filter", "negative-index", "unknown-function"])
def test_malformed_documents_are_400(parameters: Any) -> None:
    error = refusal(patient(), parameters)
    assert error.error is ErrorCode.BAD_REQUEST
    assert error.status == 400


def test_errors_point_at_the_failing_operation() -> None:
    error = refusal(task(), patch(
        operation("replace", "Task.status", value={"valueCode": "accepted"}),
        operation("replace", "Task.owner", value={"valueReference": {"reference": "Pr/1"}}),
    ))
    assert error.status == 422
    assert error.expression == ("Parameters.parameter[1]",)
    assert "operation at index 1 (replace Task.owner)" in error.diagnostics


def test_a_malformed_operation_points_at_its_parameter() -> None:
    error = refusal(task(), patch(
        operation("replace", "Task.status", value={"valueCode": "accepted"}),
        operation("teleport", "Task.status"),
    ))
    assert error.status == 400
    assert error.expression == ("Parameters.parameter[1]",)


@pytest.mark.parametrize("operations", [
    [operation("replace", "Patient.id", value={"valueId": "pat-2"})],
    [operation("delete", "Patient.id")],
], ids=["replace-id", "delete-id"])
def test_the_id_cannot_change(operations: list[dict[str, Any]]) -> None:
    error = refusal(patient(), patch(*operations))
    assert error.error is ErrorCode.INVALID_RESOURCE
    assert "id" in error.diagnostics


def test_the_resource_itself_cannot_be_deleted_or_replaced() -> None:
    for parameters in (patch(operation("delete", "Patient")),
                       patch(operation("replace", "Patient",
                                       value={"valueString": "nothing"}))):
        assert refusal(patient(), parameters).error is ErrorCode.INVALID_RESOURCE


def test_neither_the_resource_nor_the_parameters_are_mutated() -> None:
    original = patient()
    contact = {"part": [{"name": "name", "valueHumanName": {"family": "Martin"}}]}
    parameters = patch(
        operation("add", "Patient", name="contact", value=contact),
        operation("add", "Patient.contact[0].name", name="given", value={"valueString": "P"}),
        operation("replace", "Patient.name[0].family", value={"valueString": "Dubois"}),
        operation("delete", "Patient.telecom[0]"),
        operation("move", "Patient.name", source=1, destination=0),
    )
    parameters_before = copy.deepcopy(parameters)
    patched = apply_fhirpath_patch(original, parameters)
    assert original == patient()
    assert parameters == parameters_before
    assert patched["contact"] == [{"name": {"family": "Martin", "given": ["P"]}}]
    assert [n["family"] for n in patched["name"]] == ["Durand", "Dubois"]
