"""The workflow's figures, ``$stats``: cases by status, time to first claim and to answer,
declines, escalations, clarifications and the share of cases answered at tiers 1-2 (the terms
of use promise more than 80 %), overall and per pharmacy (issue #6 §4; ``domain-model.md``,
"What the server reports").

Three parts: the figures are pure functions over one ``CaseTimeline`` per case (the case Task's
transitions, from its Provenances); the reading builds those timelines from the store, without
the caller's access (the figures are aggregates, no health data leaves); the operation checks
the caller (the operator, an ``admin`` or the ``medical-director``) and answers a Parameters.
Notes: ``docs/implementation/workflow.md`` ("Figures").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from fhir_server.engine.context import EngineContext
from fhir_server.engine.instants import fhir_range, from_instant
from fhir_server.engine.operations import Operation, OperationCall, OperationResult
from fhir_server.engine.writing import load
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.storage.query import (
    AnyClause,
    ChainClause,
    Clause,
    ReferenceClause,
    ReferenceValue,
    SearchQuery,
    TokenClause,
    TokenValue,
    UriClause,
)
from fhir_server.types import ResourceDict
from fhir_server.workflow.case_facts import reference_key
from fhir_server.workflow.state_machine import TRANSITIONS
from fhir_server.workflow.task_rules import (
    TASK_PROFILE,
    TIER_SYSTEM,
    TRANSITION_SYSTEM,
    is_case_task,
    tier_of,
)

DEFINITION: Final = "https://fhir.pictaderm.com/OperationDefinition/stats"
ALLOWED_ROLES: Final = frozenset({"admin", "medical-director"})
STATUS_ORDER: Final = ("draft", "requested", "accepted", "in-progress", "on-hold", "completed",
                       "cancelled", "failed")
"""The case statuses, in the order of the state machine; each is reported, zero or not."""
TIERS: Final = ("tier-1", "tier-2", "tier-3")
FIRST_LINE: Final = frozenset({"tier-1", "tier-2"})
FIRST_LINE_TARGET: Final = 0.8
"""R2.2: tier-1/2 doctors answer more than 80 % of the cases."""
ESCALATIONS: Final = frozenset({"escalate", "refer-up"})
PAGE: Final = 500
TARGETS_PER_QUERY: Final = 100
UCUM: Final = "http://unitsofmeasure.org"
PARAMETERS: Final = frozenset({"pharmacy", "since", "until"})
_ORGANIZATION = re.compile(r"^Organization/[A-Za-z0-9\-.]{1,64}$")


# --- One case, as its transitions -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Step:
    """One transition of a case (``submit``, ``claim``…), when it was recorded and the Task
    version it made (None when its Provenance does not say)."""

    transition: str
    at: datetime
    version: int | None = None


@dataclass(frozen=True, slots=True)
class CaseTimeline:
    """A case: its Task (``Task/<id>``), current status and tier (the tier it was completed at,
    once completed: a completed Task no longer changes), the pharmacy that requested it
    (``Organization/<id>``, None when unknown) and its transitions in order."""

    task: str
    status: str
    tier: str | None
    pharmacy: str | None
    steps: tuple[Step, ...] = ()

    @property
    def submitted(self) -> datetime | None:
        """When the case was submitted (its first ``submit``); None for a draft."""
        return self.first("submit")

    def first(self, transition: str) -> datetime | None:
        """When ``transition`` first happened, None if it never did."""
        return next((step.at for step in self.steps if step.transition == transition), None)

    def count(self, transitions: frozenset[str]) -> int:
        """How many of its steps are one of ``transitions``."""
        return sum(1 for step in self.steps if step.transition in transitions)


# --- The figures (pure) -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Durations:
    """Durations in minutes: how many were measured, their median and 95th percentile."""

    count: int
    p50: float | None
    p95: float | None


@dataclass(frozen=True, slots=True)
class TierShare:
    """The completed cases by the tier that answered, and the share answered at tiers 1-2
    against the target (``share`` and ``met`` None while no case is completed)."""

    completed: int
    by_tier: tuple[tuple[str, int], ...]
    first_line: int
    share: float | None
    target: float
    met: bool | None


@dataclass(frozen=True, slots=True)
class Figures:
    """What the server reports about a set of cases."""

    cases: int
    by_status: tuple[tuple[str, int], ...]
    time_to_first_claim: Durations
    time_to_answer: Durations
    declines: int
    escalations: int
    clarifications: int
    tiers: TierShare


@dataclass(frozen=True, slots=True)
class Report:
    """The figures of every case, and of each pharmacy's cases (by ``Organization/<id>``)."""

    overall: Figures
    pharmacies: tuple[tuple[str, Figures], ...]


