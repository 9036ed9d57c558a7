"""This server as an MHD Document Recipient: the MHD adapter files a report with it over HTTP
(ITI-65), a retry finds the document already there, and a Provide Document Bundle whose
shape a recipient cannot file (wrong hash or size, a dangling or missing SubmissionSet) is
refused with 422 before anything is stored."""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

import pytest

from fhir_server.dmp.mhd import MhdAdapter
from fhir_server.dmp.port import DmpRejected, Submission, SubmissionOutcome
from mappers.cda_n1 import render_cda
from mappers.mhd_bundle import provide_document_bundle
from mappers.report_document import Code, DocumentCodes, ReportDocument
from tests.api.conftest import Api
from tests.support.dmp_document import SUBMISSION_SET_ID, UNIQUE_ID, report_document

BASE = "http://test/fhir"
URI = "urn:ietf:rfc:3986"
FILED_TYPES = ("List", "DocumentReference", "Binary")


def submission(document: ReportDocument | None = None) -> Submission:
    document = document or report_document()
    return Submission(document=document, cda=render_cda(document),
                      submission_set_id=SUBMISSION_SET_ID)


def provide_bundle() -> dict[str, Any]:
    filed = submission()
    return provide_document_bundle(filed.document, filed.cda,
                                   submission_set_id=filed.submission_set_id)


async def count(api: Api, resource_type: str, **params: str) -> int:
    answer = await api.client.get(f"/{resource_type}", params={**params, "_summary": "count"})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["total"])


async def stored(api: Api) -> dict[str, int]:
    return {resource_type: await count(api, resource_type) for resource_type in FILED_TYPES}


async def file_with(api: Api, filed: Submission) -> SubmissionOutcome:
    adapter = MhdAdapter(BASE, None, 10.0, client=api.client)
    try:
        return await adapter.submit(filed)
    finally:
        await adapter.aclose()


async def test_filed_once_then_found_again_on_retry(api: Api) -> None:
    assert await file_with(api, submission()) == SubmissionOutcome.ACCEPTED
    assert await file_with(api, submission()) == SubmissionOutcome.ALREADY_PRESENT
    unique = f"{URI}|urn:oid:{UNIQUE_ID}"
    assert await count(api, "DocumentReference") == 1
    assert await count(api, "DocumentReference", identifier=unique) == 1
    assert await count(api, "List", identifier=f"{URI}|urn:oid:{SUBMISSION_SET_ID}") == 1
    found = (await api.client.get("/DocumentReference", params={"identifier": unique})).json()
    document = found["entry"][0]["resource"]
    attachment = document["content"][0]["attachment"]
    assert attachment["url"].startswith("Binary/")
    binary = await api.client.get(f"/{attachment['url']}",
                                  headers={"Accept": "application/fhir+json"})
    cda = base64.b64decode(binary.json()["data"])
    assert cda == submission().cda
    assert attachment["size"] == len(cda)
    assert base64.b64decode(attachment["hash"]) == hashlib.sha1(cda).digest()
    assert binary.json()["securityContext"] == {
        "reference": f"DocumentReference/{document['id']}"}


async def test_the_adapter_maps_a_refusal_of_this_server(api: Api) -> None:
    clinic = Code("SA07", "Cabinet", DocumentCodes().facility_type.system, "1.2.250.1.71.4.2.4")
    refused = submission(report_document(codes=DocumentCodes(facility_type=clinic)))
    with pytest.raises(DmpRejected) as rejected:
        await file_with(api, refused)
    assert rejected.value.code.startswith("422 ")
    assert "Bundle.entry[1]" in rejected.value.reason
    assert await stored(api) == dict.fromkeys(FILED_TYPES, 0)


def tampered(change: Any) -> dict[str, Any]:
    bundle = copy.deepcopy(provide_bundle())
    change(bundle)
    return bundle


def wrong_hash(bundle: dict[str, Any]) -> None:
    attachment = bundle["entry"][1]["resource"]["content"][0]["attachment"]
    attachment["hash"] = base64.b64encode(hashlib.sha1(b"another document").digest()).decode()


def wrong_size(bundle: dict[str, Any]) -> None:
    bundle["entry"][1]["resource"]["content"][0]["attachment"]["size"] += 1


def dangling_entry(bundle: dict[str, Any]) -> None:
    bundle["entry"][0]["resource"]["entry"][0]["item"]["reference"] = (
        "urn:uuid:5d0c6b7e-3a2f-5e1d-8c4b-9a8f7e6d5c4b")


def no_submission_set(bundle: dict[str, Any]) -> None:
    del bundle["entry"][0]


def no_master_identifier(bundle: dict[str, Any]) -> None:
    del bundle["entry"][1]["resource"]["masterIdentifier"]
    del bundle["entry"][1]["request"]["ifNoneExist"]


@pytest.mark.parametrize(("change", "expression", "code"), [
    (wrong_hash, "Bundle.entry[1].resource.content[0].attachment.hash", "value"),
    (wrong_size, "Bundle.entry[1].resource.content[0].attachment.size", "value"),
    (dangling_entry, "Bundle.entry[0].resource.entry[0].item", "invariant"),
    (no_submission_set, "Bundle.entry", "invariant"),
    (no_master_identifier, "Bundle.entry[1].resource.masterIdentifier", "required"),
], ids=["wrong-hash", "wrong-size", "dangling-entry", "no-submission-set",
        "no-master-identifier"])
async def test_a_provide_bundle_a_recipient_cannot_file_is_refused_whole(
        api: Api, change: Any, expression: str, code: str) -> None:
    response = await api.client.post("", json=tampered(change))
    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    located = [i for i in outcome["issue"] if expression in i.get("expression", [])]
    assert [(i["severity"], i["code"]) for i in located] == [("error", code)], outcome
    assert located[0]["details"]["text"].startswith(f"{expression} : ")
    assert await stored(api) == dict.fromkeys(FILED_TYPES, 0)


async def test_the_check_applies_to_bundles_declaring_the_profile_only(api: Api) -> None:
    undeclared = tampered(wrong_hash)
    del undeclared["meta"]
    response = await api.client.post("", json=undeclared)
    assert response.status_code == 200, response.text
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["201 Created"] * 3
