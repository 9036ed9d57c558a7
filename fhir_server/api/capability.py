"""The CapabilityStatement, generated from the route table and the engine's real abilities."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from fhir_server import FHIR_VERSION, __version__
from fhir_server.api.routes import system_interactions, type_interactions
from fhir_server.engine.resource_types import known_types
from fhir_server.engine.search_request import supported_parameters
from fhir_server.types import ResourceDict


def _search_params(resource_type: str) -> list[ResourceDict]:
    return [{"name": p.name, "definition": p.definition, "type": p.type}
            for p in supported_parameters(resource_type)]


@cache
def _resources() -> tuple[ResourceDict, ...]:
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
        "searchParam": _search_params(resource_type),
    } for resource_type in sorted(known_types()))


def capability_statement(base_url: str, *, published: str) -> ResourceDict:
    """The server's CapabilityStatement for a given public base URL."""
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
        "rest": [{
            "mode": "server",
            "security": {"description": "Bearer token required on every endpoint but "
                                        "/metadata."},
            "resource": list(_resources()),
            "interaction": [{"code": code} for code in system_interactions()],
            "compartment": ["http://hl7.org/fhir/CompartmentDefinition/patient"],
            "searchParam": [{"name": "_id", "type": "token"},
                            {"name": "_lastUpdated", "type": "date"}],
        }],
    }


def capability_factory(published: str) -> Callable[[str], ResourceDict]:
    """A function of the base URL, as the API stores it on start-up."""
    return lambda base_url: capability_statement(base_url, published=published)
