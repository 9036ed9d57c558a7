"""The search query tree that every store compiles into its own query language.

The engine parses a FHIR search once into a ``SearchQuery``; a store never sees URL syntax.
Clauses in ``SearchQuery.where`` are AND-ed; the values inside one clause are OR-ed, and
``AnyClause`` ORs whole clauses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias


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


@dataclass(frozen=True, slots=True)
class TypeClause:
    """``_type`` at system level: the resource is of one of ``types``."""

    types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TextClause:
    """``:text`` on a token: the entry's normalised text starts with one of ``values``."""

    param: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StringClause:
    """A string parameter. ``values`` are normalised (lower-case, accents removed) for
    ``prefix`` and ``contains``, and as written for ``exact``; for ``exact``, ``normalized``
    holds each value's normalised form too (in the same order), which a store may use to
    narrow the search before comparing the exact text."""

    param: str
    values: tuple[str, ...]
    mode: Literal["prefix", "exact", "contains"] = "prefix"
    normalized: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode == "exact" and len(self.normalized) != len(self.values):
            raise ValueError("an exact string clause needs the normalised form of each value")


@dataclass(frozen=True, slots=True)
class Bound:
    """One comparison on an index entry's range: ``entry.<field> <op> value``."""

    field: Literal["low", "high"]
    op: Literal["lt", "le", "gt", "ge"]
    value: str | float


@dataclass(frozen=True, slots=True)
class RangeTest:
    """All ``bounds`` hold on ONE entry (and, for quantities, its system and code match)."""

    bounds: tuple[Bound, ...]
    system: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class RangeClause:
    """A date, number or quantity parameter: some entry passes one of ``tests``.

    The search prefixes (eq, ne, gt, lt, ge, le, sa, eb, ap) are turned into bounds by the
    parser, so a store only compares ranges. ``negate``: no entry passes any test.
    """

    param: str
    kind: Literal["date", "number", "quantity"]
    tests: tuple[RangeTest, ...]
    negate: bool = False


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """A reference to match: by type and id (type None: any type), or by absolute ``url``.

    The parser sets either ``target_id`` or ``url``, never both.
    """

    target_type: str | None
    target_id: str | None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class ReferenceClause:
    param: str
    values: tuple[ReferenceValue, ...]


@dataclass(frozen=True, slots=True)
class UriClause:
    """``exact``: equal; ``below``: the entry starts with the value; ``above``: the value starts
    with the entry."""

    param: str
    values: tuple[str, ...]
    mode: Literal["exact", "above", "below"] = "exact"


@dataclass(frozen=True, slots=True)
class StringStart:
    """A string component: the entry's normalised text starts with ``prefix`` (normalised)."""

    prefix: str


@dataclass(frozen=True, slots=True)
class UriEquals:
    """A uri component: the entry's uri is ``value``."""

    value: str


SecondComponent: TypeAlias = TokenValue | RangeTest | ReferenceValue | StringStart | UriEquals
"""The test of a composite's second component: a token, a date/number/quantity range test
(bounds on its ``low``/``high``, and a quantity's unit), a reference, a string or a uri."""


@dataclass(frozen=True, slots=True)
class CompositeValue:
    """One ``first$second`` value of a composite parameter."""

    first: TokenValue
    second: SecondComponent


@dataclass(frozen=True, slots=True)
class CompositeClause:
    """A composite parameter: for one of ``values``, one entry (one context element) has a
    first component matching ``value.first`` and a second matching ``value.second``."""

    param: str
    values: tuple[CompositeValue, ...]


@dataclass(frozen=True, slots=True)
class MissingClause:
    """``:missing``: the resource has (``missing`` False) or lacks (True) entries for ``param``."""

    param: str
    missing: bool


@dataclass(frozen=True, slots=True)
class ChainClause:
    """A chained parameter: some reference entry of ``param`` designates a resource of
    ``target_type`` that satisfies every clause of ``where`` (which may chain further)."""

    param: str
    target_type: str
    where: tuple[Clause, ...]


@dataclass(frozen=True, slots=True)
class HasClause:
    """``_has``: some resource of ``source_type`` whose ``param`` reference designates this
    resource satisfies every clause of ``where``."""

    source_type: str
    param: str
    where: tuple[Clause, ...]


@dataclass(frozen=True, slots=True)
class AnyClause:
    """At least one of ``clauses`` holds (an OR of whole clauses); none given: nothing matches.

    A compartment search uses it: an Observation is in a Patient's compartment when its
    ``subject`` or its ``performer`` designates the patient.
    """

    clauses: tuple[Clause, ...]


@dataclass(frozen=True, slots=True)
class AllClause:
    """Every one of ``clauses`` holds (an AND group, for use inside an ``AnyClause``).

    ``Patient/{id}/*`` needs it: "an Observation referring to the patient by subject or
    performer, OR a Condition referring to it by subject or asserter, OR …".
    """

    clauses: tuple[Clause, ...]


@dataclass(frozen=True, slots=True)
class NotClause:
    """``clause`` does not hold. Access policies use it ("not declined by this doctor"); the
    search syntax has no general negation."""

    clause: Clause


Clause: TypeAlias = (IdClause | TypeClause | TokenClause | LastUpdatedClause | TextClause
                     | StringClause | RangeClause | ReferenceClause | UriClause | CompositeClause
                     | MissingClause | ChainClause | HasClause | AnyClause | AllClause
                     | NotClause)


SortKind: TypeAlias = Literal["string", "token", "date", "number", "quantity", "uri",
                              "reference", "id", "last_updated"]
"""The type of a sorting parameter; ``id`` and ``last_updated`` sort on the resource itself."""


@dataclass(frozen=True, slots=True)
class SortKey:
    """``_sort`` on one parameter.

    A resource's value is its smallest entry ascending, its largest descending: a string's
    normalised text, a token's code, a range's low (ascending) or high (descending) end, a
    reference's ``type/id`` (else its url), a uri. Resources without a value come last both ways.
    """

    param: str
    kind: SortKind
    descending: bool = False


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A search for current (not deleted) resources.

    ``resource_type`` None searches every type. Results come in ``sort`` order, ties (and every
    result when ``sort`` is empty) in a stable order: type, then id. A resource's type and id
    never change, so an update cannot move it across a paging cursor. ``after`` is the keyset of
    the last result of the previous page: its value for each sort key (None when missing), then
    its (resource_type, id).
    """

    resource_type: str | None
    where: tuple[Clause, ...] = ()
    count: int = 20
    offset: int = 0
    after: tuple[object, ...] | None = None
    want_total: bool = False
    sort: tuple[SortKey, ...] = ()


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
