"""Access to the vendored official FHIR R4 4.0.1 definitions (see scripts/vendor_fhir_definitions.py)."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

R4_DIR = Path(__file__).resolve().parent / "r4"


@cache
def load_bundle(name: str) -> tuple[dict[str, Any], ...]:
    """The resources of one vendored definition file, e.g. ``load_bundle("search-parameters")``."""
    with gzip.open(R4_DIR / f"{name}.json.gz", "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    if data.get("resourceType") == "Bundle":
        return tuple(entry["resource"] for entry in data.get("entry", []))
    return (data,)


@cache
def structure_definitions() -> dict[str, dict[str, Any]]:
    """Core StructureDefinitions (resources and data types) by type name."""
    found: dict[str, dict[str, Any]] = {}
    for name in ("profiles-types", "profiles-resources"):
        for sd in load_bundle(name):
            if sd.get("derivation") == "constraint":
                continue
            found[sd["type"]] = sd
    return found


@cache
def resource_types() -> tuple[str, ...]:
    """Every concrete R4 resource type name, sorted (the abstract Resource/DomainResource excluded)."""
    return tuple(sorted(
        sd["type"] for sd in load_bundle("profiles-resources")
        if sd.get("kind") == "resource" and not sd.get("abstract")
        and sd.get("derivation") != "constraint"
    ))
