"""Query-tree clauses built the way the search parser builds them, for store-level tests."""

from __future__ import annotations

from fhir_server.search.normalize import normalize_string
from fhir_server.storage.query import StringClause


def exact_string(param: str, *values: str) -> StringClause:
    """A ``:exact`` string clause, with the normalised forms the parser adds."""
    return StringClause(param, values, "exact", tuple(normalize_string(v) for v in values))
