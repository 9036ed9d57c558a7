"""The ebRIM metadata of an ITI-41 submission: the ``lcm:SubmitObjectsRequest`` with one
XDSDocumentEntry per document, the XDSSubmissionSet and their associations (pure, lxml).

Every fact comes from the ``ReportDocument``; the choices it does not carry (the sending
system's id, the submission set's content type, the codes of the signature document) are an
``XdsProfile``. Codes not confirmed in a primary source are parameters with a default, listed
in ``docs/implementation/dmp-xds.md``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from typing import Any, Final

from lxml import etree

from fhir_server.dmp.xds import names
from fhir_server.dmp.xds.hl7v2 import (
    coded,
    day,
    escaped,
    instant,
    organization_xon,
    patient_cx,
    person_xcn,
)
from fhir_server.dmp.xds.names import qname
from mappers.report_document import PHARMACY_SECTOR, Code, ReportDocument

REPORT_ENTRY_ID: Final = "Document01"
SIGNATURE_ENTRY_ID: Final = "Signature01"
SUBMISSION_SET_ID: Final = "SubmissionSet01"
"""Symbolic ids of the submitted objects (the registry gives them their entryUUIDs)."""
CDA_MIME_TYPE: Final = "text/xml"
_SEX: Final = {"male": "M", "female": "F"}
"""HL7 v2 table 0001 (administrative sex); other and unknown are written U."""

DIGITAL_SIGNATURE: Final = Code(
    "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "Digital Signature",
    "https://mos.esante.gouv.fr/NOS/TRE_A10-NomenclatureURN/FHIR/TRE-A10-NomenclatureURN", "URN")
"""classCode of an IHE DSG signature document (TRE_A10 NomenclatureURN; codingScheme "URN")."""
FULL_DOCUMENT: Final = Code("E1762", "Full Document", "http://www.astm.org", "ASTM")
"""typeCode of a signature document (ASTM E1762; codingScheme "ASTM")."""
DEFAULT_SIGNATURE_STYLE: Final = Code(
    "http://www.w3.org/2000/09/xmldsig#", "Default Signature Style",
    "https://mos.esante.gouv.fr/NOS/TRE_A10-NomenclatureURN/FHIR/TRE-A10-NomenclatureURN", "URN")
"""formatCode of a signature document as DMP integrations send it (unverified against the
current DMP guide; IHE DSG 2014 names ``urn:ihe:iti:dsg:detached:2014``)."""
SOURCE_SIGNATURE: Final = Code("1.2.840.10065.1.12.1.14", "Source",
                               "urn:oid:1.2.840.10065.1.12", "1.2.840.10065.1.12")
"""The purpose of the signature (ASTM E1762 "Source"): its eventCode and SignatureProperty."""


class MetadataError(ValueError):
    """The document lacks a fact the metadata must state; the message names the fact, never
    its value."""


@dataclass(frozen=True, slots=True)
class SignatureCodes:
    """The coded metadata of the XAdES signature document (defaults: IHE DSG as DMP
    integrations send it; unverified against the current DMP guide)."""

    class_: Code = DIGITAL_SIGNATURE
    type: Code = FULL_DOCUMENT
    format: Code = DEFAULT_SIGNATURE_STYLE
    purpose: Code = SOURCE_SIGNATURE
    language: str = "art"
    """``art``: the ISO 639 code for "artificial language" DMP integrations give a signature."""
    title: str = "Source"


@dataclass(frozen=True, slots=True)
class XdsProfile:
    """The metadata choices that are not facts of the document."""

    source_id: str
    """The OID of the sending system (``XDSSubmissionSet.sourceId``)."""
    content_type: Code = PHARMACY_SECTOR
    """``XDSSubmissionSet.contentTypeCode`` (JDV_J59-ContentTypeCode-DMP draws on TRE_R02
    sectors among others; SA33 for a pharmacy's request is unverified)."""
    repository_unique_id: str | None = None
    """Sent only when the DMP asks for it (a Document Repository normally sets it itself)."""
    signature: SignatureCodes = field(default_factory=SignatureCodes)


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    """One document of the submission as its XDSDocumentEntry describes it."""

    entry_id: str
    unique_id: str
    content: bytes
    mime_type: str
    title: str
    language: str
    creation_time: datetime
    service_start: datetime
    service_stop: datetime
    class_code: Code
    type_code: Code
    format_code: Code
    confidentiality: tuple[Code, ...]
    facility_type: Code
    practice_setting: Code
    event_codes: tuple[Code, ...] = ()

    @property
    def hash(self) -> str:
        """The SHA-1 of the content in lowercase hex (the ``hash`` slot)."""
        return hashlib.sha1(self.content, usedforsecurity=False).hexdigest()

    @property
    def size(self) -> int:
        return len(self.content)


def report_entry(document: ReportDocument, cda: bytes) -> DocumentEntry:
    """The entry of the report's CDA R2 N1 document."""
    codes = document.codes
    return DocumentEntry(
        entry_id=REPORT_ENTRY_ID, unique_id=document.unique_id, content=cda,
        mime_type=CDA_MIME_TYPE, title=document.title, language=document.language,
        creation_time=document.created, service_start=document.service_start,
        service_stop=document.service_end, class_code=codes.class_, type_code=codes.type,
        format_code=codes.format, confidentiality=(codes.confidentiality,),
        facility_type=codes.facility_type, practice_setting=codes.practice_setting)


def signature_entry(document: ReportDocument, signature: bytes, *, unique_id: str,
                    signed_at: datetime, codes: SignatureCodes) -> DocumentEntry:
    """The entry of the submission set's XAdES signature document."""
    return DocumentEntry(
        entry_id=SIGNATURE_ENTRY_ID, unique_id=unique_id, content=signature,
        mime_type=CDA_MIME_TYPE, title=codes.title, language=codes.language,
        creation_time=signed_at, service_start=signed_at, service_stop=signed_at,
        class_code=codes.class_, type_code=codes.type, format_code=codes.format,
        confidentiality=(document.codes.confidentiality,),
        facility_type=document.codes.facility_type,
        practice_setting=document.codes.practice_setting, event_codes=(codes.purpose,))


def signature_unique_id(submission_set_id: str) -> str:
    """The signature document's uniqueId: an arc under the submission set's OID, so that a
    retried submission names the same signature document."""
    return f"{submission_set_id}.1"


def submit_objects_request(document: ReportDocument, entries: Sequence[DocumentEntry], *,
                           submission_set_id: str, submission_time: datetime,
                           profile: XdsProfile, signature_entry_id: str | None = None) -> Any:
    """The ``lcm:SubmitObjectsRequest`` registering ``entries`` in one submission set.

    ``signature_entry_id`` names the entry that signs the submission set (IHE DSG): it gets a
    ``signs`` association to the set besides its ``HasMember``.
    """
    _check(document)
    ids = _Ids()
    request = etree.Element(qname(names.LCM, "SubmitObjectsRequest"),
                            nsmap={"lcm": names.LCM, "rim": names.RIM})
    objects = etree.SubElement(request, qname(names.RIM, "RegistryObjectList"))
    patient_id = patient_cx(document.patient.ins, document.patient.ins_oid)
    for entry in entries:
        objects.append(_extrinsic_object(document, entry, patient_id, profile, ids))
    objects.append(_registry_package(document, submission_set_id, submission_time,
                                     patient_id, profile, ids))
    etree.SubElement(objects, qname(names.RIM, "Classification"), id=ids.next("cl"),
                     classifiedObject=SUBMISSION_SET_ID,
                     classificationNode=names.SUBMISSION_SET,
                     objectType=names.CLASSIFICATION_OBJECT)
    for entry in entries:
        association = _association(ids.next("as"), names.HAS_MEMBER, SUBMISSION_SET_ID,
                                   entry.entry_id)
        _slot(association, "SubmissionSetStatus", ["Original"])
        objects.append(association)
    if signature_entry_id is not None:
        objects.append(_association(ids.next("as"), names.SIGNS, signature_entry_id,
                                    SUBMISSION_SET_ID))
    return request


def _check(document: ReportDocument) -> None:
    if not document.patient.ins or not document.patient.ins_oid:
        raise MetadataError("the patient's INS is missing")
    for role, professional in (("author", document.author),
                               ("legal authenticator", document.legal_authenticator)):
        if not professional.id_nat_ps:
            raise MetadataError(f"the {role}'s national professional id is missing")


class _Ids:
    """Symbolic ids for the classifications, identifiers and associations of one request."""

    def __init__(self) -> None:
        self._numbers = count(1)

    def next(self, prefix: str) -> str:
        return f"{prefix}{next(self._numbers):02d}"


def _extrinsic_object(document: ReportDocument, entry: DocumentEntry, patient_id: str,
                      profile: XdsProfile, ids: _Ids) -> Any:
    extrinsic = etree.Element(qname(names.RIM, "ExtrinsicObject"), id=entry.entry_id,
                              mimeType=entry.mime_type, objectType=names.DOCUMENT_ENTRY)
    _slot(extrinsic, "creationTime", [instant(entry.creation_time)])
    _slot(extrinsic, "hash", [entry.hash])
    _slot(extrinsic, "languageCode", [entry.language])
    _slot(extrinsic, "legalAuthenticator", [person_xcn(document.legal_authenticator)])
    if profile.repository_unique_id is not None:
        _slot(extrinsic, "repositoryUniqueId", [profile.repository_unique_id])
    _slot(extrinsic, "serviceStartTime", [instant(entry.service_start)])
    _slot(extrinsic, "serviceStopTime", [instant(entry.service_stop)])
    _slot(extrinsic, "size", [str(entry.size)])
    _slot(extrinsic, "sourcePatientId", [patient_id])
    _slot(extrinsic, "sourcePatientInfo", _source_patient_info(document, patient_id))
    _name(extrinsic, entry.title, entry.language)
    extrinsic.append(_author(document, names.ENTRY_AUTHOR, entry.entry_id, ids))
    for scheme, code in ((names.ENTRY_CLASS_CODE, entry.class_code),
                         *((names.ENTRY_CONFIDENTIALITY_CODE, code)
                           for code in entry.confidentiality),
                         *((names.ENTRY_EVENT_CODE, code) for code in entry.event_codes),
                         (names.ENTRY_FORMAT_CODE, entry.format_code),
                         (names.ENTRY_FACILITY_TYPE_CODE, entry.facility_type),
                         (names.ENTRY_PRACTICE_SETTING_CODE, entry.practice_setting),
                         (names.ENTRY_TYPE_CODE, entry.type_code)):
        extrinsic.append(_code_classification(ids.next("cl"), scheme, entry.entry_id, code))
    extrinsic.append(_external_identifier(ids.next("ei"), names.ENTRY_PATIENT_ID,
                                          entry.entry_id, patient_id,
                                          "XDSDocumentEntry.patientId"))
    extrinsic.append(_external_identifier(ids.next("ei"), names.ENTRY_UNIQUE_ID,
                                          entry.entry_id, entry.unique_id,
                                          "XDSDocumentEntry.uniqueId"))
    return extrinsic


def _registry_package(document: ReportDocument, submission_set_id: str,
                      submission_time: datetime, patient_id: str, profile: XdsProfile,
                      ids: _Ids) -> Any:
    package = etree.Element(qname(names.RIM, "RegistryPackage"), id=SUBMISSION_SET_ID,
                            objectType="urn:oasis:names:tc:ebxml-regrep:ObjectType:"
                                       "RegistryObject:RegistryPackage")
    _slot(package, "submissionTime", [instant(submission_time)])
    package.append(_author(document, names.SET_AUTHOR, SUBMISSION_SET_ID, ids))
    package.append(_code_classification(ids.next("cl"), names.SET_CONTENT_TYPE_CODE,
                                        SUBMISSION_SET_ID, profile.content_type))
    for scheme, value, label in (
            (names.SET_UNIQUE_ID, submission_set_id, "XDSSubmissionSet.uniqueId"),
            (names.SET_SOURCE_ID, profile.source_id, "XDSSubmissionSet.sourceId"),
            (names.SET_PATIENT_ID, patient_id, "XDSSubmissionSet.patientId")):
        package.append(_external_identifier(ids.next("ei"), scheme, SUBMISSION_SET_ID, value,
                                            label))
    return package


def _source_patient_info(document: ReportDocument, patient_id: str) -> list[str]:
    """PID-3 (the INS), PID-5 (legal name), PID-7 (birth date), PID-8 (sex)."""
    patient = document.patient
    info = [f"PID-3|{patient_id}",
            f"PID-5|{escaped(patient.family)}^{escaped(patient.given)}^^^^^L"]
    if patient.birth_date is not None:
        info.append(f"PID-7|{day(patient.birth_date)}")
    info.append(f"PID-8|{_SEX.get(patient.gender, 'U')}")
    return info


def _author(document: ReportDocument, scheme: str, classified: str, ids: _Ids) -> Any:
    """The author classification: the author and the custodian structure, the same on the
    document entry and on the submission set (the DMP asks both authorInstitutions to match)."""
    author = etree.Element(qname(names.RIM, "Classification"), id=ids.next("cl"),
                           classificationScheme=scheme, classifiedObject=classified,
                           nodeRepresentation="", objectType=names.CLASSIFICATION_OBJECT)
    _slot(author, "authorPerson", [person_xcn(document.author)])
    _slot(author, "authorInstitution", [organization_xon(document.custodian)])
    if document.author.specialty is not None:
        _slot(author, "authorSpecialty", [coded(document.author.specialty)])
    return author


def _code_classification(identifier: str, scheme: str, classified: str, code: Code) -> Any:
    classification = etree.Element(
        qname(names.RIM, "Classification"), id=identifier, classificationScheme=scheme,
        classifiedObject=classified, nodeRepresentation=code.code,
        objectType=names.CLASSIFICATION_OBJECT)
    _slot(classification, "codingScheme", [code.oid])
    _name(classification, code.display)
    return classification


def _external_identifier(identifier: str, scheme: str, registry_object: str, value: str,
                         label: str) -> Any:
    external = etree.Element(qname(names.RIM, "ExternalIdentifier"), id=identifier,
                             identificationScheme=scheme, registryObject=registry_object,
                             value=value, objectType=names.EXTERNAL_IDENTIFIER_OBJECT)
    _name(external, label)
    return external


def _association(identifier: str, kind: str, source: str, target: str) -> Any:
    return etree.Element(qname(names.RIM, "Association"), id=identifier,
                         associationType=kind, sourceObject=source, targetObject=target,
                         objectType=names.ASSOCIATION_OBJECT)


def _slot(parent: Any, name: str, values: Iterable[str]) -> None:
    slot = etree.SubElement(parent, qname(names.RIM, "Slot"), name=name)
    value_list = etree.SubElement(slot, qname(names.RIM, "ValueList"))
    for value in values:
        etree.SubElement(value_list, qname(names.RIM, "Value")).text = value


def _name(parent: Any, text: str, language: str | None = None) -> None:
    name = etree.SubElement(parent, qname(names.RIM, "Name"))
    localized = etree.SubElement(name, qname(names.RIM, "LocalizedString"), value=text,
                                 charset="UTF-8")
    if language is not None:
        localized.set("{http://www.w3.org/XML/1998/namespace}lang", language)
