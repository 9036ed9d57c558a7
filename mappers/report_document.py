"""The facts of a filed report document that the CDA header, the MHD Bundle and the XDS
metadata all state: one frozen value, so the three say the same thing.

Codes and identifier systems come from ``../shared/docs/interop-fr.md`` (the ANS CI-SIS and
PDSm guides); the ones marked unverified there are parameters (``DocumentCodes``), not
constants buried in a mapper. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final, Literal

INS_NIR_OID: Final = "1.2.250.1.213.1.4.8"
"""The INS-NIR assigning authority (``recordTarget/patientRole/id@root``, XDS patientId)."""
ID_NAT_PS_OID: Final = "1.2.250.1.71.4.2.1"
"""National health professional ids (idNatPs = "8" + RPPS)."""
ID_NAT_STRUCT_OID: Final = "1.2.250.1.71.4.2.2"
"""National structure ids (idNST: "1" + FINESS for a FINESS-registered structure)."""
LOINC_OID: Final = "2.16.840.1.113883.6.1"
LOINC_SYSTEM: Final = "http://loinc.org"


@dataclass(frozen=True, slots=True)
class Code:
    """A coded value as FHIR (``system``) and as CDA/XDS (``oid``, the code system OID) say it."""

    code: str
    display: str
    system: str
    oid: str


REPORT_TYPE: Final = Code("85208-7", "Compte rendu d'acte de télémédecine", LOINC_SYSTEM,
                          LOINC_OID)
TELE_EXPERTISE_ACT: Final = Code("TE2", "Téléexpertise", "https://www.ameli.fr/ngap",
                                 "1.2.250.1.215.200.3.3")
PDF_FORMAT: Final = Code(
    "urn:ihe:iti:xds-sd:pdf:2008", "Document à corps non structuré en Pdf/A-1",
    "https://mos.esante.gouv.fr/NOS/TRE_A11-IheFormatCode/FHIR/TRE-A11-IheFormatCode",
    "1.3.6.1.4.1.19376.1.2.3")
AMBULATORY: Final = Code(
    "AMBULATOIRE", "Ambulatoire",
    "https://mos.esante.gouv.fr/NOS/TRE_A01-CadreExercice/FHIR/TRE-A01-CadreExercice",
    "1.2.250.1.213.1.1.4.9")
PHARMACY_SECTOR: Final = Code(
    "SA33", "Pharmacie d'officine",
    "https://mos.esante.gouv.fr/NOS/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite",
    "1.2.250.1.71.4.2.4")
NORMAL_CONFIDENTIALITY: Final = Code("N", "Normal",
                                     "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                                     "2.16.840.1.113883.5.25")


def report_class(code: str = "10") -> Code:
    """The document class (TRE_A03-ClasseDocument); ``10`` is unverified for this type, so the
    code comes from configuration (``Settings.document_class_code``)."""
    return Code(code, "Compte rendu",
                "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/"
                "TRE-A03-ClasseDocument", "1.2.250.1.213.1.1.4.1")


@dataclass(frozen=True, slots=True)
class DocumentCodes:
    """The coded metadata of a report document (defaults: ``interop-fr.md``)."""

    type: Code = REPORT_TYPE
    class_: Code = field(default_factory=report_class)
    format: Code = PDF_FORMAT
    confidentiality: Code = NORMAL_CONFIDENTIALITY
    facility_type: Code = PHARMACY_SECTOR
    practice_setting: Code = AMBULATORY
    service_event: Code = TELE_EXPERTISE_ACT


@dataclass(frozen=True, slots=True)
class Professional:
    """A health professional as documents name them: idNatPs, name, profession, specialty."""

    id_nat_ps: str
    family: str
    given: str
    profession: Code | None = None
    specialty: Code | None = None


@dataclass(frozen=True, slots=True)
class DocumentPatient:
    """The patient a document is filed for, by their own INS (never a parent's NIR)."""

    ins: str
    """The 15-character INS-NIR."""
    ins_oid: str
    """Its assigning authority: ``INS_NIR_OID``, or the test / demo OIDs (…4.10, …4.11)."""
    family: str
    given: str
    birth_date: date | None
    gender: Literal["male", "female", "other", "unknown"]


@dataclass(frozen=True, slots=True)
class Structure:
    """An organization a document names: the pharmacy (facility) or the platform (custodian)."""

    name: str
    id_nat_struct: str | None = None
    """The idNST (e.g. "1" + FINESS); None when not known."""
    finess: str | None = None


@dataclass(frozen=True, slots=True)
class ReportDocument:
    """One filed report document: the PDF and everything its metadata states.

    ``unique_id`` is an OID (digits and dots): the CDA ``id@root``, the DocumentReference's
    ``masterIdentifier`` (as ``urn:oid:<unique_id>``) and the XDS ``uniqueId``; it never changes
    once filed, so a retried submission is recognised by it.
    """

    unique_id: str
    title: str
    created: datetime
    """When the document was made (timezone-aware)."""
    service_start: datetime
    """The tele-expertise act: from the request…"""
    service_end: datetime
    """…to the doctor's answer."""
    patient: DocumentPatient
    author: Professional
    legal_authenticator: Professional
    facility: Structure
    custodian: Structure
    pdf: bytes
    codes: DocumentCodes = field(default_factory=DocumentCodes)
    language: str = "fr-FR"
    set_id: str | None = None
    """The CDA ``setId`` shared by the versions of one document; defaults to ``unique_id``."""
    version: int = 1
