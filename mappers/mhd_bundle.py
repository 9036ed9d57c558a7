"""A filed report as an IHE MHD ITI-65 Provide Document Bundle, ANS PDSm "comprehensive" shape.

Three entries, all ``POST`` with ``urn:uuid:`` fullUrls made with uuid5 from the document's and
the submission set's OIDs (the same Bundle for the same input, so a retry sends the same
identifiers):

- the SubmissionSet ``List``: sourceId, designationType (and an intended recipient when given)
  extensions, uniqueId (``urn:oid:``) and entryUUID identifiers, the patient by INS, the author
  contained, mode ``working``, one entry: the DocumentReference;
- the ``DocumentReference``: masterIdentifier ``urn:oid:<unique_id>``, contained author,
  authenticator, custodian and source patient, attachment of the CDA (``text/xml``, size and
  base64 SHA-1 of its bytes, url = the Binary's fullUrl), format, period, facility and practice
  setting;
- the ``Binary``: the CDA R2 N1 bytes, its access following the DocumentReference.

A retry must not file the document twice: the DocumentReference (and the List) are conditional
creates on their uniqueId (``ifNoneExist``); R4's ``identifier`` search of DocumentReference
covers ``masterIdentifier``. Each resource declares the guide's PDSm-shaped profile and, unless
asked not to, the ANS one (``../shared/docs/interop-fr.md``; our validator leaves a profile it
does not hold alone, a PDSm recipient checks its own). Pure: no clock, no random, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from mappers.cda_n1 import national_structure_id
from mappers.report_document import (
    ID_NAT_PS_OID,
    ID_NAT_STRUCT_OID,
    Code,
    DocumentPatient,
    Professional,
    ReportDocument,
    Structure,
)

GUIDE_PROFILE: Final = "https://fhir.pictaderm.com/StructureDefinition/"
BUNDLE_PROFILE: Final = GUIDE_PROFILE + "pictaderm-pdsm-provide-bundle"
SUBMISSION_SET_PROFILE: Final = GUIDE_PROFILE + "pictaderm-pdsm-submissionset"
DOCUMENT_REFERENCE_PROFILE: Final = GUIDE_PROFILE + "pictaderm-pdsm-document-reference"
ANS_PDSM: Final = "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/"
ANS_BUNDLE_PROFILE: Final = ANS_PDSM + "pdsm-comprehensive-provide-document-bundle"
ANS_SUBMISSION_SET_PROFILE: Final = ANS_PDSM + "pdsm-submissionset-comprehensive"
ANS_DOCUMENT_REFERENCE_PROFILE: Final = ANS_PDSM + "pdsm-comprehensive-document-reference"

MHD: Final = "https://profiles.ihe.net/ITI/MHD/"
SOURCE_ID_URL: Final = MHD + "StructureDefinition/ihe-sourceId"
DESIGNATION_TYPE_URL: Final = MHD + "StructureDefinition/ihe-designationType"
INTENDED_RECIPIENT_URL: Final = (
    "http://esante.gouv.fr/ci-sis/fhir/StructureDefinition/PDSm_ihe-intended_recipient")
"""PDSm replaces MHD's ihe-intendedRecipient by its own (a contained PractitionerRole or
Organization); its url is the one of the PDSm sources we read (unverified)."""
MHD_LIST_TYPES: Final = MHD + "CodeSystem/MHDlistTypes"
URI_SYSTEM: Final = "urn:ietf:rfc:3986"
CDA_MEDIA_TYPE: Final = "text/xml"
FR_CORE_IDENTIFIER_TYPE: Final = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
INS_TYPES: Final = {"1.2.250.1.213.1.4.8": "INS-NIR", "1.2.250.1.213.1.4.9": "INS-NIA",
                    "1.2.250.1.213.1.4.10": "INS-NIR-TEST", "1.2.250.1.213.1.4.11": "INS-NIR-DEMO"}
"""FR Core identifier type of each INS assigning authority."""
SOURCE_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://fhir.pictaderm.com/mhd/sourceId")
"""Namespace of the default sourceId (a 2.25 OID from the custodian's identity)."""

AUTHOR: Final = "author"
AUTHOR_PERSON: Final = "author-practitioner"
AUTHENTICATOR: Final = "authenticator"
CUSTODIAN: Final = "custodian"
PATIENT: Final = "patient"
RECIPIENT: Final = "recipient"


@dataclass(frozen=True, slots=True)
class BundleUrls:
    """The ``urn:uuid:`` fullUrls of a submission's three entries, and the entryUUIDs of the
    SubmissionSet and the DocumentReference (other UUIDs than the fullUrls: a transaction
    replaces every string equal to a fullUrl by the id the recipient gives)."""

    submission_set: str
    document_reference: str
    binary: str
    submission_set_entry: str
    document_entry: str


def bundle_urls(unique_id: str, submission_set_id: str) -> BundleUrls:
    """The fullUrls and entryUUIDs of a submission: uuid5 of the document's and the submission
    set's OIDs."""
    def made(name: str) -> str:
        return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, name)}"

    return BundleUrls(submission_set=made(submission_set_id), document_reference=made(unique_id),
                      binary=made(f"{unique_id}/content"),
                      submission_set_entry=made(f"{submission_set_id}/entryUUID"),
                      document_entry=made(f"{unique_id}/entryUUID"))


