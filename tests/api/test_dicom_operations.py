"""``POST Media/$import-dicom`` and ``GET Media/{id}/$dicom`` over HTTP, with a pharmacist's
own token on its own case: an instance is imported (raw, by reference, as an attachment) into a
Media, its JPEG and the original instance, then exported again as ``application/dicom`` that
pydicom reads with the case's patient, stable UIDs and decodable pixels. Refused imports store
nothing."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from fhir_server.demo import Person, SentCase, seed, send_intake
from mappers.dicom_in import DERMOSCOPIC_PHOTOGRAPHY_IMAGE, VL_PHOTOGRAPHIC_IMAGE
from mappers.dicom_out import instance_uid, series_uid, study_uid
from tests.api.conftest import Api
from tests.support.backends import BACKENDS
from tests.support.photo_api import SERVER, photo_api, stored_versions
from tests.support.photos import CT_IMAGE, dicom_photo
from tests.support.workflow_case import example

DICOM = "application/dicom"
INS = "urn:oid:1.2.250.1.213.1.4.8"


@pytest.fixture(params=BACKENDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    async with photo_api(request.param, tmp_path) as app:
        yield app


async def _case(api: Api) -> tuple[Person, SentCase]:
    cast = await seed(api.anonymous, SERVER, {})
    _, case = await send_intake(api.anonymous, SERVER, cast.pharmacist, family="DICOM")
    return cast.pharmacist, case


async def _operator_case(api: Api) -> dict[str, Any]:
    """A patient without INS (``Patient/p-op``) and a ServiceRequest for it, written by the
    operator: no pharmacy's tag."""
    patient = await api.client.put("/Patient/p-op", json={
        "resourceType": "Patient", "id": "p-op", "name": [{"family": "Operateur"}]})
    assert patient.status_code in (200, 201), patient.text
    created = await api.client.post("/ServiceRequest", json={
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p-op"}})
    assert created.status_code == 201, created.text
    request: dict[str, Any] = created.json()
    return request


def _query(case: SentCase) -> dict[str, str]:
    return {"basedOn": f"ServiceRequest/{case.service_request}",
            "subject": f"Patient/{case.patient}"}


def _read(instance: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(instance))


def _parameter(answer: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in answer["parameter"] if p["name"] == name)
    return found


async def test_import_then_export_round_trip_as_the_pharmacist(api: Api) -> None:
    pharmacist, case = await _case(api)
    as_pharmacist = pharmacist.headers
    original = dicom_photo(sop_class=DERMOSCOPIC_PHOTOGRAPHY_IMAGE, width=40, height=30)
    imported = await api.anonymous.post("/Media/$import-dicom", content=original,
                                        params=_query(case),
                                        headers={**as_pharmacist, "Content-Type": DICOM})
    assert imported.status_code == 201, imported.text
    media = _parameter(imported.json(), "return")["resource"]
    assert media["modality"]["coding"][0]["code"] == "DMS"
    assert media["basedOn"] == [{"reference": f"ServiceRequest/{case.service_request}"}]
    assert media["subject"] == {"reference": f"Patient/{case.patient}"}
    assert (media["width"], media["height"]) == (40, 30)
    photo_ref = _parameter(imported.json(), "photo")["valueReference"]["reference"]
    instance_ref = _parameter(imported.json(), "instance")["valueReference"]["reference"]
    assert media["content"]["url"] == photo_ref
    photo = await api.anonymous.get(f"/{photo_ref}", headers={**as_pharmacist, "Accept": "*/*"})
    assert photo.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(photo.content)).size == (40, 30)
    kept = await api.anonymous.get(f"/{instance_ref}", headers={**as_pharmacist, "Accept": "*/*"})
    assert kept.headers["content-type"] == DICOM and kept.content == original
    assert kept.headers["x-security-context"] == f"Media/{media['id']}"

    exported = await api.anonymous.get(f"/Media/{media['id']}/$dicom",
                                       headers={**as_pharmacist, "Accept": DICOM})
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"] == DICOM
    dataset = _read(exported.content)
    patient = (await api.client.get(f"/Patient/{case.patient}")).json()
    nir = next(i["value"] for i in patient["identifier"] if i["system"] == INS)
    assert dataset.SOPClassUID == DERMOSCOPIC_PHOTOGRAPHY_IMAGE
    assert (dataset.PatientID, dataset.IssuerOfPatientID) == (nir, "1.2.250.1.213.1.4.8")
    assert str(dataset.PatientName).startswith("DICOM^")
    assert dataset.StudyInstanceUID == study_uid(case.service_request)
    assert dataset.SeriesInstanceUID == series_uid(case.service_request, "DMS")
    assert dataset.SOPInstanceUID == instance_uid(media["id"])
    assert dataset.SourceImageSequence[0].ReferencedSOPInstanceUID == "2.25.1234567890"
    frame = next(generate_frames(dataset.PixelData, number_of_frames=1))
    assert Image.open(io.BytesIO(frame)).size == (dataset.Columns, dataset.Rows) == (40, 30)
    again = await api.anonymous.get(f"/Media/{media['id']}/$dicom",
                                    headers={**as_pharmacist, "Accept": DICOM})
    assert again.content == exported.content


async def test_import_by_reference_to_a_dicom_binary_posted_first(api: Api) -> None:
    pharmacist, case = await _case(api)
    posted = await api.anonymous.post("/Binary", content=dicom_photo(pixels="rgb"),
                                      headers={**pharmacist.headers, "Content-Type": DICOM})
    assert posted.status_code == 201, posted.text
    parameters = {"resourceType": "Parameters", "parameter": [
        {"name": "instance", "valueReference": {"reference": f"Binary/{posted.json()['id']}"}},
        {"name": "basedOn", "valueReference": {"reference":
                                               f"ServiceRequest/{case.service_request}"}}]}
    imported = await api.anonymous.post("/Media/$import-dicom", json=parameters,
                                        headers=pharmacist.headers)
    assert imported.status_code == 201, imported.text
    media = _parameter(imported.json(), "return")["resource"]
    assert media["modality"]["coding"][0]["code"] == "XC"
    assert media["subject"] == {"reference": f"Patient/{case.patient}"}
    exported = await api.anonymous.get(f"/Media/{media['id']}/$dicom",
                                       headers={**pharmacist.headers, "Accept": DICOM})
    dataset = _read(exported.content)
    assert dataset.SOPClassUID == VL_PHOTOGRAPHIC_IMAGE
    assert dataset.SeriesInstanceUID == series_uid(case.service_request, "XC")


async def test_import_of_an_attachment_and_export_as_fhir_json(api: Api) -> None:
    request = await _operator_case(api)
    attachment = {"contentType": DICOM,
                  "data": base64.b64encode(dicom_photo(pixels="mono", region=None)).decode()}
    imported = await api.client.post("/Media/$import-dicom", json={
        "resourceType": "Parameters", "parameter": [
            {"name": "instance", "valueAttachment": attachment},
            {"name": "basedOn", "valueReference": {"reference": f"ServiceRequest/{request['id']}"}},
            {"name": "bodySite", "valueCodeableConcept": {"text": "dos"}}]})
    assert imported.status_code == 201, imported.text
    media = _parameter(imported.json(), "return")["resource"]
    assert media["bodySite"] == {"text": "dos"}
    as_fhir = await api.client.get(f"/Media/{media['id']}/$dicom",
                                   headers={"Accept": "application/fhir+json"})
    binary = as_fhir.json()
    assert binary["resourceType"] == "Binary" and binary["contentType"] == DICOM
    assert binary["securityContext"] == {"reference": f"Media/{media['id']}"}
    assert _read(base64.b64decode(binary["data"])).PhotometricInterpretation == "MONOCHROME2"


async def test_a_media_pointing_at_a_dicom_binary_is_exported(api: Api) -> None:
    stored = await api.client.post("/Binary", content=dicom_photo(),
                                   headers={"Content-Type": DICOM})
    request = await _operator_case(api)
    media = {key: value for key, value in example("Media-skin-camille-martin-1").items()
             if key not in ("id", "operator")}
    media.update({"basedOn": [{"reference": f"ServiceRequest/{request['id']}"}],
                  "subject": {"reference": "Patient/p-op"},
                  "content": {"contentType": DICOM, "url": f"Binary/{stored.json()['id']}"}})
    created = await api.client.post("/Media", json=media)
    assert created.status_code == 201, created.text
    media = created.json()
    exported = await api.client.get(f"/Media/{media['id']}/$dicom", headers={"Accept": "*/*"})
    assert exported.status_code == 200, exported.text
    dataset = _read(exported.content)
    assert (dataset.Columns, dataset.Rows) == (40, 30)
    assert dataset.PatientID == "p-op" and "IssuerOfPatientID" not in dataset


@pytest.mark.parametrize(("instance", "status"), [
    (dicom_photo(sop_class=CT_IMAGE), 415),
    (dicom_photo(pixels="j2k"), 415),
    (dicom_photo(region=None), 422),
    (b"\x00" * 128 + b"DICM" + bytes(40), 422),
])
async def test_a_refused_import_stores_nothing(api: Api, instance: bytes, status: int) -> None:
    request = await _operator_case(api)
    before = await stored_versions(api.store)
    answer = await api.client.post("/Media/$import-dicom", content=instance,
                                   params={"basedOn": f"ServiceRequest/{request['id']}"},
                                   headers={"Content-Type": DICOM})
    assert answer.status_code == status, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert await stored_versions(api.store) == before


async def test_import_needs_the_case_and_its_own_patient(api: Api) -> None:
    request = await _operator_case(api)
    raw = {"Content-Type": DICOM}
    missing = await api.client.post("/Media/$import-dicom", content=dicom_photo(), headers=raw)
    assert missing.status_code == 400
    other = await api.client.post("/Media/$import-dicom", content=dicom_photo(), headers=raw,
                                  params={"basedOn": f"ServiceRequest/{request['id']}",
                                          "subject": "Patient/someone-else"})
    assert other.status_code == 422
    pdf = await api.client.post("/Media/$import-dicom", content=b"%PDF-1.7",
                                params={"basedOn": f"ServiceRequest/{request['id']}"},
                                headers={"Content-Type": "application/pdf"})
    assert pdf.status_code == 415


async def test_a_pharmacist_reaches_only_its_own_cases(api: Api) -> None:
    pharmacist, _ = await _case(api)
    foreign = await _operator_case(api)
    before = await stored_versions(api.store)
    answer = await api.anonymous.post("/Media/$import-dicom", content=dicom_photo(),
                                      params={"basedOn": f"ServiceRequest/{foreign['id']}"},
                                      headers={**pharmacist.headers, "Content-Type": DICOM})
    assert answer.status_code == 404, answer.text
    assert await stored_versions(api.store) == before
    imported = await api.client.post("/Media/$import-dicom", content=dicom_photo(),
                                     params={"basedOn": f"ServiceRequest/{foreign['id']}"},
                                     headers={"Content-Type": DICOM})
    media_id = _parameter(imported.json(), "return")["resource"]["id"]
    hidden = await api.anonymous.get(f"/Media/{media_id}/$dicom",
                                     headers={**pharmacist.headers, "Accept": DICOM})
    assert hidden.status_code == 404
