"""A skin case of the guide's examples with fresh ids, and the engine driven as each
principal: shared by the workflow tests."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

from conformance.content import tiny_jpeg
from fhir_server.access.access import Access
from fhir_server.access.principal import Principal
from fhir_server.engine.engine import Engine
from fhir_server.engine.operations import OperationCall
from fhir_server.engine.results import ResourceResult
from fhir_server.storage.query import ReferenceClause, ReferenceValue, SearchQuery

EXAMPLES = Path(__file__).resolve().parents[2] / "profiles" / "examples"
BASE = "http://test/fhir"
STATUS = "https://fhir.pictaderm.com/CodeSystem/task-business-status"
DECLINED = "https://fhir.pictaderm.com/StructureDefinition/pictaderm-task-declined-by"
JPEG = base64.b64encode(tiny_jpeg()).decode()
"""A real (decodable) 8×8 JPEG: photos are checked when they are stored."""
CLAIRE = Principal("pharmacist", "claire", practitioner="Practitioner/claire-dubois",
                   practitioner_role="PractitionerRole/pharmacist-claire-dubois",
                   organization="Organization/pharmacie-du-centre")
JULIEN = Principal("doctor", "julien", practitioner="Practitioner/julien-moreau",
                   practitioner_role="PractitionerRole/tier-1-julien-moreau", tier="tier-1")
OTHER_GP = Principal("doctor", "paul", practitioner_role="PractitionerRole/tier-1-paul",
                     tier="tier-1")
DIRECTORY = ("Organization-pharmacie-du-centre", "Practitioner-claire-dubois",
             "Practitioner-julien-moreau", "PractitionerRole-pharmacist-claire-dubois",
             "PractitionerRole-tier-1-julien-moreau")
HIGHER_TIERS = ("PractitionerRole-tier-2-nadia-haddad", "PractitionerRole-tier-3-sophie-laurent")
"""Doctors of tiers 2 and 3: with them, a referred or escalated case waits there for a claim
instead of moving on at once (routing escalates a tier without doctors)."""


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return loaded


def status(code: str) -> dict[str, Any]:
    return {"coding": [{"system": STATUS, "code": code}]}


def resource_of(result: ResourceResult) -> dict[str, Any]:
    assert result.body is not None
    loaded: dict[str, Any] = json.loads(result.body)
    return loaded


def skin_case(*, consent: bool = True, task_status: str = "requested") -> list[dict[str, Any]]:
    """The skin example case with fresh ids ``c-…`` and a real JPEG photo, as resources."""
    patient = {**example("Patient-camille-martin"), "id": "c-patient"}
    coverage = {**example("Coverage-camille-martin"), "id": "c-coverage",
                "beneficiary": {"reference": "Patient/c-patient"}}
    agreed = {**example("Consent-exchange-camille-martin"), "id": "c-consent",
              "patient": {"reference": "Patient/c-patient"}}
    response = {**example("QuestionnaireResponse-skin-camille-martin"), "id": "c-form",
                "subject": {"reference": "Patient/c-patient"},
                "basedOn": [{"reference": "ServiceRequest/c-request"}]}
    photo = {"resourceType": "Binary", "id": "c-photo-bytes", "contentType": "image/jpeg",
             "data": JPEG}
    media = copy.deepcopy(example("Media-skin-camille-martin-1"))
    media.update({"id": "c-photo", "subject": {"reference": "Patient/c-patient"},
                  "basedOn": [{"reference": "ServiceRequest/c-request"}]})
    media["content"] = {"contentType": "image/jpeg", "url": "Binary/c-photo-bytes"}
    request = {**example("ServiceRequest-skin-camille-martin"), "id": "c-request",
               "subject": {"reference": "Patient/c-patient"},
               "supportingInfo": [{"reference": "QuestionnaireResponse/c-form"},
                                  {"reference": "Media/c-photo"}],
               "insurance": [{"reference": "Coverage/c-coverage"}]}
    task = copy.deepcopy(example("Task-skin-camille-martin"))
    task.update({"id": "c-task", "status": task_status,
                 "businessStatus": status("awaiting-claim" if task_status == "requested"
                                          else "draft"),
                 "focus": {"reference": "ServiceRequest/c-request"},
                 "for": {"reference": "Patient/c-patient"}})
    for key in ("owner", "output", "statusReason"):
        task.pop(key, None)
    return [patient, coverage, *([agreed] if consent else []), response, photo, media,
            request, task]


def transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": resource,
         "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}}
        for resource in resources]}


class Desk:
    """The engine as each principal, on a store holding the directory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def acting(self, principal: Principal) -> Engine:
        return self.engine.acting_as(Access(principal, scopes=None))

    async def task(self) -> dict[str, Any]:
        return resource_of(await self.engine.read("Task", "c-task"))

    async def move(self, principal: Principal, **changes: Any) -> dict[str, Any]:
        """PUT the Task with ``changes`` (None removes an element) as ``principal``."""
        task = await self.task()
        for key, value in changes.items():
            if value is None:
                task.pop(key, None)
            else:
                task[key] = value
        return resource_of(await self.acting(principal).update("Task", "c-task", task))

    async def transitions(self) -> list[str]:
        page = await self.engine.ctx.store.search(SearchQuery(
            "Provenance", (ReferenceClause("target", (ReferenceValue("Task", "c-task"),)),),
            count=50))
        found = [json.loads(self.engine.ctx.cipher.open_stored(
            m.body or b"", f"Provenance/{m.id}")) for m in page.matches]
        return [p["activity"]["coding"][0]["code"]
                for p in sorted(found, key=lambda p: p["recorded"])]

    async def invoke(self, principal: Principal | None, name: str,
                     *parameters: dict[str, Any]) -> dict[str, Any]:
        """``POST Task/c-task/$name`` with ``parameters`` as ``principal`` (None: operator)."""
        engine = self.engine if principal is None else self.acting(principal)
        operation = engine.resolve_operation(name, level="instance", resource_type="Task")
        result = await engine.operation(operation, OperationCall(
            name=name, level="instance", base_url=BASE, resource_type="Task", id="c-task",
            parameters={"resourceType": "Parameters", "parameter": list(parameters)}))
        return result.resource

    async def load_directory(self, *, higher_tiers: bool = True) -> None:
        """The pharmacy, its pharmacist, a tier-1 doctor and (``higher_tiers``) one doctor of
        each higher tier."""
        for name in (*DIRECTORY, *(HIGHER_TIERS if higher_tiers else ())):
            resource = example(name)
            await self.engine.update(resource["resourceType"], resource["id"], resource)




async def drafted_case(desk: Desk) -> None:
    """The directory, and the skin case written by its pharmacist (``Task/c-task`` a draft)."""
    await desk.load_directory()
    await desk.acting(CLAIRE).process_bundle(transaction(skin_case(task_status="draft")),
                                             base_url=BASE)


async def completed_case(desk: Desk) -> None:
    """The drafted case submitted, claimed and answered by Dr Moreau (``Task/c-task``
    completed with its final DiagnosticReport)."""
    await drafted_case(desk)
    await desk.invoke(CLAIRE, "submit")
    await desk.invoke(JULIEN, "claim")
    report = example("DiagnosticReport-skin-camille-martin")
    for key in ("id", "presentedForm", "media", "basedOn", "subject"):
        report.pop(key, None)
    await desk.invoke(JULIEN, "complete", {"name": "report", "resource": report})