def provide_document_bundle(document: ReportDocument, cda: bytes, *, submission_set_id: str,
                            source_id: str | None = None, content_type: Code | None = None,
                            intended_recipient: Structure | None = None,
                            submitted: datetime | None = None,
                            declare_ans: bool = True) -> dict[str, Any]:
    """The ITI-65 transaction Bundle filing ``cda`` (the CDA R2 N1 of ``document``).

    ``source_id``: the OID of the submitting system (sourceId), by default a 2.25 OID made from
    the custodian's identity; ``content_type``: the submission set's designationType
    (contentTypeCode, unverified for the DMP: the facility type by default);
    ``submitted``: the submission time (the document's creation by default);
    ``declare_ans``: also declare the ANS PDSm profiles in ``meta.profile``.
    """
    urls = bundle_urls(document.unique_id, submission_set_id)
    entries = [
        _entry(urls.submission_set, submission_set(
            document, urls, submission_set_id=submission_set_id,
            source_id=source_id or default_source_id(document.custodian),
            content_type=content_type or document.codes.facility_type,
            intended_recipient=intended_recipient, submitted=submitted or document.created,
            declare_ans=declare_ans),
            if_none_exist=identifier_criteria(submission_set_id)),
        _entry(urls.document_reference,
               document_reference(document, cda, urls, declare_ans=declare_ans),
               if_none_exist=identifier_criteria(document.unique_id)),
        _entry(urls.binary, {"resourceType": "Binary", "contentType": CDA_MEDIA_TYPE,
                             "securityContext": {"reference": urls.document_reference},
                             "data": base64.b64encode(cda).decode("ascii")}),
    ]
    return {"resourceType": "Bundle",
            "meta": _meta(BUNDLE_PROFILE, ANS_BUNDLE_PROFILE, declare_ans),
            "type": "transaction", "entry": entries}


def identifier_criteria(oid: str) -> str:
    """``ifNoneExist`` finding what a uniqueId already filed: ``identifier=<uri>|urn:oid:…``."""
    return f"identifier={URI_SYSTEM}|urn:oid:{oid}"


def attachment_hash(data: bytes) -> str:
    """``Attachment.hash``: the base64 of the SHA-1 of the data."""
    return base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


def default_source_id(custodian: Structure) -> str:
    """A stable sourceId OID under 2.25 (ITU-T X.667, no registration) from the custodian's
    idNST (or FINESS, or name)."""
    seed = custodian.id_nat_struct or custodian.finess or custodian.name
    return f"2.25.{uuid.uuid5(SOURCE_NAMESPACE, seed).int}"


