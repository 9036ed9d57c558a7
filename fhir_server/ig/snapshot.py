"""Snapshot generation: a profile's differential applied over its base's snapshot.

Follows https://hl7.org/fhir/R4/profiling.html and elementdefinition.html: the base's snapshot
(core R4, or another profile, generated first when it has none) is the starting tree; each
differential element is located by its id, unrolling a data type's snapshot under an element when
the differential reaches inside it (``Patient.identifier.system``), creating slices after the
sliced element's own children, then constrained (see ``constrain``). Every slice gets the full
children of the element it slices (from its type profile when that profile is known, e.g. an
extension's definition). Same input, same output: nothing depends on hash order or time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from fhir_server.definitions import load_bundle, structure_definitions
from fhir_server.ig.constrain import (
    SYSTEM_TYPE_PREFIX,
    constrain,
    max_count,
)
from fhir_server.ig.errors import SnapshotError
from fhir_server.ig.tree import (
    Node,
    attach,
    build_tree,
    find,
    flatten,
    path_of_id,
    rebased,
    split_id,
    walk,
)

Resolver = Callable[[str], "dict[str, Any] | None"]
"""Canonical URL -> StructureDefinition (with or without snapshot), or None when unknown."""

CORE_PREFIX = "http://hl7.org/fhir/StructureDefinition/"
EXTENSION_SLICING = {"discriminator": [{"type": "value", "path": "url"}], "rules": "open"}
TYPE_SLICING = {"discriminator": [{"type": "type", "path": "$this"}], "rules": "open"}
ELEMENT_KEY_ORDER = (
    "id", "extension", "modifierExtension", "path", "representation", "sliceName",
    "sliceIsConstraining", "label", "code", "slicing", "short", "definition", "comment",
    "requirements", "alias", "min", "max", "base", "contentReference", "type", "defaultValue",
    "meaningWhenMissing", "orderMeaning", "fixed", "pattern", "example", "minValue", "maxValue",
    "maxLength", "condition", "constraint", "mustSupport", "isModifier", "isModifierReason",
    "isSummary", "binding", "mapping",
)
"""ElementDefinition's property order in R4; ``fixed`` stands for every ``fixed[x]`` form."""
_CHOICE_KEYS = frozenset({"defaultValue", "fixed", "pattern", "minValue", "maxValue"})


def generate_snapshot(profile: Mapping[str, Any], resolve_base: Resolver) -> dict[str, Any]:
    """A copy of ``profile`` with its ``snapshot`` computed from its ``differential``.

    ``resolve_base`` finds the StructureDefinitions the profile names (its base, type profiles);
    core R4 definitions are found without it. A base without snapshot is generated first.
    Raises ``SnapshotError`` when the differential cannot apply (unknown element, widening…).
    """
    return _Definitions(resolve_base).snapshot_of(profile)


def core_definition(url: str) -> dict[str, Any] | None:
    """A vendored core R4 StructureDefinition by canonical URL (``|version`` ignored)."""
    return _core_by_url().get(url.partition("|")[0])


@cache
def _core_by_url() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name in ("profiles-types", "profiles-resources"):
        for definition in load_bundle(name):
            found[str(definition["url"])] = definition
    return found


class _Definitions:
    """The StructureDefinitions one generation may need, snapshots generated on demand."""

    def __init__(self, resolve: Resolver) -> None:
        self._resolve = resolve
        self._generated: dict[str, dict[str, Any]] = {}
        self._active: list[str] = []

    def snapshot_of(self, profile: Mapping[str, Any]) -> dict[str, Any]:
        url = str(profile.get("url", profile.get("id", "?")))
        if url in self._active:
            cycle = " -> ".join([*self._active[self._active.index(url):], url])
            raise SnapshotError(f"{url}: profiles derive from each other in a cycle: {cycle}")
        self._active.append(url)
        try:
            elements = _Builder(profile, self).elements()
        finally:
            self._active.pop()
        return _with_snapshot(profile, elements)

    def get(self, url: str) -> dict[str, Any] | None:
        """The StructureDefinition at ``url`` with a snapshot, or None when unknown."""
        key = url.partition("|")[0]
        definition = self._resolve(key) or core_definition(key)
        if definition is None:
            return None
        if definition.get("snapshot", {}).get("element"):
            return definition
        if key not in self._generated:
            self._generated[key] = self.snapshot_of(definition)
        return self._generated[key]

    def type_of(self, url: str) -> str | None:
        """The type a StructureDefinition defines or constrains, without generating anything."""
        key = url.partition("|")[0]
        name = key.removeprefix(CORE_PREFIX)
        if key.startswith(CORE_PREFIX) and name in structure_definitions():
            return name
        definition = self._resolve(key) or core_definition(key)
        return None if definition is None else str(definition.get("type"))


