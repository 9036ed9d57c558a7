"""Reference target types: a Reference may only point at the resource types its element allows.

Spec: https://hl7.org/fhir/R4/references.html. The allowed types come from ``targetProfile``
on the element's ``Reference`` type (a core definition names its type; a profile known to the
validator gives the type it constrains; ``Resource`` allows any; no targetProfile, or one not
known here, is not checked). The type referred to is read from ``reference``: ``Type/id``,
``Type/id/_history/v``, an absolute RESTful URL ending so, ``#id`` (a contained resource of the
root resource; ``#`` alone is the container), a ``urn:uuid:``/``urn:oid:`` ``fullUrl`` of the
enclosing Bundle; or else from ``Reference.type``. A reference whose type cannot be told (a
logical reference by ``identifier`` only, an unknown URL) is not checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, Final

from fhir_server.definitions import resource_types
from fhir_server.errors import Issue, IssueType
from fhir_server.validation.messages import REFERENCE_TARGET, make_issue

if TYPE_CHECKING:
    from fhir_server.validation.snapshot import Definitions, ElementDef
    from fhir_server.validation.walk import Visit, Walk

ANY_RESOURCE: Final = frozenset({"Resource", "DomainResource"})
_LITERAL: Final = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?$")


@cache
def _known_types() -> frozenset[str]:
    return frozenset(resource_types())


def reference_target_type(reference: Mapping[str, Any], *,
                          contained: Mapping[str, str] | None = None,
                          bundle: Mapping[str, str] | None = None,
                          container: str | None = None) -> str | None:
    """The resource type a Reference points at, when it can be told without resolving it.

    ``contained``: contained resource id -> type; ``bundle``: entry fullUrl -> type;
    ``container``: the type of the resource holding the contained ones (for ``#``).
    """
    literal = reference.get("reference")
    if isinstance(literal, str):
        if literal.startswith("#"):
            return container if literal == "#" else (contained or {}).get(literal[1:])
        if bundle and literal in bundle:
            return bundle[literal]
        match = _LITERAL.search(literal)
        if match is not None and match["type"] in _known_types():
            return match["type"]
    declared = reference.get("type")
    if isinstance(declared, str):
        name = declared.rpartition("/")[2]
        return name if name in _known_types() else None
    return None


def allowed_targets(element: ElementDef, definitions: Definitions) -> frozenset[str] | None:
    """The resource types an element's Reference type allows; None when any (or unknown)."""
    allowed: set[str] = set()
    for type_ref in element.types:
        if type_ref.code != "Reference":
            continue
        if not type_ref.target_profiles:
            return None
        for url in type_ref.target_profiles:
            target = definitions.type_of(url)
            if target is None or target in ANY_RESOURCE:
                return None
            allowed.add(target)
    return frozenset(allowed) if allowed else None


def check_references(walk: Walk, definitions: Definitions) -> list[Issue]:
    """An error for each Reference pointing at a resource type its element does not allow."""
    issues: list[Issue] = []
    for visit in walk.visits:
        if visit.type_code != "Reference" or not isinstance(visit.value, dict):
            continue
        target = _target_of(visit)
        if target is None:
            continue
        for element in (visit.element, visit.slice):
            allowed = None if element is None else allowed_targets(element, definitions)
            if allowed is not None and target not in allowed:
                issues.append(make_issue(
                    REFERENCE_TARGET, visit.location, issue_type=IssueType.VALUE,
                    rule="reference-target", type=target,
                    allowed=" | ".join(sorted(allowed))))
                break
    return issues


def _target_of(visit: Visit) -> str | None:
    frame = visit.frame
    return reference_target_type(visit.value, contained=frame.contained, bundle=frame.bundle,
                                 container=frame.root.get("resourceType"))
