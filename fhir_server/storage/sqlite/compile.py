"""Compiles the query tree (``storage/query.py``) into SQL text with bound parameters.

The SQL text is assembled only from fixed fragments of this module; every value that comes from
a query travels as a bound parameter, so user input is always matched literally. A query's
shape (not its values) decides its text, which keeps sqlite3's statement cache effective.

A clause is compiled against a resources row (``Row``): the searched resource, or the target of
a chain, or the source of a ``_has``, each with its own alias. Of the clauses on one row, at most
one drives (``row.rid IN (…)``, read from an index first); the others are correlated probes of
that row (``EXISTS``) — see ``_driving_clause``. An ``AnyClause`` is an ``OR`` of probes, or,
when every alternative reads index entries, one driving union of them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import assert_never

from fhir_server.storage.query import (
    AllClause,
    AnyClause,
    ChainClause,
    Clause,
    CompositeClause,
    CompositeValue,
    HasClause,
    HistoryQuery,
    IdClause,
    LastUpdatedClause,
    MissingClause,
    NotClause,
    RangeClause,
    RangeTest,
    ReferenceClause,
    ReferenceValue,
    SearchQuery,
    SortKey,
    StringClause,
    StringStart,
    TextClause,
    TokenClause,
    TokenValue,
    TypeClause,
    UriClause,
    UriEquals,
)
from fhir_server.storage.sqlite.index_tables import INDEX_TABLES

VERSION_COLUMNS = "resource_type, id, version, last_updated, method, body"
"""Selected in the order of ``StoredVersion``'s fields, so a row builds one positionally."""


@dataclass(frozen=True, slots=True)
class Sql:
    """A fragment or statement: SQL text and the values bound to its ``?`` marks, in order."""

    text: str
    params: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledSearch:
    """The page statement, and the count statement when the query wants a total.

    Each page row holds ``VERSION_COLUMNS`` then its ``sort_columns`` sort values.
    """

    page: Sql
    total: Sql | None
    sort_columns: int = 0


@dataclass(frozen=True, slots=True)
class Row:
    """The ``resources`` row clauses are compiled against: its alias, its type when known, and
    how deep it sits in chains and ``_has`` (which keeps nested aliases distinct)."""

    alias: str
    resource_type: str | None
    depth: int = 0

    def nested(self, role: str, resource_type: str) -> Row:
        return Row(f"{role}{self.depth + 1}", resource_type, self.depth + 1)


@dataclass(frozen=True, slots=True)
class Entries:
    """The rows of one index table meeting all ``conditions``: what one clause value matches."""

    table: str
    conditions: tuple[Sql, ...]


TRUE = Sql("1")
FALSE = Sql("0")

_OPERATORS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_RANGE_COLUMNS = {"low": "low", "high": "high"}
_RANGE_TABLES = {"date": "idx_date", "number": "idx_number", "quantity": "idx_quantity"}
_SELF_AND_PREFIXES = ("WITH RECURSIVE prefixes (p) AS (SELECT ? UNION ALL "
                      "SELECT substr(p, 1, length(p) - 1) FROM prefixes WHERE length(p) > 1) "
                      "SELECT p FROM prefixes")
"""A value and each of its non-empty prefixes, for ``:above`` (the value starts with the entry)."""

_SORT_ENTRY_VALUES = {
    "string": ("idx_string", "normalized", "normalized"),
    "token": ("idx_token", "code", "code"),
    "date": ("idx_date", "low", "high"),
    "number": ("idx_number", "low", "high"),
    "quantity": ("idx_quantity", "low", "high"),
    "uri": ("idx_uri", "value", "value"),
    "reference": ("idx_reference", "COALESCE(target_type || '/' || target_id, url)",
                  "COALESCE(target_type || '/' || target_id, url)"),
}
"""Per entry kind: its table, and the value it sorts by ascending and descending."""

_ID_RANK = -1
"""Ids drive whenever they are given; the ranks of the other clauses are in ``_drive_rank``."""


