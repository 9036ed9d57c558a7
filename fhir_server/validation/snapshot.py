"""StructureDefinition snapshots compiled into element trees with slices, for the rule layers.

The structure layer's models (``model.py``) are keyed by JSON property name and keep only what
the shape of JSON needs. The rule layers need the ElementDefinitions themselves, arranged as the
spec arranges a snapshot (https://hl7.org/fhir/R4/elementdefinition.html#id): each element's
children by name, and a sliced element's slices (``Patient.identifier:INS-NIR``) each with its own
children. Element ids are required to place slices and their children, as R4 requires them in
snapshots. A ``contentReference`` element (``Questionnaire.item.item``) shares the children and
rules of the element it names.

``Definitions`` holds the trees of one validator: the core R4 types and resources by type name,
and profiles by canonical url, each compiled once, on first use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from fhir_server.definitions import structure_definitions
from fhir_server.validation.model import SYSTEM_TYPE_PREFIX
from fhir_server.validation.primitives import FHIR_TYPE_EXTENSION
from fhir_server.validation.terminology import canonical_url

CORE_PREFIX: Final = "http://hl7.org/fhir/StructureDefinition/"
BUSINESS_CHECK_EXTENSION: Final = "https://fhir.pictaderm.com/StructureDefinition/business-check"
"""Marks an ElementDefinition with a business check of ``business.py`` (``valueCode``)."""
TRANSLATION_EXTENSION: Final = "http://hl7.org/fhir/StructureDefinition/translation"
NO_VALUE: Final[Any] = object()
"""Stands for an absent ``fixed[x]`` or ``pattern[x]`` (JSON null is not a value FHIR allows)."""


class ProfileError(ValueError):
    """A StructureDefinition whose snapshot cannot be compiled."""


@dataclass(frozen=True, slots=True)
class TypeRef:
    code: str
    profiles: tuple[str, ...] = ()
    target_profiles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Constraint:
    key: str
    severity: str
    human: str
    """In English: ``human``, or its English ``translation`` when it has one."""
    expression: str
    human_fr: str | None = None
    """In French: the French ``translation`` of ``human``, or ``human`` itself when it is
    translated into English (so written in French, as our guide writes it); else None."""


@dataclass(frozen=True, slots=True)
class Binding:
    strength: str
    value_set: str


@dataclass(frozen=True, slots=True)
class Discriminator:
    type: str
    path: str


@dataclass(frozen=True, slots=True)
class Slicing:
    discriminators: tuple[Discriminator, ...]
    rules: str
    ordered: bool


@dataclass(frozen=True, slots=True, eq=False)
class ElementDef:
    """One ElementDefinition of a snapshot, with its children and slices."""

    id: str
    path: str
    name: str
    """The last step of the path, e.g. ``value[x]``."""
    definition_path: str
    """The path of the element whose definition this is: its own, or the one its
    ``contentReference`` names (``Parameters.parameter`` for ``Parameters.parameter.part``)."""
    slice_name: str | None
    min: int
    max: int | None
    base_min: int
    base_max: int | None
    types: tuple[TypeRef, ...]
    constraints: tuple[Constraint, ...]
    binding: Binding | None
    fixed: Any
    """The ``fixed[x]`` value, or ``NO_VALUE``."""
    pattern: Any
    """The ``pattern[x]`` value, or ``NO_VALUE``."""
    slicing: Slicing | None
    business: tuple[str, ...]
    children: dict[str, ElementDef] = field(default_factory=dict)
    slices: list[ElementDef] = field(default_factory=list)

    @property
    def has_fixed(self) -> bool:
        return self.fixed is not NO_VALUE

    @property
    def has_pattern(self) -> bool:
        return self.pattern is not NO_VALUE

    @property
    def type_codes(self) -> tuple[str, ...]:
        return tuple(t.code for t in self.types)

    @property
    def narrows_cardinality(self) -> bool:
        """Whether min/max are stricter than the base definition's (a profile's constraint)."""
        return self.min > self.base_min or _below(self.max, self.base_max)


@dataclass(frozen=True, slots=True, eq=False)
class Tree:
    """One compiled StructureDefinition."""

    url: str
    type: str
    root: ElementDef
    is_profile: bool
    """True for a constraint on a type (``derivation = constraint``)."""


def compile_tree(sd: Mapping[str, Any]) -> Tree:
    """Compile a StructureDefinition's snapshot (``KeyError``/``ValueError`` if it has none)."""
    elements: list[Mapping[str, Any]] = sd["snapshot"]["element"]
    if not elements:
        raise ValueError("the snapshot has no element")
    root = _element(elements[0], elements[0].get("id") or elements[0]["path"], None)
    by_id: dict[str, ElementDef] = {root.id: root}
    for raw in elements[1:]:
        element_id = _element_id(raw)
        parent_id, _, last = element_id.rpartition(".")
        name, _, slice_name = last.partition(":")
        target = _content_target(raw, by_id)
        node = _element(raw, element_id, target)
        by_id[element_id] = node
        if slice_name:
            owner = by_id.get(f"{parent_id}.{name}")
            if owner is not None:
                owner.slices.append(node)
            continue
        parent = by_id.get(parent_id)
        if parent is not None:
            parent.children[name] = node
    return Tree(url=str(sd.get("url", "")), type=str(sd.get("type", root.path)), root=root,
                is_profile=sd.get("derivation") == "constraint")


