"""Custom SearchParameters end to end: from profiles/, created at run time, ready after $reindex."""

from __future__ import annotations

import asyncio
from typing import Any

from fhir_server.storage.query import SearchQuery, StringClause
from tests.api.conftest import Api

REASON_URL = "https://fhir.pictaderm.com/SearchParameter/ServiceRequest-reason-code"
NOTE_URL = "https://fhir.pictaderm.com/SearchParameter/test-ServiceRequest-note"
SNOMED = "http://snomed.info/sct"
MELANOMA = "372244006"


def service_request(note: str, reason: str = MELANOMA) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "reasonCode": [{"coding": [{"system": SNOMED, "code": reason}]}],
            "note": [{"text": note}]}


def note_parameter(expression: str = "ServiceRequest.note.text", **overrides: Any
                   ) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "SearchParameter", "url": NOTE_URL, "name": "ServiceRequestNote",
        "status": "active", "description": "The text of a request's notes.", "code": "note",
        "base": ["ServiceRequest"], "type": "string", "expression": expression}
    resource.update(overrides)
    return resource


async def _create(api: Api, resource: dict[str, Any]) -> dict[str, Any]:
    response = await api.client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _search(api: Api, **params: str) -> tuple[list[str], list[str]]:
    """The ids found and the diagnostics of the warnings."""
    response = await api.client.get("/ServiceRequest", params=params)
    assert response.status_code == 200, response.text
    entries = response.json().get("entry", [])
    ids = sorted(e["resource"]["id"] for e in entries if e["search"]["mode"] == "match")
    warnings = [issue["diagnostics"] for e in entries if e["search"]["mode"] == "outcome"
                for issue in e["resource"]["issue"]]
    return ids, warnings


async def _listed(api: Api, resource_type: str = "ServiceRequest") -> dict[str, str]:
    statement = (await api.client.get("/metadata")).json()
    resource = next(r for r in statement["rest"][0]["resource"] if r["type"] == resource_type)
    return {p["name"]: p["definition"] for p in resource["searchParam"]}


async def _reindex(api: Api, **params: str) -> dict[str, Any]:
    parameters = {"resourceType": "Parameters", "parameter": [
        {"name": name, "valueString": value} for name, value in params.items()]}
    response = await api.client.post("/$reindex", json=parameters)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def _until_listed(api: Api, code: str, definition: str) -> None:
    """Wait for the job run by the outbox dispatcher to make ``code`` searchable."""
    for _ in range(200):
        if (await _listed(api)).get(code) == definition:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{code} never became ready")


async def test_the_profile_parameter_is_searchable_and_listed(api: Api) -> None:
    wanted = await _create(api, service_request("one", MELANOMA))
    await _create(api, service_request("two", "400010006"))
    assert await _search(api, **{"reason-code": f"{SNOMED}|{MELANOMA}"}) == ([wanted["id"]], [])
    assert (await _listed(api))["reason-code"] == REASON_URL


