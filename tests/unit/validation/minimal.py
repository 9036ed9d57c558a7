"""Minimal instances of any R4 type built straight from the snapshots: required elements only.

This reads the StructureDefinitions independently of the validator's compiled models, so the
tests built on it check the validator against the definitions rather than against itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SAMPLE_PRIMITIVES: dict[str, Any] = {
    "boolean": True,
    "integer": -3,
    "unsignedInt": 0,
    "positiveInt": 1,
    "decimal": 1.5,
    "string": "x",
    "markdown": "*x*",
    "code": "x",
    "id": "a-1",
    "uri": "http://example.org/x",
    "url": "http://example.org/x",
    "canonical": "http://example.org/StructureDefinition/x|1.0",
    "oid": "urn:oid:1.2.250.1",
    "uuid": "urn:uuid:0c3a9a3e-6f5b-4f7e-9a55-1f4c6c2b8d11",
    "base64Binary": "QUJD",
    "date": "2024-02-29",
    "dateTime": "2024-02-29T10:00:00+01:00",
    "instant": "2024-02-29T10:00:00.5Z",
    "time": "10:00:00",
    "xhtml": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
}
_SKIPPED_WHEN_OPTIONAL = ("id", "extension", "modifierExtension")


class MinimalBuilder:
    """Builds the smallest structurally valid JSON for a type from its snapshot."""

    def __init__(self, definitions: Mapping[str, Mapping[str, Any]]) -> None:
        self._definitions = definitions

    def resource(self, resource_type: str) -> dict[str, Any]:
        body = self._object(self._elements(resource_type), resource_type, only_required=True)
        return {"resourceType": resource_type, **body}

    def required_keys(self, resource_type: str) -> list[str]:
        """The JSON names of the type's required top-level elements."""
        instance = self.resource(resource_type)
        return [key for key in instance if key != "resourceType"]

    def _elements(self, type_name: str) -> dict[str, Mapping[str, Any]]:
        snapshot = self._definitions[type_name]["snapshot"]["element"]
        return {element["path"]: element for element in snapshot}

    def _object(self, elements: Mapping[str, Mapping[str, Any]], path: str, *,
                only_required: bool) -> dict[str, Any]:
        children = [element for child_path, element in elements.items()
                    if child_path.rpartition(".")[0] == path]
        chosen = [child for child in children if int(child.get("min", 0)) >= 1]
        if not chosen and not only_required:
            chosen = [child for child in children
                      if child["path"].rpartition(".")[2] not in _SKIPPED_WHEN_OPTIONAL][:1]
        body: dict[str, Any] = {}
        for child in chosen:
            key, value = self._element(elements, child)
            body[key] = value
        return body

    def _element(self, elements: Mapping[str, Mapping[str, Any]],
                 element: Mapping[str, Any]) -> tuple[str, Any]:
        name = element["path"].rpartition(".")[2]
        target = element
        if "contentReference" in element:
            target = elements[element["contentReference"].removeprefix("#")]
        code = target["type"][0]["code"]
        key = name[:-3] + code[0].upper() + code[1:] if name.endswith("[x]") else name
        if any(path.startswith(target["path"] + ".") for path in elements):
            value: Any = self._object(elements, target["path"], only_required=False)
        else:
            value = self._typed(code)
        many = element.get("base", {}).get("max", element.get("max")) != "1"
        return key, [value] if many else value

    def _typed(self, code: str) -> Any:
        if code in SAMPLE_PRIMITIVES:
            return SAMPLE_PRIMITIVES[code]
        if code.startswith("http://hl7.org/fhirpath/System."):
            return "x"
        if self._definitions[code].get("kind") == "resource":
            return {"resourceType": "Basic", "code": {"text": "x"}}
        return self._object(self._elements(code), code, only_required=False)
