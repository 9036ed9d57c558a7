"""The route table: every interaction the API serves, in one list the CapabilityStatement reads.

Operations (``$name``) have one route per level; which operations exist is the engine's
``OperationRegistry``, which the CapabilityStatement lists too. A ``{$operation}`` segment only
matches a segment starting with ``$`` (and no other parameter segment does: ids and types never
start with ``$``). SMART discovery (``.well-known/smart-configuration``) is served under the
FHIR base too, outside the CapabilityStatement's interactions (level ``none``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api import handlers, oauth

Handler = Callable[[Request], Awaitable[Response]]
Level = Literal["instance", "type", "system", "none"]

OPERATION = "operation"
"""The ``interaction`` of operation routes: not a CapabilityStatement interaction code."""


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One HTTP route and the FHIR interaction code it implements (for the CapabilityStatement)."""

    method: str
    path: str
    handler: Handler
    interaction: str
    level: Level


BASE = "/fhir"
SMART_CONFIGURATION = "/.well-known/smart-configuration"
OPENID_CONFIGURATION = "/.well-known/openid-configuration"
CORS_PATHS = frozenset({BASE + "/metadata", BASE + SMART_CONFIGURATION,
                        BASE + OPENID_CONFIGURATION})
"""FHIR-base URLs any web origin may read (``Access-Control-Allow-Origin: *``)."""

# Order matters within one URL shape: literal segments before path parameters.
ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("GET", "/metadata", handlers.capability, "capabilities", "none"),
    RouteSpec("GET", SMART_CONFIGURATION, oauth.smart_configuration, "smart-configuration",
              "none"),
    RouteSpec("GET", OPENID_CONFIGURATION, oauth.openid_configuration, "openid-configuration",
              "none"),
    RouteSpec("POST", "/{$operation}", handlers.operation_system, OPERATION, "system"),
    RouteSpec("GET", "/{$operation}", handlers.operation_system, OPERATION, "system"),
    RouteSpec("POST", "/{type}/{$operation}", handlers.operation_type, OPERATION, "type"),
    RouteSpec("GET", "/{type}/{$operation}", handlers.operation_type, OPERATION, "type"),
    RouteSpec("POST", "/{type}/{id}/{$operation}", handlers.operation_instance, OPERATION,
              "instance"),
    RouteSpec("GET", "/{type}/{id}/{$operation}", handlers.operation_instance, OPERATION,
              "instance"),
    RouteSpec("POST", "", handlers.bundle, "transaction", "system"),
    RouteSpec("POST", "", handlers.bundle, "batch", "system"),
    RouteSpec("GET", "", handlers.search_system, "search-system", "system"),
    RouteSpec("GET", "/_history", handlers.history_system, "history-system", "system"),
    RouteSpec("GET", "/{type}/_history", handlers.history_type, "history-type", "type"),
    RouteSpec("POST", "/{type}/_search", handlers.search_type_post, "search-type", "type"),
    RouteSpec("GET", "/{type}", handlers.search_type, "search-type", "type"),
    RouteSpec("POST", "/{type}", handlers.create, "create", "type"),
    RouteSpec("PUT", "/{type}", handlers.conditional_update, "update", "type"),
    RouteSpec("PATCH", "/{type}", handlers.conditional_patch, "patch", "type"),
    RouteSpec("DELETE", "/{type}", handlers.conditional_delete, "delete", "type"),
    RouteSpec("GET", "/{type}/{id}/_history/{vid}", handlers.vread, "vread", "instance"),
    RouteSpec("GET", "/{type}/{id}/_history", handlers.history_instance, "history-instance",
              "instance"),
    # After ``{type}/{id}/_history``: ``Patient/{id}/_history`` matches both with one literal.
    RouteSpec("GET", "/Patient/{id}/{type}", handlers.search_compartment, "search-type", "type"),
    RouteSpec("GET", "/{type}/{id}", handlers.read, "read", "instance"),
    RouteSpec("PUT", "/{type}/{id}", handlers.update, "update", "instance"),
    RouteSpec("PATCH", "/{type}/{id}", handlers.patch, "patch", "instance"),
    RouteSpec("DELETE", "/{type}/{id}", handlers.delete, "delete", "instance"),
)


def type_interactions() -> tuple[str, ...]:
    """Interaction codes available on every resource type."""
    codes: list[str] = []
    for spec in ROUTES:
        if (spec.level in ("instance", "type") and spec.interaction != OPERATION
                and spec.interaction not in codes):
            codes.append(spec.interaction)
    return tuple(codes)


def system_interactions() -> tuple[str, ...]:
    codes: list[str] = []
    for spec in ROUTES:
        if (spec.level == "system" and spec.interaction != OPERATION
                and spec.interaction not in codes):
            codes.append(spec.interaction)
    return tuple(codes)
