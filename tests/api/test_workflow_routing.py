"""Routing on real stores (both backends): a tier without doctors left, or past its deadline,
hands the case to the next tier, and after the dermatologists the case fails — through the
outbox consumer of transitions and the deadline sweep, as the platform."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_server.engine.engine import Engine
from fhir_server.workflow.routing import (
    Deadlines,
    eligible_doctors,
    escalate_if_exhausted,
    sweep_overdue,
)
from tests.api.conftest import Api
from tests.support.workflow_case import BASE, CLAIRE, JULIEN, Desk, example, transaction
from tests.support.workflow_case import skin_case as case_resources

DEADLINES = Deadlines({"tier-1": timedelta(hours=4), "tier-2": timedelta(hours=8),
                       "tier-3": timedelta(hours=24)})


async def desk_with(api: Api, *roles: str) -> Desk:
    """The directory, the doctors' roles named, and a submitted skin case (tier 1)."""
    desk = Desk(api.app.state.engine)
    await desk.load_directory(higher_tiers=False)
    for name in roles:
        resource = example(name)
        await desk.engine.update("PractitionerRole", resource["id"], resource)
    await desk.acting(CLAIRE).process_bundle(transaction(case_resources()), base_url=BASE)
    return desk


async def settled(desk: Desk, status: str, tier: str | None = None) -> dict[str, Any]:
    """The Task once the outbox consumers moved it to ``status`` (and ``tier``)."""
    for _ in range(200):
        task = await desk.task()
        tiers = [c["code"] for concept in task["performerType"] for c in concept["coding"]]
        if task["status"] == status and (tier is None or tier in tiers):
            return task
        await asyncio.sleep(0.05)
    raise AssertionError(f"the Task did not reach {status} {tier or ''}: {task}")


async def test_eligible_doctors_are_the_active_roles_of_the_tier(api: Api) -> None:
    desk = await desk_with(api, "PractitionerRole-tier-2-nadia-haddad")
    engine: Engine = desk.engine
    assert await eligible_doctors(engine.ctx, "tier-1") == {
        "PractitionerRole/tier-1-julien-moreau"}
    assert await eligible_doctors(engine.ctx, "tier-2") == {
        "PractitionerRole/tier-2-nadia-haddad"}
    assert await eligible_doctors(engine.ctx, "tier-3") == frozenset()


async def test_when_every_doctor_of_the_tier_declined_the_case_moves_up(api: Api) -> None:
    desk = await desk_with(api, "PractitionerRole-tier-2-nadia-haddad")
    assert await escalate_if_exhausted(desk.engine.ctx, "c-task") is None
    await desk.invoke(JULIEN, "decline", {"name": "reason", "valueString": "absent"})
    task = await settled(desk, "requested", "tier-2")
    assert task["businessStatus"]["coding"][0]["code"] == "escalated"
    assert await desk.transitions() == ["submit", "decline", "escalate"]


async def test_with_no_doctor_anywhere_the_case_fails(api: Api) -> None:
    desk = await desk_with(api)
    await desk.invoke(JULIEN, "decline")
    task = await settled(desk, "failed")
    assert task["businessStatus"]["coding"][0]["code"] == "no-expert-available"
    assert await desk.transitions() == ["submit", "decline", "escalate", "escalate", "fail"]


async def test_a_tier_past_its_deadline_hands_the_case_up(api: Api) -> None:
    desk = await desk_with(api, "PractitionerRole-tier-2-nadia-haddad",
                           "PractitionerRole-tier-3-sophie-laurent")
    now = datetime.now(UTC)
    assert await sweep_overdue(desk.engine.ctx, DEADLINES, now=now + timedelta(hours=3)) == 0
    assert await sweep_overdue(desk.engine.ctx, DEADLINES, now=now + timedelta(hours=5)) == 1
    task = await desk.task()
    assert task["performerType"][0]["coding"][0]["code"] == "tier-2"
    assert await sweep_overdue(desk.engine.ctx, DEADLINES, now=now + timedelta(hours=5)) == 0
    assert await sweep_overdue(desk.engine.ctx, DEADLINES, now=now + timedelta(hours=14)) == 1
    assert await sweep_overdue(desk.engine.ctx, DEADLINES, now=now + timedelta(hours=40)) == 1
    assert (await desk.task())["status"] == "failed"


async def test_a_claimed_case_is_left_alone(api: Api) -> None:
    desk = await desk_with(api)
    await desk.invoke(JULIEN, "claim")
    later = datetime.now(UTC) + timedelta(days=3)
    assert await sweep_overdue(desk.engine.ctx, DEADLINES, now=later) == 0
    assert (await desk.task())["status"] == "accepted"


@pytest.mark.parametrize("minutes", [1])
async def test_deadlines_come_from_the_settings(api: Api, minutes: int) -> None:
    settings = api.app.state.settings.model_copy(update={"tier1_deadline_minutes": minutes})
    assert Deadlines.from_settings(settings).by_tier["tier-1"] == timedelta(minutes=minutes)
