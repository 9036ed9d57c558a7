"""Role policies on a real store (both backends): what each role sees and may write of the
guide's example cases, and that includes, ``_has``, chains, totals and transactions reveal
nothing hidden. The engine is driven as each principal (``Engine.acting_as``)."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fhir_server.access.access import Access
from fhir_server.access.policies import ORGANIZATION_TAG_SYSTEM
from fhir_server.access.principal import Principal
from fhir_server.engine.engine import Engine
from fhir_server.engine.results import ResourceResult
from fhir_server.errors import FhirError
from tests.api.conftest import Api

EXAMPLES = Path(__file__).resolve().parents[2] / "profiles" / "examples"
BASE = "http://test/fhir"
CLAIRE = Principal("pharmacist", "claire", practitioner="Practitioner/claire-dubois",
                   practitioner_role="PractitionerRole/pharmacist-claire-dubois",
                   organization="Organization/pharmacie-du-centre")
PORT = Principal("pharmacist", "port", practitioner_role="PractitionerRole/pharmacist-port",
                 organization="Organization/pharmacie-du-port")
JULIEN = Principal("doctor", "julien", practitioner="Practitioner/julien-moreau",
                   practitioner_role="PractitionerRole/tier-1-julien-moreau", tier="tier-1")
NADIA = Principal("doctor", "nadia", practitioner="Practitioner/nadia-haddad",
                  practitioner_role="PractitionerRole/tier-2-nadia-haddad", tier="tier-2")
SOPHIE = Principal("doctor", "sophie", practitioner="Practitioner/sophie-laurent",
                   practitioner_role="PractitionerRole/tier-3-sophie-laurent", tier="tier-3")
UNVERIFIED = Principal("doctor", "new", practitioner_role="PractitionerRole/tier-2-nadia-haddad")
DIRECTOR = Principal("medical-director", "director")
ADMIN = Principal("admin", "admin")
PORT_PHARMACY = Principal("system", "port-software", organization="Organization/pharmacie-du-port")


@dataclass(frozen=True)
class Cases:
    engine: Engine

    def acting(self, principal: Principal) -> Engine:
        return self.engine.acting_as(Access(principal, scopes=None))


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return loaded


def offered_case(source: str, new: str, tier: str, declined_by: str | None = None
                 ) -> list[dict[str, Any]]:
    """A copy of an example case's ServiceRequest, photo and Task, offered to ``tier``."""
    request = copy.deepcopy(example(f"ServiceRequest-{source}"))
    request["id"] = new
    media = copy.deepcopy(example("Media-skin-camille-martin-1"))
    media["id"] = f"{new}-photo"
    media["basedOn"] = [{"reference": f"ServiceRequest/{new}"}]
    task = copy.deepcopy(example(f"Task-{source}"))
    task["id"] = new
    task["focus"] = {"reference": f"ServiceRequest/{new}"}
    task["status"] = "requested"
    for key in ("owner", "output", "statusReason"):
        task.pop(key, None)
    task["businessStatus"] = {"coding": [{
        "system": "https://fhir.pictaderm.com/CodeSystem/task-business-status",
        "code": "awaiting-claim"}]}
    task["performerType"][0]["coding"][0]["code"] = tier
    task["performerType"][0]["coding"][0].pop("display", None)
    if declined_by is not None:
        task.setdefault("extension", []).append({
            "url": "https://fhir.pictaderm.com/StructureDefinition/pictaderm-task-declined-by",
            "valueReference": {"reference": declined_by}})
    return [request, media, task]


