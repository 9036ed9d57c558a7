"""Applying one differential element onto its snapshot element, refusing whatever widens the base.

A profile may only say more than its base (https://hl7.org/fhir/R4/profiling.html): cardinality
narrowed, types restricted (to a listed type, a resource type where the base says ``Resource``, a
``targetProfile`` on an allowed target, a ``profile`` on the same type), fixed and pattern
values added or made stricter, a required binding kept required, the base's invariants kept
(new ones added with the profile as their ``source``), closed slicing never reopened. Anything
else in the differential (short, definition, mustSupport, comment, …) replaces the base's value.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import Any

from fhir_server.definitions import structure_definitions
from fhir_server.digits import is_number
from fhir_server.ig.errors import SnapshotError

TypeOf = Callable[[str], "str | None"]
"""Canonical URL of a StructureDefinition -> the type it defines or constrains (None: unknown)."""

SYSTEM_TYPE_PREFIX = "http://hl7.org/fhirpath/System."
FHIR_TYPE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
ANY_RESOURCE = frozenset({"Resource", "DomainResource"})
_NOT_MERGED = frozenset({"id", "path", "base", "sliceName"})
_APPENDED = frozenset({"condition", "alias"})


def constrain(element: dict[str, Any], diff: Mapping[str, Any], *, where: str, source: str,
              type_of: TypeOf) -> None:
    """Merges ``diff`` into ``element`` in place; ``SnapshotError`` naming ``where`` on widening."""
    for key, value in diff.items():
        if key in _NOT_MERGED:
            continue
        if key == "min":
            _narrow_min(element, int(value), where)
        elif key == "max":
            _narrow_max(element, str(value), where)
        elif key == "type":
            element["type"] = narrowed_types(element.get("type", []), value, where=where,
                                             type_of=type_of)
        elif _is_choice_key(key, "fixed"):
            _set_fixed(element, key, value, where)
        elif _is_choice_key(key, "pattern"):
            _set_pattern(element, key, value, where)
        elif key == "binding":
            element["binding"] = _narrowed_binding(element.get("binding"), value, where)
        elif key == "constraint":
            element["constraint"] = _merged_constraints(element.get("constraint", []), value,
                                                         where=where, source=source)
        elif key == "slicing":
            element["slicing"] = _narrowed_slicing(element.get("slicing"), value, where)
        elif key in _APPENDED:
            element[key] = _union(element.get(key, []), value)
        elif key == "mapping":
            element["mapping"] = [*element.get("mapping", []), *copy.deepcopy(value)]
        else:
            element[key] = copy.deepcopy(value)
    if int(element.get("min", 0)) > max_count(element.get("max", "*")):
        raise SnapshotError(f"{where}: min {element.get('min')} is above max {element.get('max')}")


def max_count(text: Any) -> float:
    """``"*"`` -> infinity, ``"3"`` -> 3."""
    return math.inf if text == "*" else int(text)


def narrowed_types(base: list[dict[str, Any]], diff: list[Mapping[str, Any]], *, where: str,
                   type_of: TypeOf) -> list[dict[str, Any]]:
    """The differential's types, each checked against (and completed from) a base type."""
    result: list[dict[str, Any]] = []
    for wanted in diff:
        code = str(wanted["code"])
        origin = _base_type_for(base, code)
        if origin is None:
            allowed = ", ".join(str(t["code"]) for t in base) or "none"
            raise SnapshotError(f"{where}: type {code} is not allowed by the base "
                                f"(allowed: {allowed})")
        merged = copy.deepcopy(origin)
        merged.update(copy.deepcopy(dict(wanted)))
        _check_profiles(code, wanted.get("profile", []), where, type_of)
        if "targetProfile" in wanted:
            _check_targets(origin.get("targetProfile", []), wanted["targetProfile"], where,
                           type_of)
        result.append(merged)
    return result


def contains(value: Any, pattern: Any) -> bool:
    """Whether ``value`` carries everything ``pattern`` says (FHIR pattern[x] matching)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and contains(value[key], part) for key, part in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(
            any(contains(item, part) for item in value) for part in pattern)
    return bool(value == pattern)


def type_suffixes(element: Mapping[str, Any]) -> set[str]:
    """The choice suffixes an element's types allow: ``Uri``, ``CodeableConcept``…"""
    suffixes: set[str] = set()
    for type_ref in element.get("type", []):
        code = str(type_ref["code"])
        if code.startswith(SYSTEM_TYPE_PREFIX):
            code = next((str(ext["valueUrl"]) for ext in type_ref.get("extension", [])
                         if ext.get("url") == FHIR_TYPE_EXTENSION), "string")
        suffixes.add(code[:1].upper() + code[1:])
    return suffixes


def _narrow_min(element: dict[str, Any], new: int, where: str) -> None:
    old = int(element.get("min", 0))
    if new < old:
        raise SnapshotError(f"{where}: min {new} would widen the base's min {old}")
    element["min"] = new


def _narrow_max(element: dict[str, Any], new: str, where: str) -> None:
    old = str(element.get("max", "*"))
    if new != "*" and not is_number(new):
        raise SnapshotError(f"{where}: max {new!r} is neither a number nor '*'")
    if max_count(new) > max_count(old):
        raise SnapshotError(f"{where}: max {new} would widen the base's max {old}")
    element["max"] = new


def _is_choice_key(key: str, prefix: str) -> bool:
    return key.startswith(prefix) and key[len(prefix):][:1].isupper()


