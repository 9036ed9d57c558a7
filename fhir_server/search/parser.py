"""Parses FHIR search parameters into the query tree, driven by the search-parameter registry.

Spec: https://hl7.org/fhir/R4/search.html. A repeated parameter ANDs (one clause each), a comma
ORs values inside one clause; ``\\,`` ``\\|`` ``\\$`` and ``\\\\`` escape those characters. A
parameter with an empty value is ignored. Result parameters (``_count``, ``_include``, …) are
left to the caller.

Refusals come in two kinds:
- a parameter this server cannot honour (unknown name, unsupported modifier, special parameter,
  a composite outside ``values/composite.py``, an ambiguous chain) is listed in
  ``ParsedSearch.unsupported`` with the reason, and the caller warns or, with
  ``Prefer: handling=strict``, refuses;
- a malformed value (bad date, number, token, reference) raises ``FhirError(BAD_PARAMETER)``
  naming the parameter and the value.

Chains (``subject:Patient.name=x``, several hops) become nested ``ChainClause``s. The target
type of a hop is the ``:Type`` modifier, else the parameter's only target type, else the only
target type that has the next parameter. When several target types have it, the search would be
an OR of chains, which the tree cannot hold: the parameter is reported as unsupported with a
message asking for a ``:Type`` modifier. ``_has:Type:param:search`` nests the same way.

``:in`` and ``:not-in`` on a token name ValueSets, which this pure parser cannot read: the caller
expands them beforehand (``engine/valuesets.py``) and passes the codes, keyed by the reference
as written; a ValueSet it could not expand makes the parameter unsupported. ``:below`` and
``:above`` on a token stand for a code and the codes under (or over) it in a code system's
hierarchy: the caller expands them the same way (``engine/code_hierarchy.py``), keyed by
``hierarchy_key``; a code it could not expand is refused (400) with the caller's reason.

``:of-type`` matches each identifier in two forms: as ordinary identifiers are indexed
(``{type code}|{value}``) and as identifiers of a sensitive system are (the value blind-indexed
under the type coding), since the search does not name the identifier's system.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Literal, Protocol

from fhir_server.engine.resource_types import known_types
from fhir_server.errors import ErrorCode, FhirError, Issue, IssueType
from fhir_server.search.cardinality import single_valued
from fhir_server.search.normalize import normalize_string
from fhir_server.search.prefixes import (
    PREFIXES,
    date_tests,
    last_updated_clause,
    split_prefix,
    value_tests,
)
from fhir_server.search.registry import ParamType, SearchParam, SearchRegistry
from fhir_server.search.ucum import UCUM_SYSTEM, canonical, canonical_code, canonical_param
from fhir_server.search.values.composite import (
    CompositeShape,
    UnsupportedComposite,
    composite_shape,
    has_supported_layout,
)
from fhir_server.storage.query import (
    AnyClause,
    ChainClause,
    Clause,
    CompositeClause,
    CompositeValue,
    HasClause,
    IdClause,
    LastUpdatedClause,
    MissingClause,
    RangeClause,
    RangeTest,
    ReferenceClause,
    ReferenceValue,
    SecondComponent,
    StringClause,
    StringStart,
    TextClause,
    TokenClause,
    TokenValue,
    UriClause,
    UriEquals,
)

RESULT_PARAMETERS: Final = frozenset({
    "_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_offset",
    "_format", "_pretty", "_cursor", "_contained", "_containedType", "_explain"})
"""Parameters that shape the result rather than select resources (matched on the name before
any ``:`` modifier, so ``_include:iterate`` is one too)."""

_ESCAPABLE: Final = frozenset(",|$\\")
_UNESCAPE_RE: Final = re.compile(r"\\([,|$\\])")
_ANY_TYPE_CODES: Final = frozenset({"_id", "_lastUpdated", "_has"})
_ANY_TYPE: Final = "Basic"  # any type: only its Resource-level parameters are used
_STRING_MODES: Final[dict[str, Literal["prefix", "exact", "contains"]]] = {
    "": "prefix", "exact": "exact", "contains": "contains"}
_URI_MODES: Final[dict[str, Literal["exact", "above", "below"]]] = {
    "": "exact", "above": "above", "below": "below"}
_PREFIX_HINT: Final = f"after an optional prefix ({', '.join(PREFIXES)})"


class TokenCoder(Protocol):
    """Gives a token code as stored: a sensitive identifier value becomes its blind index."""

    def token_code(self, system: str | None, value: str) -> str: ...

    def contact_point_code(self, value: str) -> str: ...

    def of_type_codes(self, type_system: str, type_code: str, value: str) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A parameter the search cannot honour, as written, and why."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class ValueSetCodes:
    """The (system, code) pairs a ValueSet (``:in`` / ``:not-in``) or a code with its hierarchy
    (``:below`` / ``:above``) stands for (system None: any system).

    ``unsupported``: why the ValueSet cannot be expanded here (the parameter is left out);
    ``refused``: why the code cannot be expanded (the search is refused), ``too_costly`` when
    it is because the expansion holds too many codes.
    """

    codes: tuple[tuple[str | None, str], ...] = ()
    unsupported: str | None = None
    refused: str | None = None
    too_costly: bool = False


def hierarchy_key(modifier: str, part: str) -> str:
    """Where ``value_sets`` holds the expansion of one ``:below`` / ``:above`` value (``part``
    as written, escapes kept). It starts with ``:``, as no ValueSet reference does."""
    return f":{modifier}:{part}"


@dataclass(frozen=True, slots=True)
class ParsedSearch:
    """The AND-ed clauses of a search, the parameters left out, and the ``_type`` restriction.

    ``types``: at system level, the resource types named by ``_type`` (empty: every type); the
    caller restricts the search to them, the clauses cannot.
    """

    clauses: tuple[Clause, ...]
    unsupported: tuple[Unsupported, ...] = ()
    types: tuple[str, ...] = ()

    @property
    def unknown(self) -> tuple[str, ...]:
        """The names of the parameters left out, as written."""
        return tuple(item.name for item in self.unsupported)


@dataclass(frozen=True, slots=True)
class _Context:
    registry: SearchRegistry
    coder: TokenCoder
    base_url: str | None
    now: datetime
    types: tuple[str, ...]
    value_sets: Mapping[str, ValueSetCodes]


class _Unsupported(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Malformed(Exception):
    def __init__(self, part: str, detail: str) -> None:
        super().__init__(detail)
        self.part = part
        self.detail = detail


class _TooCostly(_Malformed):
    """A value standing for more values than a query may match against."""


def parse_query(resource_type: str | None, params: Sequence[tuple[str, str]], *,
                registry: SearchRegistry, coder: TokenCoder, base_url: str | None = None,
                now: datetime | None = None,
                value_sets: Mapping[str, ValueSetCodes] | None = None) -> ParsedSearch:
    """Turn (name, value) pairs into clauses for a type-level (or, with None, system) search.

    ``base_url``: the server's own base, so that absolute references to it become type/id.
    ``now``: the moment ``ap`` on dates measures from (default: the current time).
    ``value_sets``: the codes of the ValueSets named by ``:in`` / ``:not-in``, by reference.
    Raises FhirError(BAD_PARAMETER) for a malformed value.
    """
    ctx = _Context(registry, coder, base_url, now or datetime.now(UTC),
                   _system_types(resource_type, params), value_sets or {})
    clauses: list[Clause] = []
    unsupported: list[Unsupported] = []
    for name, value in params:
        if name.partition(":")[0] in RESULT_PARAMETERS or (name == "_type" and ctx.types):
            continue
        try:
            clause = _parameter(ctx, resource_type, name, value)
        except _Unsupported as refusal:
            unsupported.append(Unsupported(name, refusal.reason))
            continue
        except _TooCostly as failure:
            raise _too_costly(name, failure) from None
        except _Malformed as failure:
            raise FhirError(ErrorCode.BAD_PARAMETER,
                            f"{name[:100]}: '{failure.part[:100]}' {failure.detail}",
                            expression=(name,)) from None
        if clause is not None:
            clauses.append(clause)
    if resource_type is not None:
        clauses = _merge_single_valued_ranges(clauses, resource_type, registry)
    return ParsedSearch(tuple(clauses), tuple(unsupported), ctx.types)


MAX_MERGED_TESTS: Final = 16
"""Range tests a merge of AND-ed clauses may produce; past it the clauses stay apart."""


def _merge_single_valued_ranges(clauses: list[Clause], resource_type: str,
                                registry: SearchRegistry) -> list[Clause]:
    """AND-ed ranges on a parameter with at most one value per resource, as ONE range test.

    ``birthdate=ge1980-01-01&birthdate=lt1981-01-01`` asks for an entry passing each clause;
    with a single value they must be the same entry, so a store can check every bound on one
    index entry (a range scan) instead of fetching every resource the first clause lets
    through. A clause's tests are OR-ed (``ge`` is ``gt`` or ``eq``), so the merged tests are
    their combinations (at most ``MAX_MERGED_TESTS``). Dates and numbers only.
    """
    ranges: dict[str, list[tuple[int, RangeClause]]] = {}
    for position, clause in enumerate(clauses):
        if (isinstance(clause, RangeClause) and not clause.negate
                and clause.kind in ("date", "number")):
            ranges.setdefault(clause.param, []).append((position, clause))
    merged: dict[int, Clause] = {}
    dropped: set[int] = set()
    for param, group in ranges.items():
        definition = registry.param(resource_type, param)
        if len(group) < 2 or definition is None or not single_valued(
                definition.expression, resource_type):
            continue
        combinations = list(itertools.islice(
            itertools.product(*(clause.tests for _, clause in group)), MAX_MERGED_TESTS + 1))
        if len(combinations) > MAX_MERGED_TESTS:
            continue
        first_position, first = group[0]
        merged[first_position] = RangeClause(param, first.kind, tuple(
            RangeTest(tuple(bound for test in combination for bound in test.bounds))
            for combination in combinations))
        dropped.update(position for position, _ in group[1:])
    if not merged:
        return clauses
    return [merged.get(position, clause) for position, clause in enumerate(clauses)
            if position not in dropped]


def _too_costly(name: str, failure: _TooCostly) -> FhirError:
    diagnostics = f"{name[:100]}: '{failure.part[:100]}' {failure.detail}"
    return FhirError(ErrorCode.BAD_PARAMETER, diagnostics, expression=(name,), issues=(
        Issue(diagnostics="The search is too costly: name fewer or narrower codes",
              issue_type=IssueType.TOO_COSTLY, expression=(name,)),))


def split_escaped(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is not escaped; escapes stay for the next split."""
    if "\\" not in text:
        return text.split(separator)  # nothing escaped: the common case, in C
    parts: list[str] = []
    start = index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and text[index + 1:index + 2] in _ESCAPABLE:
            index += 2
            continue
        if char == separator:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    parts.append(text[start:])
    return parts


