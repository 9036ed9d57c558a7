"""Binary content in and out, and encryption at rest of sensitive values."""

from __future__ import annotations

import base64

from fhir_server.storage.query import HistoryQuery
from tests.api.conftest import Api
from tests.support.factories import NIR_SYSTEM, nir, patient
from tests.support.photos import jpeg


async def test_binary_raw_upload_and_download(api: Api) -> None:
    photo = jpeg()
    created = await api.client.post("/Binary", content=photo,
                                    headers={"Content-Type": "image/jpeg",
                                             "X-Security-Context": "Patient/p1"})
    assert created.status_code == 201
    binary_id = created.json()["id"]
    raw = await api.client.get(f"/Binary/{binary_id}", headers={"Accept": "*/*"})
    assert raw.status_code == 200
    assert raw.content == photo
    assert raw.headers["content-type"] == "image/jpeg"
    assert raw.headers["x-security-context"] == "Patient/p1"
    as_fhir = await api.client.get(f"/Binary/{binary_id}",
                                   headers={"Accept": "application/fhir+json"})
    assert base64.b64decode(as_fhir.json()["data"]) == photo
    stored = await api.store.read("Binary", binary_id)
    assert stored is not None and stored.body is not None
    assert base64.b64encode(photo)[:40] not in stored.body


async def test_binary_as_fhir_json(api: Api) -> None:
    data = base64.b64encode(b"%PDF-1.7 test").decode()
    created = await api.client.post("/Binary", json={"resourceType": "Binary",
                                                     "contentType": "application/pdf",
                                                     "data": data})
    assert created.status_code == 201
    raw = await api.client.get(f"/Binary/{created.json()['id']}")
    assert raw.content == b"%PDF-1.7 test"


async def test_sensitive_values_are_encrypted_at_rest(api: Api) -> None:
    number = nir()
    created = (await api.client.post("/Patient", json=patient(
        identifier=[{"system": NIR_SYSTEM, "value": number},
                    {"system": "urn:example:mrn", "value": "MRN-42"}],
        telecom=[{"system": "phone", "value": "+33699887766"}]))).json()
    assert created["identifier"][0]["value"] == number
    stored = await api.store.read("Patient", created["id"])
    assert stored is not None and stored.body is not None
    assert number.encode() not in stored.body
    assert b"+33699887766" not in stored.body
    assert b"MRN-42" in stored.body
    assert b"Martin" in stored.body
    read = (await api.client.get(f"/Patient/{created['id']}")).json()
    assert read["identifier"][0]["value"] == number
    assert read["telecom"][0]["value"] == "+33699887766"
    history = await api.store.history(HistoryQuery(resource_type="Patient", id=created["id"]))
    assert all(number.encode() not in (v.body or b"") for v in history)
