"""Routing: a case moves up the tiers when no doctor of its tier takes it — every eligible,
verified doctor declined, or the tier's deadline passed — and fails after the dermatologists.

Policy from ``domain-model.md`` ("Routing policy"): deadlines per tier in settings (4 h, 8 h,
24 h by default). Both moves are the platform's transitions (``escalate``, ``fail``) written
through the ordinary engine, so the state machine checks them and leaves their Provenance and
events. They are decided from durable state only — the Task, the directory, the Provenance of
the transition that brought the case to its tier — so a restart loses no timer:
- ``on_transition``: the outbox consumer of ``task-transition`` events; after a submission, a
  decline, an escalation or a referral it escalates at once when the tier has no eligible
  doctor left;
- ``sweep_overdue``: run periodically (the API process's ``RoutingSweeper``), it escalates the
  requested cases whose tier deadline passed.
A move re-reads the Task and writes it by compare-and-set: two sweepers, or a sweep racing a
claim, make at most one move (a claimed case is left alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

import orjson

from fhir_server.engine.context import EngineContext
from fhir_server.engine.interactions.update import write_next_version
from fhir_server.engine.write_validation import Checked
from fhir_server.engine.writing import check_resource, load
from fhir_server.errors import FhirError
from fhir_server.outbox.consumers import Consumer
from fhir_server.settings import Settings
from fhir_server.storage.protocol import OutboxEvent, Store, StoredVersion, VersionConflict
from fhir_server.storage.query import (
    ReferenceClause,
    ReferenceValue,
    SearchQuery,
    TokenClause,
    TokenValue,
)
from fhir_server.types import ResourceDict
from fhir_server.workflow.state_machine import BUSINESS_STATUS_SYSTEM, TRANSITIONS, next_tier
from fhir_server.workflow.task_rules import (
    TASK_TRANSITION,
    TIER_SYSTEM,
    TRANSITION_SYSTEM,
    declined_by,
    tier_of,
)

logger = logging.getLogger(__name__)

CONSUMER_NAME: Final = "workflow-routing"
ENTERING: Final = frozenset({"submit", "escalate", "refer-up"})
"""The transitions that bring a case to a tier (its deadline runs from the latest)."""
CHECKED_AFTER: Final = ENTERING | {"decline"}
PAGE: Final = 500

Due = Callable[[ResourceDict], Awaitable[bool]]
"""A condition on the current Task that a move needs (re-checked on the version it replaces)."""


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long a case waits for a claim in each tier."""

    by_tier: Mapping[str, timedelta]

    @classmethod
    def from_settings(cls, settings: Settings) -> Deadlines:
        return cls({"tier-1": timedelta(minutes=settings.tier1_deadline_minutes),
                    "tier-2": timedelta(minutes=settings.tier2_deadline_minutes),
                    "tier-3": timedelta(minutes=settings.tier3_deadline_minutes)})


async def eligible_doctors(ctx: EngineContext, tier: str) -> frozenset[str]:
    """The verified (active) doctors' roles of ``tier``, as ``PractitionerRole/<id>``."""
    page = await ctx.store.search(SearchQuery("PractitionerRole", (
        TokenClause("role", (TokenValue(TIER_SYSTEM, tier),)),
        TokenClause("active", (TokenValue(None, "true"),))), count=10_000))
    return frozenset(f"PractitionerRole/{stored.id}" for stored in page.matches)


async def escalate_if_exhausted(ctx: EngineContext, task_id: str) -> str | None:
    """Escalate (or fail) a requested case whose tier has no eligible doctor left who has not
    declined it; the transition made, or None."""
    platform = replace(ctx, access=None)

    async def due(task: ResourceDict) -> bool:
        tier = tier_of(task)
        if tier is None:
            return False
        return not (await eligible_doctors(platform, tier) - declined_by(task))

    return await _move_up(platform, task_id, due, reason=(
        "Aucun médecin disponible à ce niveau / no doctor left at this tier"))


async def sweep_overdue(ctx: EngineContext, deadlines: Deadlines, *,
                        now: datetime | None = None) -> int:
    """Escalate (or fail) every requested case whose tier deadline has passed; how many."""
    platform = replace(ctx, access=None)
    moment = now or datetime.now(UTC)
    moved = 0
    after: tuple[object, ...] | None = None
    while True:
        page = await platform.store.search(SearchQuery(
            "Task", (TokenClause("status", (TokenValue(None, "requested"),)),),
            count=PAGE, after=after))
        for stored in page.matches:
            if await _overdue(platform, stored, deadlines, moment) and await _move_up(
                    platform, stored.id, _overdue_check(platform, stored.id, deadlines, moment),
                    reason="Délai du niveau dépassé / the tier's deadline passed"):
                moved += 1
        if len(page.matches) < PAGE:
            return moved
        last = page.matches[-1]
        after = (last.resource_type, last.id)