class _Builder:
    """The snapshot of one profile, built over its base's element tree."""

    def __init__(self, profile: Mapping[str, Any], definitions: _Definitions) -> None:
        self._url = str(profile.get("url", profile.get("id", "?")))
        self._profile = profile
        self._definitions = definitions
        if profile.get("derivation", "constraint") != "constraint":
            raise SnapshotError(f"{self._url}: only constraint profiles are supported "
                                f"(derivation {profile.get('derivation')!r})")
        base_url = profile.get("baseDefinition")
        if not base_url:
            raise SnapshotError(f"{self._url}: no baseDefinition")
        base = definitions.get(str(base_url))
        if base is None:
            raise SnapshotError(f"{self._url}: base {base_url} not found")
        if profile.get("type") and base.get("type") != profile.get("type"):
            raise SnapshotError(f"{self._url}: type {profile.get('type')} differs from its "
                                f"base's type {base.get('type')}")
        self._root = build_tree(base["snapshot"]["element"])
        self._closed_by_base = {node.id for node in walk(self._root)
                                if node.element.get("slicing", {}).get("rules") == "closed"}

    def elements(self) -> list[dict[str, Any]]:
        differential = list(self._profile.get("differential", {}).get("element", []))
        for element_id, diff in zip(_differential_ids(differential), differential, strict=True):
            node = self._locate(element_id)
            constrain(node.element, diff, where=element_id, source=self._url,
                      type_of=self._definitions.type_of)
        self._complete_slices(self._root)
        _check_slice_totals(self._root)
        return [_finished(element) for element in flatten(self._root)]

    def _locate(self, element_id: str) -> Node:
        segments = split_id(element_id)
        if segments[0] != (self._root.path, None):
            raise SnapshotError(f"{element_id}: element ids of this profile start with "
                                f"{self._root.path}")
        node = self._root
        for index, (name, slice_name) in enumerate(segments[1:], start=2):
            node = self._child(node, name, element_id)
            if slice_name is not None:
                node = self._slice(node, slice_name, element_id,
                                   may_create=index == len(segments))
        return node

    def _child(self, node: Node, name: str, element_id: str) -> Node:
        self._expand(node, element_id)
        child = node.child(name) or _renamed_choice(node, name)
        if child is None:
            raise SnapshotError(f"{element_id}: {node.id} has no element '{name}'")
        return child

    def _slice(self, node: Node, slice_name: str, element_id: str, *, may_create: bool) -> Node:
        parts = slice_name.split("/")
        current = node
        for depth in range(1, len(parts) + 1):
            full_name = "/".join(parts[:depth])
            found = current.slice_named(full_name)
            if found is None:
                if not (may_create and depth == len(parts)):
                    raise SnapshotError(f"{element_id}: slice '{full_name}' is used before the "
                                        "differential declares it")
                found = self._new_slice(current, full_name, element_id)
            current = found
        return current

    def _new_slice(self, sliced: Node, slice_name: str, element_id: str) -> Node:
        if sliced.id in self._closed_by_base:
            raise SnapshotError(f"{element_id}: the base closes the slicing of {sliced.id}; "
                                "no slice can be added")
        if not sliced.element.get("slicing"):
            sliced.element["slicing"] = _default_slicing(sliced, element_id)
        slice_id = (f"{sliced.id}/{slice_name.rpartition('/')[2]}" if sliced.is_slice
                    else f"{sliced.id}:{slice_name}")
        element = {key: copy.deepcopy(value) for key, value in sliced.element.items()
                   if key != "slicing"}
        element.update(id=slice_id, sliceName=slice_name, min=0)
        if sliced.name.endswith("[x]"):
            _narrow_type_slice(element, sliced.name, slice_name)
        children = [rebased(child, old_id=sliced.id, new_id=slice_id, old_path=sliced.path,
                            new_path=sliced.path) for child in sliced.children]
        created = Node(element, children=children, expanded=sliced.expanded)
        sliced.slices.append(created)
        return created

    def _expand(self, node: Node, element_id: str) -> None:
        """Unrolls the element's type (or the element a contentReference names) under it."""
        if node.expanded:
            return
        reference = node.element.get("contentReference")
        if reference:
            target = find(self._root, str(reference).removeprefix("#"))
            if target is None:
                raise SnapshotError(f"{element_id}: contentReference {reference} not found")
            node.children = [rebased(child, old_id=target.id, new_id=node.id,
                                     old_path=target.path, new_path=node.path)
                             for child in target.children]
            node.expanded = True
            return
        definition, profile = self._type_definition(node, element_id)
        elements = definition["snapshot"]["element"]
        root_id = str(elements[0].get("id", elements[0]["path"]))
        root_path = str(elements[0]["path"])
        attach(node, [_moved(element, root_id=root_id, root_path=root_path, node=node)
                      for element in elements[1:]])
        node.expanded = True
        if (profile is not None and definition.get("url") != profile
                and definition.get("type") == "Extension"):
            _fix_extension_url(node, profile)

    def _type_definition(self, node: Node, element_id: str) -> tuple[dict[str, Any], str | None]:
        """The snapshot to unroll under ``node``, and the type profile it should have come from."""
        types = node.element.get("type", [])
        codes = list(dict.fromkeys(str(type_ref["code"]) for type_ref in types))
        if len(codes) != 1:
            raise SnapshotError(f"{element_id}: cannot reach inside {node.id}, which allows "
                                f"{len(codes)} types ({', '.join(codes)}); restrict it to one")
        code = codes[0]
        if code.startswith(SYSTEM_TYPE_PREFIX):
            raise SnapshotError(f"{element_id}: {node.id} is a primitive value without children")
        profiles = [str(url) for type_ref in types for url in type_ref.get("profile", [])]
        profile = profiles[0] if len(profiles) == 1 else None
        if profile is not None:
            found = self._definitions.get(profile)
            if found is not None:
                return found, profile
        core = self._definitions.get(CORE_PREFIX + code)
        if core is None:
            raise SnapshotError(f"{element_id}: unknown type {code} on {node.id}")
        return core, profile

    def _complete_slices(self, node: Node) -> None:
        """Gives every slice of a complex type its full children."""
        for child in node.children:
            self._complete_slices(child)
        for item in node.slices:
            if not item.expanded and _is_complex(item):
                self._expand(item, item.id)
            self._complete_slices(item)


