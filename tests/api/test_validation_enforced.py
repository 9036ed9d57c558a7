"""Writes are validated (issue #4 §2): core rules, declared profiles, the guide's profiles of case
resources and of intake bundles; refusals in French and English; the ``tag`` mode."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from conformance.case_bundle import find_cases, transaction_bundle
from fhir_server.api.app import create_app
from fhir_server.engine.write_validation import VALIDATION_STATUS_SYSTEM
from fhir_server.ig import Example, load_guide
from fhir_server.settings import Settings
from tests.api.conftest import AUTH, TOKEN, Api
from tests.support.backends import BACKENDS, make_store
from tests.support.factories import patient

GUIDE = load_guide()
INVALID = [e for e in GUIDE.examples if not e.valid]
VALID = [e for e in GUIDE.examples if e.valid]
CASES = {case.name: case for case in find_cases(GUIDE.examples)}
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
RETURN_OUTCOME = {"Prefer": "return=OperationOutcome"}
PROFILE = "https://fhir.pictaderm.com/StructureDefinition/"


def as_new(resource: dict[str, Any], *, declared: bool = True) -> dict[str, Any]:
    """A copy to create: no id; of ``meta`` only the declared profiles (none if not
    ``declared``)."""
    fresh = copy.deepcopy(resource)
    fresh.pop("id", None)
    profiles = (fresh.pop("meta", None) or {}).get("profile")
    if profiles and declared:
        fresh["meta"] = {"profile": profiles}
    return fresh


def example(filename: str) -> dict[str, Any]:
    return next(e.resource for e in GUIDE.examples if e.filename.endswith(f"/{filename}"))


def at(outcome: dict[str, Any], expression: str) -> list[dict[str, Any]]:
    return [i for i in outcome["issue"] if expression in i.get("expression", [])]


def english_of(issue: dict[str, Any]) -> str:
    [translation] = issue["details"]["_text"]["extension"]
    assert translation["url"] == TRANSLATION
    parts = {part["url"]: part for part in translation["extension"]}
    assert parts["lang"]["valueCode"] == "en"
    return str(parts["content"]["valueString"])


async def count(api: Api, resource_type: str) -> int:
    bundle = (await api.client.get(f"/{resource_type}", params={"_summary": "count"})).json()
    return int(bundle["total"])


async def counts(api: Api, types: set[str]) -> dict[str, int]:
    return {t: await count(api, t) for t in sorted(types)}


async def test_a_bogus_task_status_is_refused_in_french_and_english(api: Api) -> None:
    task = {"resourceType": "Task", "status": "bogus", "intent": "order"}
    response = await api.client.post("/Task", json=task)
    assert response.status_code == 422
    outcome = response.json()
    [issue] = at(outcome, "Task.status")
    assert (issue["severity"], issue["code"]) == ("error", "code-invalid")
    assert issue["diagnostics"].startswith("Task.status: ")
    assert "'bogus'" in issue["diagnostics"] and "required binding" in issue["diagnostics"]
    assert issue["details"]["text"].startswith("Task.status : ")
    assert "liaison obligatoire" in issue["details"]["text"]
    assert english_of(issue) == issue["diagnostics"]
    assert issue["details"]["coding"][0]["code"] == "PD-0422"
    assert all(i["details"]["text"] and i["expression"] for i in outcome["issue"])
    assert await count(api, "Task") == 0


async def test_a_case_resource_is_held_to_the_guide_without_declaring_it(api: Api) -> None:
    task = as_new(example("Task-skin-camille-martin.json"), declared=False)
    del task["focus"]
    refused = await api.client.post("/Task", json=task)
    assert refused.status_code == 422
    [issue] = at(refused.json(), "Task.focus")
    assert issue["code"] == "required" and PROFILE + "pictaderm-task" in issue["diagnostics"]
    generic = {k: v for k, v in task.items() if k not in ("businessStatus", "performerType")}
    assert (await api.client.post("/Task", json=generic)).status_code == 201


@pytest.mark.parametrize("invalid", INVALID, ids=lambda e: Path(e.filename).stem)
async def test_each_invalid_example_of_the_guide_is_refused(api: Api, invalid: Example) -> None:
    assert invalid.expected is not None
    resource_type = invalid.resource["resourceType"]
    response = await api.client.post(f"/{resource_type}", json=as_new(invalid.resource))
    assert response.status_code == 422, response.text
    located = at(response.json(), invalid.expected["expression"])
    assert any(i["code"] == invalid.expected["code"] and i["severity"] == "error"
               for i in located), (invalid.expected, located or response.json())


async def test_every_valid_example_is_accepted_declared_or_not(api: Api) -> None:
    for valid in VALID:
        for declared in (True, False):
            resource = as_new(valid.resource, declared=declared)
            response = await api.client.post(f"/{resource['resourceType']}", json=resource)
            assert response.status_code == 201, (valid.filename, declared, response.text)


async def test_the_guide_cases_are_accepted_as_transactions(api: Api) -> None:
    for case in CASES.values():
        bundle = transaction_bundle(case).bundle
        response = await api.client.post("", json=bundle)
        assert response.status_code == 200, (case.name, response.text[:3000])
        statuses = [e["response"]["status"] for e in response.json()["entry"]]
        assert statuses == ["201 Created"] * len(bundle["entry"])


async def test_an_intake_bundle_holds_each_resource_to_the_guide(api: Api) -> None:
    bundle = transaction_bundle(CASES["camille-martin"]).bundle
    entries = bundle["entry"]
    index = next(i for i, e in enumerate(entries)
                 if e["resource"]["resourceType"] == "Patient")
    undeclared = as_new(entries[index]["resource"], declared=False)
    del undeclared["birthDate"]
    entries[index]["resource"] = undeclared
    before = await counts(api, {e["resource"]["resourceType"] for e in entries})
    response = await api.client.post("", json=bundle)
    assert response.status_code == 422
    outcome = response.json()
    entry = f"Bundle.entry[{index}]"
    first = outcome["issue"][0]
    assert first["expression"] == [entry] and entry in first["diagnostics"]
    assert first["details"]["text"].startswith(f"{entry} : ")
    [missing] = at(outcome, f"{entry}.resource.birthDate")
    assert missing["code"] == "required" and "pictaderm-patient" in missing["diagnostics"]
    assert missing["diagnostics"].startswith(f"{entry}.resource.birthDate: ")
    assert missing["details"]["text"].startswith(f"{entry}.resource.birthDate : ")
    assert await counts(api, set(before)) == before
    alone = {k: v for k, v in undeclared.items() if k != "birthDate"}
    assert (await api.client.post("/Patient", json=alone)).status_code == 201


async def test_a_transaction_refused_by_one_entry_leaves_no_trace(api: Api) -> None:
    bundle = transaction_bundle(CASES["camille-martin"]).bundle
    entries = bundle["entry"]
    index = next(i for i, e in enumerate(entries) if e["resource"]["resourceType"] == "Media")
    del entries[index]["resource"]["bodySite"]
    types = {e["resource"]["resourceType"] for e in entries}
    before = await counts(api, types)
    history = (await api.client.get("/_history")).json().get("entry", [])
    response = await api.client.post("", json=bundle)
    assert response.status_code == 422
    assert at(response.json(), f"Bundle.entry[{index}].resource.bodySite")
    assert await counts(api, types) == before
    assert (await api.client.get("/_history")).json().get("entry", []) == history


async def test_updates_and_patches_are_validated(api: Api) -> None:
    task = {"resourceType": "Task", "status": "requested", "intent": "order"}
    created = (await api.client.post("/Task", json=task)).json()
    url = f"/Task/{created['id']}"
    put = await api.client.put(url, json={**created, "status": "bogus"})
    assert put.status_code == 422 and at(put.json(), "Task.status")
    ops = [{"op": "replace", "path": "/status", "value": "bogus"}]
    patched = await api.client.patch(url, content=orjson.dumps(ops),
                                     headers={"Content-Type": "application/json-patch+json"})
    assert patched.status_code == 422 and at(patched.json(), "Task.status")
    assert (await api.client.get(url)).json() == created


async def test_a_batch_entry_is_refused_with_its_own_outcome(api: Api) -> None:
    entries = [{"resource": resource, "request": {"method": "POST", "url": "Task"}}
               for resource in ({"resourceType": "Task", "status": "bogus", "intent": "order"},
                                {"resourceType": "Task", "status": "draft", "intent": "order"})]
    response = await api.client.post("", json={"resourceType": "Bundle", "type": "batch",
                                                "entry": entries})
    first, second = response.json()["entry"]
    assert first["response"]["status"].startswith("422")
    [issue] = at(first["response"]["outcome"], "Task.status")
    assert issue["code"] == "code-invalid" and english_of(issue) == issue["diagnostics"]
    assert second["response"]["status"] == "201 Created"


async def test_an_unknown_declared_profile_is_left_alone(api: Api) -> None:
    declared = patient(meta={"profile": ["http://example.org/StructureDefinition/other"]})
    assert (await api.client.post("/Patient", json=declared)).status_code == 201


async def test_warnings_come_back_only_when_an_outcome_is_asked_for(api: Api) -> None:
    plain = await api.client.post("/Patient", json=patient())
    assert plain.status_code == 201 and plain.json()["resourceType"] == "Patient"
    asked = await api.client.post("/Patient", json=patient(), headers=RETURN_OUTCOME)
    assert asked.status_code == 201
    issues = asked.json()["issue"]
    assert issues[0]["severity"] == "information"
    [narrative] = [i for i in issues if "dom-6" in i["diagnostics"]]
    assert narrative["severity"] == "warning" and narrative["expression"] == ["Patient"]
    assert "narratif" in narrative["details"]["text"]


@pytest.fixture(params=BACKENDS)
async def tagging(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    """The app with ``validation_mode=tag``."""
    store = make_store(request.param, tmp_path)
    settings = Settings(data_dir=tmp_path / "data", api_token=SecretStr(TOKEN),
                        outbox_dispatch=False, validation_mode="tag")
    app = create_app(settings, store=store)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=transport, base_url="http://test/fhir",
                              headers=AUTH) as client:
        yield Api(client=client, store=store, anonymous=client, app=app)


def status_tags(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in resource.get("meta", {}).get("tag", [])
            if t["system"] == VALIDATION_STATUS_SYSTEM]


async def test_tag_mode_stores_an_invalid_resource_with_a_tag(tagging: Api) -> None:
    api = tagging
    task = as_new(example("Task-skin-camille-martin.json"))
    task["businessStatus"]["coding"][0]["code"] = "waiting"
    created = await api.client.post("/Task", json=task, headers=RETURN_OUTCOME)
    assert created.status_code == 201
    [issue] = at(created.json(), "Task.businessStatus")
    assert (issue["severity"], issue["code"]) == ("error", "code-invalid")
    location = created.headers["Location"].split("/fhir/")[1].split("/_history")[0]
    stored = (await api.client.get(f"/{location}")).json()
    assert [t["code"] for t in status_tags(stored)] == ["invalid"]
    found = await api.client.get("/Task", params={"_tag": f"{VALIDATION_STATUS_SYSTEM}|invalid"})
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [stored["id"]]
    stored["businessStatus"]["coding"][0]["code"] = "report-available"
    fixed = await api.client.put(f"/{location}", json=stored)
    assert fixed.status_code == 200 and status_tags(fixed.json()) == []


async def test_tag_mode_still_refuses_structure_errors(tagging: Api) -> None:
    response = await tagging.client.post("/Patient", json=patient(gender=12))
    assert response.status_code == 422
    assert response.json()["issue"][0]["code"] == "structure"
    assert await count(tagging, "Patient") == 0


async def test_tag_mode_reports_entry_errors_in_a_transaction(tagging: Api) -> None:
    entries = [{"resource": resource, "request": {"method": "POST", "url": "Task"}}
               for resource in ({"resourceType": "Task", "status": "bogus", "intent": "order"},
                                {"resourceType": "Task", "status": "draft", "intent": "order"})]
    response = await tagging.client.post("", json={"resourceType": "Bundle",
                                                   "type": "transaction", "entry": entries})
    assert response.status_code == 200
    first, second = response.json()["entry"]
    assert first["response"]["status"] == "201 Created"
    assert at(first["response"]["outcome"], "Task.status")
    assert "outcome" not in second["response"]


async def test_a_client_cannot_tag_a_valid_resource_invalid(tagging: Api) -> None:
    tag = {"system": VALIDATION_STATUS_SYSTEM, "code": "invalid"}
    other = {"system": "http://example.org/tags", "code": "keep"}
    created = await tagging.client.post("/Patient",
                                        json=patient(meta={"tag": [tag, other]}))
    assert created.json()["meta"]["tag"] == [other]
