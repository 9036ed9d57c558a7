"""Regenerate fhir_server/definitions/r4/ from the official FHIR R4 4.0.1 definitions.

The server ships only what it uses of the official definitions, slimmed of prose and mappings
so the copy stays small: StructureDefinitions, search parameters, the Patient compartment and
the ValueSets (FHIR, v3 and v2, their ``compose`` only: the codes with their displays, filters
and included value sets that decide membership; expansions left out) and the CodeSystems of
complete content, reduced to their codes, displays and hierarchy (nested concepts, parent/child
properties) for ``$lookup``, ``$expand``, token ``:below``/``:above`` and the validator. Run
from the repository root:

    python scripts/vendor_fhir_definitions.py [--source ../shared/fhir-r4]

The output is deterministic (sorted keys, fixed gzip mtime), so a regeneration with unchanged
input produces no diff.

The source copy is not pure 4.0.1: it carries later or vendor additions (a 4.3.0 resource,
SubscriptionStatus; a 5.0.0 search parameter; R5 elements on ResearchStudy, DeviceDefinition and
Binary; Meta.project/author/account/… of one server vendor). They are removed here, so the
server neither accepts nor advertises anything that is not FHIR R4: definitions whose version is
not 4.0.1, elements that the official R4 JSON schema (fhir.schema.json) does not have, and the
listed Meta additions, which the source's schema copy carries too. A FHIR ValueSet
(``http://hl7.org/fhir/…``) whose version is not 4.0.1 is left out for the same reason.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path
from typing import Any

from fhir_server.engine.code_hierarchy import OFFICIAL_BUNDLE, link_properties

TARGET = Path(__file__).resolve().parents[1] / "fhir_server" / "definitions" / "r4"

# Element keys that only carry prose or mappings: nothing in the server reads them.
# (``isModifierReason`` stays: snapshots generated from these must keep it, rule eld-18.)
_DROP_ELEMENT_KEYS = {"definition", "comment", "requirements", "mapping", "alias", "example",
                      "meaningWhenMissing", "orderMeaning"}
_NON_R4_META = {"Meta.project", "Meta.author", "Meta.onBehalfOf", "Meta.account", "Meta.accounts",
                 "Meta.compartment"}
_R4 = "4.0.1"
_DROP_RESOURCE_KEYS = {"text", "mapping", "contact", "copyright", "purpose", "description",
                       "publisher", "jurisdiction", "useContext"}


def _slim_element(element: dict[str, Any]) -> dict[str, Any]:
    slim = {k: v for k, v in element.items() if k not in _DROP_ELEMENT_KEYS}
    binding = slim.get("binding")
    if isinstance(binding, dict):
        # a binding without a value set keeps its description (rule sdf-10 needs one of them)
        kept = ("strength", "valueSet") if "valueSet" in binding else ("strength", "description")
        slim["binding"] = {k: v for k, v in binding.items() if k in kept}
    constraints = slim.get("constraint")
    if isinstance(constraints, list):
        slim["constraint"] = [
            {k: v for k, v in c.items()
             if k in ("key", "severity", "human", "expression", "source")}
            for c in constraints
        ]
    return slim


class _Schema:
    """The official R4 JSON schema, to tell which element paths FHIR R4 really defines."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self._definitions: dict[str, Any] = schema["definitions"]

    def _property(self, definition: str, name: str) -> dict[str, Any] | None:
        properties = self._definitions.get(definition, {}).get("properties", {})
        if name.endswith("[x]"):
            stem = name[:-3]
            return next((v for k, v in properties.items()
                         if k.startswith(stem) and k[len(stem):][:1].isupper()), None)
        found: dict[str, Any] | None = properties.get(name)
        return found

    def describes(self, type_name: str) -> bool:
        """Whether the schema lists the type's elements (not for primitives, abstract types)."""
        return "properties" in self._definitions.get(type_name, {})

    def defines(self, path: str) -> bool:
        """Whether ``Type.a.b`` exists in R4, following backbone definitions (``Type_A``)."""
        parts = path.split(".")
        definition = parts[0]
        for name in parts[1:]:
            prop = self._property(definition, name)
            if prop is None:
                return False
            ref = prop.get("$ref") or prop.get("items", {}).get("$ref") or ""
            definition = ref.rsplit("/", 1)[-1]
            if "_" not in definition:
                return True
        return True


def _r4_elements(elements: list[dict[str, Any]], schema: _Schema) -> list[dict[str, Any]]:
    """The elements R4 defines (the non-R4 ones and their descendants left out)."""
    if not elements or not schema.describes(elements[0]["path"]):
        return elements
    dropped: list[str] = []
    kept = []
    for element in elements:
        path = element["path"]
        if any(path == d or path.startswith(d + ".") for d in dropped):
            continue
        if "." in path and (path in _NON_R4_META or not schema.defines(path)):
            dropped.append(path)
            continue
        kept.append(element)
    return kept