@pytest.fixture
async def cases(api: Api) -> Cases:
    """The examples and the cases above, loaded by the operator; a second tier-2 doctor comes
    first, so that the tier-2 case Nadia declined is not escalated by the routing."""
    engine: Engine = api.app.state.engine
    second_gp = {**example("PractitionerRole-tier-2-nadia-haddad"), "id": "tier-2-second"}
    resources = [second_gp, *(json.loads(path.read_text())
                              for path in sorted(EXAMPLES.glob("*.json")))]
    resources += offered_case("skin-camille-martin", "offered-t2", "tier-2")
    resources += offered_case("skin-camille-martin", "declined-t2", "tier-2",
                              declined_by="PractitionerRole/tier-2-nadia-haddad")
    port = copy.deepcopy(example("PractitionerRole-pharmacist-claire-dubois"))
    port["id"] = "pharmacist-port"
    port["organization"] = {"reference": "Organization/pharmacie-du-port"}
    organization = copy.deepcopy(example("Organization-pharmacie-du-centre"))
    organization["id"] = "pharmacie-du-port"
    port_patient = copy.deepcopy(example("Patient-jeanne-santoni"))
    port_patient["id"] = "port-patient"
    port_case = offered_case("skin-camille-martin", "port-case", "tier-1")
    port_case[2]["requester"] = {"reference": "PractitionerRole/pharmacist-port"}
    port_case[2]["for"] = {"reference": "Patient/port-patient"}
    port_case[0]["subject"] = {"reference": "Patient/port-patient"}
    port_coverage = {**example("Coverage-camille-martin"), "id": "port-coverage",
                     "beneficiary": {"reference": "Patient/port-patient"}}
    port_consent = {**example("Consent-exchange-camille-martin"), "id": "port-consent",
                    "patient": {"reference": "Patient/port-patient"}}
    resources += [organization, port, port_patient, port_coverage, port_consent, *port_case]
    for resource in resources:
        if resource["resourceType"] in ("ImplementationGuide",) or "id" not in resource:
            continue
        await engine.update(resource["resourceType"], resource["id"], resource)
    return Cases(engine)


def resource_of(result: ResourceResult) -> dict[str, Any]:
    assert result.body is not None
    loaded: dict[str, Any] = json.loads(result.body)
    return loaded


async def ids(engine: Engine, resource_type: str, params: Sequence[tuple[str, str]] = ()
              ) -> set[str]:
    bundle = await engine.search(base_url=BASE, params=[*params, ("_count", "100")],
                                 resource_type=resource_type)
    return {entry["resource"]["id"] for entry in bundle.get("entry", ())
            if entry.get("search", {}).get("mode") == "match"}


async def bundle_of(engine: Engine, resource_type: str, params: Sequence[tuple[str, str]]
                    ) -> dict[str, Any]:
    return await engine.search(base_url=BASE, params=list(params), resource_type=resource_type)


async def test_a_pharmacist_sees_the_cases_of_its_pharmacy_only(cases: Cases) -> None:
    claire, port = cases.acting(CLAIRE), cases.acting(PORT)
    assert await ids(claire, "Task") == {"skin-camille-martin", "mole-lucas-bernard",
                                         "offered-t2", "declined-t2"}
    assert await ids(port, "Task") == {"port-case"}
    assert await ids(port, "Patient") == {"port-patient"}
    assert "port-patient" not in await ids(claire, "Patient")
    assert {"camille-martin", "lucas-bernard"} <= await ids(claire, "Patient")
    assert await ids(port, "Media") == {"port-case-photo"}
    assert "port-case-photo" not in await ids(claire, "Media")
    assert await ids(port, "Coverage") == {"port-coverage"}
    assert await ids(claire, "Coverage") == {"camille-martin", "lucas-bernard"}
    assert await ids(claire, "DiagnosticReport") == {"skin-camille-martin"}
    assert await ids(port, "Organization") >= {"pharmacie-du-centre", "pharmacie-du-port"}


