"""Which resources are case resources, validated against the guide's profiles without asking.

A **case resource** is a resource whose type the guide profiles and which carries one of the
guide's *marks* (``MARKS``): at the element its profile constrains, a code of one of the guide's
own code systems (``https://fhir.pictaderm.com/CodeSystem/…``, any code), or the exact code the
profile fixes where that code belongs to someone else's system (DICOM ``XC``/``DMS`` on
``Media.modality``, MHD ``submissionset`` on ``List.code``), or, for a QuestionnaireResponse,
a ``questionnaire`` under the guide's base, or, for a DocumentReference, LOINC ``85208-7`` on
``type`` with the media type of its content: the CDA filed toward the DMP (``text/xml``,
PDSm-shaped) or the report itself (any other). Each mark names the profile it brings, so a type
with several profiles gets the one its mark picks (``Media.modality``: clinical photo or
dermoscopy; ``Consent.category``: exchange, research-and-training or DMP objection).

An **intake bundle** is a transaction that writes a case Task or a case ServiceRequest. Every
resource it writes of a type the guide profiles is validated against the guide: by its marks
when it has some, else by the marks that only pick between profiles (``Consent.scope``),
otherwise the type's only profile or, for a type with several, the one every case has
(``INTAKE_DEFAULTS``: the clinical photo, the exchange consent, the report document).

Nothing else is a case resource: a Patient, a Practitioner, an Observation written alone are
validated against the core rules and the profiles they declare, never against the guide's
unasked (the guide's codes are the only marks, and generic resources carry none).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol, Self

from fhir_server.ig.package import Guide

CASE_ANCHORS: Final = frozenset({"Task", "ServiceRequest"})
"""The types whose case resources make a transaction an intake bundle."""

DICOM: Final = "http://dicom.nema.org/resources/ontology/DCM"
MHD_LIST_TYPES: Final = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
CDA_MEDIA_TYPE: Final = "text/xml"
LOINC: Final = "http://loinc.org"
CONSENT_SCOPE: Final = "http://terminology.hl7.org/CodeSystem/consentscope"


class Mark(Protocol):
    """Something in a resource that says it belongs to the guide, and the profile it brings."""

    @property
    def resource_type(self) -> str: ...

    @property
    def profile(self) -> str:
        """The profile it brings: its id in ``MARKS`` (``pictaderm-task``), its url once
        ``resolved``."""

    @property
    def alone(self) -> bool:
        """True: the mark makes a case resource; False: it only picks a profile inside an
        intake bundle."""

    def found_in(self, resource: Mapping[str, Any]) -> bool: ...

    def resolved(self, base: str) -> Self:
        """The mark with the guide's ids (profile, code system) made urls under ``base``."""


@dataclass(frozen=True, slots=True)
class CodeMark:
    """A coding of ``system`` (with ``code``, when given) at a top-level ``element`` (a Coding,
    a CodeableConcept, or a list of them); ``system`` may name one of the guide's code systems
    by its id alone (``case-category``)."""

    resource_type: str
    element: str
    system: str
    code: str | None
    profile: str
    alone: bool = True

    def found_in(self, resource: Mapping[str, Any]) -> bool:
        return any(system == self.system and (self.code is None or code == self.code)
                   for system, code in codings(resource.get(self.element)))

    def resolved(self, base: str) -> Self:
        system = self.system if "/" in self.system else f"{base}/CodeSystem/{self.system}"
        return replace(self, system=system, profile=profile_url(base, self.profile))


@dataclass(frozen=True, slots=True)
class CanonicalMark:
    """A canonical at a top-level ``element`` naming a resource of ``target`` under the guide's
    base (``questionnaire`` = ``https://fhir.pictaderm.com/Questionnaire/skin|0.1.0``)."""

    resource_type: str
    element: str
    target: str
    profile: str
    base: str = ""
    alone: bool = True

    def found_in(self, resource: Mapping[str, Any]) -> bool:
        value = resource.get(self.element)
        return isinstance(value, str) and value.startswith(f"{self.base}/{self.target}/")

    def resolved(self, base: str) -> Self:
        return replace(self, base=base, profile=profile_url(base, self.profile))


@dataclass(frozen=True, slots=True)
class DocumentMark:
    """A DocumentReference of LOINC type ``code`` whose content is a CDA (``text/xml``:
    ``cda``) or not; the report and its CDA form filed toward the DMP share their type."""

    code: str
    cda: bool
    profile: str
    resource_type: str = "DocumentReference"
    alone: bool = True

    def found_in(self, resource: Mapping[str, Any]) -> bool:
        typed = any(system == LOINC and code == self.code
                    for system, code in codings(resource.get("type")))
        contents = resource.get("content")
        is_cda = isinstance(contents, list) and any(
            isinstance(content, dict) and isinstance(content.get("attachment"), dict)
            and content["attachment"].get("contentType") == CDA_MEDIA_TYPE
            for content in contents)
        return typed and is_cda == self.cda

    def resolved(self, base: str) -> Self:
        return replace(self, profile=profile_url(base, self.profile))


