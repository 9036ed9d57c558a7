"""``$stats`` on real stores (both backends): cases of two pharmacies driven through the real
operations (submitted, claimed, declined, questioned, referred up, completed, cancelled), then
the figures as the operator (HTTP GET and POST) and as an admin or the medical director, and
403 for a pharmacist or a doctor."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_server.access.principal import Principal
from fhir_server.engine.engine import Engine
from fhir_server.engine.operations import OperationCall
from fhir_server.errors import FhirError
from fhir_server.workflow.stats import stats_operation
from tests.api.conftest import Api
from tests.support.workflow_case import (
    BASE,
    CLAIRE,
    JULIEN,
    OTHER_GP,
    Desk,
    example,
    skin_case,
    transaction,
)

CENTRE = "Organization/pharmacie-du-centre"
PORT = "Organization/pharmacie-du-port"
MARC = Principal("pharmacist", "marc", practitioner_role="PractitionerRole/pharmacist-marc-leroy",
                 organization=PORT)
NADIA = Principal("doctor", "nadia", practitioner_role="PractitionerRole/tier-2-nadia-haddad",
                  tier="tier-2")
SOPHIE = Principal("doctor", "sophie",
                   practitioner_role="PractitionerRole/tier-3-sophie-laurent", tier="tier-3")
ADMIN = Principal("admin", "admin-1")
DIRECTOR = Principal("medical-director", "director-1")
CASE_IDS = re.compile(r"\bc-(patient|coverage|consent|form|photo-bytes|photo|request|task)\b")


@pytest.fixture
def engine(api: Api) -> Engine:
    """The app's engine, which the runtime gives ``$stats``."""
    engine: Engine = api.app.state.engine
    assert engine.resolve_operation("stats", level="system").definition == \
        stats_operation().definition
    return engine


class Cases(Desk):
    """The desk of the workflow tests, for several cases named by a prefix."""

    async def open(self, prefix: str, pharmacist: Principal) -> str:
        """A draft skin case ``<prefix>-task`` of ``pharmacist``'s pharmacy."""
        text = CASE_IDS.sub(rf"{prefix}-\1", json.dumps(skin_case(task_status="draft")))
        if pharmacist is MARC:
            text = text.replace("PractitionerRole/pharmacist-claire-dubois",
                                "PractitionerRole/pharmacist-marc-leroy")
            text = text.replace(CENTRE, PORT)
        await self.acting(pharmacist).process_bundle(transaction(json.loads(text)),
                                                     base_url=BASE)
        return f"{prefix}-task"

    async def run(self, task: str, principal: Principal, name: str,
                  *parameters: dict[str, Any]) -> dict[str, Any]:
        """``POST Task/<task>/$name`` as ``principal``."""
        engine = self.acting(principal)
        operation = engine.resolve_operation(name, level="instance", resource_type="Task")
        result = await engine.operation(operation, OperationCall(
            name=name, level="instance", base_url=BASE, resource_type="Task", id=task,
            parameters={"resourceType": "Parameters", "parameter": list(parameters)}))
        return result.resource

    async def more_directory(self) -> None:
        """Pharmacie du Port and its pharmacist Marc Leroy; the verified doctors of tiers 2
        and 3 (so that no tier is left without a doctor, which would escalate a case)."""
        port = {**example("Organization-pharmacie-du-centre"), "id": "pharmacie-du-port",
                "name": "Pharmacie du Port"}
        role = {**example("PractitionerRole-pharmacist-claire-dubois"),
                "id": "pharmacist-marc-leroy", "organization": {"reference": PORT}}
        doctors = [example(name) for name in (
            "Practitioner-nadia-haddad", "PractitionerRole-tier-2-nadia-haddad",
            "Practitioner-sophie-laurent", "PractitionerRole-tier-3-sophie-laurent")]
        for resource in (port, role, *doctors):
            await self.engine.update(resource["resourceType"], resource["id"], resource)

    async def stats(self, principal: Principal | None, *parameters: tuple[str, str]
                    ) -> dict[str, Any]:
        """``$stats`` as ``principal`` (None: the operator)."""
        engine = self.engine if principal is None else self.acting(principal)
        operation = engine.resolve_operation("stats", level="system")
        result = await engine.operation(operation, OperationCall(
            name="stats", level="system", base_url=BASE, parameters={
                "resourceType": "Parameters",
                "parameter": [{"name": name, "valueString": value}
                              for name, value in parameters]}))
        assert result.status == 200
        return result.resource


