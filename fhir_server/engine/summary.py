"""``_summary`` and ``_elements``: return a subset of a resource, tagged SUBSETTED.

Spec: https://hl7.org/fhir/R4/search.html#summary and #elements. Summary membership and
mandatory elements come from the official snapshots (top-level elements; a kept complex
element is kept whole).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from fhir_server.definitions import structure_definitions
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.types import ResourceDict

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
             "code": "SUBSETTED", "display": "subsetted"}
_ALWAYS = ("resourceType", "id", "meta")
SUMMARY_MODES = frozenset({"true", "false", "text", "data", "count"})


@cache
def _top_level(resource_type: str) -> tuple[frozenset[str], frozenset[str]]:
    """(summary element names, mandatory element names) of a type, without ``[x]``."""
    sd = structure_definitions().get(resource_type)
    summary: set[str] = set()
    mandatory: set[str] = set()
    if sd is None:
        return frozenset(), frozenset()
    for element in sd["snapshot"]["element"]:
        path: str = element["path"]
        parts = path.split(".")
        if len(parts) != 2:
            continue
        name = parts[1].removesuffix("[x]")
        if element.get("isSummary"):
            summary.add(name)
        if element.get("min", 0) >= 1:
            mandatory.add(name)
    return frozenset(summary), frozenset(mandatory)


def _matches(key: str, names: Iterable[str]) -> bool:
    bare = key.lstrip("_")
    return any(bare == n or (bare.startswith(n) and bare[len(n):][:1].isupper()) for n in names)


def _tagged(subset: ResourceDict) -> ResourceDict:
    meta = dict(subset.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED]
    subset["meta"] = meta
    return subset


def apply_summary(resource: ResourceDict, mode: str) -> ResourceDict:
    """The resource reduced per ``_summary=mode`` (``false`` and ``count`` leave it whole)."""
    if mode not in SUMMARY_MODES:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        f"_summary: '{mode[:20]}' is not one of true, text, data, count, false",
                        expression=("_summary",))
    if mode in ("false", "count"):
        return resource
    if mode == "data":
        return _tagged({k: v for k, v in resource.items() if k != "text"})
    summary, mandatory = _top_level(str(resource.get("resourceType")))
    keep = summary if mode == "true" else mandatory | {"text"}
    subset = {k: v for k, v in resource.items() if k in _ALWAYS or _matches(k, keep)}
    return _tagged(subset)


def apply_elements(resource: ResourceDict, elements: str) -> ResourceDict:
    """Only the listed top-level elements (plus id, meta and mandatory elements)."""
    names = {e.strip().split(".")[-1] for e in elements.split(",") if e.strip()}
    _, mandatory = _top_level(str(resource.get("resourceType")))
    keep = names | mandatory
    return _tagged({k: v for k, v in resource.items() if k in _ALWAYS or _matches(k, keep)})
