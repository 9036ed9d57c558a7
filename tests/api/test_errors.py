"""Every refusal is an OperationOutcome with the right status, and changes nothing."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.support.factories import patient
from tests.support.guide import client_history

FHIR = {"Content-Type": "application/fhir+json"}


async def _nothing_stored(api: Api) -> None:
    assert await client_history(api.client) == []


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"{not json", 400, "structure"),
    (b"[1, 2]", 400, "structure"),
    (b'{"no": "type"}', 400, "invalid"),
    (b'{"resourceType": "Observation", "status": "final", "code": {"text": "x"}}', 400, "invalid"),
    (b'{"resourceType": "Patient", "gender": 12}', 422, "structure"),
    (b'{"resourceType": "Patient", "unknownElement": true}', 422, "structure"),
    (b'{"resourceType": "Patient", "birthDate": "1980-13-45"}', 422, "structure"),
])
async def test_bad_bodies_on_create(api: Api, body: bytes, status: int, code: str) -> None:
    response = await api.client.post("/Patient", content=body, headers=FHIR)
    assert response.status_code == status
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == code
    assert outcome["issue"][0]["diagnostics"]
    await _nothing_stored(api)


async def test_invalid_resource_points_at_the_element(api: Api) -> None:
    response = await api.client.post("/Patient", json=patient(birthDate="1980-13-45"))
    assert response.status_code == 422
    expressions = [e for issue in response.json()["issue"] for e in issue.get("expression", [])]
    assert "Patient.birthDate" in expressions


async def test_update_id_rules(api: Api) -> None:
    missing_id = await api.client.put("/Patient/abc", json=patient())
    assert missing_id.status_code == 400
    other_id = await api.client.put("/Patient/abc", json=patient(id="xyz"))
    assert other_id.status_code == 400
    bad_id = await api.client.put("/Patient/bad_id!", json=patient(id="bad_id!"))
    assert bad_id.status_code == 400
    await _nothing_stored(api)


async def test_unknown_type_is_404(api: Api) -> None:
    assert (await api.client.get("/Unicorn/1")).status_code == 404
    created = await api.client.post("/Unicorn", json={"resourceType": "Unicorn"})
    assert created.status_code == 404
    assert created.json()["issue"][0]["code"] == "not-supported"


async def test_media_type_and_size(api: Api) -> None:
    text = await api.client.post("/Patient", content=b"hello",
                                 headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    xml = await api.client.post("/Patient", content=b"<Patient/>",
                                headers={"Content-Type": "application/fhir+xml"})
    assert xml.status_code == 415
    huge = patient(text={"status": "generated",
                         "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
                                + "x" * 300_000 + "</div>"})
    too_large = await api.client.post("/Patient", json=huge)
    assert too_large.status_code == 413
    assert too_large.json()["issue"][0]["code"] == "too-long"
    await _nothing_stored(api)


async def test_method_not_allowed_and_unknown_route(api: Api) -> None:
    not_allowed = await api.client.delete("/metadata")
    assert not_allowed.status_code == 405
    assert not_allowed.json()["resourceType"] == "OperationOutcome"
    base_patch = await api.client.patch("", content=b"[]")
    assert base_patch.status_code == 405
    unknown = await api.client.get("/Patient/1/too/deep/path")
    assert unknown.status_code == 404
    assert unknown.json()["resourceType"] == "OperationOutcome"


async def test_authorization_required_except_metadata(api: Api) -> None:
    missing = await api.anonymous.get("/Patient")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["issue"][0]["code"] == "login"
    wrong = await api.anonymous.get("/Patient", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    refused = await api.anonymous.post("/Patient", json=patient())
    assert refused.status_code == 401
    await _nothing_stored(api)
    metadata = await api.anonymous.get("/metadata")
    assert metadata.status_code == 200