def text(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "valueString": value}


def final_report() -> dict[str, Any]:
    report = example("DiagnosticReport-skin-camille-martin")
    for key in ("id", "presentedForm", "media", "basedOn", "subject"):
        report.pop(key, None)
    return {"name": "report", "resource": report}


async def five_cases(cases: Cases) -> None:
    """Centre: answered at tier 1 after a decline and a question; cancelled; claimed.
    Port: answered at tier 3 after two referrals; waiting for a claim."""
    await cases.load_directory()
    await cases.more_directory()
    answered = await cases.open("a", CLAIRE)
    await cases.run(answered, CLAIRE, "submit")
    await cases.run(answered, OTHER_GP, "decline", text("reason", "hors compétence"))
    await cases.run(answered, JULIEN, "claim")
    await cases.run(answered, JULIEN, "request-clarification",
                    {"name": "reason", "valueCode": "additional-information"},
                    text("text", "Depuis quand ?"))
    form = json.loads((await cases.engine.read("QuestionnaireResponse", "a-form")).body or b"")
    await cases.acting(CLAIRE).update("QuestionnaireResponse", "a-form",
                                      {**form, "authored": "2026-11-22T09:00:00+01:00"})
    await cases.run(answered, CLAIRE, "resubmit", text("answer", "Deux semaines"))
    await cases.run(answered, JULIEN, "complete", final_report())
    cancelled = await cases.open("b", CLAIRE)
    await cases.run(cancelled, CLAIRE, "submit")
    await cases.run(cancelled, CLAIRE, "cancel", text("reason", "patient guéri"))
    claimed = await cases.open("c", CLAIRE)
    await cases.run(claimed, CLAIRE, "submit")
    await cases.run(claimed, JULIEN, "claim")
    referred = await cases.open("d", MARC)
    await cases.run(referred, MARC, "submit")
    for doctor in (JULIEN, NADIA):
        await cases.run(referred, doctor, "claim")
        await cases.run(referred, doctor, "refer-up", text("reason", "avis spécialisé"))
    await cases.run(referred, SOPHIE, "claim")
    await cases.run(referred, SOPHIE, "complete", final_report())
    waiting = await cases.open("e", MARC)
    await cases.run(waiting, MARC, "submit")


def figures(group: dict[str, Any]) -> dict[str, Any]:
    """A group of parts as plain values: counts, statuses, durations and tiers."""
    parts = {p["name"]: p for p in group["part"]}
    statuses = {p["part"][0]["valueCode"]: p["part"][1]["valueInteger"]
                for p in group["part"] if p["name"] == "status" and p["part"][1]["valueInteger"]}
    tiers = {p["name"]: p for p in parts["tiers"]["part"]}
    answered = {p["part"][0]["valueCoding"]["code"]: p["part"][1]["valueInteger"]
                for p in parts["tiers"]["part"] if p["name"] == "answered"}
    return {
        "cases": parts["cases"]["valueInteger"], "status": statuses,
        "claims": _durations(parts["timeToFirstClaim"]),
        "answers": _durations(parts["timeToAnswer"]),
        "declines": parts["declines"]["valueInteger"],
        "escalations": parts["escalations"]["valueInteger"],
        "clarifications": parts["clarifications"]["valueInteger"],
        "answered": answered, "share": tiers.get("share", {}).get("valueDecimal"),
        "met": tiers.get("met", {}).get("valueBoolean")}


def _durations(group: dict[str, Any]) -> tuple[int, bool]:
    """(count, whether p50 <= p95 and both are short) of a duration group."""
    parts = {p["name"]: p for p in group["part"]}
    count = parts["count"]["valueInteger"]
    if not count:
        return count, "p50" not in parts and "p95" not in parts
    p50, p95 = (parts[name]["valueQuantity"]["value"] for name in ("p50", "p95"))
    return count, 0 <= p50 <= p95 < 5