def _differential_ids(elements: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each differential element's id; one without id is placed by its path and sliceName, under
    the slice most recently declared on its parent path (the differential's own order)."""
    latest: dict[str, str] = {}
    ids: list[str] = []
    for element in elements:
        path = element.get("path")
        element_id = element.get("id") or _id_from_path(element, latest)
        if path is not None and path_of_id(element_id) != path:
            raise SnapshotError(f"{element_id}: id and path {path} disagree")
        slice_name = element.get("sliceName")
        last_slice = split_id(element_id)[-1][1]
        if slice_name is not None and last_slice not in (slice_name,
                                                          str(slice_name).rpartition("/")[2]):
            raise SnapshotError(f"{element_id}: sliceName {slice_name} does not match the id")
        element_path = path_of_id(element_id)
        for known in [known for known in latest if known.startswith(element_path + ".")]:
            del latest[known]
        latest[element_path] = element_id
        ids.append(element_id)
    return ids


def _id_from_path(element: Mapping[str, Any], latest: Mapping[str, str]) -> str:
    path = element.get("path")
    if not path:
        raise SnapshotError(f"differential element without id or path: {dict(element)!r}"[:200])
    parts = str(path).split(".")
    current = parts[0]
    for depth in range(2, len(parts)):
        prefix = ".".join(parts[:depth])
        current = latest.get(prefix, f"{current}.{parts[depth - 1]}")
    element_id = current if len(parts) == 1 else f"{current}.{parts[-1]}"
    slice_name = element.get("sliceName")
    return f"{element_id}:{slice_name}" if slice_name else element_id


def _renamed_choice(node: Node, name: str) -> Node | None:
    """``valueQuantity`` written for ``value[x]``: the choice element, restricted to that type."""
    for child in node.children:
        stem = child.name.removesuffix("[x]")
        if child.name == stem or not name.startswith(stem):
            continue
        suffix = name[len(stem):]
        matching = [type_ref for type_ref in child.element.get("type", [])
                    if _suffix(type_ref) == suffix]
        if matching:
            child.element["type"] = matching
            return child
    return None


def _default_slicing(sliced: Node, element_id: str) -> dict[str, Any]:
    if sliced.name in ("extension", "modifierExtension"):
        return copy.deepcopy(EXTENSION_SLICING)
    if sliced.name.endswith("[x]"):
        return copy.deepcopy(TYPE_SLICING)
    raise SnapshotError(f"{element_id}: {sliced.id} is not sliced; give it a 'slicing' first")


def _narrow_type_slice(element: dict[str, Any], choice: str, slice_name: str) -> None:
    """A type slice named like ``valueQuantity`` keeps only that type."""
    suffix = slice_name.removeprefix(choice.removesuffix("[x]"))
    kept = [type_ref for type_ref in element.get("type", []) if _suffix(type_ref) == suffix]
    if kept:
        element["type"] = kept


def _suffix(type_ref: Mapping[str, Any]) -> str:
    """``Quantity`` for the type ``Quantity``, ``String`` for ``string``."""
    code = str(type_ref["code"])
    return code[:1].upper() + code[1:]


def _moved(element: Mapping[str, Any], *, root_id: str, root_path: str,
           node: Node) -> dict[str, Any]:
    """An element of a type's snapshot placed under ``node`` (id and path prefixes replaced)."""
    moved = dict(element)
    moved["id"] = node.id + str(element.get("id", element["path"]))[len(root_id):]
    moved["path"] = node.path + str(element["path"])[len(root_path):]
    return moved


def _fix_extension_url(node: Node, profile: str) -> None:
    """An extension whose definition we do not hold still has its url fixed to that definition."""
    url = node.child("url")
    if url is not None and not any(key.startswith("fixed") for key in url.element):
        url.element["fixedUri"] = profile


def _is_complex(node: Node) -> bool:
    codes = {str(type_ref["code"]) for type_ref in node.element.get("type", [])}
    if len(codes) != 1 or node.element.get("contentReference"):
        return False
    definition = structure_definitions().get(codes.pop())
    return definition is not None and definition.get("kind") in ("complex-type", "resource")


def _check_slice_totals(root: Node) -> None:
    for node in walk(root):
        if not node.slices:
            continue
        total = sum(int(item.element.get("min", 0)) for item in node.slices)
        if total > max_count(node.element.get("max", "*")):
            raise SnapshotError(f"{node.id}: its slices require {total} items, above its max "
                                f"{node.element.get('max')}")


def _finished(element: dict[str, Any]) -> dict[str, Any]:
    """The element with its keys in ElementDefinition order and a definition (sdf-3 wants one;
    the vendored core definitions are slimmed of prose, so ``short`` stands in)."""
    if "definition" not in element:
        element["definition"] = element.get("short") or element["path"]
    return {key: element[key] for key in sorted(element, key=_key_rank)}


def _key_rank(key: str) -> tuple[int, str]:
    for index, name in enumerate(ELEMENT_KEY_ORDER):
        if key == name or (name in _CHOICE_KEYS and key.startswith(name)
                           and key[len(name):][:1].isupper()):
            return index, key
    return len(ELEMENT_KEY_ORDER), key


def _with_snapshot(profile: Mapping[str, Any], elements: list[dict[str, Any]]) -> dict[str, Any]:
    """The profile with ``snapshot`` placed where FHIR puts it: just before ``differential``."""
    result: dict[str, Any] = {}
    for key, value in profile.items():
        if key == "snapshot":
            continue
        if key == "differential":
            result["snapshot"] = {"element": elements}
        result[key] = copy.deepcopy(value)
    result.setdefault("snapshot", {"element": elements})
    return result
