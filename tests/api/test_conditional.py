"""Conditional create, update, delete and patch (criteria: _id, identifier, _lastUpdated)."""

from __future__ import annotations

from urllib.parse import quote

from tests.api.conftest import Api
from tests.support.factories import NIR_SYSTEM, nir, patient


def _by(system: str, value: str) -> str:
    return f"identifier={quote(system + '|' + value, safe='')}"


async def test_conditional_create_creates_once(api: Api) -> None:
    number = nir()
    body = patient(identifier=[{"system": NIR_SYSTEM, "value": number}])
    headers = {"If-None-Exist": _by(NIR_SYSTEM, number)}
    first = await api.client.post("/Patient", json=body, headers=headers)
    assert first.status_code == 201
    second = await api.client.post("/Patient", json=body, headers=headers)
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    found = (await api.client.get("/Patient",
                                  params={"identifier": f"{NIR_SYSTEM}|{number}"})).json()
    assert found["total"] == 1


async def test_conditional_create_with_two_matches_is_412(api: Api) -> None:
    ident = [{"system": "urn:example:mrn", "value": "dup"}]
    await api.client.post("/Patient", json=patient(identifier=ident))
    await api.client.post("/Patient", json=patient(identifier=ident))
    response = await api.client.post("/Patient", json=patient(identifier=ident),
                                     headers={"If-None-Exist": "identifier=urn:example:mrn|dup"})
    assert response.status_code == 412
    assert response.json()["issue"][0]["code"] == "multiple-matches"


async def test_conditional_update(api: Api) -> None:
    ident = [{"system": "urn:example:mrn", "value": "cu-1"}]
    criteria = "/Patient?identifier=urn:example:mrn|cu-1"
    created = await api.client.put(criteria, json=patient(identifier=ident))
    assert created.status_code == 201
    pid = created.json()["id"]
    updated = await api.client.put(criteria, json=patient(identifier=ident, gender="male"))
    assert updated.status_code == 200
    assert updated.json()["id"] == pid and updated.json()["meta"]["versionId"] == "2"
    wrong_id = await api.client.put(criteria, json=patient(id="other", identifier=ident))
    assert wrong_id.status_code == 400
    await api.client.post("/Patient", json=patient(identifier=ident))
    several = await api.client.put(criteria, json=patient(identifier=ident))
    assert several.status_code == 412


async def test_conditional_delete(api: Api) -> None:
    ident = [{"system": "urn:example:mrn", "value": "cd-1"}]
    created = (await api.client.post("/Patient", json=patient(identifier=ident))).json()
    nothing = await api.client.delete("/Patient?identifier=urn:example:mrn|nobody")
    assert nothing.status_code == 204
    deleted = await api.client.delete("/Patient?identifier=urn:example:mrn|cd-1")
    assert deleted.status_code == 204
    assert (await api.client.get(f"/Patient/{created['id']}")).status_code == 410


async def test_conditional_delete_refuses_several_matches(api: Api) -> None:
    ident = [{"system": "urn:example:mrn", "value": "cd-2"}]
    await api.client.post("/Patient", json=patient(identifier=ident))
    await api.client.post("/Patient", json=patient(identifier=ident))
    response = await api.client.delete("/Patient?identifier=urn:example:mrn|cd-2")
    assert response.status_code == 412
    left = (await api.client.get("/Patient", params={"identifier": "urn:example:mrn|cd-2"})).json()
    assert left["total"] == 2


async def test_conditional_operations_refuse_unknown_parameters(api: Api) -> None:
    response = await api.client.delete("/Patient?nonsense=Martin")
    assert response.status_code == 400
    assert "nonsense" in response.json()["issue"][0]["diagnostics"]
    empty = await api.client.put("/Patient", json=patient())
    assert empty.status_code == 400


async def test_conditional_by_id(api: Api) -> None:
    created = (await api.client.post("/Patient", json=patient())).json()
    response = await api.client.post("/Patient", json=patient(),
                                     headers={"If-None-Exist": f"_id={created['id']}"})
    assert response.status_code == 200 and response.json()["id"] == created["id"]


async def test_conditional_patch(api: Api) -> None:
    ident = [{"system": "urn:example:mrn", "value": "cp-1"}]
    await api.client.post("/Patient", json=patient(identifier=ident))
    response = await api.client.patch(
        "/Patient?identifier=urn:example:mrn|cp-1",
        content=b'[{"op": "replace", "path": "/gender", "value": "unknown"}]',
        headers={"Content-Type": "application/json-patch+json"})
    assert response.status_code == 200 and response.json()["gender"] == "unknown"
    none = await api.client.patch(
        "/Patient?identifier=urn:example:mrn|nobody",
        content=b'[{"op": "replace", "path": "/gender", "value": "unknown"}]',
        headers={"Content-Type": "application/json-patch+json"})
    assert none.status_code == 404


def _observation(subject: str, code: str) -> dict[str, object]:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": {"reference": subject}}


async def test_criteria_naming_this_server_by_absolute_url_match_local_references(
        api: Api) -> None:
    """``subject=http://test/fhir/Patient/p`` is the local ``Patient/p``, as in a search."""
    await api.client.put("/Patient/p-abs", json={"resourceType": "Patient", "id": "p-abs"})
    first = await api.client.post("/Observation", json=_observation("Patient/p-abs", "8480-6"))
    assert first.status_code == 201
    criteria = f"subject={quote('http://test/fhir/Patient/p-abs', safe='')}&code=8480-6"

    again = await api.client.post("/Observation", json=_observation("Patient/p-abs", "8480-6"),
                                  headers={"If-None-Exist": criteria})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]

    updated = await api.client.put(f"/Observation?{criteria}",
                                   json={**_observation("Patient/p-abs", "8480-6"),
                                         "status": "amended"})
    assert updated.status_code == 200 and updated.json()["id"] == first.json()["id"]

    member = {**_observation("Patient?_id=p-abs", "8462-4"),
              "hasMember": [{"reference": f"Observation?{criteria}"}]}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": member, "request": {"method": "POST", "url": "Observation"}}]}
    answer = await api.client.post("", json=bundle)
    assert answer.status_code == 200, answer.text

    deleted = await api.client.delete(f"/Observation?{criteria}")
    assert deleted.status_code in (200, 204)
    assert (await api.client.get(f"/Observation/{first.json()['id']}")).status_code == 410
