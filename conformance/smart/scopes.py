"""Which resource types a granted scope string lets its holder search, or not: the kit searches
one to use a token, and another to check that the server answers 403 (SMART scopes v1 and v2).

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html. A scope
``(patient|user|system)/(Type|*).(cruds letters | read | write | *)`` covers searching a type
when it names the type or ``*`` and grants ``s`` (v2) or ``read`` / ``*`` (v1). A scope with a
``?param=value`` restriction counts as covering its type when the kit wants a type no scope
reaches, and does not when it wants a type it can search freely.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

CANDIDATE_TYPES = ("Patient", "Observation", "Practitioner", "Organization", "Encounter",
                   "Condition", "DiagnosticReport", "Communication", "Task", "ServiceRequest")
"""Types to try, in order: read-only searches of any of them are harmless."""
_RESOURCE_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([^?]+)(\?.*)?$")
_V2_LETTERS = re.compile(r"^c?r?u?d?s?$")


def covers_search(scope: str, resource_type: str, *, restricted: bool = True) -> bool:
    """Whether one scope lets its holder search ``resource_type`` (with ``restricted`` False, a
    scope with a ``?param=value`` restriction does not count)."""
    match = _RESOURCE_SCOPE.match(scope)
    if match is None or (match.group(4) and not restricted):
        return False
    named, permission = match.group(2), match.group(3)
    if named not in ("*", resource_type):
        return False
    if permission in ("*", "read"):
        return True
    return bool(_V2_LETTERS.match(permission)) and "s" in permission


def uncovered_search_type(granted: str,
                          candidates: Sequence[str] = CANDIDATE_TYPES) -> str | None:
    """The first candidate type no granted scope lets its holder search, or None."""
    scopes = granted.split()
    return next((resource_type for resource_type in candidates
                 if not any(covers_search(scope, resource_type) for scope in scopes)), None)


def covered_search_type(granted: str,
                        candidates: Sequence[str] = CANDIDATE_TYPES) -> str | None:
    """The first candidate type a granted scope without restriction lets its holder search."""
    scopes = granted.split()
    return next((resource_type for resource_type in candidates
                 if any(covers_search(scope, resource_type, restricted=False)
                        for scope in scopes)), None)
