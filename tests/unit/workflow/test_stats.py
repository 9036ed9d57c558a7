"""The workflow's figures as pure functions: percentiles, durations, counts of transitions, the
share answered at tiers 1-2, the split per pharmacy, the submission window, empty data, the
timeline read from Provenances and the Parameters answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhir_server.errors import FhirError
from fhir_server.workflow.stats import (
    CaseTimeline,
    Durations,
    StatsRequest,
    Step,
    by_pharmacy,
    figures,
    percentile,
    report,
    report_parameters,
    stats_request,
    step_of,
    submitted_within,
    tier_share,
    time_to_answer,
    time_to_first_claim,
    timeline_of,
)

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
CENTRE = "Organization/pharmacie-du-centre"
PORT = "Organization/pharmacie-du-port"
TRANSITION = "https://fhir.pictaderm.com/CodeSystem/task-transition"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def case(name: str, status: str, *moves: tuple[str, float], tier: str | None = "tier-1",
         pharmacy: str | None = CENTRE) -> CaseTimeline:
    """A case whose transitions happen ``minutes`` after T0."""
    steps = tuple(Step(transition, at(minutes), version)
                  for version, (transition, minutes) in enumerate(moves, start=2))
    return CaseTimeline(task=f"Task/{name}", status=status, tier=tier, pharmacy=pharmacy,
                        steps=steps)


def parameters(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"resourceType": "Parameters",
            "parameter": [{"name": name, "valueString": value} for name, value in pairs]}


def part(parameter: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [p for p in parameter["part"] if p["name"] == name]
    assert len(found) == 1, name
    return found[0]


# --- percentiles and durations ------------------------------------------------------------------

def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(10, 0, -1)]
    assert percentile(values, 50) == 5.0
    assert percentile(values, 95) == 10.0
    assert percentile(values, 90) == 9.0
    assert percentile([7.0], 50) == percentile([7.0], 95) == 7.0
    assert percentile([3.0, 1.0], 50) == 1.0
    assert percentile([], 50) is None


def test_times_run_from_submission_to_first_claim_and_to_answer() -> None:
    answered = case("a", "completed", ("submit", 0), ("decline", 5), ("claim", 30),
                    ("refer-up", 40), ("claim", 70), ("complete", 150))
    assert time_to_first_claim(answered) == 30.0
    assert time_to_answer(answered) == 150.0
    waiting = case("b", "requested", ("submit", 10))
    assert time_to_first_claim(waiting) is None and time_to_answer(waiting) is None
    draft = case("c", "draft")
    assert draft.submitted is None and time_to_first_claim(draft) is None


def test_durations_only_measure_the_cases_that_reached_the_step() -> None:
    cases = [case(f"t{n}", "completed", ("submit", 0), ("claim", n), ("complete", 10 * n))
             for n in range(1, 21)]
    cases.append(case("open", "requested", ("submit", 0)))
    result = figures(cases)
    assert result.time_to_first_claim == Durations(count=20, p50=10.0, p95=19.0)
    assert result.time_to_answer == Durations(count=20, p50=100.0, p95=190.0)


# --- counts and the share at tiers 1-2 ----------------------------------------------------------

def test_cases_by_status_list_every_status_of_the_machine_in_order() -> None:
    result = figures([case("a", "completed", ("submit", 0)),
                      case("b", "completed", ("submit", 0)),
                      case("c", "on-hold", ("submit", 0)),
                      case("d", "received")])
    assert result.cases == 4
    assert result.by_status == (("draft", 0), ("requested", 0), ("accepted", 0),
                                ("in-progress", 0), ("on-hold", 1), ("completed", 2),
                                ("cancelled", 0), ("failed", 0), ("received", 1))


def test_declines_escalations_and_clarifications_are_counted_per_transition() -> None:
    busy = case("a", "in-progress", ("submit", 0), ("decline", 1), ("decline", 2),
                ("escalate", 3), ("claim", 4), ("refer-up", 5), ("claim", 6),
                ("request-clarification", 7), ("resubmit", 8),
                ("request-clarification", 9), ("resubmit", 10), tier="tier-3")
    quiet = case("b", "requested", ("submit", 0), ("decline", 1))
    result = figures([busy, quiet])
    assert (result.declines, result.escalations, result.clarifications) == (3, 2, 2)


def test_the_share_answered_at_tiers_one_and_two_against_the_target() -> None:
    completed = [case(f"{tier}-{n}", "completed", tier=tier)
                 for tier, count in (("tier-1", 5), ("tier-2", 3), ("tier-3", 2))
                 for n in range(count)]
    open_at_tier_3 = case("open", "requested", tier="tier-3")
    share = tier_share([*completed, open_at_tier_3])
    assert share.completed == 10
    assert share.by_tier == (("tier-1", 5), ("tier-2", 3), ("tier-3", 2))
    assert (share.first_line, share.share, share.target) == (8, 0.8, 0.8)
    assert share.met is False, "the terms of use promise more than 80 %"
    more = tier_share([*completed, case("one-more", "completed", tier="tier-2")])
    assert more.share == pytest.approx(9 / 11) and more.met is True


def test_no_data_gives_zeros_and_no_share() -> None:
    result = figures([])
    assert result.cases == 0
    assert all(count == 0 for _, count in result.by_status)
    assert result.time_to_first_claim == result.time_to_answer == Durations(0, None, None)
    assert (result.declines, result.escalations, result.clarifications) == (0, 0, 0)
    assert (result.tiers.completed, result.tiers.share, result.tiers.met) == (0, None, None)
    assert report([]).pharmacies == ()


# --- per pharmacy and the window ----------------------------------------------------------------

def test_the_figures_are_split_per_pharmacy() -> None:
    cases = [case("a", "completed", ("submit", 0), ("claim", 10), ("complete", 20)),
             case("b", "cancelled", ("submit", 0), ("cancel", 5)),
             case("c", "completed", ("submit", 0), ("claim", 60), ("complete", 90),
                  tier="tier-3", pharmacy=PORT),
             case("d", "requested", ("submit", 0), pharmacy=None)]
    assert list(by_pharmacy(cases)) == [CENTRE, PORT]
    answer = report(cases)
    assert answer.overall.cases == 4 and answer.overall.tiers.share == 0.5
    (centre, centre_figures), (port, port_figures) = answer.pharmacies
    assert (centre, centre_figures.cases, centre_figures.tiers.met) == (CENTRE, 2, True)
    assert (port, port_figures.cases, port_figures.tiers.met) == (PORT, 1, False)
    assert port_figures.time_to_first_claim == Durations(1, 60.0, 60.0)


def test_the_window_is_on_the_submission_time() -> None:
    early = case("early", "completed", ("submit", 0), ("complete", 600))
    late = case("late", "requested", ("submit", 300))
    draft = case("draft", "draft")
    assert all(submitted_within(c, None, None) for c in (early, late, draft))
    assert [c.task for c in (early, late, draft) if submitted_within(c, at(100), None)] == [
        "Task/late"]
    assert [c.task for c in (early, late, draft) if submitted_within(c, None, at(300))] == [
        "Task/early", "Task/late"]
    assert not submitted_within(draft, at(-1000), at(1000))


def test_parameters_read_the_pharmacy_and_the_window() -> None:
    request = stats_request(parameters(("pharmacy", PORT), ("since", "2026-11-01"),
                                       ("until", "2026-11-30")))
    assert request == StatsRequest(
        pharmacy=PORT, since=datetime(2026, 11, 1, tzinfo=UTC),
        until=datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC))
    posted = stats_request({"resourceType": "Parameters", "parameter": [
        {"name": "pharmacy", "valueReference": {"reference": CENTRE}},
        {"name": "since", "valueDate": "2026-11-20"}]})
    assert (posted.pharmacy, posted.since, posted.until) == (
        CENTRE, datetime(2026, 11, 20, tzinfo=UTC), None)
    assert stats_request(parameters()) == StatsRequest()


@pytest.mark.parametrize("given", [
    (("pharmacy", "Patient/1"),), (("since", "yesterday"),), (("period", "2026"),),
    (("since", "2026-11-02"), ("until", "2026-11-01")),
    (("since", "2026-11-01"), ("since", "2026-11-02"))])
def test_wrong_parameters_are_400(given: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(FhirError) as refused:
        stats_request(parameters(*given))
    assert refused.value.status == 400


# --- from Provenances, and the answer -----------------------------------------------------------

def provenance(code: str, recorded: str, version: int, *, system: str = TRANSITION) -> dict[
        str, Any]:
    return {"resourceType": "Provenance",
            "target": [{"reference": "Task/t1"}, {"reference": f"Task/t1/_history/{version}"}],
            "recorded": recorded, "activity": {"coding": [{"system": system, "code": code}]}}


def test_a_timeline_is_read_from_the_provenances_of_its_transitions() -> None:
    task = {"resourceType": "Task", "id": "t1", "status": "accepted", "performerType": [
        {"coding": [{"system": "https://fhir.pictaderm.com/CodeSystem/expertise-tier",
                     "code": "tier-2"}]}]}
    found = [provenance("claim", "2026-11-20T09:30:00+01:00", 3),
             provenance("submit", "2026-11-20T08:00:00.250000+00:00", 2),
             provenance("claim", "2026-11-20T09:00:00Z", 9, system="http://other"),
             provenance("teleport", "2026-11-20T09:00:00Z", 4),
             {"resourceType": "Provenance", "target": [{"reference": "Task/t1"}]}]
    timeline = timeline_of(task, found, pharmacy=CENTRE)
    assert (timeline.task, timeline.status, timeline.tier) == ("Task/t1", "accepted", "tier-2")
    assert [(s.transition, s.version) for s in timeline.steps] == [("submit", 2), ("claim", 3)]
    assert time_to_first_claim(timeline) == pytest.approx(30 - 0.25 / 60)
    assert step_of(provenance("claim", "2026-11-20", 3)) is None


def test_the_answer_is_a_parameters_overall_and_per_pharmacy() -> None:
    cases = [case("a", "completed", ("submit", 0), ("claim", 12), ("complete", 45.04)),
             case("b", "requested", ("submit", 1), pharmacy=PORT)]
    answer = report_parameters(report(cases), StatsRequest(pharmacy=None, since=T0))
    names = [p["name"] for p in answer["parameter"]]
    assert names == ["since", "overall", "perPharmacy", "perPharmacy"]
    assert answer["parameter"][0]["valueInstant"] == "2026-11-20T08:00:00.000000Z"
    overall = answer["parameter"][1]
    assert part(overall, "cases")["valueInteger"] == 2
    statuses = {p["part"][0]["valueCode"]: p["part"][1]["valueInteger"]
                for p in overall["part"] if p["name"] == "status"}
    assert statuses["completed"] == statuses["requested"] == 1 and len(statuses) == 8
    answer_time = part(overall, "timeToAnswer")
    assert part(answer_time, "p50")["valueQuantity"] == {
        "value": 45.0, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"}
    tiers = part(overall, "tiers")
    assert (part(tiers, "share")["valueDecimal"], part(tiers, "met")["valueBoolean"]) == (
        1.0, True)
    assert part(tiers, "target")["valueDecimal"] == 0.8
    port = answer["parameter"][3]
    assert part(port, "pharmacy")["valueReference"] == {"reference": PORT}
    port_tiers = part(port, "tiers")
    assert {p["name"] for p in port_tiers["part"]} == {"completed", "answered", "firstLine",
                                                        "target"}
    assert "p50" not in {p["name"] for p in part(port, "timeToFirstClaim")["part"]}