def all_of(conditions: Sequence[Sql]) -> Sql:
    """The conjunction of conditions (true when there are none)."""
    if not conditions:
        return TRUE
    return Sql(" AND ".join(f"({c.text})" for c in conditions),
               tuple(param for c in conditions for param in c.params))


def any_of(conditions: Sequence[Sql]) -> Sql:
    """The disjunction of conditions (false when there are none)."""
    if not conditions:
        return FALSE
    return Sql("(" + " OR ".join(f"({c.text})" for c in conditions) + ")",
               tuple(param for c in conditions for param in c.params))


def compile_search(query: SearchQuery) -> CompiledSearch:
    """Current, non-deleted resources in sort then (type, id) order, keyset then offset."""
    filters = _search_filters(query)
    where = all_of(filters)
    total = (Sql(f"SELECT count(*) FROM resources AS r WHERE {where.text}", where.params)
             if query.want_total else None)
    if query.sort:
        return CompiledSearch(_sorted_page(query, where), total, len(query.sort))
    if query.after is not None:
        page_where = all_of([*filters, Sql("(r.resource_type, r.id) > (?, ?)",
                                           tuple(query.after))])
    else:
        page_where = where
    page = Sql(f"SELECT r.resource_type, r.id, r.version, r.last_updated, r.method, r.body "
               f"FROM resources AS r WHERE {page_where.text} "
               f"ORDER BY r.resource_type, r.id LIMIT ? OFFSET ?",
               (*page_where.params, query.count, query.offset))
    return CompiledSearch(page, total)


def _sorted_page(query: SearchQuery, where: Sql) -> Sql:
    """The page of a sorted search: each match with its sort values ``s0``, ``s1``…, ordered
    by them (missing values last) then by the stable tie-breakers."""
    values = [_sort_value(key) for key in query.sort]
    columns = ", ".join(f"({value.text}) AS s{position}" for position, value in enumerate(values))
    keyset = _sorted_keyset(query) if query.after is not None else TRUE
    order = ", ".join(f"s{position} IS NULL, s{position}{' DESC' if key.descending else ''}"
                      for position, key in enumerate(query.sort))
    return Sql(f"SELECT {VERSION_COLUMNS}, {', '.join(f's{n}' for n in range(len(values)))} "
               f"FROM (SELECT r.resource_type, r.id, r.version, r.last_updated, r.method, "
               f"r.body, {columns} FROM resources AS r WHERE {where.text}) "
               f"WHERE {keyset.text} ORDER BY {order}, resource_type, id "
               f"LIMIT ? OFFSET ?",
               (*(param for value in values for param in value.params), *where.params,
                *keyset.params, query.count, query.offset))


def _sort_value(key: SortKey) -> Sql:
    """A row's value for one sort key: a column, or the least (greatest, descending) of its
    entries for the parameter (NULL when it has none)."""
    if key.kind == "id":
        return Sql("r.id")
    if key.kind == "last_updated":
        return Sql("r.last_updated")
    table, ascending, descending = _SORT_ENTRY_VALUES[key.kind]
    aggregate = f"MAX({descending})" if key.descending else f"MIN({ascending})"
    return Sql(f"SELECT {aggregate} FROM {table} WHERE rid = r.rid AND param = ?", (key.param,))


def _sorted_keyset(query: SearchQuery) -> Sql:
    """Rows after the cursor in sort order: the lexicographic OR-chain over the sort values
    (a missing value sorting after every present one) then the tie-breakers."""
    after = query.after or ()
    if len(after) != len(query.sort) + 2:
        raise ValueError("a sorted search's cursor holds one value per sort key, then the "
                         "type and id")
    columns = [*((f"s{n}", key.descending) for n, key in enumerate(query.sort)),
               ("resource_type", False), ("id", False)]
    alternatives: list[Sql] = []
    equal_prefix: list[Sql] = []
    for (column, descending), value in zip(columns, after, strict=True):
        if value is not None:
            operator = "<" if descending else ">"
            alternatives.append(all_of([*equal_prefix, Sql(
                f"{column} IS NULL OR {column} {operator} ?", (value,))]))
            equal_prefix.append(Sql(f"{column} = ?", (value,)))
        else:
            equal_prefix.append(Sql(f"{column} IS NULL"))
    return any_of(alternatives)