MARKS: Final[tuple[CodeMark | CanonicalMark | DocumentMark, ...]] = (
    CodeMark("Task", "businessStatus", "task-business-status", None, "pictaderm-task"),
    CodeMark("Task", "performerType", "expertise-tier", None, "pictaderm-task"),
    CodeMark("Task", "code", "case-code", None, "pictaderm-task"),
    CodeMark("ServiceRequest", "category", "case-category", None, "pictaderm-service-request"),
    CodeMark("ServiceRequest", "code", "case-code", None, "pictaderm-service-request"),
    CodeMark("ServiceRequest", "orderDetail", "form-type", None, "pictaderm-service-request"),
    CodeMark("Communication", "category", "case-category", None, "pictaderm-clarification"),
    CodeMark("Communication", "reasonCode", "clarification-reason", None,
             "pictaderm-clarification"),
    CodeMark("Media", "modality", DICOM, "XC", "pictaderm-clinical-photo"),
    CodeMark("Media", "modality", DICOM, "DMS", "pictaderm-dermoscopy-photo"),
    DocumentMark("85208-7", False, "pictaderm-report-document"),
    DocumentMark("85208-7", True, "pictaderm-pdsm-document-reference"),
    CodeMark("List", "code", MHD_LIST_TYPES, "submissionset", "pictaderm-pdsm-submissionset"),
    CodeMark("DiagnosticReport", "code", "case-code", None, "pictaderm-diagnostic-report"),
    CodeMark("Consent", "category", "consent-category", "teleexpertise-exchange",
             "pictaderm-consent-exchange"),
    CodeMark("Consent", "category", "consent-category", "research-training",
             "pictaderm-consent-research"),
    CodeMark("Consent", "category", "consent-category", "dmp-feeding", "pictaderm-consent-dmp"),
    CodeMark("Consent", "scope", CONSENT_SCOPE, "patient-privacy", "pictaderm-consent-exchange",
             alone=False),
    CodeMark("Consent", "scope", CONSENT_SCOPE, "research", "pictaderm-consent-research",
             alone=False),
    CodeMark("PractitionerRole", "code", "expertise-tier", None, "pictaderm-practitioner-role"),
    CodeMark("Questionnaire", "code", "form-type", None, "pictaderm-questionnaire"),
    CanonicalMark("QuestionnaireResponse", "questionnaire", "Questionnaire",
                  "pictaderm-questionnaire-response"),
)
"""The guide's marks, one line per (element, code) that says a resource is the guide's."""

INTAKE_DEFAULTS: Final = {"Media": "pictaderm-clinical-photo",
                          "Consent": "pictaderm-consent-exchange",
                          "DocumentReference": "pictaderm-report-document"}
"""In an intake bundle, the profile of an unmarked resource of a type the guide profiles more
than once."""


def profile_url(base: str, profile_id: str) -> str:
    return f"{base}/StructureDefinition/{profile_id}"


def codings(value: Any) -> Iterator[tuple[Any, Any]]:
    """(system, code) of every Coding in a Coding, a CodeableConcept, or a list of them."""
    for item in value if isinstance(value, list) else (value,):
        if not isinstance(item, dict):
            continue
        if "coding" in item:
            for coding in item["coding"] if isinstance(item["coding"], list) else ():
                if isinstance(coding, dict):
                    yield coding.get("system"), coding.get("code")
        else:
            yield item.get("system"), item.get("code")


class CaseProfiles:
    """The profiles the guide gives a resource without it asking (see the module doc)."""

    def __init__(self, marks: Iterable[Mark], type_profiles: Mapping[str, str]) -> None:
        """``marks`` (their ``profile`` a url here); ``type_profiles``: for each type the guide
        profiles, the profile of its unmarked resources in an intake bundle."""
        self._marks: dict[str, list[Mark]] = {}
        for mark in marks:
            self._marks.setdefault(mark.resource_type, []).append(mark)
        self._type_profiles = dict(type_profiles)

    @classmethod
    def of_guide(cls, guide: Guide) -> CaseProfiles:
        """The marks of ``MARKS`` whose profile the guide holds, under its canonical base."""
        base = str(guide.manifest.get("canonical", "")).rstrip("/")
        by_type: dict[str, list[str]] = {}
        for url, definition in guide.structure_definitions.items():
            if definition.get("kind") == "resource" and definition.get("type") != "Extension":
                by_type.setdefault(str(definition.get("type")), []).append(url)
        marks = [mark.resolved(base) for mark in MARKS]
        known = guide.structure_definitions.keys()
        defaults = {resource_type: urls[0] if len(urls) == 1
                    else profile_url(base, INTAKE_DEFAULTS.get(resource_type, ""))
                    for resource_type, urls in by_type.items()}
        return cls([mark for mark in marks if mark.profile in known],
                   {t: url for t, url in defaults.items() if url in known})

    @property
    def profiled_types(self) -> frozenset[str]:
        """The resource types the guide profiles."""
        return frozenset(self._type_profiles)

    def profiles(self, resource: Mapping[str, Any]) -> tuple[str, ...]:
        """The guide profiles of a case resource (by its marks); empty for any other."""
        return self._marked(resource, alone_only=True)

    def intake_profiles(self, resource: Mapping[str, Any]) -> tuple[str, ...]:
        """The guide profiles of a resource written by an intake bundle: its marks that make a
        case resource, else those that pick a profile, else its type's default."""
        marked = (self._marked(resource, alone_only=True)
                  or self._marked(resource, alone_only=False))
        if marked:
            return marked
        default = self._type_profiles.get(str(resource.get("resourceType")))
        return (default,) if default else ()

    def is_intake(self, resources: Iterable[Mapping[str, Any]]) -> bool:
        """Whether resources written together include a case Task or ServiceRequest."""
        return any(resource.get("resourceType") in CASE_ANCHORS and self.profiles(resource)
                   for resource in resources)

    def _marked(self, resource: Mapping[str, Any], *, alone_only: bool) -> tuple[str, ...]:
        marks = self._marks.get(str(resource.get("resourceType")), ())
        return tuple(dict.fromkeys(mark.profile for mark in marks
                                   if (mark.alone or not alone_only) and mark.found_in(resource)))