def _element_id(raw: Mapping[str, Any]) -> str:
    if isinstance(raw.get("id"), str):
        return str(raw["id"])
    path = str(raw["path"])
    slice_name = raw.get("sliceName")
    return f"{path}:{slice_name}" if slice_name else path


def _content_target(raw: Mapping[str, Any], by_id: Mapping[str, ElementDef]) -> ElementDef | None:
    reference = raw.get("contentReference")
    if not isinstance(reference, str):
        return None
    return by_id.get(reference.rpartition("#")[2])


def _element(raw: Mapping[str, Any], element_id: str, target: ElementDef | None) -> ElementDef:
    base = raw.get("base") or {}
    path = str(raw["path"])
    fixed, pattern = _fixed_and_pattern(raw)
    common: dict[str, Any] = {
        "id": element_id, "path": path, "name": path.rpartition(".")[2],
        "slice_name": raw.get("sliceName"),
        "min": int(raw.get("min", 0)), "max": _max(raw.get("max", "*")),
        "base_min": int(base.get("min", raw.get("min", 0))),
        "base_max": _max(base.get("max", raw.get("max", "*"))),
        "fixed": fixed, "pattern": pattern, "slicing": _slicing(raw.get("slicing")),
        "business": _business_checks(raw),
    }
    if target is not None:
        return ElementDef(definition_path=target.definition_path, types=target.types,
                          constraints=target.constraints,
                          binding=target.binding, children=target.children,
                          slices=target.slices, **common)
    return ElementDef(definition_path=path,
                      types=tuple(_type_ref(t) for t in raw.get("type") or ()),
                      constraints=tuple(_constraint(c) for c in raw.get("constraint") or ()),
                      binding=_binding(raw.get("binding")), **common)


def _max(text: Any) -> int | None:
    return None if text == "*" else int(text)


def _below(limit: int | None, base: int | None) -> bool:
    if limit is None:
        return False
    return base is None or limit < base


def _fixed_and_pattern(raw: Mapping[str, Any]) -> tuple[Any, Any]:
    fixed: Any = NO_VALUE
    pattern: Any = NO_VALUE
    for key, value in raw.items():
        if key.startswith("fixed") and key[5:6].isupper():
            fixed = value
        elif key.startswith("pattern") and key[7:8].isupper():
            pattern = value
    return fixed, pattern


def _type_ref(raw: Mapping[str, Any]) -> TypeRef:
    code = str(raw["code"])
    if code.startswith(SYSTEM_TYPE_PREFIX):
        code = next((str(e["valueUrl"]) for e in raw.get("extension") or ()
                     if e.get("url") == FHIR_TYPE_EXTENSION), "string")
    return TypeRef(code=code, profiles=tuple(raw.get("profile") or ()),
                   target_profiles=tuple(raw.get("targetProfile") or ()))


