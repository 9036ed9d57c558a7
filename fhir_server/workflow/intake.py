"""The intake rules of a tele-expertise case, checked when it is submitted (``domain-model.md``,
"Intake rules"; terms of use R1.2-R1.6). Pure: the facts of one case in, the refusals out, each
with a French and an English message saying what to fix and where.

The profiles already check each resource alone (a NIR's key on the INS-NIR slice, codes,
cardinalities); these rules look across the resources of the case.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from fhir_server.errors import IssueType
from fhir_server.types import ResourceDict
from fhir_server.validation.business import definitive_nir_problems
from fhir_server.validation.messages import Text, ValidationIssue, make_issue

INS_NIR: Final = "urn:oid:1.2.250.1.213.1.4.8"
INS_NIA: Final = "urn:oid:1.2.250.1.213.1.4.9"
NSS_TYPE: Final = "NH"
DICOM: Final = "http://dicom.nema.org/resources/ontology/DCM"
DERMOSCOPY: Final = "DMS"
CONSENT_CATEGORY: Final = "https://fhir.pictaderm.com/CodeSystem/consent-category"
EXCHANGE_CONSENT: Final = "teleexpertise-exchange"
DERMOSCOPY_AUTHORISATION: Final = (
    "https://fhir.pictaderm.com/StructureDefinition/pictaderm-dermoscopy-authorisation")
FORMS: Final = {"https://fhir.pictaderm.com/Questionnaire/skin": "skin",
                "https://fhir.pictaderm.com/Questionnaire/mole": "mole"}
SUPPORTING_TYPES: Final = frozenset({"QuestionnaireResponse", "Media", "DocumentReference"})
ADULT_AGE: Final = 18
MAX_PHOTO_BYTES: Final = 20 * 1024 * 1024
"""The largest photo accepted (a dermoscopic JPEG is a few megabytes)."""

NO_DEFINITIVE_NIR = Text(
    en="the patient has no definitive NIR (INS-NIR): a provisional NIR or an NIA cannot be used "
       "for a tele-expertise; give the patient's definitive NIR",
    fr="NIR provisoire : téléexpertise impossible ; indiquez le NIR définitif du patient "
       "(INS-NIR)")
BAD_NIR = Text(en="the patient's INS-NIR is not a definitive NIR ({reason})",
               fr="l'INS-NIR du patient n'est pas un NIR définitif ({reason})")
MINOR_WITHOUT_PARENT = Text(
    en="the patient is a minor without an own INS: give the parent's definitive NIR "
       "(identifier of type NH) and the parent as a RelatedPerson",
    fr="patient mineur sans INS propre : indiquez le NIR définitif du parent (identifiant de "
       "type NH) et le parent (RelatedPerson)")
PARENT_MISMATCH = Text(
    en="no RelatedPerson of this patient carries the parent's NIR given on the patient",
    fr="aucun parent (RelatedPerson) du patient ne porte le NIR du parent indiqué sur le "
       "patient")
NO_COVERAGE = Text(
    en="no active Coverage of the patient covers the request date ({day}): health-insurance "
       "rights must be open",
    fr="aucune couverture (Coverage) active du patient ne couvre la date de la demande "
       "({day}) : les droits à l'assurance maladie doivent être ouverts")
NO_CONSENT = Text(
    en="the patient's consent to the tele-expertise exchange is missing or not 'permit'",
    fr="le consentement du patient à l'échange de téléexpertise est absent ou refusé")
UNKNOWN_FORM = Text(en="the form is neither 'skin' nor 'mole' ({questionnaire})",
                    fr="le formulaire n'est ni « peau » ni « grain de beauté » "
                       "({questionnaire})")
SKIN_WITH_DERMOSCOPY = Text(
    en="a 'skin' case cannot carry dermoscopic photos unless the pharmacy holds the express "
       "authorisation",
    fr="une demande « peau » ne peut pas contenir de photo de dermoscopie sans autorisation "
       "expresse de la pharmacie")
MOLE_WITHOUT_DERMOSCOPY = Text(
    en="a 'mole' case needs at least one dermoscopic photo (modality DMS)",
    fr="une demande « grain de beauté » nécessite au moins une photo de dermoscopie "
       "(modalité DMS)")
BAD_SUPPORTING_INFO = Text(
    en="supportingInfo may only be the form, photos (Media) or documents, not {type}",
    fr="les pièces jointes ne peuvent être que le formulaire, des photos (Media) ou des "
       "documents, pas {type}")
NOT_AN_IMAGE = Text(
    en="this photo is not a JPEG, PNG, HEIC or DICOM image",
    fr="cette photo n'est pas une image JPEG, PNG, HEIC ou DICOM")
PHOTO_TOO_LARGE = Text(en="this photo is larger than {limit} MB",
                       fr="cette photo dépasse {limit} Mo")
REQUESTER_NOT_PHARMACIST = Text(
    en="the requester must be an active pharmacist role of an active pharmacy",
    fr="le demandeur doit être un rôle de pharmacien actif d'une pharmacie active")


@dataclass(frozen=True, slots=True)
class Photo:
    """A photo's bytes as far as intake looks at them: the Media it belongs to (index in
    ``CaseFacts.media``), its first bytes and its size (None when only a URL is known)."""

    media_index: int
    head: bytes
    size: int | None


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """The resources of one case as submitted (references resolved)."""

    request_date: date
    service_request: ResourceDict
    patient: ResourceDict | None
    related_persons: tuple[ResourceDict, ...] = ()
    coverages: tuple[ResourceDict, ...] = ()
    consents: tuple[ResourceDict, ...] = ()
    questionnaire_response: ResourceDict | None = None
    media: tuple[ResourceDict, ...] = ()
    photos: tuple[Photo, ...] = ()
    supporting_types: tuple[str, ...] = ()
    requester_role: ResourceDict | None = None
    requester_organization: ResourceDict | None = None


def intake_issues(facts: CaseFacts) -> tuple[ValidationIssue, ...]:
    """Every intake rule the case breaks (empty: it may be submitted)."""
    issues: list[ValidationIssue] = []
    issues.extend(_identity_issues(facts))
    issues.extend(_coverage_issues(facts))
    issues.extend(_consent_issues(facts))
    issues.extend(_form_issues(facts))
    issues.extend(_supporting_issues(facts))
    issues.extend(_requester_issues(facts))
    return tuple(issues)


def form_of(questionnaire_response: ResourceDict | None) -> str | None:
    """``skin`` or ``mole`` from the form's questionnaire canonical (version ignored)."""
    if questionnaire_response is None:
        return None
    canonical = str(questionnaire_response.get("questionnaire") or "")
    return FORMS.get(canonical.split("|", 1)[0])