async def test_a_runtime_parameter_waits_for_reindex(api: Api) -> None:
    older = await _create(api, service_request("suspected melanoma, left arm"))
    await _create(api, note_parameter())
    ids, warnings = await _search(api, note="suspected")
    assert ids == [older["id"]]  # the parameter is ignored: every request matches
    assert any("awaiting $reindex" in w for w in warnings), warnings
    strict = await api.client.get("/ServiceRequest", params={"note": "suspected"},
                                  headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400 and "awaiting $reindex" in strict.text
    assert "note" not in await _listed(api)

    newer = await _create(api, service_request("suspected naevus"))
    stored = await api.store.search(SearchQuery("ServiceRequest", (
        StringClause("note", ("suspected",)),)))
    assert [m.id for m in stored.matches] == [newer["id"]]  # new writes are extracted

    answer = await _reindex(api)
    assert {p["name"] for p in answer["parameter"]} >= {"job", "status", "url", "type"}
    assert {p.get("valueCanonical") for p in answer["parameter"]} >= {NOTE_URL}
    await _until_listed(api, "note", NOTE_URL)
    assert await _search(api, note="suspected") == (sorted([older["id"], newer["id"]]), [])
    assert await _search(api, **{"note:contains": "naevus"}) == ([newer["id"]], [])


async def test_reindex_keeps_versions_last_updated_and_history(api: Api) -> None:
    first = await _create(api, service_request("melanoma"))
    updated = await api.client.put(f"/ServiceRequest/{first['id']}",
                                   json={**service_request("melanoma, again"), "id": first["id"]})
    assert updated.status_code == 200
    before = (await api.client.get(f"/ServiceRequest/{first['id']}")).json()
    history_before = (await api.client.get(f"/ServiceRequest/{first['id']}/_history")).json()
    await _create(api, note_parameter())
    await _reindex(api)
    await _until_listed(api, "note", NOTE_URL)
    assert await _search(api, note="melanoma, again") == ([first["id"]], [])
    after = (await api.client.get(f"/ServiceRequest/{first['id']}")).json()
    assert after["meta"] == before["meta"] == {"versionId": "2",
                                               "lastUpdated": before["meta"]["lastUpdated"]}
    history_after = (await api.client.get(f"/ServiceRequest/{first['id']}/_history")).json()
    assert _versions(history_after) == _versions(history_before) == [
        ("2", before["meta"]["lastUpdated"]), ("1", first["meta"]["lastUpdated"])]
    assert len((await api.client.get("/ServiceRequest/_history")).json()["entry"]) == 2


def _versions(history: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["resource"]["meta"]["versionId"], e["resource"]["meta"]["lastUpdated"])
            for e in history["entry"]]


async def test_a_changed_expression_is_pending_again(api: Api) -> None:
    request = await _create(api, {**service_request("melanoma"),
                                  "patientInstruction": "keep the lesion dry"})
    parameter = await _create(api, note_parameter())
    await _reindex(api)
    await _until_listed(api, "note", NOTE_URL)
    assert await _search(api, note="melanoma") == ([request["id"]], [])

    renamed = await api.client.put(f"/SearchParameter/{parameter['id']}", json={
        **note_parameter("ServiceRequest.patientInstruction"), "id": parameter["id"]})
    assert renamed.status_code == 200, renamed.text
    ids, warnings = await _search(api, note="keep")
    assert ids == [request["id"]] and any("awaiting $reindex" in w for w in warnings)
    assert "note" not in await _listed(api)

    await _reindex(api, url=NOTE_URL)
    await _until_listed(api, "note", NOTE_URL)
    assert await _search(api, note="keep") == ([request["id"]], [])
    assert await _search(api, note="melanoma") == ([], [])


async def test_a_description_change_keeps_it_ready_and_a_deletion_removes_it(api: Api) -> None:
    request = await _create(api, service_request("melanoma"))
    parameter = await _create(api, note_parameter())
    await _reindex(api)
    await _until_listed(api, "note", NOTE_URL)
    described = await api.client.put(f"/SearchParameter/{parameter['id']}", json={
        **note_parameter(description="Notes, searchable."), "id": parameter["id"]})
    assert described.status_code == 200
    assert await _search(api, note="melanoma") == ([request["id"]], [])

    assert (await api.client.delete(f"/SearchParameter/{parameter['id']}")).status_code == 204
    ids, warnings = await _search(api, note="melanoma")
    assert ids == [request["id"]]
    assert warnings and not any("$reindex" in w for w in warnings)
    assert "note" not in await _listed(api)


async def test_a_parameter_created_in_a_transaction_is_pending(api: Api) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": note_parameter(), "request": {"method": "POST", "url": "SearchParameter"}}]}
    response = await api.client.post("", json=bundle)
    assert response.status_code == 200, response.text
    _, warnings = await _search(api, note="x")
    assert any("awaiting $reindex" in w for w in warnings), warnings


