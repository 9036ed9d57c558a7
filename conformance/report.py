"""Check results, the lines the kit prints for them, and the ``N passed, M failed`` summary line.

Every line goes through one sink, with every occurrence of the secrets given (the bearer token)
masked, so nothing the server echoes can print the token (a very short token also masks the
same letters inside words: better than printing it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MASK = "***"
DETAIL_LIMIT = 600


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its group, what it checks, and, when it failed, what was expected and came."""

    group: str
    name: str
    passed: bool
    detail: str = ""

    def line(self) -> str:
        """``PASS group: name`` or ``FAIL group: name: detail``, on one line."""
        if self.passed:
            return f"PASS {self.group}: {self.name}"
        detail = " ".join(self.detail.split())
        if len(detail) > DETAIL_LIMIT:
            detail = detail[:DETAIL_LIMIT - 1] + "…"
        return f"FAIL {self.group}: {self.name}: {detail or 'failed'}"


def summary_line(passed: int, failed: int) -> str:
    """The kit's last line."""
    return f"{passed} passed, {failed} failed"


class Report:
    """The results of one run, printed as they come through ``emit``."""

    def __init__(self, *, emit: Callable[[str], None], secrets: Iterable[str] = ()) -> None:
        self._emit = emit
        words = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._mask = re.compile("|".join(map(re.escape, words))) if words else None
        self.results: list[CheckResult] = []

    def record(self, result: CheckResult) -> None:
        self.results.append(result)
        self._print(result.line())

    def note(self, text: str) -> None:
        """A line that is not a result (a trace of an exchange, a heading)."""
        self._print(text)

    @property
    def passed(self) -> int:
        return sum(1 for result in self.results if result.passed)

    @property
    def failed(self) -> int:
        return sum(1 for result in self.results if not result.passed)

    @property
    def succeeded(self) -> bool:
        return self.failed == 0

    def finish(self) -> None:
        """Print the summary line (the last line of a run)."""
        self._print(summary_line(self.passed, self.failed))

    def _print(self, text: str) -> None:
        self._emit(self._mask.sub(MASK, text) if self._mask else text)