def _rule(text: Text, location: str, **params: Any) -> ValidationIssue:
    return make_issue(text, location, issue_type=IssueType.BUSINESS_RULE, rule="intake",
                      **params)


def _identity_issues(facts: CaseFacts) -> list[ValidationIssue]:
    """Rules 1 and 2: a definitive NIR, or for a minor the parent's."""
    patient = facts.patient
    if patient is None:
        return []
    own = [(i, identifier) for i, identifier in enumerate(patient.get("identifier") or ())
           if isinstance(identifier, dict) and identifier.get("system") == INS_NIR
           and not _is_nss(identifier)]
    for index, identifier in own:
        problems = definitive_nir_problems(str(identifier.get("value") or ""))
        if problems:
            reason = problems[0][0]
            return [_rule(BAD_NIR, f"Patient.identifier[{index}].value",
                          reason=reason.en, french={"reason": reason.fr})]
        return []
    age = _age_at(patient, facts.request_date)
    if age is not None and age < ADULT_AGE:
        return _parent_issues(patient, facts.related_persons)
    return [_rule(NO_DEFINITIVE_NIR, "Patient.identifier")]


def _parent_issues(patient: ResourceDict, parents: tuple[ResourceDict, ...]
                   ) -> list[ValidationIssue]:
    """Rule 2: a minor without own INS needs the parent's definitive NIR and the parent."""
    slices = [(i, identifier) for i, identifier in enumerate(patient.get("identifier") or ())
              if isinstance(identifier, dict) and _is_nss(identifier)]
    if not slices:
        return [_rule(MINOR_WITHOUT_PARENT, "Patient.identifier")]
    index, identifier = slices[0]
    value = str(identifier.get("value") or "")
    problems = definitive_nir_problems(value)
    if problems:
        reason = problems[0][0]
        return [_rule(BAD_NIR, f"Patient.identifier[{index}].value", reason=reason.en,
                      french={"reason": reason.fr})]
    carried = {str(other.get("value")) for parent in parents
               for other in parent.get("identifier") or () if isinstance(other, dict)}
    if value not in carried:
        return [_rule(PARENT_MISMATCH, "RelatedPerson.identifier")]
    return []


def _is_nss(identifier: dict[str, Any]) -> bool:
    codings = (identifier.get("type") or {}).get("coding") or ()
    return any(isinstance(c, dict) and c.get("code") == NSS_TYPE for c in codings)


