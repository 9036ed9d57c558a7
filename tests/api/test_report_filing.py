"""The report of a completed case, filed by the server (``fhir_server/reports/filing.py``), seen
over HTTP with each person's own token on both backends: the PDF Binary, the DocumentReference
(LOINC 85208-7, SHA-1 and size of the PDF, stable masterIdentifier), the DiagnosticReport's
``presentedForm`` and the Task's ``output``; the requesting pharmacist and the answering doctor
download it, another pharmacy's pharmacist cannot; a second delivery of ``case-completed``
files nothing more."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
from typing import Any

import orjson
from pypdf import PdfReader

from fhir_server.demo import Cast, Scenario, Server, seed
from fhir_server.storage.protocol import OutboxEvent
from fhir_server.workflow.task_rules import CASE_COMPLETED
from tests.api.conftest import TOKEN, Api

SERVER = Server(fhir_base="http://test/fhir", operator_token=TOKEN)


async def completed_case(api: Api) -> tuple[Cast, dict[str, Any]]:
    """The demo's case run to completion, and its Task once the report is filed."""
    cast = await seed(api.anonymous, SERVER, {"tier-1": 2, "tier-2": 1, "tier-3": 1})
    steps = await Scenario(api.anonymous, SERVER, cast).run()
    assert all(step.ok for step in steps)
    found = (await api.client.get("/Task", params={"status": "completed"})).json()
    task_id = found["entry"][0]["resource"]["id"]
    for _ in range(400):
        task: dict[str, Any] = (await api.client.get(f"/Task/{task_id}")).json()
        if any(output["valueReference"]["reference"].startswith("DocumentReference/")
               for output in task.get("output", [])):
            return cast, task
        await asyncio.sleep(0.05)
    raise AssertionError("the report was not filed")


def document_of(task: dict[str, Any]) -> str:
    return str(next(output["valueReference"]["reference"] for output in task["output"]
                if output["valueReference"]["reference"].startswith("DocumentReference/")))


async def test_completing_a_case_files_its_pdf_report(api: Api) -> None:
    cast, task = await completed_case(api)
    pharmacist = cast.pharmacist.headers
    document = (await api.anonymous.get(f"/{document_of(task)}", headers=pharmacist)).json()
    assert document["type"]["coding"][0]["code"] == "85208-7"
    assert document["masterIdentifier"]["system"] == "urn:ietf:rfc:3986"
    assert document["masterIdentifier"]["value"].startswith("urn:oid:2.25.")
    assert document["context"]["related"] == [task["focus"]]
    attachment = document["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"

    pdf = await api.anonymous.get(f"/{attachment['url']}", headers=pharmacist)
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"].startswith("application/pdf")
    assert pdf.content.startswith(b"%PDF-")
    assert attachment["size"] == len(pdf.content)
    assert attachment["hash"] == base64.b64encode(
        hashlib.sha1(pdf.content, usedforsecurity=False).digest()).decode()
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Compte rendu de téléexpertise" in text and "R6316-1" in text

    report_ref = next(output["valueReference"]["reference"] for output in task["output"]
                      if output["valueReference"]["reference"].startswith("DiagnosticReport/"))
    report = (await api.anonymous.get(f"/{report_ref}", headers=pharmacist)).json()
    assert [form["url"] for form in report["presentedForm"]] == [attachment["url"]]
    assert report["presentedForm"][0]["hash"] == attachment["hash"]

    doctor = cast.doctors["tier-1"][1].headers
    assert (await api.anonymous.get(f"/{attachment['url']}", headers=doctor)).content == \
        pdf.content
    stranger = await seed(api.anonymous, SERVER, {"tier-1": 0, "tier-2": 0, "tier-3": 0})
    hidden = await api.anonymous.get(f"/{attachment['url']}",
                                     headers=stranger.pharmacist.headers)
    assert hidden.status_code == 404
    assert (await api.anonymous.get(f"/{document_of(task)}",
                                    headers=stranger.pharmacist.headers)).status_code == 404


async def test_a_second_case_completed_event_files_nothing_more(api: Api) -> None:
    _, task = await completed_case(api)
    await settled_export(api, task)
    versions = {key: (await api.client.get(f"/{key}")).json()["meta"]["versionId"]
                for key in (f"Task/{task['id']}", document_of(task))}
    replay = OutboxEvent(id="replayed-completion", topic=CASE_COMPLETED,
                         payload=orjson.dumps({"task": f"Task/{task['id']}", "version": "9"}),
                         created="2026-11-27T00:00:00Z")
    await api.store.commit(changes=(), events=(replay,))
    for _ in range(200):
        if not [r for r in await api.store.outbox_pending(100) if r.event.id == replay.id]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the replayed event was not delivered")
    assert {key: (await api.client.get(f"/{key}")).json()["meta"]["versionId"]
            for key in versions} == versions
    binaries = await api.client.get("/Binary", params={"_id": f"report-{task['id']}",
                                                       "_summary": "count"})
    assert binaries.json()["total"] == 1


async def test_a_document_reference_is_searchable_by_its_unique_id(api: Api) -> None:
    _, task = await completed_case(api)
    document = (await api.client.get(f"/{document_of(task)}")).json()
    unique = document["masterIdentifier"]["value"]
    found = await api.client.get("/DocumentReference",
                                 params={"identifier": f"urn:ietf:rfc:3986|{unique}"})
    assert [entry["resource"]["id"] for entry in found.json()["entry"]] == [document["id"]]


async def settled_export(api: Api, task: dict[str, Any]) -> dict[str, Any]:
    """The report document's DMP export extension, once the export consumer recorded it."""
    for _ in range(200):
        document = (await api.client.get(f"/{document_of(task)}")).json()
        export = next((item for item in document.get("extension", [])
                       if item["url"].endswith("/pictaderm-dmp-export")), None)
        if export is not None:
            return dict(export)
        await asyncio.sleep(0.05)
    raise AssertionError("no DMP export status was recorded")


async def test_with_the_dmp_export_off_the_document_says_so(api: Api) -> None:
    _, task = await completed_case(api)
    parts = {part["url"]: part for part in (await settled_export(api, task))["extension"]}
    assert parts["status"]["valueCoding"]["code"] == "dmp-skipped-disabled"
    assert parts["attempts"]["valueInteger"] == 0
