"""What the PDF report of a tele-expertise case shows, built from the case's FHIR resources
(dicts) and its photos' bytes by one pure function: no I/O, no storage, no rendering."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fhir_server.types import ResourceDict

PLATFORM = "Pictaderm"
INS_OID_PREFIX = "urn:oid:1.2.250.1.213.1.4."
INS_TYPE_CODES = frozenset({"INS-NIR", "INS-NIA", "NIR"})
RPPS_SYSTEM = "https://rpps.esante.gouv.fr"
FINESS_SYSTEM = "https://finess.esante.gouv.fr"
FORM_TYPE_SYSTEM = "https://fhir.pictaderm.com/CodeSystem/form-type"
TIER_SYSTEM = "https://fhir.pictaderm.com/CodeSystem/expertise-tier"
DERMOSCOPY_PROFILE = "https://fhir.pictaderm.com/StructureDefinition/pictaderm-dermoscopy-photo"
RECOMMENDATION_URL = "https://fhir.pictaderm.com/StructureDefinition/pictaderm-recommendation"
ORIENTATION_URL = "https://fhir.pictaderm.com/StructureDefinition/pictaderm-orientation"
QUESTION_LINK_ID = "question"
NIR_VISIBLE_DIGITS = 4
NIR_GROUPS = (1, 2, 2, 2, 3, 3, 2)
SEXES = {"female": "Féminin", "male": "Masculin", "other": "Autre", "unknown": "Inconnu"}


@dataclass(frozen=True)
class CasePhoto:
    """One photo of the case: its Media resource and the image bytes of its Binary."""

    media: ResourceDict
    image: bytes


@dataclass(frozen=True)
class CaseResources:
    """The resources of one completed case, as the store holds them."""

    service_request: ResourceDict
    patient: ResourceDict
    questionnaire_response: ResourceDict
    diagnostic_report: ResourceDict
    pharmacy: ResourceDict
    doctor_role: ResourceDict
    doctor: ResourceDict
    questionnaire: ResourceDict | None = None
    photos: tuple[CasePhoto, ...] = ()
    communications: tuple[ResourceDict, ...] = ()
    platform: str = PLATFORM
    report_url: str | None = None
    """The Binary of this PDF report when it is already in ``presentedForm`` (a re-render):
    left out of the attached documents."""


@dataclass(frozen=True)
class Pharmacy:
    """The requesting pharmacy as the header shows it."""

    name: str
    finess: str | None
    address: str | None


@dataclass(frozen=True)
class PatientIdentity:
    """The patient's identity; the NIR is already masked but for its last digits."""

    family: str
    given: str
    birth_date: date | None
    sex: str
    masked_nir: str | None


@dataclass(frozen=True)
class Answer:
    """One answer of the form with its question's text and the group it belongs to."""

    group: str | None
    question: str
    answer: str


@dataclass(frozen=True)
class Photo:
    """One photo as the report shows it."""

    image: bytes
    body_site: str | None
    dermoscopy: bool
    title: str | None


@dataclass(frozen=True)
class DoctorAnswer:
    """The doctor's answer: conclusion, coded diagnosis, recommendations, orientation."""

    conclusion: str
    diagnosis: str | None
    recommendations: tuple[str, ...]
    orientation: str | None


@dataclass(frozen=True)
class Signatory:
    """The doctor who answered and signs the report."""

    name: str
    tier: str | None
    rpps: str | None


@dataclass(frozen=True)
class Clarification:
    """One clarification exchange: the doctor's question and the pharmacy's answer."""

    reason: str | None
    question: str
    asked: datetime | None
    answer: str | None
    answered: datetime | None


@dataclass(frozen=True)
class ReportInput:
    """Everything the PDF report shows, in the order it shows it."""

    document_id: str
    case_number: str
    requested: datetime | None
    answered: datetime | None
    platform: str
    pharmacy: Pharmacy
    patient: PatientIdentity
    form_type: str
    answers: tuple[Answer, ...]
    pharmacist_question: str | None
    photos: tuple[Photo, ...]
    clarifications: tuple[Clarification, ...]
    answer: DoctorAnswer
    documents: tuple[str, ...]
    doctor: Signatory