def fhir_instant(moment: datetime) -> str:
    """A FHIR dateTime with its offset; the moment must be timezone-aware."""
    if moment.utcoffset() is None:
        raise ValueError("a FHIR dateTime of a document needs a timezone-aware datetime")
    return moment.isoformat()


def submission_set(document: ReportDocument, urls: BundleUrls, *, submission_set_id: str,
                   source_id: str, content_type: Code, intended_recipient: Structure | None,
                   submitted: datetime, declare_ans: bool = True) -> dict[str, Any]:
    """The SubmissionSet List of the Bundle."""
    contained = [_author_role(document.author), _practitioner(AUTHOR_PERSON, document.author),
                 _organization(CUSTODIAN, document.custodian)]
    extensions: list[dict[str, Any]] = [
        {"url": SOURCE_ID_URL,
         "valueIdentifier": {"system": URI_SYSTEM, "value": f"urn:oid:{source_id}"}},
        {"url": DESIGNATION_TYPE_URL, "valueCodeableConcept": _concept(content_type)}]
    if intended_recipient is not None:
        contained.append(_organization(RECIPIENT, intended_recipient))
        extensions.append({"url": INTENDED_RECIPIENT_URL,
                           "valueReference": {"reference": f"#{RECIPIENT}"}})
    return {
        "resourceType": "List",
        "meta": _meta(SUBMISSION_SET_PROFILE, ANS_SUBMISSION_SET_PROFILE, declare_ans),
        "contained": contained,
        "extension": extensions,
        "identifier": [
            {"use": "usual", "system": URI_SYSTEM, "value": f"urn:oid:{submission_set_id}"},
            {"use": "official", "system": URI_SYSTEM, "value": urls.submission_set_entry}],
        "status": "current",
        "mode": "working",
        "code": {"coding": [{"system": MHD_LIST_TYPES, "code": "submissionset",
                             "display": "Submission Set"}]},
        "subject": _subject(document.patient),
        "date": fhir_instant(submitted),
        "source": {"reference": f"#{AUTHOR}"},
        "entry": [{"item": {"reference": urls.document_reference}}],
    }


def document_reference(document: ReportDocument, cda: bytes, urls: BundleUrls, *,
                       declare_ans: bool = True) -> dict[str, Any]:
    """The DocumentReference of the Bundle, describing ``cda``."""
    codes = document.codes
    same_signer = document.legal_authenticator == document.author
    contained = [_author_role(document.author), _practitioner(AUTHOR_PERSON, document.author)]
    if not same_signer:
        contained.append(_practitioner(AUTHENTICATOR, document.legal_authenticator))
    contained += [_organization(CUSTODIAN, document.custodian),
                  _patient(PATIENT, document.patient)]
    return {
        "resourceType": "DocumentReference",
        "meta": _meta(DOCUMENT_REFERENCE_PROFILE, ANS_DOCUMENT_REFERENCE_PROFILE, declare_ans),
        "contained": contained,
        "masterIdentifier": {"system": URI_SYSTEM, "value": f"urn:oid:{document.unique_id}"},
        "identifier": [{"use": "official", "system": URI_SYSTEM, "value": urls.document_entry}],
        "status": "current",
        "type": _concept(codes.type),
        "category": [_concept(codes.class_)],
        "subject": _subject(document.patient),
        "date": fhir_instant(document.created),
        "author": [{"reference": f"#{AUTHOR}"}],
        "authenticator": {"reference": f"#{AUTHOR_PERSON if same_signer else AUTHENTICATOR}"},
        "custodian": {"reference": f"#{CUSTODIAN}"},
        "securityLabel": [_concept(codes.confidentiality)],
        "content": [{
            "attachment": {"contentType": CDA_MEDIA_TYPE, "language": document.language,
                           "url": urls.binary, "size": len(cda), "hash": attachment_hash(cda),
                           "title": document.title,
                           "creation": fhir_instant(document.created)},
            "format": _coding(codes.format)}],
        "context": {
            "period": {"start": fhir_instant(document.service_start),
                       "end": fhir_instant(document.service_end)},
            "facilityType": _concept(codes.facility_type),
            "practiceSetting": _concept(codes.practice_setting),
            "sourcePatientInfo": {"reference": f"#{PATIENT}"}},
    }