def _choice_keys(element: Mapping[str, Any], prefix: str) -> list[str]:
    return [key for key in element if _is_choice_key(key, prefix)]


def _check_suffix(element: Mapping[str, Any], key: str, prefix: str, where: str) -> None:
    suffix = key[len(prefix):]
    allowed = type_suffixes(element)
    if allowed and suffix not in allowed:
        raise SnapshotError(f"{where}: {key} does not match the element's types "
                            f"({', '.join(sorted(allowed))})")


def _set_fixed(element: dict[str, Any], key: str, value: Any, where: str) -> None:
    _check_suffix(element, key, "fixed", where)
    for old in _choice_keys(element, "fixed"):
        if old != key or element[old] != value:
            raise SnapshotError(f"{where}: {key} conflicts with the base's {old}")
    for old in _choice_keys(element, "pattern"):
        if old[len("pattern"):] != key[len("fixed"):] or not contains(value, element[old]):
            raise SnapshotError(f"{where}: {key} does not satisfy the base's {old}")
        del element[old]
    element[key] = copy.deepcopy(value)


def _set_pattern(element: dict[str, Any], key: str, value: Any, where: str) -> None:
    _check_suffix(element, key, "pattern", where)
    fixed = _choice_keys(element, "fixed")
    if fixed:
        if fixed[0][len("fixed"):] != key[len("pattern"):] or not contains(element[fixed[0]],
                                                                            value):
            raise SnapshotError(f"{where}: {key} conflicts with the base's {fixed[0]}")
        return  # the base's fixed value already says more than the pattern
    for old in _choice_keys(element, "pattern"):
        if old != key or not contains(value, element[old]):
            raise SnapshotError(f"{where}: {key} would loosen the base's {old}")
    element[key] = copy.deepcopy(value)


def _narrowed_binding(old: Mapping[str, Any] | None, new: Mapping[str, Any],
                      where: str) -> dict[str, Any]:
    merged = {**copy.deepcopy(dict(old or {})), **copy.deepcopy(dict(new))}
    if old and old.get("strength") == "required" and merged.get("strength") != "required":
        raise SnapshotError(f"{where}: the base binding is required; a profile cannot make it "
                            f"{merged.get('strength')}")
    return merged


def _merged_constraints(base: list[dict[str, Any]], new: list[Mapping[str, Any]], *,
                        where: str, source: str) -> list[dict[str, Any]]:
    merged = copy.deepcopy(base)
    by_key = {str(item.get("key")): item for item in merged}
    for constraint in new:
        key = str(constraint.get("key"))
        existing = by_key.get(key)
        if existing is not None:
            if existing.get("expression") != constraint.get("expression"):
                raise SnapshotError(f"{where}: constraint {key} is already defined by the base "
                                    "with another expression")
            continue
        added = copy.deepcopy(dict(constraint))
        added.setdefault("source", source)
        merged.append(added)
        by_key[key] = added
    return merged


def _narrowed_slicing(old: Mapping[str, Any] | None, new: Mapping[str, Any],
                      where: str) -> dict[str, Any]:
    if not old:
        if "rules" not in new:
            raise SnapshotError(f"{where}: slicing needs its rules (closed, open or openAtEnd)")
        return copy.deepcopy(dict(new))
    if old.get("rules") == "closed" and new.get("rules", "closed") != "closed":
        raise SnapshotError(f"{where}: the base's slicing is closed; it cannot be reopened")
    old_discriminators = list(old.get("discriminator", []))
    new_discriminators = list(new.get("discriminator", old_discriminators))
    if new_discriminators[:len(old_discriminators)] != old_discriminators:
        raise SnapshotError(f"{where}: slicing discriminators must start with the base's")
    if old.get("ordered") is True and new.get("ordered") is False:
        raise SnapshotError(f"{where}: the base's slicing is ordered")
    return {**copy.deepcopy(dict(old)), **copy.deepcopy(dict(new))}


def _union(old: list[Any], new: list[Any]) -> list[Any]:
    result = list(old)
    result.extend(item for item in new if item not in result)
    return result


def _is_resource_type(code: str) -> bool:
    definition = structure_definitions().get(code)
    return definition is not None and definition.get("kind") == "resource"


def _base_type_for(base: list[dict[str, Any]], code: str) -> dict[str, Any] | None:
    for type_ref in base:
        if type_ref["code"] == code:
            return type_ref
    if _is_resource_type(code):
        for type_ref in base:
            if type_ref["code"] in ANY_RESOURCE:
                return {key: value for key, value in type_ref.items() if key != "profile"}
    return None


def _check_profiles(code: str, profiles: list[str], where: str, type_of: TypeOf) -> None:
    for url in profiles:
        constrained = type_of(url)
        if constrained is not None and constrained != code:
            raise SnapshotError(f"{where}: profile {url} constrains {constrained}, not {code}")


def _check_targets(base_targets: list[str], targets: list[str], where: str,
                   type_of: TypeOf) -> None:
    if not base_targets:
        return
    allowed = {type_of(url) for url in base_targets}
    if allowed & ANY_RESOURCE:
        return
    for url in targets:
        if url in base_targets:
            continue
        target_type = type_of(url)
        if target_type is not None and target_type not in allowed:
            shown = ", ".join(sorted(str(name) for name in allowed))
            raise SnapshotError(f"{where}: target {url} ({target_type}) is not allowed by the "
                                f"base (allowed: {shown})")
