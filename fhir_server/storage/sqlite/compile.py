"""Compiles the query tree (``storage/query.py``) into SQL text with bound parameters.

The SQL text is assembled only from fixed fragments of this module; every value that comes from
a query travels as a bound parameter, so user input is always matched literally. A query's
shape (not its values) decides its text, which keeps sqlite3's statement cache effective.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import assert_never

from fhir_server.storage.query import (
    Clause,
    HistoryQuery,
    IdClause,
    LastUpdatedClause,
    SearchQuery,
    TokenClause,
    TokenValue,
)

VERSION_COLUMNS = "resource_type, id, version, last_updated, method, body"
"""Selected in the order of ``StoredVersion``'s fields, so a row builds one positionally."""


@dataclass(frozen=True, slots=True)
class Sql:
    """A fragment or statement: SQL text and the values bound to its ``?`` marks, in order."""

    text: str
    params: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledSearch:
    """The page statement, and the count statement when the query wants a total."""

    page: Sql
    total: Sql | None


TRUE = Sql("1")
FALSE = Sql("0")


def all_of(conditions: Sequence[Sql]) -> Sql:
    """The conjunction of conditions (true when there are none)."""
    if not conditions:
        return TRUE
    return Sql(" AND ".join(f"({c.text})" for c in conditions),
               tuple(param for c in conditions for param in c.params))


def compile_search(query: SearchQuery) -> CompiledSearch:
    """Current, non-deleted resources in (last_updated, type, id) order, keyset then offset."""
    filters = _search_filters(query)
    where = all_of(filters)
    if query.after is not None:
        page_where = all_of([*filters, Sql("(r.last_updated, r.resource_type, r.id) > (?, ?, ?)",
                                           tuple(query.after))])
    else:
        page_where = where
    page = Sql(f"SELECT r.resource_type, r.id, r.version, r.last_updated, r.method, r.body "
               f"FROM resources AS r WHERE {page_where.text} "
               f"ORDER BY r.last_updated, r.resource_type, r.id LIMIT ? OFFSET ?",
               (*page_where.params, query.count, query.offset))
    total = (Sql(f"SELECT count(*) FROM resources AS r WHERE {where.text}", where.params)
             if query.want_total else None)
    return CompiledSearch(page, total)


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
    filters = [Sql("r.body IS NOT NULL")]
    if query.resource_type is not None:
        filters.append(Sql("r.resource_type = ?", (query.resource_type,)))
    driver = _driving_clause(query.where)
    filters.extend(_clause(clause, drives=clause is driver) for clause in query.where)
    return filters


def _driving_clause(clauses: Sequence[Clause]) -> TokenClause | None:
    """The token clause whose matches the search starts from, if any.

    Only one clause can drive: SQLite reads an uncorrelated ``IN (subquery)`` it does not drive
    from into a temporary list in full, so the other token clauses are correlated probes
    (``EXISTS`` on the full index key, rid included). When ids are given they drive instead.
    Among positive token clauses, the one whose values are the most specific wins (system and
    code, then code alone, then neither), the first on a tie.
    """
    if any(isinstance(clause, IdClause) for clause in clauses):
        return None
    candidates = [clause for clause in clauses
                  if isinstance(clause, TokenClause) and not clause.negate and clause.values]
    return min(candidates, key=_vagueness, default=None)


def _vagueness(clause: TokenClause) -> int:
    return max(0 if value.system and value.code is not None else 1 if value.code is not None
               else 2 for value in clause.values)


def _clause(clause: Clause, *, drives: bool) -> Sql:
    match clause:
        case IdClause():
            return _id_clause(clause)
        case TokenClause():
            return _token_clause(clause, drives=drives)
        case LastUpdatedClause():
            return _last_updated_clause(clause)
        case _:
            assert_never(clause)


def _id_clause(clause: IdClause) -> Sql:
    if not clause.ids:
        return FALSE
    return Sql(f"r.id IN ({_marks(clause.ids)})", clause.ids)


def _token_clause(clause: TokenClause, *, drives: bool) -> Sql:
    """Resources with an entry matching one of the values (or with none, when negated)."""
    if not clause.values:
        return TRUE if clause.negate else FALSE
    matches = [_token_match(clause.param, value, correlated=not drives)
               for value in clause.values]
    union = " UNION ALL ".join(m.text for m in matches)
    params = tuple(param for m in matches for param in m.params)
    if drives:
        return Sql(f"r.rid IN ({union})", params)
    return Sql(f"{'NOT EXISTS' if clause.negate else 'EXISTS'} ({union})", params)


def _token_match(param: str, value: TokenValue, *, correlated: bool) -> Sql:
    """Entries of ``param`` matching one token value (of the outer row, when correlated)."""
    conditions = ["param = ?"]
    params: list[object] = [param]
    if value.system == "":
        conditions.append("system IS NULL")
    elif value.system is not None:
        conditions.append("system = ?")
        params.append(value.system)
    if value.code is not None:
        conditions.append("code = ?")
        params.append(value.code)
    if correlated:
        conditions.append("rid = r.rid")
    return Sql(f"SELECT rid FROM idx_token WHERE {' AND '.join(conditions)}", tuple(params))


def _last_updated_clause(clause: LastUpdatedClause) -> Sql:
    bounds: list[Sql] = []
    if clause.low is not None:
        operator = ">=" if clause.low_inclusive else ">"
        bounds.append(Sql(f"r.last_updated {operator} ?", (clause.low,)))
    if clause.high is not None:
        operator = "<=" if clause.high_inclusive else "<"
        bounds.append(Sql(f"r.last_updated {operator} ?", (clause.high,)))
    return all_of(bounds)


def _marks(values: Iterable[object]) -> str:
    return ", ".join("?" for _ in values)
