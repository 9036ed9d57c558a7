"""Running checks: a failure is recorded and the group goes on; a failed prerequisite stops it."""

from __future__ import annotations

import pytest

from conformance.checks import GROUPS, UnknownGroup, select_groups
from conformance.client import CheckFailure, FhirClient
from conformance.kit import Group, GroupRun, GroupStopped, Kit, new_run_id, run_groups
from conformance.report import Report
from fhir_server.ig import load_guide


def recorder() -> tuple[Report, list[str]]:
    lines: list[str] = []
    return Report(emit=lines.append), lines


def fails() -> None:
    raise CheckFailure("expected 200, got 500")


def breaks() -> None:
    raise KeyError("entry")


def test_check_records_passes_and_failures_and_goes_on() -> None:
    report, lines = recorder()
    checks = GroupRun("g", report)
    assert checks.check("fine", lambda: None) is True
    assert checks.check("bad", fails) is False
    assert checks.check("odd", breaks) is False
    assert lines == ["PASS g: fine", "FAIL g: bad: expected 200, got 500",
                     "FAIL g: odd: unexpected KeyError: 'entry'"]


def test_require_returns_the_value_or_stops_the_group() -> None:
    report, lines = recorder()
    checks = GroupRun("g", report)
    assert checks.require("made", lambda: 42) == 42
    with pytest.raises(GroupStopped):
        checks.require("needed", fails)
    assert lines == ["PASS g: made", "FAIL g: needed: expected 200, got 500"]


def test_prepare_is_silent_when_it_works() -> None:
    report, lines = recorder()
    checks = GroupRun("g", report)
    assert checks.prepare("setup", lambda: "ok") == "ok"
    with pytest.raises(GroupStopped):
        checks.prepare("setup", fails)
    assert lines == ["FAIL g: setup: expected 200, got 500"]


def test_a_stopped_group_lets_the_next_groups_run() -> None:
    report, lines = recorder()

    def stops(kit: Kit, checks: GroupRun) -> None:
        checks.require("first", fails)
        checks.check("never", lambda: None)

    def runs(kit: Kit, checks: GroupRun) -> None:
        checks.check("second", lambda: None)

    with FhirClient("http://unused.test/fhir", token=None) as client:
        kit = Kit(client=client, guide=load_guide(), run_id=new_run_id())
        run_groups(kit, [Group("a", "", stops), Group("b", "", runs)], report)
    assert lines == ["FAIL a: first: expected 200, got 500", "PASS b: second"]
    assert (report.passed, report.failed) == (1, 1)


def test_run_ids_are_lower_case_letters_and_differ() -> None:
    ids = {new_run_id() for _ in range(20)}
    assert len(ids) == 20
    assert all(i.isalpha() and i.islower() and len(i) == 10 for i in ids)


def test_groups_are_chosen_by_name_in_the_run_order() -> None:
    assert [g.name for g in GROUPS] == ["metadata", "guide", "crud", "search", "case", "invalid"]
    assert select_groups(None) == GROUPS
    assert [g.name for g in select_groups(["search", "metadata"])] == ["metadata", "search"]
    with pytest.raises(UnknownGroup, match=r"unknown group.*nope.*the groups are metadata"):
        select_groups(["metadata", "nope"])
    with pytest.raises(UnknownGroup):
        select_groups([])
