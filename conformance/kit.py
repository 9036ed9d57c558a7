"""What a check group receives (client, guide, run id) and how its checks are run and recorded.

A check is a function that returns when the server did what the specification requires and
raises ``CheckFailure`` otherwise. ``GroupRun.check`` records it and goes on; ``require`` records
it and, when it failed, stops the group (the next checks need what it made). A group cleans up
what it created in a ``finally`` block, so a stopped group leaves nothing behind.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from conformance.client import CheckFailure, FhirClient
from conformance.report import CheckResult, Report
from fhir_server.ig import Guide

T = TypeVar("T")
RUN_ID_LENGTH = 10


@dataclass(frozen=True, slots=True)
class Kit:
    """Everything a group needs: the server's client, the guide, and this run's unique id."""

    client: FhirClient
    guide: Guide
    run_id: str
    """Lower-case letters, unique per run: names the test data this run creates."""


def new_run_id() -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(RUN_ID_LENGTH))


def _describe(error: Exception) -> str:
    """A CheckFailure's own sentence; for anything else, its type too."""
    if isinstance(error, CheckFailure):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"


class GroupStopped(Exception):
    """A check the rest of its group depends on has failed (already recorded)."""


class GroupRun:
    """Runs and records the checks of one group."""

    def __init__(self, group: str, report: Report) -> None:
        self.group = group
        self._report = report

    def check(self, name: str, step: Callable[[], object]) -> bool:
        """Run ``step`` and record the result; True when it passed."""
        try:
            step()
        except Exception as exc:  # a server answer of an unexpected shape: a failure, not a crash
            self._fail(name, _describe(exc))
            return False
        self._report.record(CheckResult(self.group, name, passed=True))
        return True

    def require(self, name: str, step: Callable[[], T]) -> T:
        """Run ``step``, record the result and return its value; GroupStopped when it failed."""
        outcome: list[T] = []
        if not self.check(name, lambda: outcome.append(step())):
            raise GroupStopped(name)
        return outcome[0]

    def prepare(self, name: str, step: Callable[[], T]) -> T:
        """Run a step the group needs before its checks (it is not a check itself): recorded
        only when it fails, and then the group stops."""
        try:
            return step()
        except Exception as exc:
            self._fail(name, _describe(exc))
            raise GroupStopped(name) from exc

    def fail(self, name: str, detail: str) -> None:
        """Record a failure found outside a check (e.g. what could not be cleaned up)."""
        self._fail(name, detail)

    def _fail(self, name: str, detail: str) -> None:
        self._report.record(CheckResult(self.group, name, passed=False, detail=detail))


@dataclass(frozen=True, slots=True)
class Group:
    """A named family of checks."""

    name: str
    summary: str
    run: Callable[[Kit, GroupRun], None]


def run_groups(kit: Kit, groups: Sequence[Group], report: Report) -> None:
    """Run ``groups`` in order; a group stopped by a failed prerequisite lets the others run."""
    for group in groups:
        try:
            group.run(kit, GroupRun(group.name, report))
        except GroupStopped:
            continue
