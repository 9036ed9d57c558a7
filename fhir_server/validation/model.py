"""StructureDefinition snapshots compiled into lookup tables: JSON property name -> element facts.

Each type's snapshot is compiled once, at first use, into an ``ElementModel`` per level (the
type itself, and each BackboneElement inline in it). A ``contentReference`` (e.g.
Questionnaire.item.item) points at the model of the element it names, so recursive structures
share one model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fhir_server.validation.primitives import FHIR_TYPE_EXTENSION, PrimitiveRule, build_rules

SYSTEM_TYPE_PREFIX = "http://hl7.org/fhirpath/System."
ANY_RESOURCE = frozenset({"Resource", "DomainResource"})


@dataclass(frozen=True, slots=True, eq=False)
class Property:
    """One JSON property an object may carry, with what its value must be."""

    key: str
    """The JSON name, e.g. ``valueQuantity``."""
    label: str
    """The FHIRPath step for locations, e.g. ``value.ofType(Quantity)``."""
    type_name: str
    many: bool
    """Whether the JSON value is an array (the element's maximum cardinality is above 1)."""
    min_count: int
    max_count: int | None
    choice: str | None = None
    """The choice element this property is one form of, e.g. ``value[x]``."""
    rule: PrimitiveRule | None = None
    """Set for primitive types."""
    companion_key: str | None = None
    """``_key`` when the primitive may carry an id and extensions there."""
    is_resource: bool = False
    inline: ElementModel | None = None
    """The model of a BackboneElement defined inline, or of the element a contentReference names."""


@dataclass(frozen=True, slots=True, eq=False)
class Requirement:
    """An element with a minimum cardinality of 1 or more, and the JSON keys that satisfy it."""

    name: str
    label: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True, eq=False)
class ElementModel:
    """The properties allowed in one kind of JSON object (a type, or a BackboneElement)."""

    path: str
    properties: dict[str, Property] = field(default_factory=dict)
    companions: dict[str, Property] = field(default_factory=dict)
    """``_key`` -> the primitive property it extends."""
    required: list[Requirement] = field(default_factory=list)

    def add(self, prop: Property) -> None:
        self.properties[prop.key] = prop
        if prop.companion_key is not None:
            self.companions[prop.companion_key] = prop


class TypeModels:
    """Compiled models of every type in a set of StructureDefinitions, built on first request."""

    def __init__(self, definitions: Mapping[str, Mapping[str, Any]]) -> None:
        self._definitions = definitions
        self._compiled: dict[str, ElementModel] = {}
        self.rules = build_rules(definitions)
        self.resource_types = frozenset(
            name for name, sd in definitions.items()
            if sd.get("kind") == "resource" and not sd.get("abstract")
        )

    def get(self, type_name: str) -> ElementModel:
        """The model of a complex type or resource; ``KeyError`` if ``definitions`` lacks it."""
        model = self._compiled.get(type_name)
        if model is None:
            model = self._compile(self._definitions[type_name])
            self._compiled[type_name] = model
        return model

    def _compile(self, sd: Mapping[str, Any]) -> ElementModel:
        elements: list[Mapping[str, Any]] = sd["snapshot"]["element"]
        by_path = {element["path"]: element for element in elements}
        models = {
            parent: ElementModel(path=parent)
            for parent in {element["path"].rpartition(".")[0] for element in elements[1:]}
        }
        for element in elements[1:]:
            if element.get("max") == "0":
                continue
            parent, _, name = element["path"].rpartition(".")
            props = tuple(self._properties(element, name, models, by_path))
            for prop in props:
                models[parent].add(prop)
            if int(element.get("min", 0)) >= 1:
                models[parent].required.append(_requirement(name, props))
        return models[elements[0]["path"]]

    def _properties(
        self,
        element: Mapping[str, Any],
        name: str,
        models: Mapping[str, ElementModel],
        by_path: Mapping[str, Mapping[str, Any]],
    ) -> Iterator[Property]:
        inline = models.get(element["path"])
        definition = element
        reference = element.get("contentReference")
        if reference:
            target = reference.removeprefix("#")
            inline = models.get(target)
            definition = by_path[target]
        max_text = element.get("base", {}).get("max", element.get("max", "1"))
        own_max = element.get("max", "1")
        shape = {
            "many": max_text != "1",
            "min_count": int(element.get("min", 0)),
            "max_count": None if own_max == "*" else int(own_max),
        }
        is_resource_id = element.get("base", {}).get("path") == "Resource.id"
        if name.endswith("[x]"):
            prefix = name[:-3]
            for type_ref in definition.get("type", []):
                code = type_ref["code"]
                key = prefix + code[0].upper() + code[1:]
                yield self._typed(key, f"{prefix}.ofType({code})", type_ref, choice=name,
                                  inline=None, is_resource_id=False, **shape)
            return
        type_ref = definition["type"][0]
        yield self._typed(name, name, type_ref, choice=None, inline=inline,
                          is_resource_id=is_resource_id, **shape)

    def _typed(
        self,
        key: str,
        label: str,
        type_ref: Mapping[str, Any],
        *,
        choice: str | None,
        inline: ElementModel | None,
        is_resource_id: bool,
        many: bool,
        min_count: int,
        max_count: int | None,
    ) -> Property:
        code: str = type_ref["code"]
        common: dict[str, Any] = {"key": key, "label": label, "many": many,
                                  "min_count": min_count, "max_count": max_count, "choice": choice}
        if code.startswith(SYSTEM_TYPE_PREFIX):
            fhir_type = "id" if is_resource_id else _declared_fhir_type(type_ref)
            return Property(type_name=fhir_type, rule=self.rules[fhir_type], **common)
        kind = self._definitions[code].get("kind")
        if kind == "primitive-type":
            companion = None if code == "xhtml" else f"_{key}"
            return Property(type_name=code, rule=self.rules[code], companion_key=companion,
                            **common)
        return Property(type_name=code, is_resource=kind == "resource", inline=inline, **common)


def _declared_fhir_type(type_ref: Mapping[str, Any]) -> str:
    """The FHIR primitive a ``System.*`` type stands for (e.g. Extension.url is a uri)."""
    for extension in type_ref.get("extension", []):
        if extension.get("url") == FHIR_TYPE_EXTENSION:
            declared: str = extension["valueUrl"]
            return declared
    return "string"


def _requirement(name: str, props: tuple[Property, ...]) -> Requirement:
    keys: list[str] = []
    for prop in props:
        keys.append(prop.key)
        if prop.companion_key is not None:
            keys.append(prop.companion_key)
    return Requirement(name=name, label=name.removesuffix("[x]"), keys=tuple(keys))