def percentile(values: Sequence[float], rank: float) -> float | None:
    """The ``rank``-th percentile (0 < rank <= 100) by the nearest-rank method: the smallest
    value that at least ``rank`` % of the values do not exceed. None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(math.ceil(rank / 100 * len(ordered)) - 1, 0)
    return ordered[index]


def durations(values: Sequence[float]) -> Durations:
    return Durations(count=len(values), p50=percentile(values, 50), p95=percentile(values, 95))


def minutes_between(start: datetime | None, end: datetime | None) -> float | None:
    """Minutes from ``start`` to ``end``; None when one is missing or the end comes first."""
    if start is None or end is None or end < start:
        return None
    return (end - start).total_seconds() / 60


def time_to_first_claim(case: CaseTimeline) -> float | None:
    """Minutes from submission to the first claim (None while unclaimed)."""
    submitted = case.submitted
    claims = [step.at for step in case.steps
              if step.transition == "claim" and submitted is not None and step.at >= submitted]
    return minutes_between(submitted, min(claims, default=None))


def time_to_answer(case: CaseTimeline) -> float | None:
    """Minutes from submission to the answer (``complete``); None while unanswered."""
    return minutes_between(case.submitted, case.first("complete"))


def status_counts(cases: Sequence[CaseTimeline]) -> tuple[tuple[str, int], ...]:
    """Cases per status: every status of the machine in its order, then any other found."""
    found: dict[str, int] = {}
    for case in cases:
        found[case.status] = found.get(case.status, 0) + 1
    others = sorted(status for status in found if status not in STATUS_ORDER)
    return tuple((status, found.get(status, 0)) for status in (*STATUS_ORDER, *others))


def tier_share(cases: Sequence[CaseTimeline]) -> TierShare:
    """The completed cases per tier and the share answered at tiers 1-2 (met: more than the
    target)."""
    completed = [case for case in cases if case.status == "completed"]
    by_tier = tuple((tier, sum(1 for case in completed if case.tier == tier)) for tier in TIERS)
    first_line = sum(1 for case in completed if case.tier in FIRST_LINE)
    share = first_line / len(completed) if completed else None
    return TierShare(completed=len(completed), by_tier=by_tier, first_line=first_line,
                     share=share, target=FIRST_LINE_TARGET,
                     met=None if share is None else share > FIRST_LINE_TARGET)


def figures(cases: Sequence[CaseTimeline]) -> Figures:
    """The figures of ``cases``."""
    claims = [m for case in cases if (m := time_to_first_claim(case)) is not None]
    answers = [m for case in cases if (m := time_to_answer(case)) is not None]
    return Figures(
        cases=len(cases), by_status=status_counts(cases),
        time_to_first_claim=durations(claims), time_to_answer=durations(answers),
        declines=sum(case.count(frozenset({"decline"})) for case in cases),
        escalations=sum(case.count(ESCALATIONS) for case in cases),
        clarifications=sum(case.count(frozenset({"request-clarification"})) for case in cases),
        tiers=tier_share(cases))


def by_pharmacy(cases: Iterable[CaseTimeline]) -> dict[str, list[CaseTimeline]]:
    """The cases of each known pharmacy, pharmacies in reference order."""
    grouped: dict[str, list[CaseTimeline]] = {}
    for case in cases:
        if case.pharmacy is not None:
            grouped.setdefault(case.pharmacy, []).append(case)
    return dict(sorted(grouped.items()))


def report(cases: Sequence[CaseTimeline]) -> Report:
    """The figures overall and per pharmacy."""
    return Report(overall=figures(cases),
                  pharmacies=tuple((pharmacy, figures(own))
                                   for pharmacy, own in by_pharmacy(cases).items()))


def submitted_within(case: CaseTimeline, since: datetime | None,
                     until: datetime | None) -> bool:
    """Whether the case was submitted in [since, until] (an open end is unbounded). With no
    bound every case counts, drafts too; with one, only submitted cases."""
    if since is None and until is None:
        return True
    submitted = case.submitted
    if submitted is None:
        return False
    return (since is None or submitted >= since) and (until is None or submitted <= until)


# --- Timelines from resources (pure) ----------------------------------------------------------

def step_of(provenance: ResourceDict) -> Step | None:
    """The transition a workflow Provenance records (None for any other Provenance)."""
    transition = next((coding.get("code")
                       for coding in (provenance.get("activity") or {}).get("coding") or ()
                       if isinstance(coding, dict) and coding.get("system") == TRANSITION_SYSTEM),
                      None)
    at = parse_moment(provenance.get("recorded"))
    if not isinstance(transition, str) or transition not in TRANSITIONS or at is None:
        return None
    return Step(transition=transition, at=at, version=_task_version(provenance))


def timeline_of(task: ResourceDict, provenances: Iterable[ResourceDict], *,
                pharmacy: str | None) -> CaseTimeline:
    """The timeline of a case Task from the Provenances of its transitions."""
    steps = sorted((step for provenance in provenances
                    if (step := step_of(provenance)) is not None),
                   key=lambda step: (step.at, step.version or 0))
    return CaseTimeline(task=f"Task/{task.get('id')}", status=str(task.get("status")),
                        tier=tier_of(task), pharmacy=pharmacy, steps=tuple(steps))


def parse_moment(value: object) -> datetime | None:
    """A FHIR instant or dateTime with a time as an aware datetime (UTC when no zone)."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _task_version(provenance: ResourceDict) -> int | None:
    for target in provenance.get("target") or ():
        reference = (target or {}).get("reference") if isinstance(target, dict) else None
        if isinstance(reference, str) and reference.startswith("Task/") \
                and "/_history/" in reference:
            version = reference.rsplit("/_history/", 1)[1]
            if version.isdigit():
                return int(version)
    return None


