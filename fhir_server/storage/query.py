"""The search query tree that every store compiles into its own query language.

The engine parses a FHIR search once into a ``SearchQuery``; a store never sees URL syntax.
Clauses in ``SearchQuery.where`` are AND-ed; the values inside one clause are OR-ed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class IdClause:
    """``_id``: the resource id is one of ``ids``."""

    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TokenValue:
    """One token to match. ``system`` None: any; ``""``: no system. ``code`` None: any code."""

    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class TokenClause:
    """A token parameter matches any of ``values`` (or none of them, when ``negate``)."""

    param: str
    values: tuple[TokenValue, ...]
    negate: bool = False


@dataclass(frozen=True, slots=True)
class LastUpdatedClause:
    """``_lastUpdated`` within [low, high] (fixed-width UTC instants; None = unbounded)."""

    low: str | None
    high: str | None
    low_inclusive: bool = True
    high_inclusive: bool = True


Clause: TypeAlias = IdClause | TokenClause | LastUpdatedClause


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A search for current (not deleted) resources.

    ``resource_type`` None searches every type. Results come in a stable order (last updated,
    then type and id); ``after`` is the sort key of the last result of the previous page.
    """

    resource_type: str | None
    where: tuple[Clause, ...] = ()
    count: int = 20
    offset: int = 0
    after: tuple[str, str, str] | None = None
    want_total: bool = False


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Versions of one resource, one type or the whole system, newest first.

    ``since``: only versions with last_updated >= since. ``at_low``/``at_high``: only versions
    that were current at some moment of [at_low, at_high]. ``before``: keyset cursor, the
    (last_updated, resource_type, id, version) of the last entry of the previous page.
    """

    resource_type: str | None = None
    id: str | None = None
    since: str | None = None
    at_low: str | None = None
    at_high: str | None = None
    count: int = 20
    before: tuple[str, str, str, int] | None = None
