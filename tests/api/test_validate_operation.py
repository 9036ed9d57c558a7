"""``$validate`` at the type and instance levels: resource, mode and profile; always 200 with an
OperationOutcome, 400 for a malformed request, 404 for an unknown instance."""

from __future__ import annotations

import copy
from typing import Any

from fhir_server.engine.validate_operation import DEFINITION
from fhir_server.ig import load_guide
from tests.api.conftest import Api
from tests.support.factories import patient

PATIENT_PROFILE = "https://fhir.pictaderm.com/StructureDefinition/pictaderm-patient"
UNKNOWN_PROFILE = "http://example.org/StructureDefinition/nobody"


def parameters(resource: dict[str, Any] | None = None, **values: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [{"name": "resource", "resource": resource}] if resource else []
    entries += [{"name": name, "valueUri" if name == "profile" else "valueCode": value}
                for name, value in values.items()]
    return {"resourceType": "Parameters", "parameter": entries}


def errors(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    assert outcome["resourceType"] == "OperationOutcome"
    return [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


def all_ok(outcome: dict[str, Any]) -> bool:
    first = outcome["issue"][0]
    return (not errors(outcome) and first["severity"] == "information"
            and first["diagnostics"].startswith("All OK") and "correct" in first["details"]["text"])


async def created(api: Api, resource: dict[str, Any]) -> dict[str, Any]:
    response = await api.client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


async def test_a_valid_bare_resource_is_all_ok_and_nothing_is_stored(api: Api) -> None:
    response = await api.client.post("/Patient/$validate", json=patient())
    assert response.status_code == 200
    outcome = response.json()
    assert all_ok(outcome)
    assert any("dom-6" in i["diagnostics"] for i in outcome["issue"])
    search = await api.client.get("/Patient", params={"_summary": "count"})
    assert search.json()["total"] == 0


async def test_errors_come_back_with_200_in_both_languages(api: Api) -> None:
    task = {"resourceType": "Task", "status": "bogus", "intent": "order"}
    response = await api.client.post("/Task/$validate", json=parameters(task, mode="create"))
    assert response.status_code == 200
    [issue] = errors(response.json())
    assert (issue["code"], issue["expression"]) == ("code-invalid", ["Task.status"])
    assert issue["details"]["text"].startswith("Task.status : ")


async def test_a_profile_parameter_adds_that_profile(api: Api) -> None:
    undated = {k: v for k, v in patient().items() if k != "birthDate"}
    assert all_ok((await api.client.post("/Patient/$validate", json=undated)).json())
    checked = await api.client.post("/Patient/$validate",
                                    json=parameters(undated, profile=PATIENT_PROFILE))
    assert checked.status_code == 200
    assert ["Patient.birthDate"] in [i["expression"] for i in errors(checked.json())]


async def test_an_unknown_profile_is_the_validators_issue(api: Api) -> None:
    response = await api.client.post("/Patient/$validate",
                                     json=parameters(patient(), profile=UNKNOWN_PROFILE))
    assert response.status_code == 200
    [issue] = errors(response.json())
    assert issue["code"] == "not-supported" and UNKNOWN_PROFILE in issue["diagnostics"]


async def test_case_resources_are_checked_against_the_guide(api: Api) -> None:
    task = next(copy.deepcopy(e.resource) for e in load_guide().examples
                if e.filename.endswith("/Task-skin-camille-martin.json"))
    del task["meta"], task["focus"]
    outcome = (await api.client.post("/Task/$validate", json=task)).json()
    assert [i["expression"] for i in errors(outcome)] == [["Task.focus"]]


async def test_the_stored_instance_is_checked_by_get_or_post(api: Api) -> None:
    stored = await created(api, {k: v for k, v in patient().items() if k != "birthDate"})
    url = f"/Patient/{stored['id']}/$validate"
    assert all_ok((await api.client.get(url)).json())
    assert all_ok((await api.client.post(url)).json())
    profiled = await api.client.get(url, params={"profile": PATIENT_PROFILE})
    assert profiled.status_code == 200
    assert ["Patient.birthDate"] in [i["expression"] for i in errors(profiled.json())]


async def test_an_unknown_instance_is_404(api: Api) -> None:
    assert (await api.client.get("/Patient/nobody/$validate")).status_code == 404
    deletion = await api.client.post("/Patient/nobody/$validate", json=parameters(mode="delete"))
    assert deletion.status_code == 404


async def test_mode_delete_answers_information(api: Api) -> None:
    stored = await created(api, patient())
    response = await api.client.post(f"/Patient/{stored['id']}/$validate",
                                     json=parameters(mode="delete"))
    assert response.status_code == 200
    [issue] = response.json()["issue"]
    assert issue["severity"] == "information" and f"Patient/{stored['id']}" in issue["diagnostics"]
    assert (await api.client.get(f"/Patient/{stored['id']}")).status_code == 200


async def test_mode_update_needs_the_instances_id(api: Api) -> None:
    stored = await created(api, patient())
    url = f"/Patient/{stored['id']}/$validate"
    same = await api.client.post(url, json=parameters(stored, mode="update"))
    assert all_ok(same.json())
    other = await api.client.post(url, json=parameters({**stored, "id": "other"}, mode="update"))
    assert [i["expression"] for i in errors(other.json())] == [["Patient.id"]]
    missing = await api.client.post("/Patient/$validate", json=parameters(patient(), mode="update"))
    assert [(i["code"], i["expression"]) for i in errors(missing.json())] == [
        ("required", ["Patient.id"])]


async def test_malformed_requests_are_400(api: Api) -> None:
    no_resource = await api.client.post("/Patient/$validate", json=parameters(mode="create"))
    assert no_resource.status_code == 400
    assert (await api.client.get("/Patient/$validate")).status_code == 400
    other_type = await api.client.post("/Observation/$validate", json=patient())
    assert other_type.status_code == 400
    bad_mode = await api.client.post("/Patient/$validate", json=parameters(patient(), mode="x"))
    assert bad_mode.status_code == 400
    typed_delete = await api.client.post("/Patient/$validate", json=parameters(mode="delete"))
    assert typed_delete.status_code == 400
    no_profile = await api.client.post("/Patient/$validate",
                                       json=parameters(patient(), mode="profile"))
    assert no_profile.status_code == 400
    assert all(r.json()["resourceType"] == "OperationOutcome"
               for r in (no_resource, other_type, bad_mode, typed_delete, no_profile))


async def test_the_capability_statement_lists_it_on_every_type(api: Api) -> None:
    statement = (await api.client.get("/metadata")).json()
    for resource in statement["rest"][0]["resource"]:
        assert {"name": "validate", "definition": DEFINITION} in resource.get("operation", []), (
            resource["type"])