# --- Reading the cases ------------------------------------------------------------------------

async def read_timelines(ctx: EngineContext, *, pharmacy: str | None) -> list[CaseTimeline]:
    """Every case (of ``pharmacy`` when given) with its transitions, read from the store
    without the caller's access."""
    unlimited = replace(ctx, access=None)
    tasks = await read_case_tasks(unlimited, pharmacy=pharmacy)
    provenances = await read_transitions(unlimited, [str(task["id"]) for task in tasks])
    pharmacies = PharmacyOf(unlimited)
    return [timeline_of(task, provenances.get(str(task["id"]), ()),
                        pharmacy=await pharmacies.of(task.get("requester")))
            for task in tasks]


async def read_case_tasks(ctx: EngineContext, *, pharmacy: str | None) -> list[ResourceDict]:
    """The current case Tasks (our profile or a tier), of ``pharmacy`` when given."""
    where: list[Clause] = [AnyClause((UriClause("_profile", (TASK_PROFILE,)),
                                      TokenClause("tier", (TokenValue(TIER_SYSTEM, None),))))]
    if pharmacy is not None:
        where.append(requested_by(pharmacy))
    return [task for task in await _all(ctx, "Task", tuple(where)) if is_case_task(task)]


def requested_by(pharmacy: str) -> Clause:
    """Tasks requested by the pharmacy: by one of its roles, or by the pharmacy itself."""
    value = ReferenceValue("Organization", pharmacy.removeprefix("Organization/"))
    return AnyClause((ChainClause("requester", "PractitionerRole",
                                  (ReferenceClause("organization", (value,)),)),
                      ReferenceClause("requester", (value,))))


async def read_transitions(ctx: EngineContext, task_ids: Sequence[str]
                           ) -> dict[str, list[ResourceDict]]:
    """The Provenances targeting each Task, by Task id (a query per hundred Tasks)."""
    found: dict[str, list[ResourceDict]] = {}
    wanted = set(task_ids)
    for start in range(0, len(task_ids), TARGETS_PER_QUERY):
        batch = task_ids[start:start + TARGETS_PER_QUERY]
        clause = ReferenceClause("target", tuple(ReferenceValue("Task", id) for id in batch))
        for provenance in await _all(ctx, "Provenance", (clause,)):
            for id in _targeted_tasks(provenance) & wanted:
                found.setdefault(id, []).append(provenance)
    return found


