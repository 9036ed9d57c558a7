"""The CapabilityStatement, generated from the route table and the engine's real abilities.

Search parameters come from the engine's search registry (the official ones and the custom ones
that are ready: a parameter awaiting ``$reindex`` is not listed), operations from its operation
registry: ``rest.operation`` for system-level ones, ``rest.resource.operation`` for the others.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

from fhir_server import FHIR_VERSION, __version__
from fhir_server.api.routes import system_interactions, type_interactions
from fhir_server.engine.operations import Operation, OperationRegistry
from fhir_server.engine.resource_types import known_types
from fhir_server.engine.search_request import supported_parameters
from fhir_server.search.registry import SearchRegistry, default_registry
from fhir_server.types import ResourceDict


class CapabilityStatementOf(Protocol):
    """The statement for a base URL, a search registry and the operations."""

    def __call__(self, base_url: str, *, registry: SearchRegistry,
                 operations: OperationRegistry) -> ResourceDict: ...


def _search_params(resource_type: str, registry: SearchRegistry) -> list[ResourceDict]:
    return [{"name": p.name, "definition": p.definition, "type": p.type}
            for p in supported_parameters(resource_type, registry)]


def _operations(operations: tuple[Operation, ...]) -> list[ResourceDict]:
    return [{"name": op.name, "definition": op.definition} for op in operations]


def _resources(registry: SearchRegistry,
               operations: OperationRegistry) -> list[ResourceDict]:
    resources = list(_resources_searching(registry))
    for position, resource in enumerate(resources):
        found = operations.type_operations(resource["type"])
        if found:
            resources[position] = {**resource, "operation": _operations(found)}
    return resources


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
                         operations: OperationRegistry | None = None) -> ResourceDict:
    """The server's CapabilityStatement for a given public base URL (default registry: the
    official R4 parameters; default operations: none)."""
    operations = operations or OperationRegistry()
    rest: ResourceDict = {
        "mode": "server",
        "security": {"description": "Bearer token required on every endpoint but /metadata."},
        "resource": _resources(registry or default_registry(), operations),
        "interaction": [{"code": code} for code in system_interactions()],
        "compartment": ["http://hl7.org/fhir/CompartmentDefinition/patient"],
        "searchParam": [{"name": "_id", "type": "token"},
                        {"name": "_lastUpdated", "type": "date"}],
    }
    system = operations.system_operations()
    if system:
        rest["operation"] = _operations(system)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published,
        "publisher": "Pictaderm",
        "kind": "instance",
        "software": {"name": "Pictaderm FHIR server", "version": __version__},
        "implementation": {"description": "Pictaderm tele-expertise FHIR server",
                           "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["json", "application/fhir+json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [rest],
    }


def capability_factory(published: str) -> CapabilityStatementOf:
    """The statement as a function of the base URL, registry and operations (the API stores it
    on start-up, with its publication date)."""

    def statement(base_url: str, *, registry: SearchRegistry,
                  operations: OperationRegistry) -> ResourceDict:
        return capability_statement(base_url, published=published, registry=registry,
                                    operations=operations)

    return statement
