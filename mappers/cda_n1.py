"""A filed report as a CDA R2 "N1" document: the CI-SIS header around the PDF, unstructured body.

The header states what ``../shared/docs/interop-fr.md`` lists for the TLM-CR model (LOINC
``85208-7``, act ``TE2``): the three templateIds, the document id (``ReportDocument.unique_id``),
the patient by their own INS, the author and legal authenticator by idNatPs, the platform as
custodian, the pharmacy as the place of the encounter. The PDF goes whole, base64, into
``component/nonXMLBody/text``. What the CI-SIS rules say that we could not confirm (the family
name's qualifier, the template list) is a ``CdaOptions`` field, not a constant buried here.

Pure: bytes out of a frozen value, the same bytes for the same input (no clock, no random id).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from lxml import etree

from mappers.report_document import (
    ID_NAT_PS_OID,
    ID_NAT_STRUCT_OID,
    Code,
    DocumentPatient,
    Professional,
    ReportDocument,
    Structure,
)

HL7_NS: Final = "urn:hl7-org:v3"
XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"
_NSMAP: Final = {None: HL7_NS, "xsi": XSI_NS}

CDA_TYPE_ID: Final = ("2.16.840.1.113883.1.3", "POCD_HD000040")
"""``typeId`` of every CDA R2 document (root, extension)."""
N1_TEMPLATE_IDS: Final = ("2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1",
                          "1.3.6.1.4.1.19376.1.2.20")
"""HL7 France, CI-SIS, and IHE XDS-SD (a PDF wrapped in CDA): interop-fr.md."""
GENDER_OID: Final = "2.16.840.1.113883.5.1"
"""HL7 v3 AdministrativeGender."""
GENDER_CODES: Final = {"male": "M", "female": "F", "other": "UN", "unknown": "UN"}
PDF_MEDIA_TYPE: Final = "application/pdf"
LEGAL_SIGNATURE: Final = "S"
"""``signatureCode``: signed (the legal authenticator took responsibility)."""
PERFORMER: Final = "PRF"


@dataclass(frozen=True, slots=True)
class CdaOptions:
    """Header choices that rest on CI-SIS rules we could not check against the source."""

    template_ids: tuple[str, ...] = N1_TEMPLATE_IDS
    family_qualifier: str | None = "BR"
    """Qualifier of the patient's family name: ``BR`` (birth name, the INS trait); None: none."""


def render_cda(document: ReportDocument, options: CdaOptions | None = None) -> bytes:
    """The CDA R2 N1 document of ``document`` (UTF-8 XML with its declaration)."""
    options = options or CdaOptions()
    root = etree.Element(_tag("ClinicalDocument"), nsmap=_NSMAP)
    _sub(root, "realmCode", code="FR")
    _sub(root, "typeId", root=CDA_TYPE_ID[0], extension=CDA_TYPE_ID[1])
    for template in options.template_ids:
        _sub(root, "templateId", root=template)
    _sub(root, "id", root=document.unique_id)
    _code(root, "code", document.codes.type)
    _text(root, "title", document.title)
    _sub(root, "effectiveTime", value=timestamp(document.created))
    _code(root, "confidentialityCode", document.codes.confidentiality)
    _sub(root, "languageCode", code=document.language)
    _sub(root, "setId", root=document.set_id or document.unique_id)
    _sub(root, "versionNumber", value=str(document.version))
    _record_target(root, document.patient, options)
    _author(root, document)
    _custodian(root, document.custodian)
    _legal_authenticator(root, document)
    _service_event(root, document)
    _encounter(root, document)
    body = _sub(_sub(root, "component"), "nonXMLBody")
    _text(body, "text", base64.b64encode(document.pdf).decode("ascii"),
          mediaType=PDF_MEDIA_TYPE, representation="B64")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def timestamp(moment: datetime) -> str:
    """An HL7 TS with seconds and the UTC offset (``20261120110100+0100``); the moment must be
    timezone-aware."""
    if moment.utcoffset() is None:
        raise ValueError("a CDA timestamp needs a timezone-aware datetime")
    return moment.strftime("%Y%m%d%H%M%S%z")


def day(value: date) -> str:
    """An HL7 TS of a day (``19850312``)."""
    return value.strftime("%Y%m%d")


def _tag(name: str) -> str:
    return f"{{{HL7_NS}}}{name}"


def _sub(parent: etree._Element, name: str, **attributes: str) -> etree._Element:
    """A child element with its attributes in the order given (lxml escapes their values)."""
    element = etree.SubElement(parent, _tag(name))
    for key, value in attributes.items():
        element.set(key, value)
    return element


