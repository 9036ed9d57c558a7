"""The named Task operations on real stores (both backends): the whole path of a case through
``$submit`` … ``$complete`` by the right principals, concurrent claims, and refusals naming the
allowed transitions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from fhir_server.access.principal import Principal
from fhir_server.errors import FhirError
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

NADIA = Principal("doctor", "nadia", practitioner_role="PractitionerRole/tier-2-nadia-haddad",
                  tier="tier-2")


def string(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "valueString": value}


def code(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "valueCode": value}


@pytest.fixture
async def desk(api: Api) -> Desk:
    desk = Desk(api.app.state.engine)
    await desk.load_directory()
    await desk.acting(CLAIRE).process_bundle(transaction(skin_case(task_status="draft")),
                                             base_url=BASE)
    return desk


def business(task: dict[str, Any]) -> str:
    code: str = task["businessStatus"]["coding"][0]["code"]
    return code


async def test_a_case_from_submission_to_report(desk: Desk) -> None:
    submitted = await desk.invoke(CLAIRE, "submit")
    assert (submitted["status"], business(submitted)) == ("requested", "awaiting-claim")
    assert submitted["performerType"][0]["coding"][0]["code"] == "tier-1"
    claimed = await desk.invoke(JULIEN, "claim")
    assert claimed["owner"] == {"reference": "PractitionerRole/tier-1-julien-moreau"}
    asked = await desk.invoke(JULIEN, "request-clarification",
                              code("reason", "additional-information"),
                              string("text", "Depuis quand la lésion saigne-t-elle ?"))
    task, question = (p["resource"] for p in asked["parameter"])
    assert (task["status"], business(task)) == ("on-hold", "awaiting-clarification")
    assert question["resourceType"] == "Communication"
    assert question["partOf"] == [{"reference": "Task/c-task"}]
    assert question["payload"][0]["contentString"].startswith("Depuis quand")
    with pytest.raises(FhirError) as unchanged:
        await desk.invoke(CLAIRE, "resubmit", string("answer", "Depuis deux semaines"))
    assert unchanged.value.status == 422
    form = (await desk.engine.read("QuestionnaireResponse", "c-form")).body
    assert form is not None
    changed = {**json.loads(form), "authored": "2026-11-22T09:00:00+01:00"}
    await desk.acting(CLAIRE).update("QuestionnaireResponse", "c-form", changed)
    resumed = await desk.invoke(CLAIRE, "resubmit", string("answer", "Depuis deux semaines"))
    assert (resumed["status"], business(resumed)) == ("in-progress", "resubmitted")
    answers = await desk.engine.search(base_url=BASE, resource_type="Communication", params=[
        ("part-of", "Task/c-task"), ("sender", "PractitionerRole/pharmacist-claire-dubois")])
    (answer,) = (entry["resource"] for entry in answers["entry"])
    assert answer["inResponseTo"] == [{"reference": f"Communication/{question['id']}"}]
    assert answer["payload"][0]["contentString"] == "Depuis deux semaines"
    report = example("DiagnosticReport-skin-camille-martin")
    for key in ("id", "presentedForm", "media", "basedOn", "subject"):
        report.pop(key, None)
    done = await desk.invoke(JULIEN, "complete", {"name": "report", "resource": report},
                             {"name": "document", "valueAttachment": {
                                 "contentType": "application/pdf", "data": "JVBERi0xLjcK",
                                 "title": "Ordonnance"}})
    assert (done["status"], business(done)) == ("completed", "report-available")
    (output,) = done["output"]
    report_id = output["valueReference"]["reference"].removeprefix("DiagnosticReport/")
    stored = json.loads((await desk.engine.read("DiagnosticReport", report_id)).body or b"")
    assert stored["status"] == "final" and stored["basedOn"] == [
        {"reference": "ServiceRequest/c-request"}]
    assert [form["title"] for form in stored["presentedForm"]] == ["Ordonnance"]
    assert await desk.transitions() == ["submit", "claim", "request-clarification",
                                        "resubmit", "complete"]


async def test_of_simultaneous_claims_exactly_one_wins(desk: Desk) -> None:
    await desk.invoke(CLAIRE, "submit")
    results = await asyncio.gather(desk.invoke(JULIEN, "claim"),
                                   desk.invoke(OTHER_GP, "claim"), return_exceptions=True)
    winners = [r for r in results if isinstance(r, dict)]
    losers = [r for r in results if isinstance(r, FhirError)]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].status == 409
    task = await desk.task()
    assert task["owner"] == winners[0]["owner"]


async def test_decline_and_refer_up(desk: Desk) -> None:
    await desk.invoke(CLAIRE, "submit")
    declined = await desk.invoke(OTHER_GP, "decline", string("reason", "hors compétence"))
    assert declined["status"] == "requested"
    with pytest.raises(FhirError) as again:
        await desk.invoke(OTHER_GP, "claim")
    assert again.value.status == 404
    await desk.invoke(JULIEN, "claim")
    with pytest.raises(FhirError) as no_reason:
        await desk.invoke(JULIEN, "refer-up")
    assert no_reason.value.status == 400
    referred = await desk.invoke(JULIEN, "refer-up", string("reason", "avis spécialisé"))
    assert referred["performerType"][0]["coding"][0]["code"] == "tier-2"
    assert "owner" not in referred and business(referred) == "referred-up"
    assert (await desk.acting(NADIA).read("Task", "c-task")).status == 200


async def test_operations_refuse_the_wrong_actor_or_status(desk: Desk) -> None:
    with pytest.raises(FhirError) as not_yet:
        await desk.invoke(JULIEN, "claim")
    assert not_yet.value.status == 404
    with pytest.raises(FhirError) as draft:
        await desk.invoke(None, "complete", {"name": "report", "resource": {
            "resourceType": "DiagnosticReport", "status": "final"}})
    assert draft.value.status == 409 and "$submit" in str(draft.value)
    await desk.invoke(CLAIRE, "submit")
    with pytest.raises(FhirError) as pharmacist:
        await desk.invoke(CLAIRE, "claim", {"name": "role", "valueReference": {
            "reference": "PractitionerRole/tier-1-julien-moreau"}})
    assert pharmacist.value.status == 403
    cancelled = await desk.invoke(CLAIRE, "cancel", string("reason", "patient guéri"))
    assert cancelled["status"] == "cancelled"