def groups(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``overall`` and each pharmacy's figures, by name."""
    found = {}
    for parameter in answer["parameter"]:
        if parameter["name"] == "overall":
            found["overall"] = figures(parameter)
        elif parameter["name"] == "perPharmacy":
            pharmacy = parameter["part"][0]["valueReference"]["reference"]
            found[pharmacy] = figures(parameter)
    return found


async def test_the_figures_of_cases_driven_through_the_workflow(engine: Engine) -> None:
    cases = Cases(engine)
    await five_cases(cases)
    found = groups(await cases.stats(None))
    assert set(found) == {"overall", CENTRE, PORT}
    assert found["overall"] == {
        "cases": 5, "status": {"requested": 1, "accepted": 1, "completed": 2, "cancelled": 1},
        "claims": (3, True), "answers": (2, True), "declines": 1, "escalations": 2,
        "clarifications": 1, "answered": {"tier-1": 1, "tier-2": 0, "tier-3": 1},
        "share": 0.5, "met": False}
    assert found[CENTRE] == {
        "cases": 3, "status": {"accepted": 1, "completed": 1, "cancelled": 1},
        "claims": (2, True), "answers": (1, True), "declines": 1, "escalations": 0,
        "clarifications": 1, "answered": {"tier-1": 1, "tier-2": 0, "tier-3": 0},
        "share": 1.0, "met": True}
    assert found[PORT] == {
        "cases": 2, "status": {"requested": 1, "completed": 1},
        "claims": (1, True), "answers": (1, True), "declines": 0, "escalations": 2,
        "clarifications": 0, "answered": {"tier-1": 0, "tier-2": 0, "tier-3": 1},
        "share": 0.0, "met": False}
    only_port = await cases.stats(None, ("pharmacy", PORT))
    assert only_port["parameter"][0] == {"name": "pharmacy", "valueReference": {
        "reference": PORT}}
    assert set(groups(only_port)) == {"overall", PORT}
    assert groups(only_port)["overall"] == found[PORT]
    today = datetime.now(UTC).date()
    day = timedelta(days=1)
    around = groups(await cases.stats(None, ("since", str(today - day)),
                                      ("until", str(today + day))))
    assert around["overall"] == found["overall"]
    later = groups(await cases.stats(None, ("since", str(today + day))))
    assert later["overall"]["cases"] == 0 and set(later) == {"overall"}
    earlier = groups(await cases.stats(None, ("until", str(today - day))))
    assert earlier["overall"]["cases"] == 0


async def test_the_admin_and_the_medical_director_may_see_the_figures(engine: Engine) -> None:
    cases = Cases(engine)
    await cases.load_directory()
    draft = await cases.open("a", CLAIRE)
    await cases.run(draft, CLAIRE, "submit")
    for principal in (ADMIN, DIRECTOR):
        found = groups(await cases.stats(principal))
        assert found["overall"]["cases"] == 1
        assert found[CENTRE]["status"] == {"requested": 1}


@pytest.mark.parametrize("principal", [CLAIRE, JULIEN], ids=["pharmacist", "doctor"])
async def test_pharmacists_and_doctors_are_refused(engine: Engine,
                                                   principal: Principal) -> None:
    with pytest.raises(FhirError) as refused:
        await Cases(engine).stats(principal)
    assert refused.value.status == 403
    assert "administrators" in str(refused.value) and principal.role in str(refused.value)


async def test_the_operator_gets_the_figures_over_http(api: Api, engine: Engine) -> None:
    got = await api.client.get("/$stats", params={"since": "2026-01-01"})
    assert got.status_code == 200, got.text
    answer = got.json()
    assert answer["resourceType"] == "Parameters"
    assert [p["name"] for p in answer["parameter"]] == ["since", "overall"]
    assert groups(answer)["overall"]["cases"] == 0
    posted = await api.client.post("/$stats", json={"resourceType": "Parameters", "parameter": [
        {"name": "pharmacy", "valueReference": {"reference": CENTRE}}]},
        headers={"Content-Type": "application/fhir+json"})
    assert posted.status_code == 200, posted.text
    assert posted.json()["parameter"][0]["valueReference"] == {"reference": CENTRE}
    wrong = await api.client.get("/$stats", params={"pharmacy": "Patient/1"})
    assert wrong.status_code == 400
    assert wrong.json()["resourceType"] == "OperationOutcome"