def compile_history(query: HistoryQuery) -> Sql:
    """Versions newest first by (last_updated, type, id, version), at most ``query.count``."""
    filters: list[Sql] = []
    if query.resource_type is not None:
        filters.append(Sql("resource_type = ?", (query.resource_type,)))
    if query.id is not None:
        filters.append(Sql("id = ?", (query.id,)))
    if query.since is not None:
        filters.append(Sql("last_updated >= ?", (query.since,)))
    if query.at_high is not None:
        filters.append(Sql("last_updated <= ?", (query.at_high,)))
    if query.at_low is not None:
        filters.append(Sql("valid_to IS NULL OR valid_to > ?", (query.at_low,)))
    if query.before is not None:
        filters.append(Sql("(last_updated, resource_type, id, version) < (?, ?, ?, ?)",
                           tuple(query.before)))
    where = all_of(filters)
    return Sql(f"SELECT {VERSION_COLUMNS} FROM history WHERE {where.text} "
               f"ORDER BY last_updated DESC, resource_type DESC, id DESC, version DESC LIMIT ?",
               (*where.params, query.count))


def _search_filters(query: SearchQuery) -> list[Sql]:
    row = Row("r", query.resource_type)
    return [*_live_row(row), *_row_filters(query.where, row, may_drive=True)]


def _live_row(row: Row) -> list[Sql]:
    """The row is a current, non-deleted resource (of its type, when known)."""
    filters = [Sql(f"{row.alias}.body IS NOT NULL")]
    if row.resource_type is not None:
        filters.append(Sql(f"{row.alias}.resource_type = ?", (row.resource_type,)))
    return filters


def _row_filters(clauses: Sequence[Clause], row: Row, *, may_drive: bool) -> list[Sql]:
    """Every clause on ``row``; one of them drives when the row is not already fixed."""
    driver = _driving_clause(clauses, row) if may_drive else None
    return [_clause(clause, row, drives=position == driver)
            for position, clause in enumerate(clauses)]


def _driving_clause(clauses: Sequence[Clause], row: Row) -> int | None:
    """The position of the clause whose matches the row is read from, if any clause can drive.

    Only one clause can drive: SQLite reads an uncorrelated ``IN (subquery)`` it does not drive
    from into a temporary list in full, so the other clauses are correlated probes (``EXISTS``
    on the full index key, rid included). The lowest ``_drive_rank`` wins, the first on a tie.
    Inside a correlated probe (a chain or ``_has`` that does not drive) the row is fixed by the
    join already, so nothing there drives.
    """
    best = _best_driver(clauses, row)
    return None if best is None else best[1]


def _best_driver(clauses: Sequence[Clause], row: Row) -> tuple[int, int] | None:
    """(rank, position) of the lowest-ranked clause that can drive, the first on a tie."""
    ranked = [(rank, position) for position, clause in enumerate(clauses)
              if (rank := _drive_rank(clause, row)) is not None]
    return min(ranked) if ranked else None