def _entry(full_url: str, resource: dict[str, Any], *,
           if_none_exist: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "POST", "url": resource["resourceType"]}
    if if_none_exist is not None:
        request["ifNoneExist"] = if_none_exist
    return {"fullUrl": full_url, "resource": resource, "request": request}


def _meta(ours: str, ans: str, declare_ans: bool) -> dict[str, Any]:
    return {"profile": [ours, ans] if declare_ans else [ours]}


def _coding(code: Code) -> dict[str, str]:
    return {"system": code.system, "code": code.code, "display": code.display}


def _concept(code: Code) -> dict[str, Any]:
    return {"coding": [_coding(code)]}


def _identifier_type(code: str) -> dict[str, Any]:
    return {"coding": [{"system": FR_CORE_IDENTIFIER_TYPE, "code": code}]}


def _subject(patient: DocumentPatient) -> dict[str, Any]:
    """The patient by their INS (a logical reference: the DMP knows the patient by it)."""
    return {"type": "Patient",
            "identifier": {"system": f"urn:oid:{patient.ins_oid}", "value": patient.ins}}


def _patient(id: str, patient: DocumentPatient) -> dict[str, Any]:
    identifier: dict[str, Any] = {"use": "official", "system": f"urn:oid:{patient.ins_oid}",
                                  "value": patient.ins}
    if patient.ins_oid in INS_TYPES:
        identifier = {"use": "official", "type": _identifier_type(INS_TYPES[patient.ins_oid]),
                      "system": identifier["system"], "value": patient.ins}
    resource: dict[str, Any] = {
        "resourceType": "Patient", "id": id, "identifier": [identifier],
        "name": [{"use": "official", "family": patient.family, "given": [patient.given]}],
        "gender": patient.gender}
    if patient.birth_date is not None:
        resource["birthDate"] = patient.birth_date.isoformat()
    return resource


def _practitioner(id: str, professional: Professional) -> dict[str, Any]:
    return {"resourceType": "Practitioner", "id": id,
            "identifier": [{"type": _identifier_type("IDNPS"),
                            "system": f"urn:oid:{ID_NAT_PS_OID}",
                            "value": professional.id_nat_ps}],
            "name": [{"family": professional.family, "given": [professional.given]}]}


def _author_role(professional: Professional) -> dict[str, Any]:
    """The author as a PractitionerRole: the person, the custodian (the platform the doctor
    answers through), profession and specialty."""
    role: dict[str, Any] = {"resourceType": "PractitionerRole", "id": AUTHOR,
                            "practitioner": {"reference": f"#{AUTHOR_PERSON}"},
                            "organization": {"reference": f"#{CUSTODIAN}"}}
    if professional.profession is not None:
        role["code"] = [_concept(professional.profession)]
    if professional.specialty is not None:
        role["specialty"] = [_concept(professional.specialty)]
    return role


def _organization(id: str, structure: Structure) -> dict[str, Any]:
    organization: dict[str, Any] = {"resourceType": "Organization", "id": id}
    id_nat_struct = national_structure_id(structure)
    if id_nat_struct:
        organization["identifier"] = [{"type": _identifier_type("IDNST"),
                                       "system": f"urn:oid:{ID_NAT_STRUCT_OID}",
                                       "value": id_nat_struct}]
    organization["name"] = structure.name
    return organization
