"""Reading the implementation guide in profiles/ for its tests: files, profiles, base elements.

The helpers here only read JSON and the vendored R4 definitions; what they find is asserted by
``test_guide_content.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fhir_server.definitions import load_bundle, structure_definitions

PROFILES = Path(__file__).resolve().parents[3] / "profiles"
EXAMPLES = PROFILES / "examples"
INVALID = EXAMPLES / "invalid"
BASE = "https://fhir.pictaderm.com"
EXPECTED_SUFFIX = ".expected.json"

Resource = dict[str, Any]
_INDEX = re.compile(r"\[\d+\]")


@dataclass(frozen=True, slots=True)
class Found:
    """One JSON file of the guide and what it holds."""

    path: Path
    resource: Resource

    @property
    def key(self) -> str:
        return f"{self.resource['resourceType']}/{self.resource['id']}"


@dataclass(frozen=True, slots=True)
class InvalidExample:
    """An invalid example and the refusal it expects."""

    found: Found
    reason: str
    expression: str
    code: str


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def json_files() -> list[Path]:
    return sorted(PROFILES.rglob("*.json"))


def _resources_in(directory: Path) -> list[Found]:
    return [Found(path, read_json(path)) for path in sorted(directory.glob("*.json"))
            if path.name != "package.json" and not path.name.endswith(EXPECTED_SUFFIX)]


@cache
def artifacts() -> tuple[Found, ...]:
    """The conformance resources at the top of profiles/ (ImplementationGuide included)."""
    return tuple(_resources_in(PROFILES))


@cache
def valid_examples() -> tuple[Found, ...]:
    return tuple(_resources_in(EXAMPLES))


@cache
def invalid_examples() -> tuple[InvalidExample, ...]:
    found = []
    for item in _resources_in(INVALID):
        expected = read_json(item.path.with_name(item.path.stem + EXPECTED_SUFFIX))
        found.append(InvalidExample(item, expected["reason"], expected["expression"],
                                    expected["code"]))
    return tuple(found)


def of_type(resource_type: str) -> list[Resource]:
    return [f.resource for f in artifacts() if f.resource["resourceType"] == resource_type]


@cache
def profiles() -> dict[str, Resource]:
    """The guide's StructureDefinitions by canonical URL."""
    return {sd["url"]: sd for sd in of_type("StructureDefinition")}


def resource_profiles() -> dict[str, Resource]:
    return {url: sd for url, sd in profiles().items() if sd["kind"] == "resource"}


@cache
def guide_code_systems() -> dict[str, Resource]:
    return {cs["url"]: cs for cs in of_type("CodeSystem")}


def concept_codes(code_system: Resource) -> set[str]:
    found: set[str] = set()
    pending = list(code_system.get("concept", []))
    while pending:
        concept = pending.pop()
        found.add(concept["code"])
        pending.extend(concept.get("concept", []))
    return found


@cache
def core_code_systems() -> dict[str, Resource]:
    return {cs["url"]: cs for cs in load_bundle("codesystems")}


@cache
def core_canonicals() -> frozenset[str]:
    """StructureDefinitions and ValueSets of R4 known from the vendored definitions: every
    StructureDefinition, every ValueSet a core element binds to, every CodeSystem's ValueSet."""
    found: set[str] = set()
    for bundle in ("profiles-types", "profiles-resources"):
        for sd in load_bundle(bundle):
            found.add(sd["url"])
            for element in sd.get("snapshot", {}).get("element", []):
                value_set = element.get("binding", {}).get("valueSet")
                if value_set:
                    found.add(unversioned(value_set))
    found.update(cs["valueSet"] for cs in load_bundle("codesystems") if cs.get("valueSet"))
    return frozenset(found)


def unversioned(canonical: str) -> str:
    return canonical.split("|", 1)[0]


