"""The validator: structure, then bindings, invariants, references, and each profile's rules.

``ProfileValidator.validate(resource, profiles)`` runs, in order:

1. structure (``structure.py``): the JSON shape against the core snapshots. Its errors end the
   validation: the later layers read a well-formed resource.
2. the core definitions (one sparse core-mode walk, ``walk.py``): required bindings,
   invariants and reference target types of the resource, its data types and the resources
   inside it.
3. each profile: those asked for, then the ``meta.profile`` ones the validator knows (also of
   contained and Bundle entry resources): profile rules (cardinality, fixed/pattern, slicing,
   choice types), the profile's bindings, its own invariants (those of the core are done),
   reference target types and business checks. A profile asked for but not known is an error;
   an unknown ``meta.profile`` is left alone (the resource may name profiles of others).

Everything is compiled once per validator and kept: the snapshots (core and profiles), what
each slice expects, FHIRPath expressions, ValueSets. Issues are returned once each, in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any, Final

from fhir_server.definitions import structure_definitions
from fhir_server.errors import Issue, IssueType
from fhir_server.validation.bindings import check_bindings
from fhir_server.validation.business import check_business
from fhir_server.validation.invariants import InvariantChecker
from fhir_server.validation.messages import (
    PROFILE_OTHER_TYPE,
    PROFILE_UNKNOWN,
    PROFILE_UNUSABLE,
    make_issue,
    translated,
)
from fhir_server.validation.model import TypeModels
from fhir_server.validation.profile_rules import check_profile_rules
from fhir_server.validation.references import check_references
from fhir_server.validation.slicing import SliceMatcher
from fhir_server.validation.snapshot import Definitions, ProfileError, Tree
from fhir_server.validation.structure import StructureValidator, shared_validator
from fhir_server.validation.terminology import Terminology, canonical_url, core_terminology
from fhir_server.validation.walk import Frame, Walk, Walker, frame_of

MAX_CONFORMANCE_DEPTH: Final = 4
"""How deep ``profile`` discriminators may nest conformance checks."""


class ProfileValidator:
    """Validates resources against the core R4 definitions and the profiles it is given."""

    def __init__(self, definitions: Iterable[Mapping[str, Any]] = (),
                 terminology: Terminology | None = None, *,
                 core: Mapping[str, dict[str, Any]] | None = None) -> None:
        """``definitions``: StructureDefinitions with snapshots beyond the core R4 ones (a
        guide's profiles and extensions); ``terminology``: the ValueSets and CodeSystems
        (the core R4 ones by default); ``core``: other core definitions, for tests."""
        self._definitions = Definitions(definitions, core)
        self._terminology = terminology if terminology is not None else core_terminology()
        self._structure: StructureValidator = (
            shared_validator() if core is None else StructureValidator(core))
        self._models = TypeModels(self._definitions.core_definitions)
        self._matcher = SliceMatcher(self._terminology, self._conforms)
        self._walker = Walker(self._definitions, self._models, self._matcher)
        self._invariants = InvariantChecker()
        self._core_constraints = (_standard_core_constraints() if core is None
                                  else _core_constraints(core))
        self._depth = 0

    @property
    def definitions(self) -> Definitions:
        return self._definitions

    @property
    def terminology(self) -> Terminology:
        return self._terminology

    @property
    def invariants(self) -> InvariantChecker:
        return self._invariants

    def walk(self, resource: Mapping[str, Any], profile: str | None = None, *,
             sparse: bool = False) -> Walk:
        """The walk the rule layers read: ``resource`` against the core definition of its type
        (core mode), or against a profile known here, by url (profile mode); ``KeyError`` when
        neither is known. ``sparse``: the core walk ``validate`` reads, without the values no
        core rule reads (``walk.py``)."""
        if profile is None:
            tree = self._definitions.core(str(resource.get("resourceType")))
        else:
            tree = self._definitions.profile(profile)
        if tree is None:
            raise KeyError(profile or resource.get("resourceType"))
        return self._walker.walk(resource, tree, core=profile is None, sparse=sparse)

    def validate(self, resource: dict[str, Any],
                 profiles: Sequence[str] = ()) -> tuple[Issue, ...]:
        """Every issue of ``resource`` (errors, warnings, information); see the module doc."""
        issues: list[Issue] = [translated(i) for i in self._structure.validate(resource)]
        if any(issue.severity == "error" for issue in issues):
            return tuple(issues)
        tree = self._definitions.core(str(resource["resourceType"]))
        if tree is None:
            return tuple(issues)
        walk = self._walker.walk(resource, tree, core=True, sparse=True)
        issues.extend(check_bindings(walk, self._terminology))
        issues.extend(self._invariants.check(walk))
        issues.extend(check_references(walk, self._definitions))
        for url in dict.fromkeys(canonical_url(p) for p in profiles):
            issues.extend(self._profile(resource, url, location=None, frame=None,
                                        asked=True))
        issues.extend(self._declared(resource, None, None, skip=profiles))
        for nested in walk.nested:
            issues.extend(self._declared(nested.resource, nested.location, nested.frame,
                                         skip=()))
        return tuple(dict.fromkeys(issues))

    def _declared(self, resource: Mapping[str, Any], location: str | None,
                  frame: Frame | None, *, skip: Sequence[str]) -> list[Issue]:
        """The issues of the ``meta.profile`` profiles known here."""
        meta = resource.get("meta")
        declared = meta.get("profile") if isinstance(meta, dict) else None
        skipped = {canonical_url(p) for p in skip}
        issues: list[Issue] = []
        for url in dict.fromkeys(canonical_url(p) for p in declared or ()
                                 if isinstance(p, str)):
            if url not in skipped:
                issues.extend(self._profile(resource, url, location=location, frame=frame,
                                            asked=False))
        return issues

    def _profile(self, resource: Mapping[str, Any], url: str, *, location: str | None,
                 frame: Frame | None, asked: bool) -> list[Issue]:
        resource_type = str(resource.get("resourceType"))
        where = location or resource_type
        profiled = self._definitions.type_of(url)
        if profiled is None:
            if not asked:
                return []
            return [make_issue(PROFILE_UNKNOWN, where, issue_type=IssueType.NOT_SUPPORTED,
                               rule="profile", profile=url)]
        if profiled != resource_type:
            return [make_issue(PROFILE_OTHER_TYPE, where, issue_type=IssueType.INVALID,
                               rule="profile", profile=url, expected=profiled,
                               actual=resource_type)]
        try:
            tree = self._definitions.profile(url)
        except ProfileError as error:
            return [make_issue(PROFILE_UNUSABLE, where, issue_type=IssueType.PROCESSING,
                               rule="profile", profile=url, reason=str(error))]
        if tree is None:
            return []
        walk = self._walker.walk(resource, tree, core=False, location=where,
                                 frame=frame or frame_of(resource))
        return self._profile_issues(walk)

    def _profile_issues(self, walk: Walk) -> list[Issue]:
        return [*check_profile_rules(walk), *check_bindings(walk, self._terminology),
                *self._invariants.check(walk, already_checked=self._core_constraints),
                *check_references(walk, self._definitions), *check_business(walk)]

    def _conforms(self, value: Any, type_code: str, url: str) -> bool:
        """Whether a value conforms to a profile (for ``profile`` discriminators)."""
        profiled = self._definitions.type_of(url)
        if isinstance(value, dict) and set(value) == {"resourceType"}:
            return profiled is not None and profiled == value["resourceType"]
        try:
            tree = self._definitions.profile(url)
        except ProfileError:
            return False
        if tree is None or profiled != type_code or self._depth >= MAX_CONFORMANCE_DEPTH:
            return tree is None and self._definitions.is_core_url(url) and profiled == type_code
        self._depth += 1
        try:
            walk = self._walk_for_conformance(value, type_code, tree)
            return not any(i.severity == "error" for i in self._profile_issues(walk))
        finally:
            self._depth -= 1

    def _walk_for_conformance(self, value: Any, type_code: str, tree: Tree) -> Walk:
        if isinstance(value, dict) and value.get("resourceType") == type_code:
            return self._walker.walk(value, tree, core=False)
        return self._walker.walk_value(value, type_code, tree)


def _core_constraints(definitions: Mapping[str, Mapping[str, Any]]) -> frozenset[tuple[str, str]]:
    """Every (key, expression) of the core definitions' constraints."""
    return frozenset(
        (str(c.get("key")), str(c.get("expression")))
        for sd in definitions.values()
        for element in sd.get("snapshot", {}).get("element", [])
        for c in element.get("constraint") or ())


@cache
def _standard_core_constraints() -> frozenset[tuple[str, str]]:
    return _core_constraints(structure_definitions())


@cache
def shared_profile_validator() -> ProfileValidator:
    """A process-wide validator over the core R4 definitions only, built on first use."""
    return ProfileValidator()