def _drive_rank(clause: Clause, row: Row) -> int | None:
    """How narrow the index range a clause reads is expected to be (lower is narrower); None
    when it cannot drive (negated, ``:contains``, ``:missing``, no values)."""
    match clause:
        case IdClause():
            return _ID_RANK
        case TokenClause(values=values, negate=False) if values:
            return max(_token_rank(value) for value in values)
        case ReferenceClause(values=values) if values:
            return max(_reference_rank(value) for value in values)
        case StringClause(values=values, mode=mode) if values and mode != "contains":
            return 0 if mode == "exact" else 2
        case UriClause(values=values, mode=mode) if values:
            return 0 if mode == "exact" else 2
        case TextClause(values=values) if values:
            return 2
        case CompositeClause(values=values) if values:
            return max(_token_rank(value.first) for value in values)
        case RangeClause(tests=tests, negate=False) if tests:
            return 3
        case ChainClause(where=where):
            return _hop_rank(where, row.nested("t", clause.target_type))
        case HasClause(where=where) if row.resource_type is not None:
            return _hop_rank(where, row.nested("s", clause.source_type))
        case AnyClause(clauses=alternatives) if alternatives:
            return _any_rank(alternatives, row)
        case _:
            return None


def _any_rank(alternatives: Sequence[Clause], row: Row) -> int | None:
    """An ``AnyClause`` drives as one union of index reads, so only when every alternative is
    an entry clause that could drive alone; it is as wide as its widest alternative."""
    if any(_drive_entries(alternative) is None for alternative in alternatives):
        return None
    ranks = [rank for alternative in alternatives
             if (rank := _drive_rank(alternative, row)) is not None]
    return max(ranks) if len(ranks) == len(alternatives) else None


def _drive_entries(clause: Clause) -> list[Entries] | None:
    """The index entries a positive entry clause matches; None for any other clause."""
    match clause:
        case TokenClause(negate=False):
            return _token_entries(clause)
        case TextClause():
            return _text_entries(clause)
        case StringClause():
            return _string_entries(clause)
        case RangeClause(negate=False):
            return _range_entries(clause)
        case ReferenceClause():
            return _reference_entries(clause)
        case UriClause():
            return _uri_entries(clause)
        case CompositeClause():
            return _composite_entries(clause)
        case _:
            return None


def _token_rank(value: TokenValue) -> int:
    if value.system and value.code is not None:
        return 0
    return 1 if value.code is not None else 4


def _reference_rank(value: ReferenceValue) -> int:
    if value.url is not None or (value.target_type and value.target_id is not None):
        return 0
    return 1 if value.target_id is not None else 4


def _hop_rank(where: Sequence[Clause], row: Row) -> int | None:
    """A chain or ``_has`` drives through its own driving clause, one join further away."""
    best = _best_driver(where, row)
    return None if best is None else max(best[0], 0) + 1


def _clause(clause: Clause, row: Row, *, drives: bool) -> Sql:
    match clause:
        case IdClause():
            return _id_clause(clause, row)
        case LastUpdatedClause():
            return _last_updated_clause(clause, row)
        case TypeClause(types=types):
            marks = ", ".join("?" * len(types))
            return Sql(f"{row.alias}.resource_type IN ({marks})" if types else "0", tuple(types))
        case TokenClause():
            return _entry_clause(_token_entries(clause), row, drives=drives,
                                 negate=clause.negate)
        case TextClause():
            return _entry_clause(_text_entries(clause), row, drives=drives)
        case StringClause():
            return _entry_clause(_string_entries(clause), row, drives=drives)
        case RangeClause():
            return _entry_clause(_range_entries(clause), row, drives=drives,
                                 negate=clause.negate)
        case ReferenceClause():
            return _entry_clause(_reference_entries(clause), row, drives=drives)
        case UriClause():
            return _entry_clause(_uri_entries(clause), row, drives=drives)
        case CompositeClause():
            return _entry_clause(_composite_entries(clause), row, drives=drives)
        case MissingClause():
            return _entry_clause(_any_entries(clause.param), row, drives=False,
                                 negate=clause.missing)
        case ChainClause():
            return _chain_clause(clause, row, drives=drives)
        case HasClause():
            return _has_clause(clause, row, drives=drives)
        case AnyClause():
            return _any_clause(clause, row, drives=drives)
        case AllClause(clauses=parts):
            return all_of([_clause(part, row, drives=False) for part in parts])
        case NotClause(clause=negated):
            inner = _clause(negated, row, drives=False)
            return Sql(f"NOT ({inner.text})", inner.params)
        case _:
            assert_never(clause)