def _age_at(patient: ResourceDict, day: date) -> int | None:
    born = str(patient.get("birthDate") or "")
    try:
        birth = date.fromisoformat(born[:10]) if len(born) >= 10 else None
    except ValueError:
        birth = None
    if birth is None:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _coverage_issues(facts: CaseFacts) -> list[ValidationIssue]:
    """Rule 3: an active Coverage whose period contains the request date."""
    day = facts.request_date.isoformat()
    for coverage in facts.coverages:
        period = coverage.get("period") or {}
        start = str(period.get("start") or "")[:10]
        end = str(period.get("end") or "")[:10]
        if coverage.get("status") == "active" and (not start or start <= day) \
                and (not end or day <= end):
            return []
    return [_rule(NO_COVERAGE, "Coverage", day=day)]


def _consent_issues(facts: CaseFacts) -> list[ValidationIssue]:
    """Rule 4: the exchange consent, active and permit."""
    for consent in facts.consents:
        categories = [coding for concept in consent.get("category") or ()
                      for coding in (concept.get("coding") or ())
                      if isinstance(coding, dict)]
        exchange = any(c.get("system") == CONSENT_CATEGORY and c.get("code") == EXCHANGE_CONSENT
                       for c in categories)
        permit = (consent.get("provision") or {}).get("type") == "permit"
        if exchange and permit and consent.get("status") == "active":
            return []
    return [_rule(NO_CONSENT, "Consent")]


def _form_issues(facts: CaseFacts) -> list[ValidationIssue]:
    """Rule 5: dermoscopy only in a mole case (or with the pharmacy's authorisation), and at
    least one dermoscopic photo in a mole case."""
    form = form_of(facts.questionnaire_response)
    if facts.questionnaire_response is None:
        return []
    if form is None:
        return [_rule(UNKNOWN_FORM, "QuestionnaireResponse.questionnaire",
                      questionnaire=str(facts.questionnaire_response.get("questionnaire"))[:120])]
    dermoscopic = [i for i, media in enumerate(facts.media) if _is_dermoscopy(media)]
    if form == "mole" and not dermoscopic:
        return [_rule(MOLE_WITHOUT_DERMOSCOPY, "Media.modality")]
    if form == "skin" and dermoscopic and not _authorised(facts.requester_organization):
        return [_rule(SKIN_WITH_DERMOSCOPY, "Media.modality")]
    return []


def _is_dermoscopy(media: ResourceDict) -> bool:
    codings = (media.get("modality") or {}).get("coding") or ()
    return any(isinstance(c, dict) and c.get("system") == DICOM and c.get("code") == DERMOSCOPY
               for c in codings)


def _authorised(organization: ResourceDict | None) -> bool:
    return organization is not None and any(
        isinstance(extension, dict) and extension.get("url") == DERMOSCOPY_AUTHORISATION
        and extension.get("valueBoolean") is True
        for extension in organization.get("extension") or ())


def _supporting_issues(facts: CaseFacts) -> list[ValidationIssue]:
    """Rule 6: supportingInfo types, and photos that are real images within the size limit."""
    issues = [_rule(BAD_SUPPORTING_INFO, f"ServiceRequest.supportingInfo[{i}]",
                    type=kind)
              for i, kind in enumerate(facts.supporting_types) if kind not in SUPPORTING_TYPES]
    for photo in facts.photos:
        location = f"Media[{photo.media_index}].content"
        if photo.size is not None and photo.size > MAX_PHOTO_BYTES:
            issues.append(_rule(PHOTO_TOO_LARGE, location,
                                limit=MAX_PHOTO_BYTES // (1024 * 1024)))
        elif photo.head and not is_image(photo.head):
            issues.append(_rule(NOT_AN_IMAGE, location))
    return issues


def is_image(head: bytes) -> bool:
    """Whether bytes start like a JPEG, PNG, HEIC/HEIF or DICOM (Part 10) file."""
    return (head.startswith(b"\xff\xd8\xff") or head.startswith(b"\x89PNG\r\n\x1a\n")
            or (head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1",
                                                        b"hevc"))
            or head[128:132] == b"DICM")


def photo_head(data: str, *, length: int = 132) -> tuple[bytes, int] | None:
    """The first bytes and the size of base64 ``data`` (None when it is not base64)."""
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded[:length], len(decoded)


def _requester_issues(facts: CaseFacts) -> list[ValidationIssue]:
    """Rule 7: an active pharmacist role of an active pharmacy."""
    role, organization = facts.requester_role, facts.requester_organization
    codes = {coding.get("code") for concept in (role or {}).get("code") or ()
             for coding in concept.get("coding") or () if isinstance(coding, dict)}
    if role is None or role.get("active") is False or "pharmacist" not in codes \
            or organization is None or organization.get("active") is False:
        return [_rule(REQUESTER_NOT_PHARMACIST, "ServiceRequest.requester")]
    return []
