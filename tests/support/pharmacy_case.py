"""A pharmacy's small case, as the intake transaction its pharmacist sends: the guide's example
case of Camille Martin made new (a fresh NIR and family name), requested by the pharmacist's
own PractitionerRole for its own pharmacy, with one open request (photo, questionnaire,
ServiceRequest, Task offered to a tier) per tier asked for.

The Binary of each photo names its Media as ``securityContext``, so the photo's bytes follow the
Media's access. ``created_case`` reads the transaction-response: which ids each entry got.
"""

from __future__ import annotations

import base64
import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from conformance.content import attachment_hash, tiny_jpeg
from conformance.fresh import as_new, fresh_patient
from fhir_server.ig import load_guide

Resource = dict[str, Any]

EXAMPLE_PHARMACIST_ROLE: Final = "PractitionerRole/pharmacist-claire-dubois"
EXAMPLE_PHARMACY: Final = "Organization/pharmacie-du-centre"
TIER_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/expertise-tier"
BUSINESS_STATUS_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/task-business-status"
CASE_TYPES: Final = ("Patient", "Coverage", "Consent", "QuestionnaireResponse", "Media",
                     "Binary", "ServiceRequest", "Task")
"""The case resource types an intake carries."""


@dataclass(frozen=True, slots=True)
class Intake:
    """The transaction Bundle and, per entry, the ``Type`` and request index it stands for."""

    bundle: Resource
    family: str
    kinds: tuple[tuple[str, int | None], ...]
    """Per entry: its resource type, and the index of its request (None: the patient's own)."""


@dataclass(frozen=True, slots=True)
class CreatedCase:
    """The ids a case's resources got: per type, and per request (index) of each type."""

    family: str
    ids: Mapping[str, frozenset[str]]
    by_request: tuple[Mapping[str, str], ...]

    @property
    def patient(self) -> str:
        (patient,) = self.ids["Patient"]
        return patient

    def of(self, resource_type: str) -> frozenset[str]:
        return self.ids.get(resource_type, frozenset())

    def request(self, index: int, resource_type: str) -> str:
        return self.by_request[index][resource_type]


def _example(name: str) -> Resource:
    wanted = f"/{name}.json"
    for example in load_guide().examples:
        if example.valid and example.filename.endswith(wanted):
            return copy.deepcopy(example.resource)
    raise LookupError(f"the guide has no valid example {name}")


def _replace_references(value: Any, targets: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: (targets.get(item, item) if key == "reference" and isinstance(item, str)
                      else _replace_references(item, targets))
                for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_references(item, targets) for item in value]
    return value


def _entry(full_url: str, resource: Resource) -> Resource:
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"]}}


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _offered_task(task: Resource, tier: str) -> Resource:
    """The example Task made a new request offered to ``tier``: nobody owns it yet."""
    for key in ("owner", "output", "statusReason", "lastModified"):
        task.pop(key, None)
    task["status"] = "requested"
    task["businessStatus"] = {"coding": [{"system": BUSINESS_STATUS_SYSTEM,
                                          "code": "awaiting-claim"}]}
    task["performerType"] = [{"coding": [{"system": TIER_SYSTEM, "code": tier}]}]
    return task


def _request_entries(tier: str, targets: dict[str, str]) -> list[tuple[str, Resource]]:
    """One request's photo (and its bytes), questionnaire, ServiceRequest and Task."""
    photo = tiny_jpeg()
    urls = {"Binary": _urn(), "Media": _urn(), "QuestionnaireResponse": _urn(),
            "ServiceRequest": _urn(), "Task": _urn()}
    request_targets = {**targets,
                       "ServiceRequest/skin-camille-martin": urls["ServiceRequest"],
                       "QuestionnaireResponse/skin-camille-martin":
                           urls["QuestionnaireResponse"],
                       "Media/skin-camille-martin-1": urls["Media"]}
    media = as_new(_example("Media-skin-camille-martin-1"))
    media["content"] = {**media["content"], "url": urls["Binary"], "size": len(photo),
                        "hash": attachment_hash(photo)}
    service_request = as_new(_example("ServiceRequest-skin-camille-martin"))
    service_request["status"] = "active"
    task = _offered_task(as_new(_example("Task-skin-camille-martin")), tier)
    binary = {"resourceType": "Binary", "contentType": "image/jpeg",
              "securityContext": {"reference": urls["Media"]},
              "data": base64.b64encode(photo).decode("ascii")}
    made = {"Media": media, "QuestionnaireResponse": as_new(
                _example("QuestionnaireResponse-skin-camille-martin")),
            "ServiceRequest": service_request, "Task": task}
    entries = [(urls[kind], _replace_references(resource, request_targets))
               for kind, resource in made.items()]
    return [(urls["Binary"], binary), *entries]


def intake_bundle(*, role: str, organization: str, tiers: Sequence[str],
                  family: str) -> Intake:
    """The intake transaction of a new patient named ``family`` with one open request per
    tier in ``tiers``, requested by ``role`` (``PractitionerRole/…``) of ``organization``."""
    patient, nir = fresh_patient(_example("Patient-camille-martin"), family=family)
    coverage = as_new(_example("Coverage-camille-martin"))
    coverage["subscriberId"] = nir
    consent = as_new(_example("Consent-exchange-camille-martin"))
    targets = {"Patient/camille-martin": _urn(), "Coverage/camille-martin": _urn(),
               EXAMPLE_PHARMACIST_ROLE: role, EXAMPLE_PHARMACY: organization}
    entries = [_entry(targets["Patient/camille-martin"], patient),
               _entry(targets["Coverage/camille-martin"],
                      _replace_references(coverage, targets)),
               _entry(_urn(), _replace_references(consent, targets))]
    kinds: list[tuple[str, int | None]] = [("Patient", None), ("Coverage", None),
                                           ("Consent", None)]
    for index, tier in enumerate(tiers):
        for full_url, resource in _request_entries(tier, targets):
            entries.append(_entry(full_url, resource))
            kinds.append((resource["resourceType"], index))
    return Intake(bundle={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                  family=family, kinds=tuple(kinds))


def created_case(intake: Intake, response: Resource) -> CreatedCase:
    """What the server made of ``intake``, from its transaction-response Bundle."""
    answers = response["entry"]
    assert len(answers) == len(intake.kinds), response
    ids: dict[str, set[str]] = {}
    by_request: list[dict[str, str]] = []
    for (resource_type, index), answer in zip(intake.kinds, answers, strict=True):
        status = answer["response"]["status"]
        assert status.startswith("201"), answer
        new_id = answer["response"]["location"].split(f"{resource_type}/")[1].split("/")[0]
        ids.setdefault(resource_type, set()).add(new_id)
        if index is not None:
            while len(by_request) <= index:
                by_request.append({})
            by_request[index][resource_type] = new_id
    return CreatedCase(family=intake.family,
                       ids={kind: frozenset(found) for kind, found in ids.items()},
                       by_request=tuple(by_request))