async def test_a_doctor_sees_the_cases_offered_to_its_tier_and_those_it_owns(
        cases: Cases) -> None:
    julien, nadia, sophie = (cases.acting(JULIEN), cases.acting(NADIA),
                             cases.acting(SOPHIE))
    assert await ids(julien, "Task") == {"skin-camille-martin", "port-case"}
    assert await ids(nadia, "Task") == {"offered-t2"}
    assert await ids(sophie, "Task") == {"mole-lucas-bernard"}
    assert await ids(sophie, "Media") == {"mole-lucas-bernard-dermoscopy",
                                          "mole-lucas-bernard-overview"}
    assert await ids(nadia, "Media") == {"offered-t2-photo"}
    assert await ids(sophie, "Communication") == {"clarification-question",
                                                  "clarification-answer"}
    assert await ids(julien, "Communication") == set()
    assert await ids(julien, "Patient") == {"camille-martin", "port-patient"}
    assert await ids(sophie, "Patient") == {"lucas-bernard"}
    assert await ids(sophie, "RelatedPerson") == {"thomas-bernard"}
    assert await ids(cases.acting(UNVERIFIED), "Task") == set()


async def test_directors_and_admins_see_no_health_data(cases: Cases) -> None:
    for principal in (DIRECTOR, ADMIN):
        engine = cases.acting(principal)
        for resource_type in ("Patient", "Task", "Media", "Observation"):
            with pytest.raises(FhirError) as refused:
                await ids(engine, resource_type)
            assert refused.value.status == 403
        assert "tier-2-nadia-haddad" in await ids(engine, "PractitionerRole")
    director = cases.acting(DIRECTOR)
    role = example("PractitionerRole-tier-2-nadia-haddad")
    role["active"] = True
    updated = await director.update("PractitionerRole", role["id"], role)
    assert updated.status == 200
    with pytest.raises(FhirError) as refused:
        await cases.acting(ADMIN).update("PractitionerRole", role["id"], role)
    assert refused.value.status == 403


async def test_hidden_resources_read_as_unknown(cases: Cases) -> None:
    julien = cases.acting(JULIEN)
    with pytest.raises(FhirError) as hidden:
        await julien.read("Task", "mole-lucas-bernard")
    assert hidden.value.status == 404
    with pytest.raises(FhirError) as hidden_history:
        await julien.history(base_url=BASE, params=[], resource_type="Media",
                             id="mole-lucas-bernard-overview")
    assert hidden_history.value.status == 404
    with pytest.raises(FhirError) as versions:
        await julien.vread("Task", "mole-lucas-bernard", "1")
    assert versions.value.status == 404
    with pytest.raises(FhirError) as type_history:
        await julien.history(base_url=BASE, params=[], resource_type="Task")
    assert type_history.value.status == 403
    assert (await julien.read("Task", "skin-camille-martin")).status == 200


async def test_includes_has_chains_and_totals_reveal_nothing_hidden(cases: Cases) -> None:
    julien = cases.acting(JULIEN)
    revealed = await bundle_of(julien, "Patient", [("_revinclude", "Task:subject"),
                                                   ("_total", "accurate")])
    kinds = {(entry["resource"]["resourceType"], entry["resource"]["id"])
             for entry in revealed["entry"]}
    assert ("Task", "mole-lucas-bernard") not in kinds
    assert ("Task", "skin-camille-martin") in kinds
    assert revealed["total"] == 2
    included = await bundle_of(julien, "Task", [("_include", "Task:focus"),
                                                ("_include", "Task:requester")])
    included_ids = {entry["resource"]["id"] for entry in included["entry"]}
    assert "mole-lucas-bernard" not in included_ids
    assert "pharmacist-claire-dubois" in included_ids
    assert await ids(julien, "Patient", [("_has:Task:subject:status", "on-hold")]) == set()
    assert await ids(julien, "Media", [("based-on:ServiceRequest.subject",
                                        "Patient/lucas-bernard")]) == set()
    assert await ids(julien, "Patient", [("_id", "lucas-bernard")]) == set()
    counted = await bundle_of(julien, "Media", [("_summary", "count")])
    assert counted["total"] == len({"skin-camille-martin-1", "port-case-photo"})


