"""The Task state machine enforced on real stores (both backends): a skin case submitted by a
pharmacist's transaction, claimed, declined, questioned, resubmitted, completed or cancelled by
the right people only, each move leaving its Provenance (engine driven as each principal)."""

from __future__ import annotations

import pytest

from fhir_server.errors import FhirError
from tests.api.conftest import Api
from tests.support.workflow_case import (
    BASE,
    CLAIRE,
    DECLINED,
    JULIEN,
    OTHER_GP,
    Desk,
    example,
    resource_of,
    skin_case,
    status,
    transaction,
)


@pytest.fixture
async def desk(api: Api) -> Desk:
    desk = Desk(api.app.state.engine)
    await desk.load_directory()
    return desk


async def submitted(desk: Desk) -> None:
    await desk.acting(CLAIRE).process_bundle(transaction(skin_case()), base_url=BASE)


async def test_a_case_submitted_by_transaction_runs_the_intake_rules(desk: Desk) -> None:
    with pytest.raises(FhirError) as refused:
        await desk.acting(CLAIRE).process_bundle(transaction(skin_case(consent=False)),
                                                 base_url=BASE)
    assert refused.value.status == 422
    assert "consent" in str(refused.value).lower()
    with pytest.raises(FhirError) as nothing:
        await desk.engine.read("Patient", "c-patient")
    assert nothing.value.status == 404
    await submitted(desk)
    assert (await desk.task())["status"] == "requested"
    assert await desk.transitions() == ["submit"]


async def test_a_draft_is_submitted_by_moving_it_to_requested(desk: Desk) -> None:
    await desk.acting(CLAIRE).process_bundle(transaction(skin_case(task_status="draft")),
                                             base_url=BASE)
    assert await desk.transitions() == []
    moved = await desk.move(CLAIRE, status="requested", businessStatus=status("awaiting-claim"))
    assert moved["status"] == "requested"
    assert await desk.transitions() == ["submit"]


async def test_a_case_task_starts_as_draft_or_requested(desk: Desk) -> None:
    resources = skin_case()
    resources[-1].update({"status": "cancelled",
                          "businessStatus": status("cancelled-by-requester")})
    with pytest.raises(FhirError) as refused:
        await desk.acting(CLAIRE).process_bundle(transaction(resources), base_url=BASE)
    assert refused.value.status == 422 and "draft" in str(refused.value)


async def test_the_first_claim_wins_and_names_its_doctor(desk: Desk) -> None:
    await submitted(desk)
    with pytest.raises(FhirError) as for_another:
        await desk.move(JULIEN, status="accepted", businessStatus=status("claimed"),
                        owner={"reference": "PractitionerRole/tier-1-paul"})
    assert for_another.value.status == 422 and "own role" in str(for_another.value)
    with pytest.raises(FhirError) as pharmacist:
        await desk.move(CLAIRE, status="accepted", businessStatus=status("claimed"),
                        owner={"reference": "PractitionerRole/pharmacist-claire-dubois"})
    assert pharmacist.value.status == 409 and "$cancel" in str(pharmacist.value)
    claimed = await desk.move(JULIEN, status="accepted", businessStatus=status("claimed"),
                              owner={"reference": "PractitionerRole/tier-1-julien-moreau"})
    assert claimed["owner"]["reference"] == "PractitionerRole/tier-1-julien-moreau"
    with pytest.raises(FhirError) as not_a_transition:
        await desk.move(JULIEN, requester={"reference": "PractitionerRole/tier-1-julien-moreau"})
    assert not_a_transition.value.status == 403 and "requester" in str(not_a_transition.value)
    noted = await desk.move(JULIEN, note=[{"text": "photo floue, à revoir"}])
    assert noted["note"][0]["text"] == "photo floue, à revoir"
    with pytest.raises(FhirError) as late:
        await desk.move(OTHER_GP, status="accepted", businessStatus=status("claimed"),
                        owner={"reference": "PractitionerRole/tier-1-paul"})
    assert late.value.status in (404, 409)


async def test_a_decline_is_per_doctor_and_hides_the_case_from_it(desk: Desk) -> None:
    await submitted(desk)
    task = await desk.task()
    declines = [*task.get("extension", []), {
        "url": DECLINED, "valueReference": {"reference": "PractitionerRole/tier-1-paul"}}]
    moved = await desk.move(OTHER_GP, extension=declines)
    assert moved["status"] == "requested"
    with pytest.raises(FhirError) as hidden:
        await desk.acting(OTHER_GP).read("Task", "c-task")
    assert hidden.value.status == 404
    assert (await desk.acting(JULIEN).read("Task", "c-task")).status == 200
    assert await desk.transitions() == ["submit", "decline"]