def _any_clause(clause: AnyClause, row: Row, *, drives: bool) -> Sql:
    """At least one alternative holds on the row.

    Driving (only chosen when every alternative is an entry clause, see ``_any_rank``), the
    alternatives' entries form one ``UNION ALL`` the row is read from; otherwise each
    alternative is a correlated probe of the row, and the probes are OR-ed.
    """
    if drives:
        matches = [match for alternative in clause.clauses
                   for match in _drive_entries(alternative) or ()]
        return _entry_clause(matches, row, drives=True)
    return any_of([_clause(alternative, row, drives=False) for alternative in clause.clauses])


def _id_clause(clause: IdClause, row: Row) -> Sql:
    if not clause.ids:
        return FALSE
    return Sql(f"{row.alias}.id IN ({_marks(clause.ids)})", clause.ids)


def _last_updated_clause(clause: LastUpdatedClause, row: Row) -> Sql:
    bounds: list[Sql] = []
    if clause.low is not None:
        operator = ">=" if clause.low_inclusive else ">"
        bounds.append(Sql(f"{row.alias}.last_updated {operator} ?", (clause.low,)))
    if clause.high is not None:
        operator = "<=" if clause.high_inclusive else "<"
        bounds.append(Sql(f"{row.alias}.last_updated {operator} ?", (clause.high,)))
    return all_of(bounds)


def _entry_clause(matches: Sequence[Entries], row: Row, *, drives: bool,
                  negate: bool = False) -> Sql:
    """The row has an entry among ``matches`` (none, when ``negate``).

    Each match is one ``UNION ALL`` branch, using its own index: a driving clause selects the
    matching rids, a probe checks the entries of this row only.
    """
    if not matches:
        return TRUE if negate else FALSE
    params = tuple(param for match in matches for c in match.conditions for param in c.params)
    if drives and not negate:
        union = " UNION ALL ".join(f"SELECT rid FROM {match.table} WHERE {_and(match)}"
                                   for match in matches)
        return Sql(f"{row.alias}.rid IN ({union})", params)
    union = " UNION ALL ".join(
        f"SELECT rid FROM {match.table} WHERE {_and(match)} AND rid = {row.alias}.rid"
        for match in matches)
    return Sql(f"{'NOT EXISTS' if negate else 'EXISTS'} ({union})", params)


def _and(match: Entries) -> str:
    return " AND ".join(condition.text for condition in match.conditions)


def _token_entries(clause: TokenClause) -> list[Entries]:
    return [_token_match(clause.param, value) for value in clause.values]


def _token_match(param: str, value: TokenValue) -> Entries:
    conditions = [Sql("param = ?", (param,))]
    if value.system == "":
        conditions.append(Sql("system IS NULL"))
    elif value.system is not None:
        conditions.append(Sql("system = ?", (value.system,)))
    if value.code is not None:
        conditions.append(Sql("code = ?", (value.code,)))
    return Entries("idx_token", tuple(conditions))


def _text_entries(clause: TextClause) -> list[Entries]:
    return [Entries("idx_token", (Sql("param = ?", (clause.param,)), _starts_with("text", text)))
            for text in clause.values]


def _string_entries(clause: StringClause) -> list[Entries]:
    param = Sql("param = ?", (clause.param,))
    match clause.mode:
        case "prefix":
            tests = [_starts_with("normalized", value) for value in clause.values]
        case "contains":
            tests = [Sql("instr(normalized, ?) > 0", (value,)) for value in clause.values]
        case "exact":
            tests = [Sql("normalized = ? AND exact = ?", (normalized, value))
                     for value, normalized in zip(clause.values, clause.normalized, strict=True)]
        case _:
            assert_never(clause.mode)
    return [Entries("idx_string", (param, test)) for test in tests]