def _slim_structure_definition(sd: dict[str, Any], schema: _Schema) -> dict[str, Any]:
    slim = {k: v for k, v in sd.items() if k not in _DROP_RESOURCE_KEYS}
    slim.pop("extension", None)
    for part in ("snapshot", "differential"):
        if part in slim:
            elements = _r4_elements(slim[part]["element"], schema)
            slim[part] = {"element": [_slim_element(e) for e in elements]}
    return slim


def _slim_search_parameter(sp: dict[str, Any]) -> dict[str, Any]:
    keep = ("resourceType", "id", "url", "version", "name", "status", "code", "base", "type",
            "expression", "xpathUsage", "target", "multipleOr", "multipleAnd", "comparator",
            "modifier", "chain", "component", "description")
    return {k: sp[k] for k in keep if k in sp}


_VALUE_SET_SOURCES = ("valuesets", "v3-codesystems", "v2-tables")
_VALUE_SET_KEYS = ("resourceType", "id", "url", "version", "name", "title", "status",
                   "experimental", "immutable")
_FHIR_CANONICAL = "http://hl7.org/fhir/"


def _slim_include(include: dict[str, Any]) -> dict[str, Any]:
    slim: dict[str, Any] = {k: include[k] for k in ("system", "version", "filter", "valueSet")
                            if k in include}
    if "concept" in include:
        slim["concept"] = [{key: concept[key] for key in ("code", "display") if key in concept}
                           for concept in include["concept"]]
    return slim


def _slim_value_set(value_set: dict[str, Any]) -> dict[str, Any]:
    slim = {k: value_set[k] for k in _VALUE_SET_KEYS if k in value_set}
    compose = value_set.get("compose", {})
    slim_compose: dict[str, Any] = {k: compose[k] for k in ("inactive",) if k in compose}
    for part in ("include", "exclude"):
        if compose.get(part):
            slim_compose[part] = [_slim_include(include) for include in compose[part]]
    slim["compose"] = slim_compose
    return slim


def _is_r4_value_set(value_set: dict[str, Any]) -> bool:
    return (not value_set["url"].startswith(_FHIR_CANONICAL)
            or value_set.get("version") == _R4)


def _value_sets(source: Path) -> list[dict[str, Any]]:
    """Every R4 ValueSet of the sources, slimmed, sorted by url (the first of a url kept)."""
    found: dict[str, dict[str, Any]] = {}
    for name in _VALUE_SET_SOURCES:
        for entry in _load(source, name)["entry"]:
            resource = entry["resource"]
            if (resource["resourceType"] == "ValueSet" and _is_r4_value_set(resource)
                    and resource["url"] not in found):
                found[resource["url"]] = _slim_value_set(resource)
    return [found[url] for url in sorted(found)]


# Code systems: only what token :below/:above and the validator need (engine/code_hierarchy.py).
_CODE_SYSTEM_SOURCES = _VALUE_SET_SOURCES


def _slim_concepts(concepts: list[dict[str, Any]], links: frozenset[str]) -> list[dict[str, Any]]:
    slim: list[dict[str, Any]] = []
    for concept in concepts:
        kept: dict[str, Any] = {"code": concept["code"]}
        if "display" in concept:
            kept["display"] = concept["display"]
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
    kept = ("resourceType", "url", "version", "name", "title", "content", "hierarchyMeaning")
    slim: dict[str, Any] = {key: code_system[key] for key in kept if key in code_system}
    declared = [{key: p[key] for key in ("code", "uri", "type") if key in p}
                for p in code_system.get("property", ()) if p.get("code") in links]
    if declared:
        slim["property"] = declared
    slim["concept"] = _slim_concepts(code_system.get("concept", []), links)
    return slim


def _code_systems(source: Path) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name in _CODE_SYSTEM_SOURCES:
        bundle = _load(source, name)
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "CodeSystem" and resource.get("content") == "complete":
                found[resource["url"]] = _slim_code_system(resource)
    return [found[url] for url in sorted(found)]


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
    schema = _Schema(_load(source, "fhir.schema"))
    for name in ("profiles-resources", "profiles-types"):
        bundle = _load(source, name)
        sds = [_slim_structure_definition(e["resource"], schema) for e in bundle["entry"]
               if e["resource"]["resourceType"] == "StructureDefinition"
               and e["resource"].get("fhirVersion") == _R4]
        _write(name, _bundle(sds))
    params = _load(source, "search-parameters")
    _write("search-parameters",
           _bundle([_slim_search_parameter(e["resource"]) for e in params["entry"]
                    if e["resource"].get("version") == _R4]))
    _write("compartmentdefinition-patient", _load(source, "compartmentdefinition-patient"))
    _write("valuesets", _bundle(_value_sets(source)))
    _write(OFFICIAL_BUNDLE, _bundle(_code_systems(source)))
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