def codings(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object with a string ``system`` and ``code`` (Codings and patterns)."""
    if isinstance(value, dict):
        if isinstance(value.get("system"), str) and isinstance(value.get("code"), str):
            yield value
        for item in value.values():
            yield from codings(item)
    elif isinstance(value, list):
        for item in value:
            yield from codings(item)


def references(value: Any) -> Iterator[str]:
    """Every ``reference`` string of the Reference objects inside ``value``."""
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield value["reference"]
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def element_path(expression: str) -> str:
    """``Patient.identifier[0].value`` -> ``Patient.identifier.value``."""
    return _INDEX.sub("", expression)


# ------------------------------------------------------------------ base (core) elements

@cache
def _snapshot(type_name: str) -> dict[str, Resource]:
    sd = structure_definitions().get(type_name)
    if sd is None:
        return {}
    return {element["path"]: element for element in sd["snapshot"]["element"]}


def _walk(path: str) -> list[tuple[str, str]] | None:
    """The (type, snapshot path) steps that reach ``path`` in the core definitions, descending
    into data types: ``Patient.identifier.system`` -> [(Patient, Patient.identifier),
    (Identifier, Identifier.system)]. None when R4 has no such element."""
    parts = path.split(".")
    type_name, start = parts[0], 0
    steps: list[tuple[str, str]] = []
    while True:
        snapshot = _snapshot(type_name)
        for end in range(len(parts), start, -1):
            candidate = ".".join([type_name, *parts[start + 1:end]])
            if candidate in snapshot:
                steps.append((type_name, candidate))
                if end == len(parts):
                    return steps
                types = snapshot[candidate].get("type", [])
                if len(types) != 1:
                    return None
                type_name, start = types[0]["code"], end - 1
                break
        else:
            return None


def base_position(path: str) -> tuple[int, ...] | None:
    """Where ``path`` sits in the core definitions, one index per step of ``_walk``."""
    steps = _walk(path)
    if steps is None:
        return None
    return tuple(list(_snapshot(type_name)).index(step) for type_name, step in steps)


def base_element(path: str) -> Resource | None:
    """The core ElementDefinition of ``path``, descending into data types."""
    steps = _walk(path)
    if steps is None:
        return None
    type_name, step = steps[-1]
    return _snapshot(type_name)[step]


def core_constraint_keys() -> set[str]:
    keys: set[str] = set()
    for sd in structure_definitions().values():
        for element in sd["snapshot"]["element"]:
            keys.update(c["key"] for c in element.get("constraint", []))
    return keys


# ------------------------------------------------------------- profile elements as FHIRPath

def differential(sd: Resource) -> list[Resource]:
    elements: list[Resource] = sd["differential"]["element"]
    return elements


def _by_id(sd: Resource) -> dict[str, Resource]:
    return {element["id"]: element for element in differential(sd)}


def slice_filter(sd: Resource, sliced_id: str, slice_name: str) -> str:
    """A FHIRPath ``where(...)`` criterion selecting the items of one slice, from the
    slicing's discriminators (``value`` on a fixed uri/code, ``pattern`` on a
    CodeableConcept), or from the extension's url."""
    elements = _by_id(sd)
    if "slicing" not in elements.get(sliced_id, {}) and sliced_id.endswith("extension"):
        [url] = elements[f"{sliced_id}:{slice_name}"]["type"][0]["profile"]
        return f"url = '{url}'"  # R4 slices extensions by url
    criteria = []
    for discriminator in elements[sliced_id]["slicing"]["discriminator"]:
        path = discriminator["path"]
        holder = f"{sliced_id}:{slice_name}" + ("" if path == "$this" else f".{path}")
        element = elements[holder]
        prefix = "" if path == "$this" else f"{path}."
        criteria.append(_criterion(element, prefix))
    return " and ".join(criteria)


def _criterion(element: Resource, prefix: str) -> str:
    for key, value in element.items():
        if key.startswith(("fixed", "pattern")) and isinstance(value, str):
            return f"{prefix.rstrip('.')} = '{value}'"
        if key == "patternCodeableConcept":
            coding = value["coding"][0]
            return (f"{prefix}coding.where(system = '{coding['system']}' and "
                    f"code = '{coding['code']}').exists()")
    raise AssertionError(f"{element['id']}: no fixed or pattern value to discriminate on")


def context_expression(sd: Resource, element_id: str) -> str:
    """The FHIRPath, from the resource, of the nodes an element of the differential applies
    to: ``Patient.identifier:insNir.value`` -> ``Patient.identifier.where(<slice>).value``."""
    parts = element_id.split(".")
    built = [parts[0]]
    sliced = parts[0]
    for part in parts[1:]:
        name, _, slice_name = part.partition(":")
        sliced = f"{sliced}.{name}"
        if slice_name:
            built.append(f"{name}.where({slice_filter(sd, sliced, slice_name)})")
            sliced = f"{sliced}:{slice_name}"
        else:
            built.append(name)
    return ".".join(built)


def constraints(sd: Resource) -> Iterator[tuple[Resource, Resource]]:
    """(element, constraint) for every constraint of the differential."""
    for element in differential(sd):
        for constraint in element.get("constraint", []):
            yield element, constraint


def elements_at(sd: Resource, path: str) -> list[Resource]:
    """The differential elements (the element and its slices) whose path is ``path``."""
    return [element for element in differential(sd) if element["path"] == path]
