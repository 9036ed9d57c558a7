"""Business checks of French identifiers, bound to profile elements.

A profile element asks for a check in one of two ways:

- explicitly: the extension ``https://fhir.pictaderm.com/StructureDefinition/business-check``
  on the ElementDefinition of an Identifier (or of its ``value``), with the check's code as
  ``valueCode`` (one extension per check);
- by the identifier system it fixes: an Identifier element or slice whose ``system`` the
  profile fixes (``fixedUri`` or ``patternUri``) to a system of ``CHECKS_BY_SYSTEM`` gets that
  system's check, so the guide's RPPS, FINESS and NIR slices are checked as written.

The checks, by code:

- ``nir``: a NIR's format and key: 15 characters, 13 digits (``2A``/``2B`` for Corsica in
  positions 6-7) and the key 97 − (the first 13 as a number, ``2A`` → 19, ``2B`` → 18,
  mod 97), checked with ``stdnum.fr.nir``;
- ``nir-definitive``: the same, and definitive: a first digit of 1 or 2 (7 and 8 are
  provisional numbers, 3 and 4 are not definitive either), as the INS-NIR slice requires;
- ``rpps``: an RPPS number: 11 digits with a Luhn check digit;
- ``finess``: a FINESS number: 9 characters, the first two the department (``2A``/``2B`` for
  Corsica), then digits, the last a Luhn check digit (verified on published FINESS numbers;
  for the Corsican ones, whose letters Luhn cannot take, only the format is checked).

Both ways belong to the profile (the core definitions have neither), so a number is checked
where the guide says so and nowhere else. Messages never repeat the number: a NIR is personal
data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from stdnum import luhn
from stdnum.exceptions import InvalidChecksum, ValidationError
from stdnum.fr import nir

from fhir_server.digits import is_number
from fhir_server.errors import Issue, IssueType
from fhir_server.validation.messages import (
    BUSINESS_CHECK_UNKNOWN,
    FINESS_FORMAT,
    FINESS_KEY,
    NIR_FORMAT,
    NIR_KEY,
    NIR_KIND_OTHER,
    NIR_KIND_PROVISIONAL,
    NIR_NOT_DEFINITIVE,
    RPPS_FORMAT,
    RPPS_KEY,
    Text,
    make_issue,
)
from fhir_server.validation.snapshot import ElementDef
from fhir_server.validation.walk import Visit, Walk

Problem = tuple[Text, dict[str, Any], dict[str, Any]]
"""A message, its parameters, and its French parameters where they differ."""

_RPPS: Final = re.compile(r"[0-9]{11}")
_FINESS: Final = re.compile(r"(?:[0-9]{2}|2A|2B)[0-9]{7}")
_DEFINITIVE: Final = frozenset("12")
_PROVISIONAL: Final = frozenset("78")


def nir_problems(value: str) -> list[Problem]:
    """What is wrong with a NIR: its format or its key."""
    if value != nir.compact(value):
        return [(NIR_FORMAT, {}, {})]
    try:
        nir.validate(value)
    except InvalidChecksum:
        return [(NIR_KEY, {}, {})]
    except ValidationError:
        return [(NIR_FORMAT, {}, {})]
    return []


def definitive_nir_problems(value: str) -> list[Problem]:
    """What is wrong with a NIR that must be definitive."""
    problems = nir_problems(value)
    if problems or value[0] in _DEFINITIVE:
        return problems
    kind = NIR_KIND_PROVISIONAL if value[0] in _PROVISIONAL else NIR_KIND_OTHER
    return [(NIR_NOT_DEFINITIVE, {"digit": value[0], "kind": kind.en},
             {"kind": kind.fr})]


def rpps_problems(value: str) -> list[Problem]:
    """What is wrong with an RPPS number."""
    if _RPPS.fullmatch(value) is None:
        return [(RPPS_FORMAT, {}, {})]
    return [] if luhn.is_valid(value) else [(RPPS_KEY, {}, {})]


def finess_problems(value: str) -> list[Problem]:
    """What is wrong with a FINESS number."""
    if _FINESS.fullmatch(value) is None:
        return [(FINESS_FORMAT, {}, {})]
    if is_number(value) and not luhn.is_valid(value):
        return [(FINESS_KEY, {}, {})]
    return []


CHECKS: Final[Mapping[str, Callable[[str], list[Problem]]]] = {
    "nir": nir_problems,
    "nir-definitive": definitive_nir_problems,
    "rpps": rpps_problems,
    "finess": finess_problems,
}


CHECKS_BY_SYSTEM: Final[Mapping[str, str]] = {
    "urn:oid:1.2.250.1.213.1.4.8": "nir-definitive",
    "urn:oid:1.2.250.1.213.1.4.9": "nir",
    "urn:oid:1.2.250.1.213.1.4.10": "nir",
    "urn:oid:1.2.250.1.213.1.4.11": "nir",
    "https://rpps.esante.gouv.fr": "rpps",
    "https://finess.esante.gouv.fr": "finess",
}
"""Identifier system -> the check of its numbers: INS-NIR and NIR (definitive), INS-NIA
(provisional: format and key), INS test and demo NIRs, RPPS, FINESS (``interop-fr.md``)."""


def checks_of(definition: ElementDef) -> tuple[str, ...]:
    """The business checks an element or slice asks for, explicit and by its fixed system."""
    implied = CHECKS_BY_SYSTEM.get(_fixed_system(definition) or "")
    if implied is None or implied in definition.business:
        return definition.business
    return (*definition.business, implied)


def _fixed_system(definition: ElementDef) -> str | None:
    if "Identifier" not in definition.type_codes:
        return None
    system = definition.children.get("system")
    if system is None:
        return None
    value = system.fixed if system.has_fixed else system.pattern
    return value if isinstance(value, str) else None


def check_business(walk: Walk) -> list[Issue]:
    """The business checks the walk's definitions ask for."""
    issues: list[Issue] = []
    for visit in walk.visits:
        for definition in (visit.element, visit.slice):
            for check in checks_of(definition) if definition is not None else ():
                issues.extend(_run(check, visit, walk.tree.url))
    return issues


def _run(check: str, visit: Visit, profile: str) -> list[Issue]:
    function = CHECKS.get(check)
    if function is None:
        return [make_issue(BUSINESS_CHECK_UNKNOWN, visit.location, severity="warning",
                           issue_type=IssueType.PROCESSING, rule="business", check=check,
                           profile=profile)]
    value, location = _checked_value(visit)
    if value is None:
        return []
    return [make_issue(text, location, issue_type=IssueType.BUSINESS_RULE, rule=check,
                       french=french, **params)
            for text, params, french in function(value)]


def _checked_value(visit: Visit) -> tuple[str | None, str]:
    """The text to check: an Identifier's ``value``, or the value itself."""
    value = visit.value
    if isinstance(value, dict):
        inner = value.get("value")
        return (inner if isinstance(inner, str) else None), f"{visit.location}.value"
    return (value if isinstance(value, str) else None), visit.location
