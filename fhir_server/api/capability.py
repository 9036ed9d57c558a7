"""The CapabilityStatement, generated from the route table and the engine's real abilities.

Search parameters come from the engine's search registry (the official ones and the custom ones
that are ready: a parameter awaiting ``$reindex`` is not listed), operations from its operation
registry: ``rest.operation`` for system-level ones, ``rest.resource.operation`` for the others.
The implementation guide the server enforces gives ``implementationGuide`` (its canonical) and
each type's ``supportedProfile`` (the canonical URLs of its resource profiles); its package is
named in ``implementation.description`` (``/ig/package.tgz``, public). ``instantiates`` is not
used: it names CapabilityStatements, and the guide publishes none.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Final, Protocol

from fhir_server import FHIR_VERSION, __version__
from fhir_server.api.oauth import (
    AUTHORIZE_PATH,
    INTROSPECTION_PATH,
    MANAGEMENT_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    root_of,
)
from fhir_server.api.routes import system_interactions, type_interactions
from fhir_server.engine.operations import Operation, OperationRegistry
from fhir_server.engine.resource_types import known_types
from fhir_server.engine.search_request import supported_parameters
from fhir_server.ig.package import Guide
from fhir_server.search.registry import SearchRegistry, default_registry
from fhir_server.types import ResourceDict

PACKAGE_PATH = "/ig/package.tgz"
MANIFEST_PATH = "/ig/package.json"
FHIR_PATH = "/fhir"


class CapabilityStatementOf(Protocol):
    """The statement for a base URL, a search registry and the operations."""

    def __call__(self, base_url: str, *, registry: SearchRegistry,
                 operations: OperationRegistry) -> ResourceDict: ...


def _search_params(resource_type: str, registry: SearchRegistry) -> list[ResourceDict]:
    return [{"name": p.name, "definition": p.definition, "type": p.type}
            for p in supported_parameters(resource_type, registry)]


def _operations(operations: tuple[Operation, ...]) -> list[ResourceDict]:
    return [{"name": op.name, "definition": op.definition} for op in operations]


def _resources(registry: SearchRegistry, operations: OperationRegistry,
               profiles: Mapping[str, list[str]]) -> list[ResourceDict]:
    resources = list(_resources_searching(registry))
    for position, resource in enumerate(resources):
        found = operations.type_operations(resource["type"])
        supported = profiles.get(resource["type"])
        if found or supported:
            resource = {**resource}
            if supported:
                resource["supportedProfile"] = supported
            if found:
                resource["operation"] = _operations(found)
            resources[position] = resource
    return resources


def supported_profiles(guide: Guide | None) -> dict[str, list[str]]:
    """Resource type -> the canonical URLs of the guide's profiles on it, sorted."""
    found: dict[str, list[str]] = {}
    for url, definition in (guide.structure_definitions.items() if guide else ()):
        if definition.get("kind") == "resource" and definition.get("derivation") == "constraint":
            found.setdefault(str(definition["type"]), []).append(url)
    return {resource_type: sorted(urls) for resource_type, urls in found.items()}


def package_url(base_url: str, path: str = PACKAGE_PATH) -> str:
    """Where the guide's package (or, with ``MANIFEST_PATH``, its manifest) is downloaded:
    beside the FHIR base, ``https://host/fhir`` -> ``https://host/ig/package.tgz``."""
    return base_url.rstrip("/").removesuffix(FHIR_PATH) + path


def _implementation(base_url: str, guide: Guide | None) -> ResourceDict:
    description = "Pictaderm tele-expertise FHIR server"
    if guide is not None:
        description += (f"; it enforces the implementation guide {guide.package_id}, whose FHIR "
                        f"package is downloadable without authorization at "
                        f"{package_url(base_url)} (manifest: "
                        f"{package_url(base_url, MANIFEST_PATH)})")
    return {"description": description, "url": base_url}


@lru_cache(maxsize=4)
def _resources_searching(registry: SearchRegistry) -> tuple[ResourceDict, ...]:
    interactions = [{"code": code} for code in type_interactions()]
    return tuple({
        "type": resource_type,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
        "interaction": interactions,
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "searchParam": _search_params(resource_type, registry),
    } for resource_type in sorted(known_types()))


def capability_statement(base_url: str, *, published: str,
                         registry: SearchRegistry | None = None,
                         operations: OperationRegistry | None = None,
                         guide: Guide | None = None) -> ResourceDict:
    """The server's CapabilityStatement for a given public base URL (default registry: the
    official R4 parameters; default operations: none; no guide: no profiles)."""
    operations = operations or OperationRegistry()
    rest: ResourceDict = {
        "mode": "server",
        "security": _security(base_url),
        "resource": _resources(registry or default_registry(), operations,
                               supported_profiles(guide)),
        "interaction": [{"code": code} for code in system_interactions()],
        "compartment": ["http://hl7.org/fhir/CompartmentDefinition/patient"],
        "searchParam": [{"name": "_id", "type": "token"},
                        {"name": "_lastUpdated", "type": "date"}],
    }
    system = operations.system_operations()
    if system:
        rest["operation"] = _operations(system)
    statement: ResourceDict = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published,
        "publisher": "Pictaderm",
        "kind": "instance",
        "software": {"name": "Pictaderm FHIR server", "version": __version__},
        "implementation": _implementation(base_url, guide),
        "fhirVersion": FHIR_VERSION,
        "format": ["json", "application/fhir+json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
    }
    ig = guide.implementation_guide if guide is not None else None
    if ig is not None and isinstance(ig.get("url"), str):
        statement["implementationGuide"] = [ig["url"]]
    statement["rest"] = [rest]
    return statement


SMART_SERVICE: Final = {"coding": [{
    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
    "code": "SMART-on-FHIR"}], "text": "OAuth2 using SMART-on-FHIR profile"}
OAUTH_URIS: Final = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def _security(base_url: str) -> ResourceDict:
    """``rest.security``, SMART 1 style (clients that discover the server only this way): the
    service coding and the ``oauth-uris`` extension with the same endpoints as the discovery
    document (``.well-known/smart-configuration``)."""
    root = root_of(base_url)
    return {
        "extension": [{"url": OAUTH_URIS, "extension": [
            {"url": "authorize", "valueUri": root + AUTHORIZE_PATH},
            {"url": "token", "valueUri": root + TOKEN_PATH},
            {"url": "manage", "valueUri": root + MANAGEMENT_PATH},
            {"url": "introspect", "valueUri": root + INTROSPECTION_PATH},
            {"url": "revoke", "valueUri": root + REVOCATION_PATH}]}],
        "cors": True,
        "service": [SMART_SERVICE],
        "description": "Bearer token required on every endpoint but /metadata, the SMART and "
                       "OpenID discovery documents, the OAuth endpoints and the implementation "
                       "guide package (/ig/…): a SMART access token (an app's, or a backend "
                       "service's) or the operator's token. What a token reaches is its scopes "
                       "intersected with its account's role policy."}


def capability_factory(published: str, *, guide: Guide | None = None) -> CapabilityStatementOf:
    """The statement as a function of the base URL, registry and operations (the API stores it
    on start-up, with its publication date and the guide it enforces)."""

    def statement(base_url: str, *, registry: SearchRegistry,
                  operations: OperationRegistry) -> ResourceDict:
        return capability_statement(base_url, published=published, registry=registry,
                                    operations=operations, guide=guide)

    return statement