def _range_entries(clause: RangeClause) -> list[Entries]:
    table = _RANGE_TABLES[clause.kind]
    return [Entries(table, (Sql("param = ?", (clause.param,)),
                            *_range_test(test, quantity=clause.kind == "quantity")))
            for test in clause.tests]


def _range_test(test: RangeTest, *, quantity: bool) -> list[Sql]:
    """All bounds on one entry, plus its unit's system and code for a quantity."""
    conditions = [Sql(f"{_RANGE_COLUMNS[bound.field]} {_OPERATORS[bound.op]} ?", (bound.value,))
                  for bound in test.bounds]
    if quantity and test.system is not None:
        conditions.append(Sql("system = ?", (test.system,)))
    if quantity and test.code is not None:
        conditions.append(Sql("code = ?", (test.code,)))
    return conditions


def _reference_entries(clause: ReferenceClause) -> list[Entries]:
    return [_reference_match(clause.param, value) for value in clause.values]


def _reference_match(param: str, value: ReferenceValue) -> Entries:
    return Entries("idx_reference", (Sql("param = ?", (param,)), *_reference_conditions(value)))


def _reference_conditions(value: ReferenceValue) -> list[Sql]:
    """A reference's url, or id and type, on the columns both tables name alike."""
    conditions: list[Sql] = []
    if value.url is not None:
        conditions.append(Sql("url = ?", (value.url,)))
    if value.target_id is not None:
        conditions.append(Sql("target_id = ?", (value.target_id,)))
    if value.target_type is not None:
        conditions.append(Sql("target_type = ?", (value.target_type,)))
    return conditions


def _uri_entries(clause: UriClause) -> list[Entries]:
    param = Sql("param = ?", (clause.param,))
    match clause.mode:
        case "exact":
            tests = [Sql("value = ?", (value,)) for value in clause.values]
        case "below":
            tests = [_starts_with("value", value) for value in clause.values]
        case "above":
            tests = [Sql(f"value IN ({_SELF_AND_PREFIXES})", (value,)) for value in clause.values]
        case _:
            assert_never(clause.mode)
    return [Entries("idx_uri", (param, test)) for test in tests]


def _composite_entries(clause: CompositeClause) -> list[Entries]:
    """One row of ``idx_composite`` (one context element) meets both components of a value."""
    return [Entries("idx_composite", (Sql("param = ?", (clause.param,)),
                                      *_composite_match(value)))
            for value in clause.values]


def _composite_match(value: CompositeValue) -> list[Sql]:
    first = _token_columns(value.first, "system", "code")
    second = value.second
    match second:
        case TokenValue():
            return [*first, *_token_columns(second, "value_system", "value_code")]
        case RangeTest():
            return [*first, *_range_test(second, quantity=False), *_unit_columns(second)]
        case ReferenceValue():
            return [*first, *_reference_conditions(second)]
        case StringStart(prefix):
            return [*first, _starts_with("normalized", prefix)]
        case UriEquals(uri):
            return [*first, Sql("url = ?", (uri,))]
        case _:
            assert_never(second)


def _unit_columns(test: RangeTest) -> list[Sql]:
    """A quantity test's unit system and code, on the composite's second-value columns."""
    conditions: list[Sql] = []
    if test.system is not None:
        conditions.append(Sql("value_system = ?", (test.system,)))
    if test.code is not None:
        conditions.append(Sql("value_code = ?", (test.code,)))
    return conditions


def _token_columns(value: TokenValue, system: str, code: str) -> list[Sql]:
    """A token's system (``""``: none) and code on two columns of the composite table."""
    conditions: list[Sql] = []
    if value.system == "":
        conditions.append(Sql(f"{system} IS NULL"))
    elif value.system is not None:
        conditions.append(Sql(f"{system} = ?", (value.system,)))
    if value.code is not None:
        conditions.append(Sql(f"{code} = ?", (value.code,)))
    return conditions


