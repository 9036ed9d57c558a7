"""The tele-expertise workflow over HTTP in-process, on both backends, with each person's own
token from the real sign-in (the demo's building blocks, ``fhir_server/demo.py``): the demo's
scenario, an escalation to tier 3 after every tier-1 and tier-2 doctor declined, a failure when
no tier-3 doctor exists (the routing escalates and fails by itself), and simultaneous claims."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx

from fhir_server.demo import Cast, Scenario, Server, invoke, seed, send_intake, stats, task_state
from tests.api.conftest import TOKEN, Api

SERVER = Server(fhir_base="http://test/fhir", operator_token=TOKEN)
TIER_SYSTEM = "https://fhir.pictaderm.com/CodeSystem/expertise-tier"
DECLINE = {"name": "reason", "valueString": "indisponible"}


async def cast_of(api: Api, doctors: Mapping[str, int]) -> Cast:
    return await seed(api.anonymous, SERVER, doctors)


async def tier_of(http: httpx.AsyncClient, task: str) -> str:
    body = (await http.get(f"/Task/{task}")).json()
    codes: list[str] = [coding["code"] for concept in body.get("performerType", [])
             for coding in concept["coding"] if coding["system"] == TIER_SYSTEM]
    return codes[0]


async def settled(api: Api, task: str, status: str, business: str,
                  tier: str | None = None) -> None:
    """Wait until the routing (outbox consumer) moved the Task to the state wanted."""
    for _ in range(300):
        state = await task_state(api.anonymous, SERVER, task)
        if state == (status, business) and (tier is None or await tier_of(api.client, task)
                                            == tier):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"Task/{task} stayed {state}, not {status}/{business} {tier or ''}")


async def test_the_demo_scenario_runs_through_the_public_api(api: Api) -> None:
    cast = await cast_of(api, {"tier-1": 2, "tier-2": 1, "tier-3": 1})
    steps = await Scenario(api.anonymous, SERVER, cast).run()
    assert [(s.actor, s.action, s.status, f"{s.task_status}/{s.business_status}")
            for s in steps] == [
        ("pharmacist", "sends the case (transaction)", 200, "requested/awaiting-claim"),
        ("tier-1 doctor A", "$decline", 200, "requested/awaiting-claim"),
        ("tier-1 doctor B", "$claim", 200, "accepted/claimed"),
        ("tier-1 doctor B", "$request-clarification", 200, "on-hold/awaiting-clarification"),
        ("pharmacist", "$resubmit unchanged (refused)", 422, "on-hold/awaiting-clarification"),
        ("pharmacist", "adds a photo (transaction)", 200, "on-hold/awaiting-clarification"),
        ("pharmacist", "$resubmit", 200, "in-progress/resubmitted"),
        ("tier-1 doctor B", "$complete", 200, "completed/report-available")]
    assert all(step.ok for step in steps)
    assert "new photo" in steps[4].note
    task_id = (await api.client.get("/Task", params={"status": "completed"})).json()[
        "entry"][0]["resource"]["id"]
    task = (await api.anonymous.get(f"/Task/{task_id}", headers=cast.pharmacist.headers)).json()
    report = task["output"][0]["valueReference"]["reference"]
    answer = await api.anonymous.get(f"/{report}", headers=cast.pharmacist.headers)
    assert answer.status_code == 200 and answer.json()["conclusion"].startswith("Aspect")
    assert answer.json()["performer"] == [{"reference": cast.doctors["tier-1"][1]
                                           .practitioner_role}]
    figures = {part["name"]: part for part in next(
        p for p in (await stats(api.anonymous, SERVER))["parameter"]
        if p["name"] == "overall")["part"]}
    assert figures["declines"]["valueInteger"] == 1
    assert figures["clarifications"]["valueInteger"] == 1
    assert figures["cases"]["valueInteger"] == 1


async def test_a_case_every_tier_1_and_tier_2_doctor_declines_reaches_tier_3(api: Api) -> None:
    cast = await cast_of(api, {"tier-1": 2, "tier-2": 1, "tier-3": 1})
    _, case = await send_intake(api.anonymous, SERVER, cast.pharmacist, family="ESCALADE")
    for doctor in cast.doctors["tier-1"]:
        declined = await invoke(api.anonymous, SERVER, doctor, case.task, "decline", DECLINE)
        assert declined.status_code == 200, declined.text
    await settled(api, case.task, "requested", "escalated", "tier-2")
    (specialist,) = cast.doctors["tier-2"]
    assert (await invoke(api.anonymous, SERVER, specialist, case.task, "decline",
                         DECLINE)).status_code == 200
    await settled(api, case.task, "requested", "escalated", "tier-3")
    late = await invoke(api.anonymous, SERVER, cast.doctors["tier-1"][0], case.task, "claim")
    assert late.status_code in (403, 404, 409)
    (dermatologist,) = cast.doctors["tier-3"]
    claimed = await invoke(api.anonymous, SERVER, dermatologist, case.task, "claim")
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["owner"] == {"reference": dermatologist.practitioner_role}


async def test_without_a_tier_3_doctor_the_case_fails_by_itself(api: Api) -> None:
    cast = await cast_of(api, {"tier-1": 1, "tier-2": 1})
    _, case = await send_intake(api.anonymous, SERVER, cast.pharmacist, family="ECHEC")
    for tier in ("tier-1", "tier-2"):
        await settled(api, case.task, "requested",
                      "awaiting-claim" if tier == "tier-1" else "escalated", tier)
        (doctor,) = cast.doctors[tier]
        assert (await invoke(api.anonymous, SERVER, doctor, case.task, "decline",
                             DECLINE)).status_code == 200
    await settled(api, case.task, "failed", "no-expert-available")
    task = (await api.anonymous.get(f"/Task/{case.task}",
                                    headers=cast.pharmacist.headers)).json()
    assert task["status"] == "failed"
    (doctor,) = cast.doctors["tier-2"]
    assert (await invoke(api.anonymous, SERVER, doctor, case.task, "claim")).status_code in (
        403, 404, 409)


async def test_of_simultaneous_claims_over_http_exactly_one_wins(api: Api) -> None:
    cast = await cast_of(api, {"tier-1": 4})
    _, case = await send_intake(api.anonymous, SERVER, cast.pharmacist, family="CONCURRENCE")
    doctors = cast.doctors["tier-1"]
    answers = await asyncio.gather(*(invoke(api.anonymous, SERVER, doctor, case.task, "claim")
                                     for doctor in doctors))
    statuses = [answer.status_code for answer in answers]
    # exactly one wins; a loser whose claim read the Task before the win gets 409, one that
    # read it after no longer sees the case (it is the winner's now): 404, as for any case it
    # may not see
    assert statuses.count(200) == 1, [a.text for a in answers]
    assert all(status in (404, 409) for status in statuses if status != 200), statuses
    winner = doctors[statuses.index(200)]
    for answer in answers:
        if answer.status_code != 200:
            assert answer.json()["resourceType"] == "OperationOutcome"
    task = (await api.client.get(f"/Task/{case.task}")).json()
    assert task["owner"] == {"reference": winner.practitioner_role}
    assert task["status"] == "accepted"
