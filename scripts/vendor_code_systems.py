"""Vendor the official R4 code systems' hierarchies into fhir_server/definitions/r4/.

Token ``:below`` / ``:above`` (``fhir_server/engine/code_hierarchy.py``) expand codes within the
code systems the server holds, these official ones included. ``codesystems.json.gz`` keeps only
what that needs: each CodeSystem of complete content (FHIR ``valuesets``, ``v3-codesystems``,
``v2-tables``) with its ``url``, ``hierarchyMeaning``, ``content``, the declarations of its
parent / child properties, and its concepts reduced to ``code``, nested ``concept`` and
parent / child ``property``. Run from the repository root:

    PYTHONPATH=. python scripts/vendor_code_systems.py [--source ../shared/fhir-r4]

The output is deterministic (sorted by url, sorted keys, fixed gzip mtime).
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

from fhir_server.engine.code_hierarchy import OFFICIAL_BUNDLE, link_properties

TARGET = Path(__file__).resolve().parents[1] / "fhir_server" / "definitions" / "r4"
SOURCES = ("valuesets", "v3-codesystems", "v2-tables")


def _slim_concepts(concepts: list[dict[str, Any]], links: frozenset[str]) -> list[dict[str, Any]]:
    slim: list[dict[str, Any]] = []
    for concept in concepts:
        kept: dict[str, Any] = {"code": concept["code"]}
        properties = [{"code": p["code"], "valueCode": p["valueCode"]}
                      for p in concept.get("property", ())
                      if p.get("code") in links and "valueCode" in p]
        if properties:
            kept["property"] = properties
        if concept.get("concept"):
            kept["concept"] = _slim_concepts(concept["concept"], links)
        slim.append(kept)
    return slim


def _slim_code_system(code_system: dict[str, Any]) -> dict[str, Any]:
    parents, children = link_properties(code_system)
    links = parents | children
    kept = ("resourceType", "url", "content", "hierarchyMeaning")
    slim: dict[str, Any] = {key: code_system[key] for key in kept if key in code_system}
    declared = [{key: p[key] for key in ("code", "uri", "type") if key in p}
                for p in code_system.get("property", ()) if p.get("code") in links]
    if declared:
        slim["property"] = declared
    slim["concept"] = _slim_concepts(code_system.get("concept", []), links)
    return slim


def _code_systems(source: Path) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name in SOURCES:
        with gzip.open(source / f"{name}.json.gz", "rt", encoding="utf-8") as handle:
            bundle = json.load(handle)
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "CodeSystem" and resource.get("content") == "complete":
                found[resource["url"]] = _slim_code_system(resource)
    return [found[url] for url in sorted(found)]


def vendor(source: Path) -> None:
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": resource} for resource in _code_systems(source)]}
    raw = json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    target = TARGET / f"{OFFICIAL_BUNDLE}.json.gz"
    with open(target, "wb") as out, \
            gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw.encode("utf-8"))
    print(f"wrote {target.name} ({len(bundle['entry'])} code systems, "
          f"{target.stat().st_size} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "fhir-r4"
    parser.add_argument("--source", type=Path, default=default)
    vendor(parser.parse_args().source)


if __name__ == "__main__":
    main()
