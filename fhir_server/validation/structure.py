"""Structural validation of FHIR R4 resources in JSON against the official 4.0.1 snapshots.

Checks what https://hl7.org/fhir/R4/json.html requires of a resource's shape: known
``resourceType``, known properties (``_name`` companions and ``value[x]`` choices included),
cardinality and arrays, no empty or null values, primitive values, and contained or nested
resources recursively. Terminology bindings, invariants and profiles are later layers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from functools import cache
from typing import Any

from fhir_server.definitions import structure_definitions
from fhir_server.errors import Issue, IssueType
from fhir_server.validation.model import ANY_RESOURCE, ElementModel, Property, TypeModels
from fhir_server.validation.primitives import PrimitiveRule, shown

MAX_ISSUES = 100
_ABSENT: Any = object()
"""Marks a missing ``_name`` companion (JSON null is a value to report, not an absence)."""


class _Enough(Exception):
    """Raised inside a walk once MAX_ISSUES issues are collected."""


class _Findings:
    """The issues of one validation, bounded at MAX_ISSUES."""

    __slots__ = ("issues",)

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, location: str, message: str, issue_type: IssueType = IssueType.STRUCTURE) -> None:
        self.issues.append(Issue(diagnostics=f"{location}: {message}", issue_type=issue_type,
                                 severity="error", expression=(location,)))
        if len(self.issues) >= MAX_ISSUES:
            raise _Enough


class StructureValidator:
    """Validates resources against compiled StructureDefinition snapshots."""

    def __init__(self, definitions: Mapping[str, dict[str, Any]] | None = None) -> None:
        self._types = TypeModels(structure_definitions() if definitions is None else definitions)
        self._element = self._types.get("Element")

    def validate(self, resource: dict[str, Any]) -> tuple[Issue, ...]:
        """Every structural problem in ``resource`` (up to MAX_ISSUES); empty when valid."""
        findings = _Findings()
        with contextlib.suppress(_Enough):
            try:
                self._resource(resource, "", findings, expected=None)
            except RecursionError:
                findings.add(_root_of(resource), "the resource is nested too deeply to validate")
        return tuple(findings.issues)

    def _resource(self, value: Any, location: str, findings: _Findings,
                  expected: str | None) -> None:
        where = f"{location}.resourceType" if location else "resourceType"
        if not isinstance(value, dict):
            findings.add(location or "Resource", f"{shown(value)} is not a resource (expected a "
                         "JSON object with a resourceType)")
            return
        resource_type = value.get("resourceType")
        if resource_type is None:
            findings.add(where, "resourceType is missing", IssueType.REQUIRED)
            return
        if not isinstance(resource_type, str) or resource_type not in self._types.resource_types:
            findings.add(where, f"{shown(resource_type)} is not a known FHIR R4 resource type")
            return
        if expected is not None and expected not in ANY_RESOURCE and resource_type != expected:
            findings.add(where, f"expected a resource of type {expected}, found {resource_type}")
            return
        self._object(value, self._types.get(resource_type), location or resource_type, findings,
                     is_resource=True)

    def _object(self, obj: dict[str, Any], model: ElementModel, location: str,
                findings: _Findings, *, is_resource: bool = False) -> None:
        properties = model.properties
        chosen: dict[str, str] = {}
        for key, value in obj.items():
            prop = properties.get(key)
            if prop is None:
                self._other_key(obj, key, value, model, chosen, location, findings,
                                is_resource=is_resource)
                continue
            if prop.choice is not None:
                self._choose(prop, chosen, location, findings)
            rule = prop.rule
            if rule is not None:
                companion = prop.companion_key
                if companion is not None and companion in obj:
                    self._primitive(prop, value, obj[companion], location, findings)
                elif prop.many:
                    if _fits(prop, value):
                        self._primitive_items(prop, rule, value, f"{location}.{prop.label}",
                                              findings)
                    else:
                        self._primitive(prop, value, _ABSENT, location, findings)
                elif not rule.accepts(value) and rule.problem(value) is not None:
                    self._primitive(prop, value, _ABSENT, location, findings)
            elif prop.is_resource:
                self._complex(prop, value, location, findings)
            elif prop.many:
                if _fits(prop, value):
                    self._complex_items(prop, value, f"{location}.{prop.label}", findings)
                else:
                    self._complex(prop, value, location, findings)
            elif type(value) is not dict or not value:
                self._complex(prop, value, location, findings)
            else:
                model_of_value = prop.inline or self._types.get(prop.type_name)
                self._object(value, model_of_value, f"{location}.{prop.label}", findings)
        for requirement in model.required:
            for key in requirement.keys:
                if key in obj:
                    break
            else:
                findings.add(f"{location}.{requirement.label}",
                             f"required element '{requirement.name}' is missing",
                             IssueType.REQUIRED)

    def _other_key(self, obj: dict[str, Any], key: str, value: Any, model: ElementModel,
                   chosen: dict[str, str], location: str, findings: _Findings, *,
                   is_resource: bool) -> None:
        """A key that is not an element: a ``_name`` companion, ``resourceType``, or unknown."""
        prop = model.companions.get(key)
        if prop is not None:
            if prop.key not in obj:
                if prop.choice is not None:
                    self._choose(prop, chosen, location, findings)
                self._companion_alone(prop, value, location, findings)
            return
        if not (is_resource and key == "resourceType"):
            findings.add(f"{location}.{key}", f"unknown element '{key}'")

    @staticmethod
    def _choose(prop: Property, chosen: dict[str, str], location: str,
                findings: _Findings) -> None:
        assert prop.choice is not None
        first = chosen.setdefault(prop.choice, prop.key)
        if first != prop.key:
            label = prop.choice.removesuffix("[x]")
            findings.add(f"{location}.{label}", f"only one form of '{prop.choice}' is allowed, "
                         f"found both '{first}' and '{prop.key}'")

    def _complex(self, prop: Property, value: Any, location: str, findings: _Findings) -> None:
        path = f"{location}.{prop.label}"
        if not self._shape_ok(prop, value, path, findings):
            return
        if prop.many:
            for index, item in enumerate(value):
                self._complex_item(prop, item, f"{path}[{index}]", findings)
        else:
            self._complex_item(prop, value, path, findings)

    def _complex_items(self, prop: Property, value: list[Any], path: str,
                       findings: _Findings) -> None:
        """The items of an array of the right length (``_fits``) of a complex type that is
        not a resource: as ``_complex`` does them, objects walked at once."""
        model = prop.inline
        for index, item in enumerate(value):
            if type(item) is dict and item:
                if model is None:
                    model = self._types.get(prop.type_name)
                self._object(item, model, f"{path}[{index}]", findings)
            else:
                self._complex_item(prop, item, f"{path}[{index}]", findings)

    def _primitive_items(self, prop: Property, rule: PrimitiveRule, value: list[Any], path: str,
                         findings: _Findings) -> None:
        """The values of an array of the right length (``_fits``) of a primitive type without
        its ``_name`` companion: as ``_primitive`` does them."""
        accepts, problem = rule.accepts, rule.problem
        for index, item in enumerate(value):
            if not accepts(item) and (item is None or problem(item) is not None):
                self._primitive_value(prop, item, f"{path}[{index}]", findings)

    def _complex_item(self, prop: Property, value: Any, path: str, findings: _Findings) -> None:
        if prop.is_resource:
            self._resource(value, path, findings, expected=prop.type_name)
            return
        if not self._is_object(value, prop.type_name, path, findings):
            return
        model = prop.inline if prop.inline is not None else self._types.get(prop.type_name)
        self._object(value, model, path, findings)

    def _primitive(self, prop: Property, value: Any, extras: Any, location: str,
                   findings: _Findings) -> None:
        path = f"{location}.{prop.label}"
        if not self._shape_ok(prop, value, path, findings):
            return
        if not prop.many:
            self._primitive_value(prop, value, path, findings)
            if extras is not _ABSENT:
                self._companion_item(extras, path, findings)
            return
        companions = self._aligned_companions(prop, value, extras, path, findings)
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            companion = companions[index] if index < len(companions) else None
            if item is None and companion is not None:
                self._companion_item(companion, item_path, findings)
                continue
            self._primitive_value(prop, item, item_path, findings)
            if companion is not None:
                self._companion_item(companion, item_path, findings)

    def _aligned_companions(self, prop: Property, value: list[Any], extras: Any, path: str,
                            findings: _Findings) -> list[Any]:
        if extras is _ABSENT:
            return []
        if not isinstance(extras, list):
            findings.add(path, f"'{prop.companion_key}' must be an array aligned with "
                         f"'{prop.key}'")
            return []
        if len(extras) != len(value):
            findings.add(path, f"'{prop.companion_key}' has {len(extras)} items but "
                         f"'{prop.key}' has {len(value)}; they must be aligned")
        return extras

    def _companion_alone(self, prop: Property, value: Any, location: str,
                         findings: _Findings) -> None:
        path = f"{location}.{prop.label}"
        if not self._shape_ok(prop, value, path, findings):
            return
        if not prop.many:
            self._companion_item(value, path, findings)
            return
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if item is None:
                findings.add(item_path, "null is not allowed here (nothing to extend)")
            else:
                self._companion_item(item, item_path, findings)

    def _companion_item(self, value: Any, path: str, findings: _Findings) -> None:
        if self._is_object(value, "Element", path, findings):
            self._object(value, self._element, path, findings)

    @staticmethod
    def _primitive_value(prop: Property, value: Any, path: str, findings: _Findings) -> None:
        assert prop.rule is not None
        if value is None:
            findings.add(path, "null is not allowed here (omit the element instead)")
            return
        problem = prop.rule.problem(value)
        if problem is not None:
            findings.add(path, problem, IssueType.VALUE)

    @staticmethod
    def _shape_ok(prop: Property, value: Any, path: str, findings: _Findings) -> bool:
        """Whether ``value`` is an array exactly when the element repeats, within its limits."""
        if not prop.many:
            if isinstance(value, list):
                findings.add(path, "must be a single value, not an array (maximum cardinality 1)")
                return False
            return True
        if not isinstance(value, list):
            findings.add(path, "must be an array (the element repeats)")
            return False
        if not value:
            findings.add(path, "an empty array is not allowed (omit the element instead)")
            return False
        if prop.max_count is not None and len(value) > prop.max_count:
            findings.add(path, f"has {len(value)} items, at most {prop.max_count} allowed")
        if len(value) < prop.min_count:
            findings.add(path, f"has {len(value)} items, at least {prop.min_count} required",
                         IssueType.REQUIRED)
        return True

    @staticmethod
    def _is_object(value: Any, type_name: str, path: str, findings: _Findings) -> bool:
        if not isinstance(value, dict):
            findings.add(path, f"{shown(value)} is not a valid {type_name} "
                         "(expected a JSON object)")
            return False
        if not value:
            findings.add(path, "an empty object is not allowed (omit the element instead)")
            return False
        return True


def _fits(prop: Property, value: Any) -> bool:
    """Whether the value of a repeating element is an array ``_shape_ok`` finds nothing to
    say about."""
    if type(value) is not list or not value:
        return False
    count = len(value)
    return count >= prop.min_count and (prop.max_count is None or count <= prop.max_count)


def _root_of(resource: Any) -> str:
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    return resource_type if isinstance(resource_type, str) else "Resource"


@cache
def shared_validator() -> StructureValidator:
    """The process-wide validator over the core R4 definitions, built on first use."""
    return StructureValidator()


def validate_structure(resource: dict[str, Any]) -> tuple[Issue, ...]:
    """Validate ``resource`` with the shared validator."""
    return shared_validator().validate(resource)
