"""Group ``metadata``: the CapabilityStatement (https://hl7.org/fhir/R4/capabilitystatement.html).

FHIR 4.0.1 and JSON; every resource type the guide profiles listed with read, create and
search-type; transaction listed (a case is sent as one); every search parameter typed with a
SearchParamType, and the guide's own SearchParameters listed on their base types.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from conformance.client import CheckFailure, Resource
from conformance.kit import Group, GroupRun, Kit
from fhir_server.ig import Guide

FHIR_VERSION = "4.0.1"
JSON_FORMATS = frozenset({"json", "application/fhir+json"})
TYPE_INTERACTIONS = ("read", "create", "search-type")
SEARCH_PARAM_TYPES = frozenset({"number", "date", "string", "token", "reference", "composite",
                                "quantity", "uri", "special"})


def fetch_capability(kit: Kit) -> Resource:
    """``GET metadata``: the server's CapabilityStatement."""
    return kit.client.get("metadata").expect(200).resource("CapabilityStatement")


def server_rest(statement: Resource) -> Resource:
    """The statement's ``rest`` entry in server mode."""
    found = [rest for rest in statement.get("rest", []) if rest.get("mode") == "server"]
    if len(found) != 1:
        raise CheckFailure(f"expected one rest entry with mode 'server', found {len(found)}")
    return dict(found[0])


def resource_entry(rest: Resource, resource_type: str) -> Resource:
    """The ``rest.resource`` entry of a type; CheckFailure when it is not listed."""
    for entry in rest.get("resource", []):
        if entry.get("type") == resource_type:
            return dict(entry)
    raise CheckFailure(f"{resource_type} is not in rest.resource")


def profiled_types(guide: Guide) -> dict[str, list[str]]:
    """Resource type -> the urls of the guide's profiles on it (extensions left out)."""
    types: dict[str, list[str]] = {}
    for url, definition in sorted(guide.structure_definitions.items()):
        if definition.get("kind") == "resource" and definition.get("derivation") == "constraint":
            types.setdefault(str(definition["type"]), []).append(url)
    return dict(sorted(types.items()))


def _check_version(statement: Resource) -> None:
    if statement.get("fhirVersion") != FHIR_VERSION:
        raise CheckFailure(f"expected fhirVersion {FHIR_VERSION}, got "
                           f"{statement.get('fhirVersion')!r}")


def _check_json(statement: Resource) -> None:
    formats = statement.get("format", [])
    if not JSON_FORMATS & set(formats):
        raise CheckFailure(f"expected 'json' or 'application/fhir+json' in format, got {formats}")


def _check_interactions(rest: Resource, resource_type: str) -> None:
    listed = {i.get("code") for i in resource_entry(rest, resource_type).get("interaction", [])}
    missing = [code for code in TYPE_INTERACTIONS if code not in listed]
    if missing:
        raise CheckFailure(f"{resource_type} does not list {', '.join(missing)} "
                           f"(listed: {', '.join(sorted(map(str, listed))) or 'nothing'})")


def _check_transaction(rest: Resource) -> None:
    listed = {i.get("code") for i in rest.get("interaction", [])}
    if "transaction" not in listed:
        raise CheckFailure(f"rest.interaction does not list transaction (listed: "
                           f"{', '.join(sorted(map(str, listed))) or 'nothing'})")


def _search_params(rest: Resource) -> Iterator[tuple[str, Resource]]:
    for param in rest.get("searchParam", []):
        yield "rest", param
    for entry in rest.get("resource", []):
        for param in entry.get("searchParam", []):
            yield str(entry.get("type")), param


def _check_search_params_typed(rest: Resource) -> None:
    wrong = [f"{where}.{param.get('name')!r}: type {param.get('type')!r}"
             for where, param in _search_params(rest)
             if not param.get("name") or param.get("type") not in SEARCH_PARAM_TYPES]
    if wrong:
        raise CheckFailure(f"{len(wrong)} searchParam entries lack a name or a SearchParamType: "
                           f"{'; '.join(wrong[:5])}")


def _check_guide_search_parameter(rest: Resource, base: str, parameter: Resource) -> None:
    code, url = parameter.get("code"), parameter.get("url")
    listed = [p for p in resource_entry(rest, base).get("searchParam", [])
              if p.get("name") == code]
    if not listed:
        raise CheckFailure(f"{base} does not list the search parameter {code} ({url})")
    if listed[0].get("type") != parameter.get("type"):
        raise CheckFailure(f"{base}.{code} is listed with type {listed[0].get('type')!r}, "
                           f"expected {parameter.get('type')!r}")
    if listed[0].get("definition") not in (None, url):
        raise CheckFailure(f"{base}.{code} is listed with definition "
                           f"{listed[0].get('definition')!r}, expected {url}")


def run(kit: Kit, checks: GroupRun) -> None:
    statement = checks.require("GET metadata answers 200 with a CapabilityStatement",
                               lambda: fetch_capability(kit))
    checks.check(f"fhirVersion is {FHIR_VERSION}", lambda: _check_version(statement))
    checks.check("format lists FHIR JSON", lambda: _check_json(statement))
    rest = checks.require("one rest entry in server mode", lambda: server_rest(statement))
    checks.check("transaction is a system interaction", lambda: _check_transaction(rest))
    for resource_type in profiled_types(kit.guide):
        checks.check(f"{resource_type} is listed with {', '.join(TYPE_INTERACTIONS)}",
                     partial(_check_interactions, rest, resource_type))
    checks.check("every searchParam has a name and a SearchParamType",
                 lambda: _check_search_params_typed(rest))
    for parameter in kit.guide.search_parameters.values():
        for base in parameter.get("base", []):
            checks.check(
                f"the guide's search parameter {base}.{parameter.get('code')} is listed "
                f"with type {parameter.get('type')}",
                partial(_check_guide_search_parameter, rest, base, parameter))


GROUP = Group("metadata", "the CapabilityStatement: version, JSON, types, interactions, search "
              "parameters", run)