def _overdue_check(ctx: EngineContext, task_id: str, deadlines: Deadlines,
                   moment: datetime) -> Due:
    async def overdue(task: ResourceDict) -> bool:
        return await _still_overdue(ctx, task, task_id, deadlines, moment)

    return overdue


async def _overdue(ctx: EngineContext, stored: StoredVersion, deadlines: Deadlines,
                   moment: datetime) -> bool:
    return await _still_overdue(ctx, load(ctx, stored), stored.id, deadlines, moment)


async def _still_overdue(ctx: EngineContext, task: ResourceDict, task_id: str,
                         deadlines: Deadlines, moment: datetime) -> bool:
    tier = tier_of(task)
    limit = deadlines.by_tier.get(tier or "")
    entered = await _entered_tier(ctx, task_id)
    return limit is not None and entered is not None and moment - entered >= limit


async def _entered_tier(ctx: EngineContext, task_id: str) -> datetime | None:
    """When the case came to its tier: the latest submit, escalate or refer-up Provenance."""
    page = await ctx.store.search(SearchQuery("Provenance", (
        ReferenceClause("target", (ReferenceValue("Task", task_id),)),), count=1000))
    times: list[datetime] = []
    for stored in page.matches:
        provenance = load(ctx, stored)
        codes = {coding.get("code") for coding in
                 (provenance.get("activity") or {}).get("coding") or ()
                 if isinstance(coding, dict) and coding.get("system") == TRANSITION_SYSTEM}
        if codes & ENTERING:
            with contextlib.suppress(ValueError):
                times.append(datetime.fromisoformat(str(provenance.get("recorded"))))
    return max(times, default=None)


async def _move_up(ctx: EngineContext, task_id: str, due: Due, *, reason: str
                   ) -> str | None:
    """Write the escalation (next tier) or the failure (after tier 3) of a requested case when
    ``due`` still holds on its current version."""
    current = await ctx.store.read("Task", task_id)
    if current is None or current.deleted:
        return None
    task = load(ctx, current)
    if task.get("status") != "requested" or not await due(task):
        return None
    name = "escalate" if next_tier(tier_of(task) or "") else "fail"

    def next_content(latest: StoredVersion | None) -> Checked:
        if latest is None or latest.version != current.version:
            raise VersionConflict("Task", task_id, current.version,
                                  latest.version if latest is not None else 0)
        return check_resource(ctx, _moved_up(task, name, reason), "Task")

    try:
        await write_next_version(ctx, "Task", task_id, next_content, if_match=current.version,
                                 method="PUT")
    except FhirError as error:
        if error.status in (409, 412):
            return None
        raise
    return name


def _moved_up(task: ResourceDict, name: str, reason: str) -> ResourceDict:
    transition = TRANSITIONS[name]
    moved = dict(task)
    moved.pop("meta", None)
    if task.get("meta", {}).get("profile"):
        moved["meta"] = {"profile": task["meta"]["profile"]}
    moved["status"] = transition.target
    moved["businessStatus"] = {"coding": [{"system": BUSINESS_STATUS_SYSTEM,
                                           "code": transition.business_status}]}
    moved["statusReason"] = {"text": reason}
    if name == "escalate":
        higher = next_tier(tier_of(task) or "")
        moved["performerType"] = [{"coding": [{"system": TIER_SYSTEM, "code": higher}]}]
    return moved


def routing_consumer(ctx: EngineContext) -> Consumer:
    """The outbox consumer of ``task-transition`` events that escalates exhausted tiers."""

    async def handle(event: OutboxEvent, store: Store) -> None:
        payload = orjson.loads(event.payload)
        if payload.get("transition") not in CHECKED_AFTER:
            return
        task = str(payload.get("task") or "")
        if task.startswith("Task/"):
            await escalate_if_exhausted(replace(ctx, store=store), task.removeprefix("Task/"))

    return Consumer(name=CONSUMER_NAME, topic=TASK_TRANSITION, handler=handle)


class RoutingSweeper:
    """Runs ``sweep_overdue`` every ``period`` seconds until stopped (the API process's timer;
    state is in the store, so any number of processes may run one)."""

    def __init__(self, ctx: EngineContext, deadlines: Deadlines, *, period: float) -> None:
        self._ctx = ctx
        self._deadlines = deadlines
        self._period = period

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                moved = await sweep_overdue(self._ctx, self._deadlines)
                if moved:
                    logger.info("routing: %d case(s) moved up a tier or failed", moved)
            except Exception:
                logger.exception("routing sweep failed; retrying at the next period")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._period)
