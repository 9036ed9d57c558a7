"""Required bindings: a coded value must come from the ValueSet its element is bound to.

Spec: https://hl7.org/fhir/R4/terminologies.html#strength. Only ``required`` bindings are
enforced (``extensible``, ``preferred`` and ``example`` ones never give an issue), on ``code``
(and other string-like primitives), ``Coding``, ``CodeableConcept`` (one of its codings must be
in the ValueSet; text alone is not enough) and ``Quantity`` (its unit code). A code this server
cannot judge (a code system it does not hold, an unknown ValueSet) gives an information issue,
never an error.
"""

from __future__ import annotations

from typing import Any, Final

from fhir_server.errors import Issue, IssueType
from fhir_server.validation.messages import (
    CODE_NOT_CHECKED,
    CODE_REQUIRED,
    NO_CODING_IN_VALUE_SET,
    NOT_IN_VALUE_SET,
    VALUE_SET_UNKNOWN,
    make_issue,
)
from fhir_server.validation.slicing import codes_of
from fhir_server.validation.snapshot import Binding
from fhir_server.validation.terminology import Membership, Terminology, canonical_url
from fhir_server.validation.walk import Visit, Walk

_CODED_OBJECTS: Final = frozenset({"Coding", "CodeableConcept", "Quantity"})


def check_bindings(walk: Walk, terminology: Terminology) -> list[Issue]:
    """The issues of the walk's values under required bindings."""
    issues: list[Issue] = []
    for visit in walk.visits:
        binding = visit.element.binding
        if binding is not None and binding.strength == "required":
            issue = check_value(visit, binding, terminology)
            if issue is not None:
                issues.append(issue)
        chosen = visit.slice
        binding = chosen.binding if chosen is not None else None
        if binding is not None and binding.strength == "required":
            issue = check_value(visit, binding, terminology)
            if issue is not None:
                issues.append(issue)
    return issues


def check_value(visit: Visit, binding: Binding, terminology: Terminology) -> Issue | None:
    """The issue of one value under one required binding, if any."""
    value = visit.value
    if value is None or (isinstance(value, dict) and visit.type_code not in _CODED_OBJECTS):
        return None
    value_set = canonical_url(binding.value_set)
    pairs: list[tuple[str | None, str]] = (
        [(None, value)] if isinstance(value, str) else codes_of(value))
    if not pairs:
        if visit.type_code == "CodeableConcept":
            return make_issue(CODE_REQUIRED, visit.location, issue_type=IssueType.REQUIRED,
                              rule="binding", value_set=value_set)
        return None
    if not terminology.has_value_set(value_set):
        return make_issue(VALUE_SET_UNKNOWN, visit.location, severity="information",
                          issue_type=IssueType.INFORMATIONAL, rule="binding",
                          value_set=value_set)
    verdicts: list[Membership] = [terminology.contains(value_set, s, c) for s, c in pairs]
    if True in verdicts:
        return None
    shown = ", ".join(_shown(system, code) for system, code in pairs)
    if None in verdicts:
        return make_issue(CODE_NOT_CHECKED, visit.location, severity="information",
                          issue_type=IssueType.INFORMATIONAL, rule="binding", code=shown,
                          value_set=value_set)
    if len(pairs) == 1 and visit.type_code != "CodeableConcept":
        return make_issue(NOT_IN_VALUE_SET, visit.location, issue_type=IssueType.CODE_INVALID,
                          rule="binding", code=shown, value_set=value_set)
    return make_issue(NO_CODING_IN_VALUE_SET, visit.location, issue_type=IssueType.CODE_INVALID,
                      rule="binding", codes=shown, value_set=value_set)


def _shown(system: Any, code: str) -> str:
    return f"'{system}|{code}'" if system else f"'{code}'"
