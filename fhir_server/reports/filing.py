"""Files the PDF report of a completed case: the outbox consumer of ``case-completed``.

It gathers the case from the store (``gather_case``), renders the PDF (``mappers.report_pdf``,
off the event loop), and writes in one transaction, as the platform: the Binary (its
``securityContext`` the DocumentReference, so the case's pharmacist and doctor may download
it), the DocumentReference (``mappers.report_filing``), the DiagnosticReport with the PDF in
its ``presentedForm`` and the Task with the DocumentReference in its ``output``. The Task and
the DiagnosticReport are written by compare-and-set on the versions read; the commit carries
the ``report-filed`` event (``filed_hook.py``). Filing is idempotent: the resources' ids derive
from the Task's, and a case whose Task already lists its report document is left alone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Final

import orjson

from fhir_server.engine.engine import Engine
from fhir_server.engine.own_transactions import put_entry, put_together
from fhir_server.engine.writing import load
from fhir_server.outbox.consumers import Consumer
from fhir_server.settings import Settings
from fhir_server.storage.protocol import OutboxEvent, Store
from fhir_server.storage.query import SearchQuery, UriClause
from fhir_server.types import ResourceDict
from fhir_server.workflow.case_facts import CaseReader, reference_key
from fhir_server.workflow.task_rules import CASE_COMPLETED
from mappers.report_document import DocumentCodes, report_class
from mappers.report_filing import document_unique_id, report_filing, report_ids
from mappers.report_input import CasePhoto, CaseResources, report_input
from mappers.report_pdf import render_report

logger = logging.getLogger(__name__)

CONSUMER_NAME: Final = "report-filing"


class CaseIncomplete(Exception):
    """The completed case lacks a resource its report needs (the message names its type)."""


@dataclass(frozen=True, slots=True)
class GatheredCase:
    """A completed case as the report needs it, with the resources the filing rewrites."""

    task: ResourceDict
    resources: CaseResources


@dataclass(frozen=True, slots=True)
class FilingPolicy:
    """What the filing takes from the settings."""

    platform: str
    oid_root: str
    codes: DocumentCodes

    @classmethod
    def from_settings(cls, settings: Settings) -> FilingPolicy:
        return cls(platform=settings.platform_name, oid_root=settings.document_oid_root,
                   codes=DocumentCodes(class_=report_class(settings.document_class_code)))


async def gather_case(reader: CaseReader, task: ResourceDict) -> CaseResources:
    """The resources of the case of ``task``, read through ``reader``.

    Raises ``CaseIncomplete`` when the request, the patient, the final report or the form is
    missing (the guide's profiles make them mandatory, so this is a broken case).
    """
    request = await reader.get(task.get("focus"))
    if request is None:
        raise CaseIncomplete("ServiceRequest")
    patient = await reader.get(task.get("for") or request.get("subject"))
    if patient is None:
        raise CaseIncomplete("Patient")
    report = await _final_report(reader, task)
    supporting = [reference_key(item) for item in request.get("supportingInfo") or ()]
    responses = [found for key in supporting if key and key.startswith("QuestionnaireResponse/")
                 if (found := await reader.get(key)) is not None]
    if not responses:
        raise CaseIncomplete("QuestionnaireResponse")
    response = responses[0]
    photos = [photo for key in supporting if key and key.startswith("Media/")
              if (photo := await _photo(reader, key)) is not None]
    role = await reader.get(task.get("owner") or next(iter(report.get("performer") or ()), None))
    doctor = await reader.get((role or {}).get("practitioner"))
    requester = await reader.get(task.get("requester") or request.get("requester"))
    pharmacy = await reader.get((requester or {}).get("organization"))
    communications = await reader.referring("Communication", "based-on",
                                            f"ServiceRequest/{request['id']}")
    return CaseResources(
        service_request=request, patient=patient, questionnaire_response=response,
        diagnostic_report=report, pharmacy=pharmacy or {}, doctor_role=role or {},
        doctor=doctor or {}, questionnaire=await _questionnaire(reader, response),
        photos=tuple(photos), communications=tuple(communications),
        report_url=f"Binary/{report_ids(str(task['id']))}")


async def _final_report(reader: CaseReader, task: ResourceDict) -> ResourceDict:
    for output in task.get("output") or ():
        key = reference_key((output or {}).get("valueReference"))
        if key is not None and key.startswith("DiagnosticReport/"):
            report = await reader.get(key)
            if report is not None and report.get("status") in ("final", "amended", "corrected",
                                                               "appended"):
                return report
    raise CaseIncomplete("DiagnosticReport")


async def _photo(reader: CaseReader, media_key: str) -> CasePhoto | None:
    media = await reader.get(media_key)
    if media is None:
        return None
    binary = await reader.get((media.get("content") or {}).get("url"))
    try:
        image = base64.b64decode(str((binary or {}).get("data") or ""), validate=True)
    except (binascii.Error, ValueError):
        image = b""
    return CasePhoto(media=media, image=image)


async def _questionnaire(reader: CaseReader, response: ResourceDict) -> ResourceDict | None:
    canonical = str(response.get("questionnaire") or "").partition("|")[0]
    if not canonical:
        return None
    page = await reader.ctx.store.search(SearchQuery("Questionnaire",
                                                     (UriClause("url", (canonical,)),), count=1))
    for match in page.matches:
        if not match.deleted and match.body is not None:
            return load(reader.ctx, match)
    return None


async def file_report(engine: Engine, task_id: str, policy: FilingPolicy) -> bool:
    """File the report of ``Task/task_id``; False when there is nothing to do (the Task is not
    completed, or its report is filed already)."""
    reader = CaseReader(engine.ctx, ())
    task = await reader.get(f"Task/{task_id}")
    if task is None or task.get("status") != "completed":
        return False
    document_key = f"DocumentReference/{report_ids(task_id)}"
    if any(reference_key((output or {}).get("valueReference")) == document_key
           for output in task.get("output") or ()):
        return False
    case = await gather_case(reader, task)
    case = CaseResources(**{**case.__dict__, "platform": policy.platform})
    pdf = await asyncio.to_thread(lambda: render_report(report_input(case)))
    filing = report_filing(task=task, service_request=case.service_request,
                           diagnostic_report=case.diagnostic_report, pdf=pdf,
                           unique_id=document_unique_id(policy.oid_root, task_id),
                           codes=policy.codes)
    await put_together(engine.ctx, [
        put_entry(filing.binary), put_entry(filing.document_reference),
        put_entry(filing.diagnostic_report, if_match=_version(case.diagnostic_report)),
        put_entry(filing.task, if_match=_version(task))])
    return True


def _version(resource: ResourceDict) -> str:
    return str((resource.get("meta") or {}).get("versionId") or "")


def filing_consumer(engine: Engine, policy: FilingPolicy) -> Consumer:
    """The outbox consumer of ``case-completed`` that files the case's report (with ``engine``,
    built on the same store as the one the event comes from: the API's, or the worker's)."""

    async def handle(event: OutboxEvent, store: Store) -> None:
        payload = orjson.loads(event.payload)
        task = str(payload.get("task") or "")
        if not task.startswith("Task/"):
            return
        try:
            await file_report(engine, task.removeprefix("Task/"), policy)
        except CaseIncomplete as missing:
            logger.warning("report filing: %s has no %s; not filed", task, missing)

    return Consumer(name=CONSUMER_NAME, topic=CASE_COMPLETED, handler=handle)
