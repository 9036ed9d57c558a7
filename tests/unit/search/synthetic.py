"""Synthetic R4 resources for the FHIRPath comparison: every element filled, from the definitions.

``variants(resource_type)`` builds several resources of a type. Each fills every element of the
StructureDefinition down to ``MAX_DEPTH`` (extensions and narrative left out) with a sample value
of its type, repeating elements with one item. Variant ``k`` gives each choice element its
``k``-th type, each reference the ``k``-th of ``REFERENCES`` and each code the ``k``-th of
``CODES`` (modulo their number), so that across the variants every type of every choice element
appears and the official expressions' ``resolve() is T`` and ``where(x = '…')`` tests both keep
and drop values.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir_server.definitions import structure_definitions

MAX_DEPTH = 5
REFERENCES = ("Patient/p1", "Practitioner/pr1", "http://example.org/fhir/Patient/p2",
              "urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301", "Group/g1", "RelatedPerson/r1",
              "Location/l1", "Organization/o1", "Patient/p3/_history/2", "#contained")
CODES = ("email", "phone", "composed-of", "depends-on", "derived-from", "predecessor",
         "successor", "final")
PRIMITIVES: dict[str, Any] = {
    "string": "Émile Zola", "markdown": "Some *text*", "id": "id-1",
    "uri": "http://example.org/fhir/ValueSet/vs1", "url": "http://example.org/endpoint",
    "canonical": "http://example.org/fhir/Questionnaire/q1|2.0", "oid": "urn:oid:1.2.250.1",
    "uuid": "urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301", "base64Binary": "AAAA",
    "date": "2024-03-05", "dateTime": "2024-03-05T10:00:00+01:00",
    "instant": "2024-03-05T09:00:00.123Z", "time": "10:00:00", "decimal": 1.5, "integer": 3,
    "positiveInt": 2, "unsignedInt": 0,
}
_SKIPPED = frozenset({"extension", "modifierExtension", "id", "contained"})


def variant_count(resource_type: str) -> int:
    """How many variants show every reference, code and type of a choice element of the type."""
    widest = max(len(REFERENCES), len(CODES))
    for element in _elements(resource_type):
        if element["path"].endswith("[x]"):
            widest = max(widest, len(element.get("type", [])))
    return widest


def variants(resource_type: str) -> list[dict[str, Any]]:
    """The synthetic resources of one type."""
    return [_resource(resource_type, k) for k in range(variant_count(resource_type))]


def _resource(resource_type: str, variant: int) -> dict[str, Any]:
    body = _complex(resource_type, resource_type, variant, 1)
    body["resourceType"] = resource_type
    body["id"] = f"{resource_type.lower()}-{variant}"
    return body


@cache
def _elements(definition: str) -> tuple[dict[str, Any], ...]:
    sd = structure_definitions().get(definition, {})
    return tuple(sd.get("snapshot", {}).get("element", []))


@cache
def _children(definition: str, path: str) -> tuple[dict[str, Any], ...]:
    depth = path.count(".") + 1
    return tuple(el for el in _elements(definition)
                 if el["path"].startswith(path + ".") and el["path"].count(".") == depth)


def _complex(definition: str, path: str, variant: int, depth: int) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if depth > MAX_DEPTH:
        return body
    for element in _children(definition, path):
        name = element["path"].rsplit(".", 1)[1]
        if name in _SKIPPED or element.get("max") == "0":
            continue
        for key, value in _values(definition, element, name, variant, depth):
            if value is not None and value != {}:
                body[key] = [value] if element.get("max") != "1" else value
    return body


def _values(definition: str, element: dict[str, Any], name: str, variant: int,
            depth: int) -> list[tuple[str, Any]]:
    reference = element.get("contentReference")
    if isinstance(reference, str):
        return [(name, _complex(definition, reference.lstrip("#"), variant, depth + 1))]
    codes = [str(t.get("code")) for t in element.get("type", [])]
    if not codes:
        return []
    if name.endswith("[x]"):
        chosen = codes[variant % len(codes)]
        key = name[:-3] + chosen[0].upper() + chosen[1:]
        return [(key, _value(definition, element["path"], chosen, variant, depth))]
    return [(name, _value(definition, element["path"], codes[0], variant, depth))]


def _value(definition: str, path: str, type_code: str, variant: int, depth: int) -> Any:
    if type_code.startswith("http://hl7.org/fhirpath/System."):
        return "system-string"
    if type_code == "Reference":
        return {"reference": REFERENCES[variant % len(REFERENCES)],
                "identifier": {"system": "urn:example", "value": "ref-id"}}
    if type_code == "code":
        return CODES[variant % len(CODES)]
    if type_code == "boolean":
        return variant % 2 == 0
    if type_code in PRIMITIVES:
        return PRIMITIVES[type_code]
    if type_code == "Resource":
        return {"resourceType": "Composition", "id": "inline-1"}
    if type_code in ("BackboneElement", "Element"):
        return _complex(definition, path, variant, depth + 1)
    if type_code in ("xhtml", "Extension", "Narrative"):
        return None
    return _complex(type_code, type_code, variant, depth + 1)