def report_input(case: CaseResources) -> ReportInput:
    """The content of the case's report, from its resources."""
    case_number = case_number_of(case.service_request)
    return ReportInput(
        document_id=f"pictaderm-report-{case_number}",
        case_number=case_number,
        requested=parse_datetime(case.service_request.get("authoredOn")),
        answered=parse_datetime(case.diagnostic_report.get("issued")),
        platform=case.platform,
        pharmacy=pharmacy_of(case.pharmacy),
        patient=patient_identity(case.patient),
        form_type=form_type_of(case.service_request, case.questionnaire),
        answers=tuple(answers_of(case.questionnaire_response, case.questionnaire)),
        pharmacist_question=pharmacist_question(case.questionnaire_response),
        photos=tuple(photo_of(photo) for photo in case.photos),
        clarifications=clarification_history(case.communications),
        answer=doctor_answer(case.diagnostic_report),
        documents=attached_documents(case.diagnostic_report, case.report_url),
        doctor=signatory(case.doctor, case.doctor_role))


def case_number_of(service_request: ResourceDict) -> str:
    """The case number: the ServiceRequest's first identifier, else its id."""
    for identifier in service_request.get("identifier", []):
        if identifier.get("value"):
            return str(identifier["value"])
    return str(service_request.get("id", ""))


def parse_datetime(value: object) -> datetime | None:
    """A FHIR dateTime/instant as an aware or naive datetime, None when absent or partial."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_date(value: object) -> date | None:
    """A full FHIR date, None when absent or partial (a year or year-month only)."""
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def pharmacy_of(organization: ResourceDict) -> Pharmacy:
    """The pharmacy's name, FINESS and first address."""
    finess = next((str(identifier["value"]) for identifier in organization.get("identifier", [])
                   if identifier.get("system") == FINESS_SYSTEM and identifier.get("value")),
                  None)
    addresses = organization.get("address", [])
    return Pharmacy(name=str(organization.get("name", "")), finess=finess,
                    address=address_text(addresses[0]) if addresses else None)


def address_text(address: Mapping[str, Any]) -> str | None:
    """An address on one line: lines, then postal code and city."""
    town = " ".join(str(address[key]) for key in ("postalCode", "city") if address.get(key))
    parts = [*(str(line) for line in address.get("line", [])), town]
    text = ", ".join(part for part in parts if part)
    return text or address.get("text") or None


def patient_identity(patient: ResourceDict) -> PatientIdentity:
    """Name, birth date, sex and masked NIR of the patient."""
    name = official_name(patient.get("name", []))
    nir = national_number(patient.get("identifier", []))
    return PatientIdentity(
        family=str(name.get("family", "")),
        given=" ".join(str(given) for given in name.get("given", [])),
        birth_date=parse_date(patient.get("birthDate")),
        sex=SEXES.get(str(patient.get("gender")), "Non renseigné"),
        masked_nir=mask_nir(nir) if nir else None)