def unescape(text: str) -> str:
    """Remove the search escapes ``\\,`` ``\\|`` ``\\$`` ``\\\\``; other backslashes stay."""
    return _UNESCAPE_RE.sub(r"\1", text) if "\\" in text else text


def _system_types(resource_type: str | None, params: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The types named by ``_type`` at system level (several ``_type`` parameters add up)."""
    if resource_type is not None:
        return ()
    found: list[str] = []
    for name, value in params:
        if name != "_type":
            continue
        for part in _or_parts(value):
            if (type_name := unescape(part)) not in known_types():
                raise FhirError(ErrorCode.BAD_PARAMETER,
                                f"_type: '{type_name[:80]}' is not a resource type",
                                expression=("_type",))
            found.append(type_name)
    return tuple(dict.fromkeys(found))


MAX_OR_VALUES = 500
"""Most comma-separated values one parameter may carry (SQLite's compound-select limit)."""


def _or_parts(value: str) -> list[str]:
    return [part for part in split_escaped(value, ",") if part]


def _parameter(ctx: _Context, resource_type: str | None, name: str, value: str) -> Clause | None:
    """One parameter, possibly chained or reverse-chained, in the context of a resource type."""
    if name.startswith("_has:"):
        return _has_clause(ctx, resource_type, name, value)
    head, dot, rest = name.partition(".")
    if dot:
        return _chain_clause(ctx, resource_type, head, rest, value)
    code, _, modifier = head.partition(":")
    parts = _or_parts(value)
    if len(parts) > MAX_OR_VALUES:
        raise FhirError(ErrorCode.TOO_COSTLY,
                        f"{name}: {len(parts)} values OR-ed; at most {MAX_OR_VALUES} are accepted "
                        "in one parameter", expression=(name,))
    if not parts:
        return None
    if code == "_id":
        return _id_clause(modifier, parts)
    if code == "_lastUpdated":
        return _last_updated_clause(ctx, modifier, parts)
    if code == "_type":
        raise _Unsupported("_type restricts a system-level search only")
    param = _lookup(ctx, resource_type, code)
    if modifier == "missing":
        return MissingClause(param.code, _boolean(parts))
    return _PARSERS[param.type](ctx, param, modifier, parts)


def _lookup(ctx: _Context, resource_type: str | None, code: str) -> SearchParam:
    """The definition of ``code`` for the type (at system level: for every ``_type``)."""
    scopes = (resource_type,) if resource_type else ctx.types
    found = ([ctx.registry.param(scope, code) for scope in scopes] if scopes
             else [_common_param(ctx.registry, code)])
    param = found[0]
    if param is None or any(other is None or other.type != param.type for other in found):
        where = resource_type or ", ".join(ctx.types) or "a search of every type"
        raise _Unsupported(f"'{code}' is not a search parameter of {where}")
    if not searchable(param):
        raise _Unsupported(f"the {param.type} parameter '{code}' is not supported")
    return param


def searchable(param: SearchParam) -> bool:
    """Whether this parser (and the stores) can search with ``param``."""
    return (param.expression is not None and param.type in _PARSERS
            and (param.type is not ParamType.COMPOSITE or has_supported_layout(param)))


def _common_param(registry: SearchRegistry, code: str) -> SearchParam | None:
    """A parameter of every resource type (base Resource), for a search of every type."""
    param = registry.param(_ANY_TYPE, code)
    return param if param is not None and "Resource" in param.base else None


def _boolean(parts: list[str]) -> bool:
    if len(parts) != 1 or parts[0] not in ("true", "false"):
        raise _Malformed(",".join(parts), "is not true or false")
    return parts[0] == "true"


def _no_modifier(param: SearchParam, modifier: str) -> None:
    if modifier:
        raise _unsupported_modifier(param, modifier)


def _unsupported_modifier(param: SearchParam, modifier: str) -> _Unsupported:
    return _Unsupported(f"the modifier ':{modifier}' is not supported on the {param.type} "
                        f"parameter '{param.code}'")


def _id_clause(modifier: str, parts: list[str]) -> IdClause:
    if modifier:
        raise _Unsupported(f"the modifier ':{modifier}' is not supported on _id")
    return IdClause(tuple(unescape(part) for part in parts))


def _last_updated_clause(ctx: _Context, modifier: str, parts: list[str]) -> LastUpdatedClause:
    if modifier:
        raise _Unsupported(f"the modifier ':{modifier}' is not supported on _lastUpdated")
    if len(parts) > 1:
        raise _Unsupported("_lastUpdated takes one value (repeat the parameter to AND ranges)")
    prefix, text = split_prefix(unescape(parts[0]))
    try:
        clause = last_updated_clause(prefix, text, now=ctx.now)
    except ValueError:
        raise _Malformed(parts[0], f"is not a date {_PREFIX_HINT}") from None
    if clause is None:
        raise _Unsupported(f"the prefix '{prefix}' is not supported on _lastUpdated")
    return clause


def _token_clause(ctx: _Context, param: SearchParam, modifier: str,
                  parts: list[str]) -> Clause | None:
    if modifier == "text":
        texts = _normalized(parts)
        return TextClause(param.code, texts) if texts else None
    if modifier == "of-type":
        return TokenClause(f"{param.code}:of-type", _of_type_values(ctx, parts))
    if modifier in ("in", "not-in") and not _is_contact_point(param):
        return TokenClause(param.code, _value_set_values(ctx, param, modifier, parts),
                           negate=modifier == "not-in")
    if modifier in ("below", "above") and not _is_contact_point(param):
        return TokenClause(param.code, _hierarchy_values(ctx, param, modifier, parts))
    if modifier not in ("", "not"):
        raise _unsupported_modifier(param, modifier)
    contact = _is_contact_point(param)
    return TokenClause(param.code, tuple(_token_value(ctx, part, contact) for part in parts),
                       negate=modifier == "not")


def _is_contact_point(param: SearchParam) -> bool:
    """Whether the parameter's values are ContactPoints (phone, email, telecom): every R4 one
    reads an element named ``telecom``, and their index entries hold blind indexes."""
    return ".telecom" in (param.expression or "")


def _token_value(ctx: _Context, part: str, contact_point: bool = False) -> TokenValue:
    """``code``, ``system|code``, ``|code`` (no system) or ``system|`` (any code)."""
    pieces = [unescape(piece) for piece in split_escaped(part, "|")]
    if contact_point:
        code = pieces[-1]
        return TokenValue(None if len(pieces) == 1 else pieces[0] or "",
                          ctx.coder.contact_point_code(code) if code else None)
    if len(pieces) == 1:
        return TokenValue(None, pieces[0])
    if len(pieces) != 2 or not any(pieces):
        raise _Malformed(part, "is not a token (code, system|code, |code or system|)")
    system, code = pieces
    if not code:
        return TokenValue(system, None)
    if not system:
        return TokenValue("", code)
    return TokenValue(system, ctx.coder.token_code(system, code))


def _value_set_values(ctx: _Context, param: SearchParam, modifier: str,
                      parts: list[str]) -> tuple[TokenValue, ...]:
    """The codes of the ValueSets named by ``parts`` (OR-ed), as stored."""
    values: dict[TokenValue, None] = {}
    for part in parts:
        reference = unescape(part)
        found = ctx.value_sets.get(reference)
        if found is None:
            raise _Unsupported(f"the ValueSet '{reference[:100]}' of ':{modifier}' on the "
                               f"token parameter '{param.code}' was not expanded")
        if found.unsupported is not None:
            raise _Unsupported(found.unsupported)
        for system, code in found.codes:
            values[TokenValue(system, ctx.coder.token_code(system, code))] = None
    return tuple(values)


def _hierarchy_values(ctx: _Context, param: SearchParam, modifier: str,
                      parts: list[str]) -> tuple[TokenValue, ...]:
    """The codes ``parts`` (OR-ed) stand for with their hierarchy, as stored."""
    values: dict[TokenValue, None] = {}
    for part in parts:
        found = ctx.value_sets.get(hierarchy_key(modifier, part))
        if found is None:
            raise _Unsupported(f"the code '{unescape(part)[:100]}' of ':{modifier}' on the "
                               f"token parameter '{param.code}' was not expanded")
        if found.refused is not None:
            raise (_TooCostly if found.too_costly else _Malformed)(part, found.refused)
        for system, code in found.codes:
            values[TokenValue(system, ctx.coder.token_code(system, code))] = None
    if len(values) > MAX_OR_VALUES:
        raise _TooCostly(",".join(parts), f"stand for {len(values)} codes with :{modifier}, "
                                          f"more than the {MAX_OR_VALUES} a search matches")
    return tuple(values)


def _of_type_values(ctx: _Context, parts: list[str]) -> tuple[TokenValue, ...]:
    """Each ``type-system|type-code|value`` in the forms its ``{code}:of-type`` entry may take
    (clear, or blind-indexed for a sensitive identifier system)."""
    values = {value: None for part in parts for value in _of_type_forms(ctx, part)}
    if len(values) > MAX_OR_VALUES:
        raise _TooCostly(",".join(parts), f"stand for {len(values)} identifier forms to "
                                          f"match; at most {MAX_OR_VALUES} are accepted")
    return tuple(values)


def _of_type_forms(ctx: _Context, part: str) -> tuple[TokenValue, ...]:
    pieces = [unescape(piece) for piece in split_escaped(part, "|")]
    if len(pieces) != 3 or not all(pieces):
        raise _Malformed(part, "is not an identifier type and value "
                               "(type-system|type-code|value)")
    type_system, type_code, value = pieces
    return tuple(TokenValue(type_system, code)
                 for code in ctx.coder.of_type_codes(type_system, type_code, value))


def _normalized(parts: list[str]) -> tuple[str, ...]:
    return tuple(text for part in parts if (text := normalize_string(unescape(part))))


def _string_clause(ctx: _Context, param: SearchParam, modifier: str,
                   parts: list[str]) -> StringClause | None:
    mode = _STRING_MODES.get(modifier)
    if mode is None:
        raise _unsupported_modifier(param, modifier)
    if mode != "exact":
        values = _normalized(parts)
        return StringClause(param.code, values, mode) if values else None
    exact = tuple((value, normalized) for part in parts
                  if (normalized := normalize_string(value := unescape(part))))
    if not exact:
        return None  # a value with no letters or digits left is in no index entry
    return StringClause(param.code, tuple(value for value, _ in exact), mode,
                        tuple(normalized for _, normalized in exact))


def _uri_clause(ctx: _Context, param: SearchParam, modifier: str,
                parts: list[str]) -> UriClause:
    mode = _URI_MODES.get(modifier)
    if mode is None:
        raise _unsupported_modifier(param, modifier)
    return UriClause(param.code, tuple(unescape(part) for part in parts), mode)


def _date_clause(ctx: _Context, param: SearchParam, modifier: str,
                 parts: list[str]) -> RangeClause:
    _no_modifier(param, modifier)
    return RangeClause(param.code, "date",
                       tuple(test for part in parts for test in _date_tests(ctx, part)))


def _date_tests(ctx: _Context, part: str) -> tuple[RangeTest, ...]:
    prefix, text = split_prefix(unescape(part))
    try:
        return date_tests(prefix, text, now=ctx.now)
    except ValueError:
        raise _Malformed(part, "is not a date (yyyy, yyyy-mm, yyyy-mm-dd or a dateTime) "
                               f"{_PREFIX_HINT}") from None


def _number_clause(ctx: _Context, param: SearchParam, modifier: str,
                   parts: list[str]) -> RangeClause:
    _no_modifier(param, modifier)
    return RangeClause(param.code, "number",
                       tuple(test for part in parts for test in _number_tests(unescape(part))))


def _number_tests(part: str, *, system: str | None = None, code: str | None = None,
                  factor: Decimal = Decimal(1)) -> tuple[RangeTest, ...]:
    prefix, text = split_prefix(part)
    try:
        return value_tests(prefix, text, system=system, code=code, factor=factor)
    except ValueError:
        raise _Malformed(part, f"is not a number {_PREFIX_HINT}") from None


def _quantity_clause(ctx: _Context, param: SearchParam, modifier: str,
                     parts: list[str]) -> Clause:
    """Quantities as written; a convertible UCUM unit also matches, OR-ed, the canonical
    entries (``{code}:canonical``): ``5|http://unitsofmeasure.org|mg`` finds a stored ``0.005 g``.
    A search without a unit never sees the canonical entries."""
    _no_modifier(param, modifier)
    as_written: list[RangeTest] = []
    in_canonical: list[RangeTest] = []
    for part in parts:
        written, converted = _quantity_tests(part)
        as_written.extend(written)
        in_canonical.extend(converted)
    clause = RangeClause(param.code, "quantity", tuple(as_written))
    if not in_canonical:
        return clause
    return AnyClause((clause, RangeClause(canonical_param(param.code), "quantity",
                                          tuple(in_canonical))))


def _quantity_tests(part: str) -> tuple[tuple[RangeTest, ...], tuple[RangeTest, ...]]:
    """(tests as written, tests on canonical entries) of ``[prefix]number``,
    ``[prefix]number|system|code`` or ``[prefix]number||code``."""
    pieces = [unescape(piece) for piece in split_escaped(part, "|")]
    if len(pieces) == 1:
        return _number_tests(pieces[0]), ()
    if len(pieces) != 3:
        raise _Malformed(part, "is not a quantity (number, number|system|code or number||code)")
    number, system, code = pieces
    as_written = _number_tests(number, system=system or None, code=code or None)
    converted = canonical(code) if code and system in ("", UCUM_SYSTEM) else None
    if converted is None:
        return as_written, ()
    unit, factor = converted
    return as_written, _number_tests(number, system=UCUM_SYSTEM, code=canonical_code(unit),
                                     factor=factor)


def _reference_clause(ctx: _Context, param: SearchParam, modifier: str,
                      parts: list[str]) -> Clause:
    if modifier == "identifier":
        return TokenClause(f"{param.code}:identifier",
                           tuple(_token_value(ctx, part) for part in parts))
    if modifier and not _is_target(param, modifier):
        raise _unsupported_modifier(param, modifier)
    return ReferenceClause(param.code, tuple(_reference_value(ctx, param, modifier, part)
                                             for part in parts))


def _is_target(param: SearchParam, type_name: str) -> bool:
    return type_name in known_types() and (not param.targets or type_name in param.targets)


def _reference_value(ctx: _Context, param: SearchParam, type_modifier: str,
                     part: str) -> ReferenceValue:
    """``id``, ``Type/id`` (``/_history/v`` ignored) or an absolute URL (ours → type/id)."""
    text = unescape(part)
    if "://" in text or text.startswith("urn:"):
        local = _local_path(ctx.base_url, text)
        if local is None:
            return ReferenceValue(None, None, url=text)
        text = local
    segments = text.split("/")
    if len(segments) == 1:
        single = param.targets[0] if len(param.targets) == 1 else None
        return ReferenceValue(type_modifier or single, text)
    if (len(segments) not in (2, 4) or segments[0] not in known_types() or not segments[1]
            or (len(segments) == 4 and segments[2] != "_history")):
        raise _Malformed(part, "is not a reference (id, Type/id or an absolute URL)")
    if type_modifier and segments[0] != type_modifier:
        raise _Malformed(part, f"designates a {segments[0]}, not a {type_modifier}")
    return ReferenceValue(segments[0], segments[1])


def _local_path(base_url: str | None, url: str) -> str | None:
    """``Patient/1`` for ``{base_url}/Patient/1``; None for a URL outside this server."""
    if not base_url:
        return None
    prefix = base_url.rstrip("/") + "/"
    return url[len(prefix):] if url.startswith(prefix) else None


def _chain_clause(ctx: _Context, resource_type: str | None, head: str, rest: str,
                  value: str) -> ChainClause | None:
    """``head.rest``: the reference parameter ``head`` designates a resource matching ``rest``."""
    code, _, type_modifier = head.partition(":")
    param = _lookup(ctx, resource_type, code)
    if param.type != ParamType.REFERENCE:
        raise _Unsupported(f"'{code}' is not a reference parameter: it cannot be chained")
    target = _chain_target(ctx, param, type_modifier, rest)
    inner = _parameter(ctx, target, rest, value)
    return ChainClause(code, target, (inner,)) if inner is not None else None


def _chain_target(ctx: _Context, param: SearchParam, type_modifier: str, rest: str) -> str:
    """The one resource type a chain hop goes through (see the module docstring)."""
    if type_modifier:
        if not _is_target(param, type_modifier):
            raise _Unsupported(f"{type_modifier} is not a type that '{param.code}' designates")
        return type_modifier
    if len(param.targets) == 1:
        return param.targets[0]
    next_code = rest.partition(".")[0].partition(":")[0]
    candidates = [target for target in param.targets
                  if next_code in _ANY_TYPE_CODES or ctx.registry.param(target, next_code)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise _Unsupported(f"no type that '{param.code}' designates has a parameter "
                           f"'{next_code}'")
    raise _Unsupported(f"'{param.code}' may designate {', '.join(candidates)}: name one with a "
                       f"type modifier, e.g. '{param.code}:{candidates[0]}.{rest}'")


def _has_clause(ctx: _Context, resource_type: str | None, name: str,
                value: str) -> HasClause | None:
    """``_has:Type:reference-param:search``: some Type designating this resource matches."""
    pieces = name.split(":", 3)
    if len(pieces) != 4 or not all(pieces):
        raise _Unsupported("_has takes the form _has:Type:reference-parameter:search-parameter")
    _, source_type, code, rest = pieces
    if source_type not in known_types():
        raise _Unsupported(f"'{source_type}' is not a resource type")
    param = _lookup(ctx, source_type, code)
    if param.type != ParamType.REFERENCE:
        raise _Unsupported(f"'{code}' is not a reference parameter of {source_type}")
    if resource_type and param.targets and resource_type not in param.targets:
        raise _Unsupported(f"{source_type}.{code} cannot designate a {resource_type}")
    inner = _parameter(ctx, source_type, rest, value)
    return HasClause(source_type, code, (inner,)) if inner is not None else None


def _composite_clause(ctx: _Context, param: SearchParam, modifier: str,
                      parts: list[str]) -> Clause:
    """``first$second`` values (OR-ed), both components matched on the same context element.

    The first component is a token; the second is read as its own type would be, with its
    prefixes (``8480-6$gt140``). A quantity in a convertible UCUM unit also matches, OR-ed, the
    canonical entries (``{code}:canonical``), as a plain quantity parameter does. Composites take
    no modifier (R4 search, composite parameters).
    """
    _no_modifier(param, modifier)
    try:
        shape = composite_shape(param, ctx.registry)
    except UnsupportedComposite as refusal:
        raise _Unsupported(refusal.reason) from None
    as_written: list[CompositeValue] = []
    in_canonical: list[CompositeValue] = []
    for part in parts:
        first_text, second_text = _composite_pieces(part, shape)
        first = _token_value(ctx, first_text)
        written, converted = _second_components(ctx, shape, second_text)
        as_written.extend(CompositeValue(first, second) for second in written)
        in_canonical.extend(CompositeValue(first, second) for second in converted)
    if len(as_written) + len(in_canonical) > MAX_OR_VALUES:
        raise _TooCostly(",".join(parts), f"stand for {len(as_written) + len(in_canonical)} "
                                          f"values to match; at most {MAX_OR_VALUES} are accepted")
    clause = CompositeClause(param.code, tuple(as_written))
    if not in_canonical:
        return clause
    return AnyClause((clause, CompositeClause(canonical_param(param.code),
                                              tuple(in_canonical))))


def _composite_pieces(part: str, shape: CompositeShape) -> tuple[str, str]:
    """The two components of one value, split on the unescaped ``$`` (escapes kept)."""
    pieces = split_escaped(part, "$")
    if len(pieces) != 2 or not all(pieces):
        raise _Malformed(part, f"is not a composite value: a token and a {shape.second_type} "
                               "joined by '$' (e.g. http://loinc.org|8480-6$gt140)")
    return pieces[0], pieces[1]


def _second_components(ctx: _Context, shape: CompositeShape, text: str
                       ) -> tuple[tuple[SecondComponent, ...], tuple[SecondComponent, ...]]:
    """(tests of the second component as written, tests on canonical quantity entries)."""
    match shape.second_type:
        case ParamType.TOKEN:
            return (_token_value(ctx, text),), ()
        case ParamType.QUANTITY:
            return _quantity_tests(text)
        case ParamType.DATE:
            return _date_tests(ctx, text), ()
        case ParamType.NUMBER:
            return _number_tests(unescape(text)), ()
        case ParamType.STRING:
            normalized = normalize_string(unescape(text))
            if not normalized:
                raise _Malformed(text, "is blank: a string component needs text")
            return (StringStart(normalized),), ()
        case ParamType.REFERENCE:
            return (_reference_value(ctx, shape.second, "", text),), ()
        case ParamType.URI:
            return (UriEquals(unescape(text)),), ()
    raise _Unsupported(f"a composite's second component cannot be a {shape.second_type}")


_Parser = Callable[[_Context, SearchParam, str, list[str]], Clause | None]
_PARSERS: Final[dict[ParamType, _Parser]] = {
    ParamType.TOKEN: _token_clause, ParamType.STRING: _string_clause, ParamType.URI: _uri_clause,
    ParamType.DATE: _date_clause, ParamType.NUMBER: _number_clause,
    ParamType.QUANTITY: _quantity_clause, ParamType.REFERENCE: _reference_clause,
    ParamType.COMPOSITE: _composite_clause}
