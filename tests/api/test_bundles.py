"""transaction (atomic, ordered, references rewritten) and batch (independent entries)."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from tests.api.conftest import Api
from tests.support.factories import NIR_SYSTEM, nir, observation, patient
from tests.support.guide import client_history


def tx(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict[str, Any], full_url: str | None = None,
         if_none_exist: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"resource": resource,
                             "request": {"method": "POST", "url": resource["resourceType"]}}
    if full_url:
        entry["fullUrl"] = full_url
    if if_none_exist:
        entry["request"]["ifNoneExist"] = if_none_exist
    return entry


async def _count(api: Api, resource_type: str) -> int:
    bundle = (await api.client.get(f"/{resource_type}", params={"_summary": "count"})).json()
    return int(bundle["total"])


async def test_transaction_rewrites_urn_uuid_references(api: Api) -> None:
    pid = "urn:uuid:6c0b7a54-0f3b-4f4c-9d16-1c2a4b0f5a11"
    bundle = tx(post(observation(pid), "urn:uuid:0c6b4a3e-6bbd-4c1e-8cc1-1d6d2f1e2a22"),
                post(patient(), pid))
    response = await api.client.post("", json=bundle)
    assert response.status_code == 200
    result = response.json()
    assert result["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    patient_location = result["entry"][1]["response"]["location"]
    obs_location = result["entry"][0]["response"]["location"]
    obs = (await api.client.get("/" + obs_location.split("/_history")[0])).json()
    assert obs["subject"]["reference"] == patient_location.split("/_history")[0]


async def test_transaction_conditional_create_does_not_duplicate(api: Api) -> None:
    number = nir()
    person = patient(identifier=[{"system": NIR_SYSTEM, "value": number}])
    criteria = f"identifier={NIR_SYSTEM}|{number}"
    pid = "urn:uuid:11111111-2222-3333-4444-555555555555"
    for _ in range(2):
        bundle = tx(post(person, pid, if_none_exist=criteria), post(observation(pid)))
        assert (await api.client.post("", json=bundle)).status_code == 200
    assert await _count(api, "Patient") == 1
    assert await _count(api, "Observation") == 2


async def test_failing_entry_rolls_back_everything(api: Api) -> None:
    bundle = tx(post(patient(), "urn:uuid:aaaaaaaa-0000-0000-0000-000000000001"),
                post(observation("urn:uuid:aaaaaaaa-0000-0000-0000-000000000001")),
                post({"resourceType": "Observation", "status": "final"}))
    response = await api.client.post("", json=bundle)
    assert response.status_code == 422
    issue = response.json()["issue"][0]
    assert "Bundle.entry[2]" in issue["diagnostics"]
    assert issue["expression"][0] == "Bundle.entry[2]"
    assert await _count(api, "Patient") == 0
    assert await _count(api, "Observation") == 0
    assert await client_history(api.client) == []


async def test_dangling_urn_uuid_is_refused(api: Api) -> None:
    bundle = tx(post(observation("urn:uuid:99999999-0000-0000-0000-000000000000")))
    response = await api.client.post("", json=bundle)
    assert response.status_code == 400
    assert await _count(api, "Observation") == 0


async def test_transaction_processing_order_and_all_methods(api: Api) -> None:
    old = (await api.client.post("/Patient", json=patient())).json()
    kept = (await api.client.post("/Patient", json=patient())).json()
    patch = base64.b64encode(orjson.dumps(
        [{"op": "replace", "path": "/gender", "value": "other"}])).decode()
    bundle = tx(
        {"request": {"method": "GET", "url": f"Patient/{kept['id']}"}},
        {"request": {"method": "PATCH", "url": f"Patient/{kept['id']}"},
         "resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
                      "data": patch}},
        {"request": {"method": "PUT", "url": "Patient/tx-put-1"},
         "resource": patient(id="tx-put-1")},
        post(patient()),
        {"request": {"method": "DELETE", "url": f"Patient/{old['id']}"}},
    )
    response = await api.client.post("", json=bundle)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert [e["response"]["status"] for e in entries] == [
        "200 OK", "200 OK", "201 Created", "201 Created", "204 No Content"]
    assert entries[0]["resource"]["gender"] == "other"  # GET runs after the writes
    assert (await api.client.get(f"/Patient/{old['id']}")).status_code == 410


async def test_conditional_reference_in_transaction(api: Api) -> None:
    number = nir()
    await api.client.post("/Patient", json=patient(
        identifier=[{"system": NIR_SYSTEM, "value": number}]))
    bundle = tx(post(observation(f"Patient?identifier={NIR_SYSTEM}|{number}")))
    response = await api.client.post("", json=bundle)
    assert response.status_code == 200, response.text
    location = response.json()["entry"][0]["response"]["location"]
    obs = (await api.client.get("/" + location.split("/_history")[0])).json()
    assert obs["subject"]["reference"].startswith("Patient/")


async def test_same_resource_twice_is_refused(api: Api) -> None:
    bundle = tx({"request": {"method": "PUT", "url": "Patient/twice"},
                 "resource": patient(id="twice")},
                {"request": {"method": "PUT", "url": "Patient/twice"},
                 "resource": patient(id="twice", gender="male")})
    response = await api.client.post("", json=bundle)
    assert response.status_code == 400
    assert (await api.client.get("/Patient/twice")).status_code == 404


async def test_transaction_if_match_failure(api: Api) -> None:
    created = (await api.client.post("/Patient", json=patient())).json()
    bundle = tx(post(patient()),
                {"request": {"method": "PUT", "url": f"Patient/{created['id']}",
                             "ifMatch": 'W/"4"'}, "resource": created})
    response = await api.client.post("", json=bundle)
    assert response.status_code == 412
    assert await _count(api, "Patient") == 1


async def test_batch_entries_are_independent(api: Api) -> None:
    bundle = tx(post(patient()),
                post({"resourceType": "Observation", "status": "final"}),
                {"request": {"method": "GET", "url": "Patient/nobody"}},
                {"request": {"method": "DELETE", "url": "Patient/nobody"}},
                kind="batch")
    response = await api.client.post("", json=bundle)
    assert response.status_code == 200
    entries = response.json()["entry"]
    assert entries[0]["response"]["status"] == "201 Created"
    assert entries[1]["response"]["status"].startswith("422")
    assert entries[1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert entries[2]["response"]["status"].startswith("404")
    assert entries[3]["response"]["status"].startswith("404")
    assert await _count(api, "Patient") == 1


async def test_bundle_representation_preference(api: Api) -> None:
    response = await api.client.post("", json=tx(post(patient())),
                                     headers={"Prefer": "return=representation"})
    assert response.json()["entry"][0]["resource"]["resourceType"] == "Patient"
    minimal = await api.client.post("", json=tx(post(patient())))
    assert "resource" not in minimal.json()["entry"][0]


async def test_bundle_of_other_type_is_refused(api: Api) -> None:
    response = await api.client.post("", json={"resourceType": "Bundle", "type": "collection"})
    assert response.status_code == 400
    not_bundle = await api.client.post("", json=patient())
    assert not_bundle.status_code == 400