def official_name(names: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The official HumanName, else the first one, else an empty one."""
    return next((name for name in names if name.get("use") == "official"),
                names[0] if names else {})


def national_number(identifiers: Iterable[Mapping[str, Any]]) -> str | None:
    """The patient's own NIR/NIA (INS), when one is recorded."""
    for identifier in identifiers:
        codes = {coding.get("code") for coding in identifier.get("type", {}).get("coding", [])}
        system = str(identifier.get("system", ""))
        if identifier.get("value") and (codes & INS_TYPE_CODES
                                        or system.startswith(INS_OID_PREFIX)):
            return str(identifier["value"])
    return None


def mask_nir(nir: str) -> str:
    """The NIR in its usual groups, every character but the last ones replaced by ``•``."""
    compact = "".join(nir.split())
    hidden = max(len(compact) - NIR_VISIBLE_DIGITS, 0)
    masked = "•" * hidden + compact[hidden:]
    groups: list[str] = []
    start = 0
    for size in NIR_GROUPS:
        if start < len(masked):
            groups.append(masked[start:start + size])
        start += size
    if start < len(masked):
        groups.append(masked[start:])
    return " ".join(groups)


def form_type_of(service_request: ResourceDict, questionnaire: ResourceDict | None) -> str:
    """The form type's display (``orderDetail``), else the Questionnaire's title."""
    for detail in service_request.get("orderDetail", []):
        for coding in detail.get("coding", []):
            if coding.get("system") == FORM_TYPE_SYSTEM:
                return str(coding.get("display") or coding.get("code"))
    if questionnaire and questionnaire.get("title"):
        return str(questionnaire["title"])
    return "Non précisé"


def question_texts(questionnaire: ResourceDict | None) -> dict[str, str]:
    """Each linkId of the Questionnaire with its text."""
    texts: dict[str, str] = {}
    for item in walk_items(questionnaire.get("item", []) if questionnaire else []):
        if item.get("text"):
            texts[str(item["linkId"])] = str(item["text"])
    return texts


def walk_items(items: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every item and nested item, depth first."""
    for item in items:
        yield item
        yield from walk_items(item.get("item", []))


def answers_of(response: ResourceDict, questionnaire: ResourceDict | None) -> Iterator[Answer]:
    """The answered items of the form in order, but for the question to the doctor."""
    texts = question_texts(questionnaire)
    yield from _answers(response.get("item", []), texts, group=None)


def _answers(items: Iterable[Mapping[str, Any]], texts: Mapping[str, str],
             group: str | None) -> Iterator[Answer]:
    for item in items:
        link_id = str(item.get("linkId", ""))
        label = texts.get(link_id) or str(item.get("text") or link_id)
        if item.get("answer") and link_id != QUESTION_LINK_ID:
            values = [answer_text(answer) for answer in item["answer"]]
            yield Answer(group=group, question=label, answer=", ".join(values))
        yield from _answers(item.get("item", []), texts, group=label)


def answer_text(answer: Mapping[str, Any]) -> str:
    """One answer value in French."""
    for key, value in answer.items():
        if key.startswith("value"):
            return value_text(key, value)
    return ""


def value_text(key: str, value: Any) -> str:
    """A typed FHIR value (``valueBoolean``, ``valueCoding``…) as text."""
    if key == "valueBoolean":
        return "Oui" if value else "Non"
    if key == "valueCoding":
        return str(value.get("display") or value.get("code", ""))
    if key == "valueDate":
        parsed_date = parse_date(value)
        return parsed_date.strftime("%d/%m/%Y") if parsed_date else str(value)
    if key == "valueDateTime":
        parsed = parse_datetime(value)
        return parsed.strftime("%d/%m/%Y %H:%M") if parsed else str(value)
    if key == "valueQuantity":
        return " ".join(str(value[part]) for part in ("value", "unit") if value.get(part))
    if key == "valueAttachment":
        return str(value.get("title") or "Pièce jointe")
    if key == "valueReference":
        return str(value.get("display") or value.get("reference", ""))
    return str(value)


def pharmacist_question(response: ResourceDict) -> str | None:
    """The pharmacist's question to the doctor (the form's ``question`` item)."""
    for item in walk_items(response.get("item", [])):
        if item.get("linkId") == QUESTION_LINK_ID and item.get("answer"):
            return answer_text(item["answer"][0]) or None
    return None


def photo_of(photo: CasePhoto) -> Photo:
    """A photo with its body site and whether it is a dermoscopy."""
    media = photo.media
    return Photo(image=photo.image, body_site=concept_text(media.get("bodySite")),
                 dermoscopy=is_dermoscopy(media),
                 title=media.get("content", {}).get("title"))


def is_dermoscopy(media: ResourceDict) -> bool:
    """Whether the Media is a dermoscopy photo (modality DMS or the dermoscopy profile)."""
    codes = {coding.get("code") for coding in media.get("modality", {}).get("coding", [])}
    return "DMS" in codes or DERMOSCOPY_PROFILE in media.get("meta", {}).get("profile", [])


def concept_text(concept: Mapping[str, Any] | None) -> str | None:
    """A CodeableConcept's text, else its first coding's display or code."""
    if not concept:
        return None
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding", []):
        if coding.get("display") or coding.get("code"):
            return str(coding.get("display") or coding.get("code"))
    return None


def coded_diagnosis(concepts: Sequence[Mapping[str, Any]]) -> str | None:
    """The diagnosis codes of the report, each as ``display (code)``."""
    shown: list[str] = []
    for concept in concepts:
        for coding in concept.get("coding", []):
            display, code = coding.get("display"), coding.get("code")
            shown.append(f"{display} ({code})" if display and code else str(display or code))
        if not concept.get("coding") and concept.get("text"):
            shown.append(str(concept["text"]))
    return "; ".join(shown) or None


def doctor_answer(report: ResourceDict) -> DoctorAnswer:
    """The doctor's answer from the DiagnosticReport: conclusion and codes; recommendations
    and orientation from the report's Pictaderm extensions when present."""
    extensions = report.get("extension", [])
    recommendations = tuple(str(extension["valueString"]) for extension in extensions
                            if extension.get("url") == RECOMMENDATION_URL
                            and extension.get("valueString"))
    orientation = next((extension_text(extension) for extension in extensions
                        if extension.get("url") == ORIENTATION_URL), None)
    return DoctorAnswer(conclusion=str(report.get("conclusion", "")),
                        diagnosis=coded_diagnosis(report.get("conclusionCode", [])),
                        recommendations=recommendations, orientation=orientation)


def extension_text(extension: Mapping[str, Any]) -> str | None:
    """A string or CodeableConcept extension value as text."""
    if extension.get("valueString"):
        return str(extension["valueString"])
    return concept_text(extension.get("valueCodeableConcept"))


def attached_documents(report: ResourceDict, report_url: str | None) -> tuple[str, ...]:
    """The titles of the documents that come with the answer (``presentedForm``), but for
    the PDF report itself."""
    titles: list[str] = []
    for attachment in report.get("presentedForm", []):
        if report_url is not None and attachment.get("url") == report_url:
            continue
        kind = attachment.get("contentType", "type inconnu")
        titles.append(str(attachment.get("title") or f"Document joint ({kind})"))
    return tuple(titles)


def signatory(doctor: ResourceDict, role: ResourceDict) -> Signatory:
    """The doctor's name, expertise tier and RPPS."""
    name = official_name(doctor.get("name", []))
    full = " ".join([*(str(given) for given in name.get("given", [])),
                     str(name.get("family", ""))]).strip()
    tier = next((str(coding.get("display") or coding.get("code"))
                 for concept in role.get("code", []) for coding in concept.get("coding", [])
                 if coding.get("system") == TIER_SYSTEM), None)
    rpps = next((str(identifier["value"]) for identifier in doctor.get("identifier", [])
                 if identifier.get("system") == RPPS_SYSTEM and identifier.get("value")), None)
    return Signatory(name=f"Dr {full}" if full else "Médecin non renseigné", tier=tier,
                     rpps=rpps)


def clarification_history(communications: Iterable[ResourceDict]) -> tuple[Clarification, ...]:
    """The clarification questions in the order they were sent, each with its answer."""
    questions: list[ResourceDict] = []
    answers: dict[str, ResourceDict] = {}
    for communication in communications:
        replied = [reference.get("reference", "")
                   for reference in communication.get("inResponseTo", [])]
        if replied:
            answers.setdefault(str(replied[0]).rpartition("/")[2], communication)
        else:
            questions.append(communication)
    questions.sort(key=lambda question: str(question.get("sent", "")))
    return tuple(clarification(question, answers.get(str(question.get("id"))))
                 for question in questions)


def clarification(question: ResourceDict, answer: ResourceDict | None) -> Clarification:
    """One exchange from the question's and the answer's Communications."""
    reasons = question.get("reasonCode", [])
    return Clarification(
        reason=concept_text(reasons[0]) if reasons else None,
        question=payload_text(question),
        asked=parse_datetime(question.get("sent")),
        answer=payload_text(answer) if answer else None,
        answered=parse_datetime(answer.get("sent")) if answer else None)


def payload_text(communication: ResourceDict) -> str:
    """The Communication's text payloads, one after the other."""
    return "\n".join(str(payload["contentString"]) for payload in communication.get("payload", [])
                     if payload.get("contentString"))
