"""Group ``guide``: the CapabilityStatement advertises the guide (issue #4 §3).

Every profile of the guide named in ``supportedProfile`` of its type, and every
OperationDefinition of the guide listed where it is invoked (``rest.operation`` for a system
operation, ``rest.resource.operation`` of each of its types otherwise), its ``definition`` being
the guide's canonical url.
"""

from __future__ import annotations

from functools import partial

from conformance.checks.metadata import (
    fetch_capability,
    profiled_types,
    resource_entry,
    server_rest,
)
from conformance.client import CheckFailure, Resource
from conformance.kit import Group, GroupRun, Kit


def _check_supported_profile(rest: Resource, resource_type: str, url: str) -> None:
    listed = resource_entry(rest, resource_type).get("supportedProfile", [])
    if url not in listed:
        raise CheckFailure(f"{resource_type}.supportedProfile does not list {url} "
                           f"(listed: {', '.join(listed) or 'nothing'})")


def operation_places(rest: Resource, definition: Resource) -> list[tuple[str, list[Resource]]]:
    """Where an operation must be listed: (``rest`` or a type, the operations listed there)."""
    places: list[tuple[str, list[Resource]]] = []
    if definition.get("system"):
        places.append(("rest", list(rest.get("operation", []))))
    if definition.get("type") or definition.get("instance"):
        for resource_type in definition.get("resource", []):
            operations = resource_entry(rest, resource_type).get("operation", [])
            places.append((str(resource_type), list(operations)))
    return places


def _check_operation(rest: Resource, definition: Resource) -> None:
    code, url = str(definition.get("code")), definition.get("url")
    problems = []
    for place, operations in operation_places(rest, definition):
        listed = [op for op in operations if str(op.get("name", "")).lstrip("$") == code]
        if not listed:
            problems.append(f"{place} does not list ${code}")
        elif listed[0].get("definition") != url:
            problems.append(f"{place} lists ${code} with definition "
                            f"{listed[0].get('definition')!r}, expected {url}")
    if problems:
        raise CheckFailure("; ".join(problems))


def _where(definition: Resource) -> str:
    types = [str(t) for t in definition.get("resource", [])
             if definition.get("type") or definition.get("instance")]
    return ", ".join((["the system"] if definition.get("system") else []) + types) or "nowhere"


def run(kit: Kit, checks: GroupRun) -> None:
    rest = checks.prepare("the CapabilityStatement's server rest entry",
                          lambda: server_rest(fetch_capability(kit)))
    for resource_type, urls in profiled_types(kit.guide).items():
        for url in urls:
            checks.check(f"{resource_type} lists supportedProfile {url.rsplit('/', 1)[-1]}",
                         partial(_check_supported_profile, rest, resource_type, url))
    for definition in kit.guide.operation_definitions.values():
        checks.check(f"operation ${definition.get('code')} is listed for {_where(definition)}",
                     partial(_check_operation, rest, definition))


GROUP = Group("guide", "the CapabilityStatement advertises the guide: supportedProfile per "
              "profiled type, the guide's operations", run)