def _targeted_tasks(provenance: ResourceDict) -> set[str]:
    return {key.removeprefix("Task/") for target in provenance.get("target") or ()
            if (key := reference_key(target)) is not None and key.startswith("Task/")}


async def _all(ctx: EngineContext, resource_type: str, where: tuple[Clause, ...]
               ) -> list[ResourceDict]:
    """Every current resource matching ``where``, page after page."""
    found: list[ResourceDict] = []
    after: tuple[object, ...] | None = None
    while True:
        page = await ctx.store.search(SearchQuery(resource_type, where, count=PAGE,
                                                  after=after))
        found.extend(load(ctx, stored) for stored in page.matches)
        if len(page.matches) < PAGE:
            return found
        after = (resource_type, page.matches[-1].id)


class PharmacyOf:
    """The pharmacy (``Organization/<id>``) of a Task's requester: the Organization itself,
    or the organization of the PractitionerRole; each role read once."""

    def __init__(self, ctx: EngineContext) -> None:
        self._ctx = ctx
        self._roles: dict[str, str | None] = {}

    async def of(self, requester: object) -> str | None:
        key = reference_key(requester)
        if key is None:
            return None
        if key.startswith("Organization/"):
            return key
        if not key.startswith("PractitionerRole/"):
            return None
        if key not in self._roles:
            self._roles[key] = await self._organization_of(key)
        return self._roles[key]

    async def _organization_of(self, role_key: str) -> str | None:
        stored = await self._ctx.store.read("PractitionerRole", role_key.split("/", 1)[1])
        if stored is None or stored.deleted:
            return None
        organization = reference_key(load(self._ctx, stored).get("organization"))
        return organization if organization and organization.startswith("Organization/") \
            else None


# --- The operation ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StatsRequest:
    """The parameters of a ``$stats`` call: one pharmacy, and a window on submission times
    (inclusive bounds; None: open)."""

    pharmacy: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def stats(ctx: EngineContext, call: OperationCall) -> OperationResult:
    """``$stats``: the figures of the cases (see the module doc)."""
    check_caller(ctx)
    request = stats_request(call.parameters)
    timelines = await read_timelines(ctx, pharmacy=request.pharmacy)
    chosen = [case for case in timelines
              if submitted_within(case, request.since, request.until)]
    return OperationResult(report_parameters(report(chosen), request))


def check_caller(ctx: EngineContext) -> None:
    """403 for anyone but the operator, an admin or the medical director."""
    if ctx.access is None:
        return
    principal = ctx.access.principal
    if principal is not None and principal.role in ALLOWED_ROLES:
        return
    who = f"your role is '{principal.role}'" if principal is not None else "you act as a client"
    raise FhirError(ErrorCode.FORBIDDEN,
                    f"$stats reports the platform's figures to its administrators and its "
                    f"medical director only ({who})")


def stats_request(parameters: ResourceDict) -> StatsRequest:
    """The ``pharmacy``, ``since`` and ``until`` of an invocation; 400 for anything else."""
    given = _given(parameters)
    unknown = sorted(set(given) - PARAMETERS)
    if unknown:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        f"$stats takes pharmacy, since and until; not: {', '.join(unknown)}",
                        expression=(unknown[0],))
    pharmacy = _single(given, "pharmacy")
    if pharmacy is not None and not _ORGANIZATION.match(pharmacy):
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        "pharmacy is the pharmacy's reference: Organization/<id>",
                        expression=("pharmacy",))
    since = _bound(_single(given, "since"), "since", upper=False)
    until = _bound(_single(given, "until"), "until", upper=True)
    if since is not None and until is not None and since > until:
        raise FhirError(ErrorCode.BAD_PARAMETER, "since comes after until",
                        expression=("since",))
    return StatsRequest(pharmacy=pharmacy, since=since, until=until)


