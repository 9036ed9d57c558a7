"""Regenerate fhir_server/definitions/r4/ from the official FHIR R4 4.0.1 definitions.

The server ships only what it uses of the official definitions, slimmed of prose and mappings
so the copy stays small. Run from the repository root:

    python scripts/vendor_fhir_definitions.py [--source ../shared/fhir-r4]

The output is deterministic (sorted keys, fixed gzip mtime), so a regeneration with unchanged
input produces no diff.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

TARGET = Path(__file__).resolve().parents[1] / "fhir_server" / "definitions" / "r4"

# Element keys that only carry prose or mappings: nothing in the server reads them.
_DROP_ELEMENT_KEYS = {"definition", "comment", "requirements", "mapping", "alias", "example",
                      "isModifierReason", "meaningWhenMissing", "orderMeaning"}
_DROP_RESOURCE_KEYS = {"text", "mapping", "contact", "copyright", "purpose", "description",
                       "publisher", "jurisdiction", "useContext"}


def _slim_element(element: dict[str, Any]) -> dict[str, Any]:
    slim = {k: v for k, v in element.items() if k not in _DROP_ELEMENT_KEYS}
    binding = slim.get("binding")
    if isinstance(binding, dict):
        slim["binding"] = {k: v for k, v in binding.items() if k in ("strength", "valueSet")}
    constraints = slim.get("constraint")
    if isinstance(constraints, list):
        slim["constraint"] = [
            {k: v for k, v in c.items()
             if k in ("key", "severity", "human", "expression", "source")}
            for c in constraints
        ]
    return slim


def _slim_structure_definition(sd: dict[str, Any]) -> dict[str, Any]:
    slim = {k: v for k, v in sd.items() if k not in _DROP_RESOURCE_KEYS}
    slim.pop("extension", None)
    for part in ("snapshot", "differential"):
        if part in slim:
            slim[part] = {"element": [_slim_element(e) for e in slim[part]["element"]]}
    return slim


def _slim_search_parameter(sp: dict[str, Any]) -> dict[str, Any]:
    keep = ("resourceType", "id", "url", "version", "name", "status", "code", "base", "type",
            "expression", "xpathUsage", "target", "multipleOr", "multipleAnd", "comparator",
            "modifier", "chain", "component", "description")
    return {k: sp[k] for k in keep if k in sp}


def _bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in resources]}


def _load(source: Path, name: str) -> dict[str, Any]:
    with gzip.open(source / f"{name}.json.gz", "rt", encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
        return data


def _write(name: str, data: dict[str, Any]) -> None:
    TARGET.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    with open(TARGET / f"{name}.json.gz", "wb") as out, \
            gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw.encode("utf-8"))
    print(f"wrote {name}.json.gz ({(TARGET / f'{name}.json.gz').stat().st_size} bytes)")


def vendor(source: Path) -> None:
    """Copy and slim the definitions the server uses."""
    for name in ("profiles-resources", "profiles-types"):
        bundle = _load(source, name)
        sds = [_slim_structure_definition(e["resource"]) for e in bundle["entry"]
               if e["resource"]["resourceType"] == "StructureDefinition"]
        _write(name, _bundle(sds))
    params = _load(source, "search-parameters")
    _write("search-parameters",
           _bundle([_slim_search_parameter(e["resource"]) for e in params["entry"]]))
    _write("compartmentdefinition-patient", _load(source, "compartmentdefinition-patient"))
    version = (source / "version.info").read_text(encoding="utf-8")
    (TARGET / "version.info").write_text(version, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "fhir-r4"
    parser.add_argument("--source", type=Path, default=default)
    args = parser.parse_args()
    vendor(args.source)


if __name__ == "__main__":
    main()