def _text(parent: etree._Element, name: str, text: str, **attributes: str) -> etree._Element:
    element = _sub(parent, name, **attributes)
    element.text = text
    return element


def _code(parent: etree._Element, name: str, code: Code) -> etree._Element:
    return _sub(parent, name, code=code.code, codeSystem=code.oid, displayName=code.display)


def _person_name(parent: etree._Element, family: str, given: str,
                 family_qualifier: str | None = None) -> None:
    name = _sub(parent, "name")
    _text(name, "given", given)
    family_element = _text(name, "family", family)
    if family_qualifier:
        family_element.set("qualifier", family_qualifier)


def national_structure_id(structure: Structure) -> str | None:
    """The structure's idNST: as given, else "1" + its FINESS; None when neither is known."""
    if structure.id_nat_struct:
        return structure.id_nat_struct
    return f"1{structure.finess}" if structure.finess else None


def _structure_id(parent: etree._Element, structure: Structure) -> None:
    """The structure's idNST, or a null flavor when it is not known."""
    id_nat_struct = national_structure_id(structure)
    if id_nat_struct:
        _sub(parent, "id", root=ID_NAT_STRUCT_OID, extension=id_nat_struct)
    else:
        _sub(parent, "id", nullFlavor="NI")


def _organization(parent: etree._Element, name: str, structure: Structure) -> None:
    organization = _sub(parent, name)
    _structure_id(organization, structure)
    _text(organization, "name", structure.name)


def _professional(parent: etree._Element, professional: Professional) -> None:
    """id (idNatPs), the role code when known (specialty, else profession) and the person."""
    _sub(parent, "id", root=ID_NAT_PS_OID, extension=professional.id_nat_ps)
    role = professional.specialty or professional.profession
    if role is not None:
        _code(parent, "code", role)
    _person_name(_sub(parent, "assignedPerson"), professional.family, professional.given)


def _record_target(root: etree._Element, patient: DocumentPatient,
                   options: CdaOptions) -> None:
    role = _sub(_sub(root, "recordTarget"), "patientRole")
    _sub(role, "id", root=patient.ins_oid, extension=patient.ins)
    person = _sub(role, "patient")
    _person_name(person, patient.family, patient.given, options.family_qualifier)
    _sub(person, "administrativeGenderCode", code=GENDER_CODES[patient.gender],
         codeSystem=GENDER_OID)
    if patient.birth_date is not None:
        _sub(person, "birthTime", value=day(patient.birth_date))
    else:
        _sub(person, "birthTime", nullFlavor="UNK")


def _author(root: etree._Element, document: ReportDocument) -> None:
    author = _sub(root, "author")
    _sub(author, "time", value=timestamp(document.created))
    assigned = _sub(author, "assignedAuthor")
    _professional(assigned, document.author)
    _organization(assigned, "representedOrganization", document.custodian)


def _custodian(root: etree._Element, custodian: Structure) -> None:
    assigned = _sub(_sub(root, "custodian"), "assignedCustodian")
    _organization(assigned, "representedCustodianOrganization", custodian)


def _legal_authenticator(root: etree._Element, document: ReportDocument) -> None:
    authenticator = _sub(root, "legalAuthenticator")
    _sub(authenticator, "time", value=timestamp(document.created))
    _sub(authenticator, "signatureCode", code=LEGAL_SIGNATURE)
    _professional(_sub(authenticator, "assignedEntity"), document.legal_authenticator)


def _period(parent: etree._Element, document: ReportDocument) -> None:
    period = _sub(parent, "effectiveTime")
    _sub(period, "low", value=timestamp(document.service_start))
    _sub(period, "high", value=timestamp(document.service_end))


def _service_event(root: etree._Element, document: ReportDocument) -> None:
    event = _sub(_sub(root, "documentationOf"), "serviceEvent")
    _code(event, "code", document.codes.service_event)
    _period(event, document)
    performer = _sub(event, "performer", typeCode=PERFORMER)
    _professional(_sub(performer, "assignedEntity"), document.author)


def _encounter(root: etree._Element, document: ReportDocument) -> None:
    encounter = _sub(_sub(root, "componentOf"), "encompassingEncounter")
    _period(encounter, document)
    facility = _sub(_sub(encounter, "location"), "healthCareFacility")
    _code(facility, "code", document.codes.facility_type)
    _text(_sub(facility, "location"), "name", document.facility.name)
    _organization(facility, "serviceProviderOrganization", document.facility)