def _any_entries(param: str) -> list[Entries]:
    """Entries of ``param`` in every index table (a clause that does not know the param's type)."""
    return [Entries(table.name, (Sql("param = ?", (param,)),)) for table in INDEX_TABLES]


def _starts_with(column: str, prefix: str) -> Sql:
    """``column`` starts with ``prefix``, as a range an index can seek: [prefix, successor).

    Text compares by UTF-8 bytes, which is code point order, so the strings starting with the
    prefix are exactly those from the prefix up to (excluding) its successor.
    """
    upper = _successor(prefix)
    if upper is None:
        return Sql(f"{column} >= ?", (prefix,))
    return Sql(f"{column} >= ? AND {column} < ?", (prefix, upper))


def _successor(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix``; None when there is none."""
    for end in range(len(prefix) - 1, -1, -1):
        point = ord(prefix[end]) + 1
        if 0xD800 <= point <= 0xDFFF:  # surrogates are not text: skip to the next code point
            point = 0xE000
        if point <= 0x10FFFF:
            return prefix[:end] + chr(point)
    return None


def _chain_clause(clause: ChainClause, row: Row, *, drives: bool) -> Sql:
    """Some ``param`` reference of the row designates a live ``target_type`` resource meeting
    every inner clause.

    Driving, it starts from the targets (found through their own driving clause) and follows
    the references back to the rows; probing, it follows this row's references to the targets.
    """
    target = row.nested("t", clause.target_type)
    t, link = target.alias, f"c{target.depth}"
    if drives:
        inner = all_of([*_live_row(target),
                        *_row_filters(clause.where, target, may_drive=True)])
        return Sql(f"{row.alias}.rid IN (SELECT {link}.rid FROM resources AS {t} "
                   f"JOIN idx_reference AS {link} ON {link}.param = ? "
                   f"AND {link}.target_id = {t}.id AND {link}.target_type = {t}.resource_type "
                   f"WHERE {inner.text})", (clause.param, *inner.params))
    inner = all_of([Sql(f"{link}.rid = {row.alias}.rid AND {link}.param = ? "
                        f"AND {link}.target_type = ?", (clause.param, clause.target_type)),
                    Sql(f"{t}.body IS NOT NULL"),
                    *_row_filters(clause.where, target, may_drive=False)])
    return Sql(f"EXISTS (SELECT 1 FROM idx_reference AS {link} JOIN resources AS {t} "
               f"ON {t}.resource_type = {link}.target_type AND {t}.id = {link}.target_id "
               f"WHERE {inner.text})", inner.params)


def _has_clause(clause: HasClause, row: Row, *, drives: bool) -> Sql:
    """Some live ``source_type`` resource meeting every inner clause has a ``param`` reference
    designating the row.

    Driving (the row's type is known), it starts from the sources and yields the ids they
    designate; probing, it looks up the references to this row's type and id.
    """
    source = row.nested("s", clause.source_type)
    s, link = source.alias, f"h{source.depth}"
    if drives and row.resource_type is not None:
        inner = all_of([*_live_row(source),
                        *_row_filters(clause.where, source, may_drive=True)])
        return Sql(f"{row.alias}.id IN (SELECT {link}.target_id FROM resources AS {s} "
                   f"JOIN idx_reference AS {link} ON {link}.rid = {s}.rid "
                   f"AND {link}.param = ? AND {link}.target_type = ? WHERE {inner.text})",
                   (clause.param, row.resource_type, *inner.params))
    inner = all_of([Sql(f"{link}.param = ? AND {link}.target_id = {row.alias}.id "
                        f"AND {link}.target_type = {row.alias}.resource_type", (clause.param,)),
                    *_live_row(source),
                    *_row_filters(clause.where, source, may_drive=False)])
    return Sql(f"EXISTS (SELECT 1 FROM idx_reference AS {link} JOIN resources AS {s} "
               f"ON {s}.rid = {link}.rid WHERE {inner.text})", inner.params)


def _marks(values: Iterable[object]) -> str:
    return ", ".join("?" for _ in values)
