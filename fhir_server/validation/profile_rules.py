"""Profile rules: cardinality, fixed and pattern values, choice types and slicing of a profile.

Spec: https://hl7.org/fhir/R4/profiling.html. Read from a profile-mode walk:

- cardinality of the elements a profile narrows (the base cardinality is the structure
  layer's), and of each slice over the repetitions assigned to it;
- ``fixed[x]``: the value equals it exactly; ``pattern[x]``: the value contains it (every
  property of the pattern present with a matching value, every pattern array item matched);
- a choice element (``value[x]``) restricted to some types;
- slicing rules: ``closed`` refuses a repetition in no slice, ``openAtEnd`` requires those to
  come last, ``ordered`` requires the slices' order; the slices' children are checked on the
  repetitions in them by the same walk.
"""

from __future__ import annotations

import json
from typing import Any, Final

from fhir_server.errors import Issue, IssueType
from fhir_server.validation.messages import (
    ELEMENT_MISSING,
    FIXED_VALUE,
    NO_SLICE_MATCHED,
    NOT_ALLOWED,
    PATTERN_VALUE,
    PROFILE_PART_NOT_APPLIED,
    SLICE_NOT_ALLOWED,
    SLICE_TOO_FEW,
    SLICE_TOO_MANY,
    SLICES_OUT_OF_ORDER,
    TOO_FEW,
    TOO_MANY,
    TYPE_NOT_ALLOWED,
    UNSLICED_NOT_AT_END,
    make_issue,
)
from fhir_server.validation.slicing import json_equal, matches_pattern
from fhir_server.validation.snapshot import ElementDef
from fhir_server.validation.walk import Group, Visit, Walk

_SHOWN_LENGTH: Final = 120


def check_profile_rules(walk: Walk) -> list[Issue]:
    """The profile's own rules on a profile-mode walk."""
    profile = walk.tree.url
    issues: list[Issue] = []
    for group in walk.groups:
        issues.extend(_cardinality(group, profile))
        if group.element.slices:
            issues.extend(_slices(group, profile))
    for visit in walk.visits[1:]:
        issues.extend(_values(visit, profile))
    for problem in walk.problems:
        issues.append(make_issue(PROFILE_PART_NOT_APPLIED, problem.location, severity="warning",
                                 issue_type=IssueType.PROCESSING, rule="profile",
                                 element=problem.element.id, profile=profile,
                                 reason=problem.reason))
    return issues


def _cardinality(group: Group, profile: str) -> list[Issue]:
    element = group.element
    if not element.narrows_cardinality:
        return []
    count = len(group.items)
    if count < element.min:
        text = ELEMENT_MISSING if count == 0 else TOO_FEW
        return [make_issue(text, group.location, issue_type=IssueType.REQUIRED,
                           rule="cardinality", count=count, min=element.min, profile=profile)]
    if element.max == 0:
        return [make_issue(NOT_ALLOWED, item.location, issue_type=IssueType.STRUCTURE,
                           rule="cardinality", profile=profile) for item in group.items]
    if element.max is not None and count > element.max:
        return [make_issue(TOO_MANY, group.location, issue_type=IssueType.STRUCTURE,
                           rule="cardinality", count=count, max=element.max, profile=profile)]
    return []


def _slices(group: Group, profile: str) -> list[Issue]:
    element = group.element
    issues: list[Issue] = []
    for candidate in element.slices:
        count = sum(1 for chosen in group.slices if chosen is candidate)
        name = f"'{candidate.slice_name}'"
        if candidate.max == 0:
            issues.extend(make_issue(SLICE_NOT_ALLOWED, item.location,
                                     issue_type=IssueType.STRUCTURE, rule="slicing", slice=name,
                                     profile=profile)
                          for item, chosen in zip(group.items, group.slices, strict=True)
                          if chosen is candidate)
        elif count < candidate.min:
            issues.append(make_issue(SLICE_TOO_FEW, group.location, issue_type=IssueType.REQUIRED,
                                     rule="slicing", slice=name, count=count,
                                     min=candidate.min, profile=profile))
        elif candidate.max is not None and count > candidate.max:
            issues.append(make_issue(SLICE_TOO_MANY, group.location,
                                     issue_type=IssueType.STRUCTURE, rule="slicing", slice=name,
                                     count=count, max=candidate.max, profile=profile))
    rules = element.slicing.rules if element.slicing else "open"
    if rules == "closed":
        names = ", ".join(f"'{s.slice_name}'" for s in element.slices)
        issues.extend(make_issue(NO_SLICE_MATCHED, item.location, issue_type=IssueType.STRUCTURE,
                                 rule="slicing", slices=names, profile=profile)
                      for item, chosen in zip(group.items, group.slices, strict=True)
                      if chosen is None)
    elif rules == "openAtEnd":
        issues.extend(_open_at_end(group, profile))
    if element.slicing is not None and element.slicing.ordered:
        issues.extend(_in_order(group, profile))
    return issues


def _open_at_end(group: Group, profile: str) -> list[Issue]:
    seen_other = False
    for item, chosen in zip(group.items, group.slices, strict=True):
        if chosen is None:
            seen_other = True
        elif seen_other:
            return [make_issue(UNSLICED_NOT_AT_END, item.location,
                               issue_type=IssueType.STRUCTURE, rule="slicing", profile=profile)]
    return []


def _in_order(group: Group, profile: str) -> list[Issue]:
    order = {s: index for index, s in enumerate(group.element.slices)}
    last = -1
    for item, chosen in zip(group.items, group.slices, strict=True):
        if chosen is None:
            continue
        position = order[chosen]
        if position < last:
            names = ", ".join(f"'{s.slice_name}'" for s in group.element.slices)
            return [make_issue(SLICES_OUT_OF_ORDER, item.location,
                               issue_type=IssueType.STRUCTURE, rule="slicing", slices=names,
                               profile=profile)]
        last = position
    return []


def _values(visit: Visit, profile: str) -> list[Issue]:
    issues: list[Issue] = []
    for definition in (visit.element, visit.slice):
        if definition is None:
            continue
        if definition.has_fixed and not json_equal(visit.value, definition.fixed):
            issues.append(make_issue(FIXED_VALUE, visit.location, issue_type=IssueType.VALUE,
                                     rule="fixed", expected=shown_json(definition.fixed),
                                     actual=shown_json(visit.value), profile=profile))
        if definition.has_pattern and not matches_pattern(visit.value, definition.pattern):
            issues.append(make_issue(PATTERN_VALUE, visit.location, issue_type=IssueType.VALUE,
                                     rule="pattern", expected=shown_json(definition.pattern),
                                     actual=shown_json(visit.value), profile=profile))
        issues.extend(_choice_type(visit, definition, profile))
    return issues


def _choice_type(visit: Visit, definition: ElementDef, profile: str) -> list[Issue]:
    if not definition.name.endswith("[x]") or not definition.types:
        return []
    allowed = definition.type_codes
    if visit.type_code in allowed:
        return []
    return [make_issue(TYPE_NOT_ALLOWED, visit.location, issue_type=IssueType.STRUCTURE,
                       rule="type", type=visit.type_code, allowed=", ".join(allowed),
                       profile=profile)]


def shown_json(value: Any) -> str:
    """A compact JSON rendering of a value for messages, cut at a readable length."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                      default=str)
    return text if len(text) <= _SHOWN_LENGTH else text[:_SHOWN_LENGTH] + "…"
