"""The facts of a filed report document that the CDA header, the MHD Bundle and the XDS
metadata all state: one frozen value, so the three say the same thing.

Codes and identifier systems come from ``../shared/docs/interop-fr.md`` (the ANS CI-SIS and
PDSm guides); the ones marked unverified there are parameters (``DocumentCodes``), not
constants buried in a mapper. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final, Literal

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


# --- the facts from the filed case's FHIR resources -----------------------------------------

FR_CORE_IDENTIFIER_TYPES: Final = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
OWN_INS_TYPES: Final = frozenset({"INS-NIR", "INS-NIR-TEST", "INS-NIR-DEMO"})
INS_OIDS: Final = frozenset({INS_NIR_OID, "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11"})
RPPS_SYSTEM: Final = "https://rpps.esante.gouv.fr"
FINESS_SYSTEM: Final = "https://finess.esante.gouv.fr"
TIER_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/expertise-tier"
PHYSICIAN: Final = Code("10", "Médecin",
                        "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/"
                        "TRE-G15-ProfessionSante", "1.2.250.1.71.1.2.7")
_SPECIALTY_SYSTEM: Final = ("https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/"
                            "TRE-R38-SpecialiteOrdinale")
GENERAL_MEDICINE: Final = Code("SM26", "Qualifié en médecine générale", _SPECIALTY_SYSTEM,
                               "1.2.250.1.71.4.2.5")
DERMATOLOGY: Final = Code("SM15", "Dermatologie et vénéréologie", _SPECIALTY_SYSTEM,
                          "1.2.250.1.71.4.2.5")
SPECIALTY_OF_TIER: Final = {"tier-1": GENERAL_MEDICINE, "tier-2": GENERAL_MEDICINE,
                            "tier-3": DERMATOLOGY}


class IncompleteDocument(ValueError):
    """The filed report lacks what its DMP metadata needs; the message is a fixed text about the
    document (never a value of the patient's record)."""


class NoOwnIns(ValueError):
    """The patient has no INS of their own (e.g. a minor known by a parent's NIR): the document
    cannot be filed in the DMP."""


@dataclass(frozen=True, slots=True)
class FiledCase:
    """The resources a filed report document is described from."""

    document_reference: Mapping[str, Any]
    patient: Mapping[str, Any]
    doctor: Mapping[str, Any]
    doctor_role: Mapping[str, Any]
    pharmacy: Mapping[str, Any]
    pdf: bytes
    platform: str
    platform_structure_id: str | None = None


def own_ins(patient: Mapping[str, Any]) -> tuple[str, str] | None:
    """The patient's own INS and its OID; None when there is only a parent's NIR (type NH) or
    a provisional number."""
    for identifier in patient.get("identifier") or ():
        oid = str(identifier.get("system") or "").removeprefix("urn:oid:")
        codes = {coding.get("code") for coding in (identifier.get("type") or {}).get("coding") or ()
                 if coding.get("system") == FR_CORE_IDENTIFIER_TYPES}
        if oid in INS_OIDS and codes & OWN_INS_TYPES and identifier.get("value"):
            return str(identifier["value"]), oid
    return None


def report_document_of(case: FiledCase, codes: DocumentCodes) -> ReportDocument:
    """The ``ReportDocument`` of a filed report. Raises ``NoOwnIns`` for a patient without an
    INS of their own, ``IncompleteDocument`` when the DocumentReference lacks its unique id or
    dates, ValueError for a malformed date (its message may quote the value)."""
    ins = own_ins(case.patient)
    if ins is None:
        raise NoOwnIns("the patient has no INS of their own")
    document = case.document_reference
    master = str((document.get("masterIdentifier") or {}).get("value") or "")
    if not master.startswith("urn:oid:"):
        raise IncompleteDocument("the report document has no OID master identifier")
    attachment = next((content.get("attachment") or {}
                       for content in document.get("content") or ()), {})
    period = (document.get("context") or {}).get("period") or {}
    created = _instant(document.get("date") or attachment.get("creation"))
    author = professional(case.doctor, case.doctor_role)
    name = _official_name(case.patient)
    gender = str(case.patient.get("gender") or "unknown")
    return ReportDocument(
        unique_id=master.removeprefix("urn:oid:"),
        title=str(attachment.get("title") or REPORT_TYPE.display),
        created=created,
        service_start=_instant(period.get("start") or document.get("date")),
        service_end=_instant(period.get("end") or document.get("date")),
        patient=DocumentPatient(
            ins=ins[0], ins_oid=ins[1], family=str(name.get("family") or ""),
            given=" ".join(str(given) for given in name.get("given") or ()),
            birth_date=date.fromisoformat(case.patient["birthDate"])
            if len(str(case.patient.get("birthDate") or "")) == 10 else None,
            gender=gender if gender in ("male", "female", "other") else "unknown"),  # type: ignore[arg-type]
        author=author, legal_authenticator=author,
        facility=pharmacy_structure(case.pharmacy),
        custodian=Structure(name=case.platform, id_nat_struct=case.platform_structure_id),
        pdf=case.pdf, codes=codes)


def professional(practitioner: Mapping[str, Any], role: Mapping[str, Any]) -> Professional:
    """A doctor as documents name them: idNatPs ("8" + RPPS), name, profession, specialty."""
    id_nat_ps = next((str(identifier["value"]) for identifier in practitioner.get("identifier")
                      or () if identifier.get("system") == f"urn:oid:{ID_NAT_PS_OID}"
                      and identifier.get("value")), None)
    if id_nat_ps is None:
        rpps = next((str(identifier["value"]) for identifier in practitioner.get("identifier")
                     or () if identifier.get("system") == RPPS_SYSTEM
                     and identifier.get("value")), "")
        id_nat_ps = f"8{rpps}" if rpps else ""
    tier = next((coding.get("code") for concept in role.get("code") or ()
                 for coding in concept.get("coding") or ()
                 if coding.get("system") == TIER_SYSTEM), None)
    name = _official_name(practitioner)
    return Professional(id_nat_ps=id_nat_ps, family=str(name.get("family") or ""),
                        given=" ".join(str(given) for given in name.get("given") or ()),
                        profession=PHYSICIAN, specialty=SPECIALTY_OF_TIER.get(str(tier)))


def pharmacy_structure(organization: Mapping[str, Any]) -> Structure:
    """The pharmacy as a structure: its name, FINESS and the idNST made from it ("1" + FINESS)."""
    finess = next((str(identifier["value"]) for identifier in organization.get("identifier")
                   or () if identifier.get("system") == FINESS_SYSTEM
                   and identifier.get("value")), None)
    return Structure(name=str(organization.get("name") or ""), finess=finess,
                     id_nat_struct=f"1{finess}" if finess else None)


def _official_name(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    names = list(resource.get("name") or ())
    return next((name for name in names if name.get("use") == "official"),
                names[0] if names else {})


def _instant(value: object) -> datetime:
    """A FHIR dateTime/instant as an aware datetime (a date alone: midnight UTC)."""
    text = str(value or "")
    if not text:
        raise IncompleteDocument("the report document lacks a date")
    if len(text) == 10:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
