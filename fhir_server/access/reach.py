"""What a caller may reach of one resource type for one interaction: everything, the resources
a query clause selects, or nothing (with the reason, for a 403)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

from fhir_server.storage.query import AllClause, AnyClause, Clause


@dataclass(frozen=True, slots=True)
class Everything:
    """No limit beyond the interaction being allowed."""


@dataclass(frozen=True, slots=True)
class Within:
    """Only the resources ``clause`` selects (AND-ed into every query of the caller)."""

    clause: Clause


@dataclass(frozen=True, slots=True)
class Refused:
    """Not allowed at all; ``reason`` is the 403 message."""

    reason: str


Reach: TypeAlias = Everything | Within | Refused

EVERYTHING: Final = Everything()


def within_any(alternatives: tuple[Clause, ...]) -> Within:
    """The resources one of ``alternatives`` selects (none given: no resource)."""
    if len(alternatives) == 1:
        return Within(alternatives[0])
    return Within(AnyClause(alternatives))


def both(first: Reach, second: Reach) -> Reach:
    """What both reaches allow (the first refusal wins)."""
    if isinstance(first, Refused):
        return first
    if isinstance(second, Refused):
        return second
    if isinstance(first, Everything):
        return second
    if isinstance(second, Everything):
        return first
    return Within(AllClause((first.clause, second.clause)))


def either(first: Reach, second: Reach) -> Reach:
    """What one of the reaches allows (a refusal counts for nothing unless both refuse)."""
    if isinstance(first, Refused):
        return second
    if isinstance(second, Refused):
        return first
    if isinstance(first, Everything) or isinstance(second, Everything):
        return EVERYTHING
    return Within(AnyClause((first.clause, second.clause)))