async def test_a_transaction_reads_through_the_same_policy(cases: Cases) -> None:
    julien = cases.acting(JULIEN)
    answer = await julien.process_bundle({
        "resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": "Task/mole-lucas-bernard"}},
            {"request": {"method": "GET", "url": "Task/skin-camille-martin"}},
            {"request": {"method": "GET", "url": "Media?_count=50"}}]}, base_url=BASE)
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    assert statuses[0].startswith("404") and statuses[1].startswith("200")
    assert answer["entry"][2]["resource"]["total"] == 2


async def test_doctors_write_only_in_the_cases_they_own(cases: Cases) -> None:
    julien = cases.acting(JULIEN)
    report = example("DiagnosticReport-skin-camille-martin")
    report.pop("id")
    report.pop("presentedForm", None)
    created = await julien.create("DiagnosticReport", report)
    assert created.status == 201
    elsewhere = {**report, "basedOn": [{"reference": "ServiceRequest/mole-lucas-bernard"}]}
    with pytest.raises(FhirError) as refused:
        await julien.create("DiagnosticReport", elsewhere)
    assert refused.value.status == 403
    patient = example("Patient-camille-martin")
    with pytest.raises(FhirError) as not_theirs:
        await julien.update("Patient", patient["id"], {**patient, "gender": "other"})
    assert not_theirs.value.status == 403
    nadia = cases.acting(NADIA)
    task = resource_of(await cases.engine.read("Task", "offered-t2"))
    claimed = {**task, "status": "accepted",
               "owner": {"reference": "PractitionerRole/tier-2-nadia-haddad"},
               "businessStatus": {"coding": [{
                   "system": "https://fhir.pictaderm.com/CodeSystem/task-business-status",
                   "code": "claimed"}]}}
    claimed.pop("meta", None)
    assert (await nadia.update("Task", "offered-t2", claimed)).status == 200
    assert "offered-t2" in await ids(nadia, "Task")
    with pytest.raises(FhirError) as declined:
        await nadia.update("Task", "declined-t2",
                           resource_of(await cases.engine.read("Task", "declined-t2")))
    assert declined.value.status == 404


async def test_what_a_pharmacy_writes_is_stamped_with_its_organization(cases: Cases) -> None:
    claire, port = cases.acting(CLAIRE), cases.acting(PORT_PHARMACY)
    forged = {"resourceType": "Patient", "gender": "female", "meta": {"tag": [
        {"system": ORGANIZATION_TAG_SYSTEM, "code": "Organization/pharmacie-du-port"}]}}
    created = resource_of(await claire.create("Patient", forged))
    tags = created["meta"]["tag"]
    assert tags == [{"system": ORGANIZATION_TAG_SYSTEM,
                     "code": "Organization/pharmacie-du-centre"}]
    new_id = created["id"]
    assert new_id in await ids(claire, "Patient")
    assert new_id not in await ids(port, "Patient")
    with pytest.raises(FhirError) as foreign:
        await port.update("Patient", new_id, {"resourceType": "Patient", "id": new_id})
    assert foreign.value.status in (403, 404)
    kept = await claire.update("Patient", new_id, {"resourceType": "Patient", "id": new_id,
                                                   "gender": "male"})
    assert resource_of(kept)["meta"]["tag"] == tags
    with pytest.raises(FhirError) as definitions:
        await claire.create("ValueSet", {"resourceType": "ValueSet", "status": "draft"})
    assert definitions.value.status == 403


async def test_a_binary_follows_the_resource_of_its_security_context(cases: Cases) -> None:
    created = await cases.engine.create("Binary", {
        "resourceType": "Binary", "contentType": "application/pdf", "data": "JVBERi0=",
        "securityContext": {"reference": "DocumentReference/report-skin-camille-martin"}})
    assert (await cases.acting(JULIEN).read("Binary", created.id)).status == 200
    with pytest.raises(FhirError) as hidden:
        await cases.acting(SOPHIE).read("Binary", created.id)
    assert hidden.value.status == 404
    assert created.id in await ids(cases.acting(CLAIRE), "Binary")