def _constraint(raw: Mapping[str, Any]) -> Constraint:
    human = str(raw.get("human", ""))
    translations = _translations(raw.get("_human"))
    english = translations.get("en")
    french = translations.get("fr") or (human if english is not None else None)
    return Constraint(key=str(raw.get("key", "")), severity=str(raw.get("severity", "error")),
                      human=english or human, expression=str(raw.get("expression", "")),
                      human_fr=french)


def _translations(extended: Any) -> dict[str, str]:
    """The ``translation`` extensions of a string element's ``_name`` companion, by language
    (``fr-FR`` read as ``fr``)."""
    found: dict[str, str] = {}
    for extension in extended.get("extension") or () if isinstance(extended, dict) else ():
        if not isinstance(extension, dict) or extension.get("url") != TRANSLATION_EXTENSION:
            continue
        parts = {e.get("url"): e for e in extension.get("extension") or ()
                 if isinstance(e, dict)}
        language = parts.get("lang", {}).get("valueCode")
        content = parts.get("content", {}).get("valueString")
        if isinstance(language, str) and isinstance(content, str):
            found.setdefault(language.partition("-")[0].lower(), content)
    return found


def _binding(raw: Any) -> Binding | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("valueSet"), str):
        return None
    return Binding(strength=str(raw.get("strength", "")), value_set=raw["valueSet"])


def _slicing(raw: Any) -> Slicing | None:
    if not isinstance(raw, dict):
        return None
    return Slicing(
        discriminators=tuple(Discriminator(type=str(d.get("type")), path=str(d.get("path")))
                             for d in raw.get("discriminator") or ()),
        rules=str(raw.get("rules", "open")), ordered=bool(raw.get("ordered", False)))


def _business_checks(raw: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(e["valueCode"]) for e in raw.get("extension") or ()
                 if e.get("url") == BUSINESS_CHECK_EXTENSION and "valueCode" in e)


class Definitions:
    """The compiled trees one validator uses: core types by name, profiles by url."""

    def __init__(self, profiles: Iterable[Mapping[str, Any]] = (),
                 core: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._core_sds = structure_definitions() if core is None else core
        self._profile_sds: dict[str, Mapping[str, Any]] = {}
        for sd in profiles:
            url = sd.get("url")
            if isinstance(url, str) and sd.get("snapshot"):
                self._profile_sds[canonical_url(url)] = sd
        self._core: dict[str, Tree] = {}
        self._profiles: dict[str, Tree] = {}

    @property
    def core_definitions(self) -> Mapping[str, Mapping[str, Any]]:
        return self._core_sds

    def core(self, type_name: str) -> Tree | None:
        """The tree of a core type or resource; None if R4 has no such type."""
        tree = self._core.get(type_name)
        if tree is None:
            sd = self._core_sds.get(type_name)
            if sd is None or "snapshot" not in sd:
                return None
            tree = self._core[type_name] = compile_tree(sd)
        return tree

    def profile(self, url: str) -> Tree | None:
        """The tree of a profile (or extension definition) known here, by canonical url;
        ``ProfileError`` when its snapshot cannot be compiled."""
        key = canonical_url(url)
        tree = self._profiles.get(key)
        if tree is None:
            sd = self._profile_sds.get(key)
            if sd is None:
                return None
            try:
                tree = compile_tree(sd)
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                raise ProfileError(f"its snapshot cannot be read ({error!r})") from error
            self._profiles[key] = tree
        return tree

    def is_core_url(self, url: str) -> bool:
        """Whether ``url`` names a core R4 type or resource definition."""
        key = canonical_url(url)
        return key.startswith(CORE_PREFIX) and key[len(CORE_PREFIX):] in self._core_sds

    def type_of(self, url: str) -> str | None:
        """The resource or data type a definition url constrains; None when not known here."""
        key = canonical_url(url)
        if key.startswith(CORE_PREFIX) and key[len(CORE_PREFIX):] in self._core_sds:
            return key[len(CORE_PREFIX):]
        sd = self._profile_sds.get(key)
        return str(sd["type"]) if sd is not None and "type" in sd else None
