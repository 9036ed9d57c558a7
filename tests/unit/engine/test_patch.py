"""JSON Patch (RFC 6902) applied to resources: each operation, the 400/422 split, purity."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_server.engine.patch import apply_json_patch
from fhir_server.errors import ErrorCode, FhirError


def patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "pat-1",
        "meta": {"versionId": "3", "lastUpdated": "2024-05-02T10:00:00Z"},
        "identifier": [{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "180017512345678"}],
        "name": [{"use": "official", "family": "Martin", "given": ["Claire", "Anne"]}],
        "telecom": [{"system": "phone", "value": "0601020304", "use": "mobile"}],
        "gender": "female",
        "birthDate": "1980-07-14",
    }


def task() -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "id": "task-1",
        "status": "requested",
        "intent": "order",
        "businessStatus": {"text": "awaiting photos"},
        "note": [{"text": "Lesion on the left forearm"}],
    }


def refusal(resource: dict[str, Any], operations: object) -> FhirError:
    with pytest.raises(FhirError) as caught:
        apply_json_patch(resource, operations)
    return caught.value


def test_replace_changes_only_the_target() -> None:
    original = patient()
    patched = apply_json_patch(original, [{"op": "replace", "path": "/birthDate",
                                           "value": "1981-07-14"}])
    expected = patient()
    expected["birthDate"] = "1981-07-14"
    assert patched == expected


def test_add_appends_to_a_list_and_creates_members() -> None:
    patched = apply_json_patch(patient(), [
        {"op": "add", "path": "/telecom/-",
         "value": {"system": "email", "value": "claire.martin@example.fr"}},
        {"op": "add", "path": "/name/0/prefix", "value": ["Mme"]},
    ])
    assert [t["system"] for t in patched["telecom"]] == ["phone", "email"]
    assert patched["name"][0]["prefix"] == ["Mme"]


def test_remove_move_copy_and_test_on_a_task() -> None:
    patched = apply_json_patch(task(), [
        {"op": "test", "path": "/status", "value": "requested"},
        {"op": "replace", "path": "/status", "value": "in-progress"},
        {"op": "copy", "from": "/note/0", "path": "/note/-"},
        {"op": "replace", "path": "/note/1/text", "value": "Photos received"},
        {"op": "move", "from": "/note/1", "path": "/note/0"},
        {"op": "remove", "path": "/businessStatus"},
    ])
    assert patched["status"] == "in-progress"
    assert [n["text"] for n in patched["note"]] == ["Photos received",
                                                    "Lesion on the left forearm"]
    assert "businessStatus" not in patched


def test_meta_may_be_patched() -> None:
    patched = apply_json_patch(patient(), [
        {"op": "add", "path": "/meta/tag", "value": [{"code": "urgent"}]}])
    assert patched["meta"]["tag"] == [{"code": "urgent"}]


def test_an_empty_patch_returns_an_equal_copy() -> None:
    original = patient()
    patched = apply_json_patch(original, [])
    assert patched == original
    assert patched is not original


def test_neither_the_resource_nor_the_operations_are_mutated() -> None:
    original = patient()
    operations = [
        {"op": "add", "path": "/name/-", "value": {"family": "Dubois", "given": ["C"]}},
        {"op": "add", "path": "/name/1/given/-", "value": "Lucie"},
        {"op": "remove", "path": "/telecom/0"},
    ]
    operations_before = copy.deepcopy(operations)
    patched = apply_json_patch(original, operations)
    assert original == patient()
    assert operations == operations_before
    assert patched["name"][1]["given"] == ["C", "Lucie"]
    assert "telecom" in patched and patched["telecom"] == []


@pytest.mark.parametrize("operations", [
    {"op": "replace", "path": "/gender", "value": "male"},
    "not a patch",
    [["replace", "/gender", "male"]],
    [{"op": "append", "path": "/gender", "value": "x"}],
    [{"path": "/gender", "value": "male"}],
    [{"op": "replace", "path": "/gender"}],
    [{"op": "move", "path": "/gender"}],
    [{"op": "replace", "path": "gender", "value": "male"}],
    [{"op": "replace", "path": "/a~2b", "value": "male"}],
    [{"op": ["replace"], "path": "/gender", "value": "male"}],
], ids=["object", "string", "array-op", "non-rfc-op", "no-op", "no-value", "no-from",
        "bad-pointer", "bad-escape", "op-not-a-string"])
def test_malformed_documents_are_400(operations: object) -> None:
    error = refusal(patient(), operations)
    assert error.error is ErrorCode.BAD_REQUEST
    assert error.status == 400


@pytest.mark.parametrize(("operations", "words"), [
    ([{"op": "test", "path": "/gender", "value": "male"}], "test failed"),
    ([{"op": "remove", "path": "/deceasedBoolean"}], "non-existent"),
    ([{"op": "replace", "path": "/name/4/family", "value": "X"}], "out of bounds"),
    ([{"op": "add", "path": "/telecom/7", "value": {}}], "outside of list"),
    ([{"op": "add", "path": "/contact/0/name", "value": {}}], "not found"),
], ids=["failed-test", "missing-member", "index-out-of-range", "insert-beyond-end",
        "missing-parent"])
def test_patches_that_cannot_apply_are_422(operations: list[dict[str, Any]],
                                            words: str) -> None:
    error = refusal(patient(), operations)
    assert error.error is ErrorCode.INVALID_RESOURCE
    assert error.status == 422
    assert words in error.diagnostics
    assert operations[0]["path"] in error.diagnostics


def test_the_failing_operation_is_named_by_index() -> None:
    error = refusal(patient(), [
        {"op": "replace", "path": "/gender", "value": "male"},
        {"op": "remove", "path": "/photo"},
    ])
    assert "operation at index 1 (remove /photo)" in error.diagnostics


def test_diagnostics_do_not_quote_the_resource() -> None:
    error = refusal(patient(), [{"op": "copy", "from": "/contact/0", "path": "/contact/1"}])
    assert error.status == 422
    assert "Martin" not in error.diagnostics


@pytest.mark.parametrize("operations", [
    [{"op": "replace", "path": "/id", "value": "pat-2"}],
    [{"op": "remove", "path": "/id"}],
    [{"op": "replace", "path": "/resourceType", "value": "Practitioner"}],
    [{"op": "replace", "path": "", "value": {"resourceType": "Patient", "id": "pat-9"}}],
    [{"op": "replace", "path": "", "value": ["not", "a", "resource"]}],
], ids=["replace-id", "remove-id", "change-type", "swap-document", "not-an-object"])
def test_resource_type_and_id_cannot_change(operations: list[dict[str, Any]]) -> None:
    error = refusal(patient(), operations)
    assert error.error is ErrorCode.INVALID_RESOURCE


def test_the_whole_document_may_be_replaced_by_the_same_identity() -> None:
    replacement = {"resourceType": "Patient", "id": "pat-1", "active": False}
    patched = apply_json_patch(patient(), [{"op": "replace", "path": "", "value": replacement}])
    assert patched == replacement


@given(gender=st.sampled_from(["male", "female", "other", "unknown"]))
def test_replacing_gender_changes_nothing_else(gender: str) -> None:
    original = patient()
    patched = apply_json_patch(original, [{"op": "replace", "path": "/gender", "value": gender}])
    assert patched["gender"] == gender
    assert {k: v for k, v in patched.items() if k != "gender"} == \
        {k: v for k, v in original.items() if k != "gender"}
    assert original == patient()