def _given(parameters: ResourceDict) -> dict[str, list[str]]:
    """Each parameter's values as text (a Reference by its ``reference``)."""
    given: dict[str, list[str]] = {}
    for parameter in parameters.get("parameter") or ():
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            continue
        values = given.setdefault(parameter["name"], [])
        for key, value in parameter.items():
            if key == "valueReference" and isinstance(value, dict):
                value = value.get("reference")
            if key.startswith("value") and isinstance(value, str):
                values.append(value.strip())
    return given


def _single(given: Mapping[str, list[str]], name: str) -> str | None:
    values = given.get(name, [])
    if len(values) > 1:
        raise FhirError(ErrorCode.BAD_PARAMETER, f"$stats takes {name} once",
                        expression=(name,))
    return values[0] if values and values[0] else None


def _bound(value: str | None, name: str, *, upper: bool) -> datetime | None:
    """The first (``since``) or last (``until``) instant a FHIR date or dateTime covers; a
    value without a zone is read as UTC."""
    if value is None:
        return None
    try:
        low, high = fhir_range(value)
    except ValueError:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        f"{name} is a date (2026-11-20) or a dateTime with its zone",
                        expression=(name,)) from None
    return from_instant(high if upper else low)


# --- The answer -------------------------------------------------------------------------------

def report_parameters(answer: Report, request: StatsRequest) -> ResourceDict:
    """The Parameters of ``$stats`` (shape in ``OperationDefinition-stats.json``)."""
    parameters: list[dict[str, Any]] = []
    if request.pharmacy is not None:
        parameters.append({"name": "pharmacy", "valueReference": {"reference": request.pharmacy}})
    if request.since is not None:
        parameters.append({"name": "since", "valueInstant": _instant(request.since)})
    if request.until is not None:
        parameters.append({"name": "until", "valueInstant": _instant(request.until)})
    parameters.append({"name": "overall", "part": figure_parts(answer.overall)})
    parameters.extend({"name": "perPharmacy", "part": [
        {"name": "pharmacy", "valueReference": {"reference": pharmacy}},
        *figure_parts(own)]} for pharmacy, own in answer.pharmacies)
    return {"resourceType": "Parameters", "parameter": parameters}


def figure_parts(figures: Figures) -> list[dict[str, Any]]:
    """The parts describing one set of figures."""
    return [
        {"name": "cases", "valueInteger": figures.cases},
        *({"name": "status", "part": [{"name": "code", "valueCode": status},
                                      {"name": "count", "valueInteger": count}]}
          for status, count in figures.by_status),
        {"name": "timeToFirstClaim", "part": _duration_parts(figures.time_to_first_claim)},
        {"name": "timeToAnswer", "part": _duration_parts(figures.time_to_answer)},
        {"name": "declines", "valueInteger": figures.declines},
        {"name": "escalations", "valueInteger": figures.escalations},
        {"name": "clarifications", "valueInteger": figures.clarifications},
        {"name": "tiers", "part": _tier_parts(figures.tiers)},
    ]


def _duration_parts(measured: Durations) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"name": "count", "valueInteger": measured.count}]
    for name, value in (("p50", measured.p50), ("p95", measured.p95)):
        if value is not None:
            parts.append({"name": name, "valueQuantity": {
                "value": round(value, 1), "unit": "min", "system": UCUM, "code": "min"}})
    return parts


def _tier_parts(tiers: TierShare) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"name": "completed", "valueInteger": tiers.completed}]
    parts.extend({"name": "answered", "part": [
        {"name": "tier", "valueCoding": {"system": TIER_SYSTEM, "code": tier}},
        {"name": "count", "valueInteger": count}]} for tier, count in tiers.by_tier)
    parts.append({"name": "firstLine", "valueInteger": tiers.first_line})
    if tiers.share is not None:
        parts.append({"name": "share", "valueDecimal": round(tiers.share, 4)})
    parts.append({"name": "target", "valueDecimal": tiers.target})
    if tiers.met is not None:
        parts.append({"name": "met", "valueBoolean": tiers.met})
    return parts


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def stats_operation() -> Operation:
    """``$stats`` at the system level, GET or POST (it changes nothing)."""
    return Operation(name="stats", handler=stats, levels=frozenset({"system"}),
                     definition=DEFINITION, affects_state=False)