async def clarification_asked(desk: Desk, reason: str) -> None:
    await submitted(desk)
    await desk.move(JULIEN, status="accepted", businessStatus=status("claimed"),
                    owner={"reference": "PractitionerRole/tier-1-julien-moreau"})
    await desk.move(JULIEN, status="on-hold", businessStatus=status("awaiting-clarification"),
                    statusReason={"coding": [{
                        "system": "https://fhir.pictaderm.com/CodeSystem/clarification-reason",
                        "code": reason}]})


async def test_a_resubmission_needs_a_real_change(desk: Desk) -> None:
    await clarification_asked(desk, "modify-information")
    resubmit = {"status": "in-progress", "businessStatus": status("resubmitted"),
                "statusReason": None}
    with pytest.raises(FhirError) as unchanged:
        await desk.move(CLAIRE, **resubmit)
    assert unchanged.value.status == 422 and "nothing changed" in str(unchanged.value)
    form = resource_of(await desk.engine.read("QuestionnaireResponse", "c-form"))
    same = await desk.acting(CLAIRE).update("QuestionnaireResponse", "c-form", form)
    assert same.version == 1
    with pytest.raises(FhirError):
        await desk.move(CLAIRE, **resubmit)
    form["authored"] = "2026-11-21T10:00:00+01:00"
    await desk.acting(CLAIRE).update("QuestionnaireResponse", "c-form", form)
    assert (await desk.move(CLAIRE, **resubmit))["status"] == "in-progress"
    assert await desk.transitions() == ["submit", "claim", "request-clarification",
                                        "resubmit"]


async def test_new_photos_asked_for_need_a_new_photo(desk: Desk) -> None:
    await clarification_asked(desk, "new-photos")
    form = resource_of(await desk.engine.read("QuestionnaireResponse", "c-form"))
    form.pop("meta", None)
    form["authored"] = "2026-11-21T10:00:00+01:00"
    await desk.acting(CLAIRE).update("QuestionnaireResponse", "c-form", form)
    resubmit = {"status": "in-progress", "businessStatus": status("resubmitted")}
    with pytest.raises(FhirError) as refused:
        await desk.move(CLAIRE, **resubmit)
    assert "new photo" in str(refused.value)
    media = resource_of(await desk.engine.read("Media", "c-photo"))
    media.pop("meta", None)
    media["id"] = "c-photo-2"
    await desk.acting(CLAIRE).update("Media", "c-photo-2", media)
    assert (await desk.move(CLAIRE, **resubmit))["status"] == "in-progress"


async def test_completing_needs_the_final_report_and_closes_the_request(desk: Desk) -> None:
    await submitted(desk)
    await desk.move(JULIEN, status="accepted", businessStatus=status("claimed"),
                    owner={"reference": "PractitionerRole/tier-1-julien-moreau"})
    complete = {"status": "completed", "businessStatus": status("report-available")}
    with pytest.raises(FhirError) as no_report:
        await desk.move(JULIEN, **complete)
    assert no_report.value.status == 422
    report = example("DiagnosticReport-skin-camille-martin")
    report.update({"id": "c-report", "basedOn": [{"reference": "ServiceRequest/c-request"}],
                   "subject": {"reference": "Patient/c-patient"}})
    report.pop("presentedForm", None)
    report.pop("media", None)
    await desk.acting(JULIEN).update("DiagnosticReport", "c-report", report)
    done = await desk.move(JULIEN, **complete, output=[{
        "type": {"text": "compte rendu"},
        "valueReference": {"reference": "DiagnosticReport/c-report"}}])
    assert done["status"] == "completed"
    request = resource_of(await desk.engine.read("ServiceRequest", "c-request"))
    assert request["status"] == "completed"
    with pytest.raises(FhirError) as closed:
        await desk.move(JULIEN, description="after the fact")
    assert closed.value.status == 409


async def test_only_the_requesting_pharmacy_cancels(desk: Desk) -> None:
    await submitted(desk)
    cancel = {"status": "cancelled", "businessStatus": status("cancelled-by-requester")}
    with pytest.raises(FhirError) as doctor:
        await desk.move(JULIEN, **cancel)
    assert doctor.value.status == 409
    assert (await desk.move(CLAIRE, **cancel))["status"] == "cancelled"
    request = resource_of(await desk.engine.read("ServiceRequest", "c-request"))
    assert request["status"] == "revoked"
    with pytest.raises(FhirError) as deleted:
        await desk.acting(CLAIRE).delete("Task", "c-task")
    assert deleted.value.status == 409