async def test_unusable_parameters_are_refused_with_422(api: Api) -> None:
    refused = {
        "not FHIRPath": note_parameter("ServiceRequest.note.(("),
        "unknown function": note_parameter("ServiceRequest.note.nofunction()"),
        "for another type": note_parameter("Patient.name.family"),
        "not indexable": note_parameter("ServiceRequest.occurrence", type="quantity"),
        "official code": note_parameter(code="status"),
        "profile code": note_parameter(code="reason-code"),
        "profile url": note_parameter(url=REASON_URL, code="other"),
        "composite": note_parameter(type="composite"),
        "abstract base": note_parameter(base=["Resource"]),
        "odd code": note_parameter(code="_note"),
    }
    for case, resource in refused.items():
        response = await api.client.post("/SearchParameter", json=resource)
        assert response.status_code == 422, (case, response.text)
        assert response.json()["issue"][0]["code"] == "business-rule", case
    draft = await api.client.post("/SearchParameter",
                                  json=note_parameter("ServiceRequest.note.((", status="draft"))
    assert draft.status_code == 201


async def test_two_active_parameters_cannot_share_a_code_or_url(api: Api) -> None:
    await _create(api, note_parameter())
    same_code = await api.client.post("/SearchParameter", json=note_parameter(
        url="https://fhir.pictaderm.com/SearchParameter/other"))
    assert same_code.status_code == 422 and "already" in same_code.text
    same_url = await api.client.post("/SearchParameter", json=note_parameter(code="notes"))
    assert same_url.status_code == 422 and "already" in same_url.text


async def test_reindex_requests_that_make_no_sense(api: Api) -> None:
    nothing = await api.client.post("/$reindex")
    assert nothing.status_code == 200
    assert nothing.json()["issue"][0]["severity"] == "information"
    unknown = await api.client.post("/$reindex", json={"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": "https://nowhere/SearchParameter/x"}]})
    assert unknown.status_code == 400
    wrong = await api.client.post("/$reindex", params={"type": "Nope"})
    assert wrong.status_code == 400


async def test_reindexing_a_type_again_is_harmless(api: Api) -> None:
    first = await _create(api, service_request("melanoma"))
    await _create(api, note_parameter())
    await _reindex(api)
    await _until_listed(api, "note", NOTE_URL)
    before = (await api.client.get(f"/ServiceRequest/{first['id']}")).json()
    for _ in range(2):
        answer = await _reindex(api, type="ServiceRequest")
        assert [p["valueCode"] for p in answer["parameter"] if p["name"] == "type"] == [
            "ServiceRequest"]
    await asyncio.sleep(0.3)
    assert await _search(api, note="melanoma") == ([first["id"]], [])
    assert (await api.client.get(f"/ServiceRequest/{first['id']}")).json() == before
    assert await api.store.outbox_pending(10) == ()


async def test_a_ready_parameter_sorts_and_includes(api: Api) -> None:
    """Custom parameters reach ``_sort`` and ``_include``, not only the filters."""
    zeta = await _create(api, service_request("zeta"))
    alpha = await _create(api, service_request("alpha"))
    await _create(api, note_parameter())
    await _create(api, {
        "resourceType": "SearchParameter", "url": "https://fhir.pictaderm.com/SearchParameter/"
        "test-ServiceRequest-asker", "name": "ServiceRequestAsker", "status": "active",
        "description": "Who asked.", "code": "asker", "base": ["ServiceRequest"],
        "type": "reference", "target": ["Patient"], "expression": "ServiceRequest.subject"})
    await _reindex(api)
    await _until_listed(api, "note", NOTE_URL)
    for _ in range(200):
        if "asker" in await _listed(api):
            break
        await asyncio.sleep(0.02)
    patient = await api.client.put("/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    assert patient.status_code in (200, 201)

    response = await api.client.get("/ServiceRequest", params={
        "_sort": "-note", "_include": "ServiceRequest:asker", "_count": "10"})
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    matches = [e["resource"]["id"] for e in entries if e["search"]["mode"] == "match"]
    included = [e["resource"]["id"] for e in entries if e["search"]["mode"] == "include"]
    assert matches == [zeta["id"], alpha["id"]]
    assert included == ["p1"]
    assert not [e for e in entries if e["search"]["mode"] == "outcome"]
