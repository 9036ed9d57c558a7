"""The FHIR resources that file a case's PDF report: its Binary, its DocumentReference (LOINC
85208-7 with the PDSm metadata), the DiagnosticReport's ``presentedForm`` and the Task's
``output`` — pure functions of the case's resources and the PDF bytes.

The ids are derived from the Task's (``report-<task id>``) and so is the document's unique id
(``document_unique_id``): filing the same case twice names the same resources, which is what
makes the filing idempotent.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any, Final

from fhir_server.types import ResourceDict
from mappers.report_document import DocumentCodes

REPORT_DOCUMENT_PROFILE: Final = (
    "https://fhir.pictaderm.com/StructureDefinition/pictaderm-report-document")
REPORT_TITLE: Final = "Compte rendu de téléexpertise"
REPORT_OUTPUT_TEXT: Final = "Compte rendu PDF"
PDF: Final = "application/pdf"
LANGUAGE: Final = "fr-FR"
RFC3986: Final = "urn:ietf:rfc:3986"
UNIQUE_ID_NAMESPACE: Final = uuid.UUID("5d0c7a8e-3f2b-4c61-9a57-0e4b8f1d2c63")
"""Namespace of the UUIDs (RFC 4122 v5) from which report documents' OIDs are made."""


@dataclass(frozen=True, slots=True)
class ReportFiling:
    """What filing one report writes."""

    binary: ResourceDict
    document_reference: ResourceDict
    diagnostic_report: ResourceDict
    task: ResourceDict


def report_ids(task_id: str) -> str:
    """The id of the report's Binary and of its DocumentReference (``report-<task id>``)."""
    return f"report-{task_id}"


def document_unique_id(oid_root: str, task_id: str) -> str:
    """The report document's OID: under ``oid_root``, a number made from the Task id (a UUID v5,
    so the same case always gets the same document id; under ``2.25`` it is the UUID's OID)."""
    return f"{oid_root}.{uuid.uuid5(UNIQUE_ID_NAMESPACE, task_id).int}"


def sha1_base64(content: bytes) -> str:
    """The SHA-1 of ``content`` as FHIR's ``Attachment.hash`` writes it (base64)."""
    return base64.b64encode(hashlib.sha1(content, usedforsecurity=False).digest()).decode()


def coding(code: Any) -> dict[str, str]:
    """A ``Code`` of ``mappers.report_document`` as a FHIR Coding."""
    return {"system": code.system, "code": code.code, "display": code.display}


def report_filing(*, task: ResourceDict, service_request: ResourceDict,
                  diagnostic_report: ResourceDict, pdf: bytes, unique_id: str,
                  codes: DocumentCodes) -> ReportFiling:
    """The Binary, the DocumentReference, and the DiagnosticReport and Task that point to them.

    The document's date is the answer's (``DiagnosticReport.issued``), its period runs from the
    request (``ServiceRequest.authoredOn``) to the answer; its author and authenticator are the
    doctor's role (the report's performer); it belongs to the case through ``context.related``
    (the ServiceRequest), and its Binary to it through ``securityContext``.
    """
    ids = report_ids(str(task["id"]))
    binary_url = f"Binary/{ids}"
    issued = diagnostic_report.get("issued") or task.get("lastModified")
    attachment: dict[str, Any] = {
        "contentType": PDF, "language": LANGUAGE, "url": binary_url, "size": len(pdf),
        "hash": sha1_base64(pdf), "title": REPORT_TITLE}
    if issued:
        attachment["creation"] = issued
    performer = next(iter(diagnostic_report.get("performer") or ()), None) or task.get("owner")
    document: dict[str, Any] = {
        "resourceType": "DocumentReference", "id": ids,
        "meta": {"profile": [REPORT_DOCUMENT_PROFILE]},
        "masterIdentifier": {"system": RFC3986, "value": f"urn:oid:{unique_id}"},
        "status": "current", "docStatus": "final",
        "type": {"coding": [coding(codes.type)]},
        "category": [{"coding": [coding(codes.class_)]}],
        "subject": dict(task.get("for") or service_request.get("subject") or {}),
        "securityLabel": [{"coding": [coding(codes.confidentiality)]}],
        "content": [{"attachment": attachment, "format": coding(codes.format)}],
        "context": _context(task, service_request, issued, codes),
    }
    if issued:
        document["date"] = issued
    if performer:
        document["author"] = [dict(performer)]
        document["authenticator"] = dict(performer)
    binary: ResourceDict = {
        "resourceType": "Binary", "id": ids, "contentType": PDF,
        "securityContext": {"reference": f"DocumentReference/{ids}"},
        "data": base64.b64encode(pdf).decode("ascii")}
    return ReportFiling(binary=binary, document_reference=document,
                        diagnostic_report=with_presented_form(diagnostic_report, attachment),
                        task=with_report_output(task, f"DocumentReference/{ids}"))


def _context(task: ResourceDict, service_request: ResourceDict, issued: object,
             codes: DocumentCodes) -> dict[str, Any]:
    period: dict[str, Any] = {}
    if service_request.get("authoredOn"):
        period["start"] = service_request["authoredOn"]
    if issued:
        period["end"] = issued
    context: dict[str, Any] = {
        "facilityType": {"coding": [coding(codes.facility_type)]},
        "practiceSetting": {"coding": [coding(codes.practice_setting)]},
        "related": [{"reference": f"ServiceRequest/{service_request['id']}"}],
    }
    if period:
        context["period"] = period
    subject = task.get("for") or service_request.get("subject")
    if subject:
        context["sourcePatientInfo"] = dict(subject)
    return context


def with_presented_form(report: ResourceDict, attachment: dict[str, Any]) -> ResourceDict:
    """The DiagnosticReport with the PDF among its ``presentedForm`` (once)."""
    forms = [dict(form) for form in report.get("presentedForm") or ()
             if form.get("url") != attachment["url"]]
    form = {key: attachment[key] for key in ("contentType", "language", "url", "size", "hash",
                                            "title", "creation") if key in attachment}
    return {**without_version_stamps(report), "presentedForm": [*forms, form]}


def with_report_output(task: ResourceDict, document: str) -> ResourceDict:
    """The Task with the report's DocumentReference in its ``output`` (once)."""
    outputs = [dict(output) for output in task.get("output") or ()
               if (output.get("valueReference") or {}).get("reference") != document]
    outputs.append({"type": {"text": REPORT_OUTPUT_TEXT},
                    "valueReference": {"reference": document}})
    return {**without_version_stamps(task), "output": outputs}


def without_version_stamps(resource: ResourceDict) -> ResourceDict:
    """The resource without the version stamps of ``meta`` (the server writes them anew); its
    profiles, tags and security labels kept."""
    meta = {key: value for key, value in (resource.get("meta") or {}).items()
            if key not in ("versionId", "lastUpdated")}
    copy = {key: value for key, value in resource.items() if key != "meta"}
    if meta:
        copy["meta"] = meta
    return copy
