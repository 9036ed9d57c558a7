"""The FHIR engine facade: every interaction and operation the API can ask for, over one
EngineContext.

Writes that touch a SearchParameter reload the custom search-parameter catalogue before they
answer, so the next request extracts (and, once ready, searches) with the new definitions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from fhir_server.engine.access_control import require_operation_allowed
from fhir_server.engine.context import EngineContext
from fhir_server.engine.interactions import (
    compartment,
    create,
    delete,
    history,
    patch,
    read,
    search,
    transaction,
    update,
)
from fhir_server.engine.interactions.patch import PatchDocument
from fhir_server.engine.operations import (
    Operation,
    OperationCall,
    OperationLevel,
    OperationRegistry,
    OperationResult,
)
from fhir_server.engine.resource_types import require_type
from fhir_server.engine.results import ResourceResult
from fhir_server.engine.search_parameters import RESOURCE_TYPE as SEARCH_PARAMETER
from fhir_server.search.registry import SearchRegistry
from fhir_server.types import ResourceDict

if TYPE_CHECKING:
    from fhir_server.access.access import Access

Params = Sequence[tuple[str, str]]
T = TypeVar("T")


class Engine:
    """FHIR interactions, independent of HTTP and of the database behind ``ctx.store``."""

    def __init__(self, ctx: EngineContext, *, operations: OperationRegistry | None = None) -> None:
        self.ctx = ctx
        self.operations = operations or OperationRegistry()

    async def start(self) -> None:
        """Load what the engine reads from the store before serving: the custom parameters."""
        await self.ctx.search_parameters.reload()

    async def search_registry(self) -> SearchRegistry:
        """The search parameters usable now (as the CapabilityStatement lists them)."""
        await self.ctx.search_parameters.refresh_if_pending()
        return self.ctx.indexer.search_registry

    def resolve_operation(self, name: str, *, level: OperationLevel,
                          resource_type: str | None = None) -> Operation:
        """The operation ``$name`` invoked at a level: 404 for an unknown resource type, 400
        for an operation this server does not have there."""
        if level != "system":
            require_type(resource_type or "")
        return self.operations.resolve(name, level=level, resource_type=resource_type)

    async def operation(self, operation: Operation, call: OperationCall) -> OperationResult:
        """Run a resolved operation (an operator-only one is refused to a limited caller)."""
        require_operation_allowed(self.ctx, operation)
        return await operation.handler(self.ctx, call)

    def acting_as(self, access: Access | None) -> Engine:
        """This engine for a caller limited by ``access`` (None: unlimited): every query and
        write then goes through ``engine/access_control.py``."""
        if access is self.ctx.access:
            return self
        return Engine(replace(self.ctx, access=access), operations=self.operations)

    async def _written(self, touches: bool, write: Awaitable[T]) -> T:
        """Await a write; reload the custom parameters after it when it may change them."""
        if not touches:
            return await write
        try:
            return await write
        finally:
            await self.ctx.search_parameters.reload()

    async def read(self, resource_type: str, id: str) -> ResourceResult:
        return await read.read(self.ctx, resource_type, id)

    async def vread(self, resource_type: str, id: str, version: str) -> ResourceResult:
        return await read.vread(self.ctx, resource_type, id, version)

    async def create(self, resource_type: str, resource: ResourceDict, *,
                     if_none_exist: str | None = None,
                     base_url: str | None = None) -> ResourceResult:
        return await self._written(resource_type == SEARCH_PARAMETER, create.create(
            self.ctx, resource_type, resource, if_none_exist=if_none_exist, base_url=base_url))

    async def update(self, resource_type: str, id: str, resource: ResourceDict, *,
                     if_match: int | None = None) -> ResourceResult:
        return await self._written(resource_type == SEARCH_PARAMETER, update.update(
            self.ctx, resource_type, id, resource, if_match=if_match))

    async def conditional_update(self, resource_type: str, criteria: str,
                                 resource: ResourceDict, *, if_match: int | None = None,
                                 base_url: str | None = None) -> ResourceResult:
        return await self._written(resource_type == SEARCH_PARAMETER, update.conditional_update(
            self.ctx, resource_type, criteria, resource, if_match=if_match, base_url=base_url))

    async def patch(self, resource_type: str, id: str, document: PatchDocument, *,
                    if_match: int | None = None) -> ResourceResult:
        return await self._written(resource_type == SEARCH_PARAMETER, patch.patch(
            self.ctx, resource_type, id, document, if_match=if_match))

    async def conditional_patch(self, resource_type: str, criteria: str,
                                document: PatchDocument, *, if_match: int | None = None,
                                base_url: str | None = None) -> ResourceResult:
        return await self._written(resource_type == SEARCH_PARAMETER, patch.conditional_patch(
            self.ctx, resource_type, criteria, document, if_match=if_match, base_url=base_url))

    async def delete(self, resource_type: str, id: str) -> ResourceResult:
        return await self._written(resource_type == SEARCH_PARAMETER,
                                   delete.delete(self.ctx, resource_type, id))

    async def conditional_delete(self, resource_type: str, criteria: str, *,
                                 base_url: str | None = None) -> ResourceResult | None:
        return await self._written(resource_type == SEARCH_PARAMETER, delete.conditional_delete(
            self.ctx, resource_type, criteria, base_url=base_url))

    async def history(self, *, base_url: str, params: Params, resource_type: str | None = None,
                      id: str | None = None) -> ResourceDict:
        return await history.history(self.ctx, base_url=base_url, params=params,
                                     resource_type=resource_type, id=id)

    async def search(self, *, base_url: str, params: Params, resource_type: str | None = None,
                     strict: bool = False, may_explain: bool = False) -> ResourceDict:
        """A searchset; ``may_explain``: the caller may ask for ``_explain`` (administrators)."""
        await self.ctx.search_parameters.refresh_if_pending()
        return await search.search(self.ctx, base_url=base_url, params=params,
                                   resource_type=resource_type, strict=strict,
                                   may_explain=may_explain)

    async def compartment_search(self, *, base_url: str, params: Params, patient_id: str,
                                 resource_type: str, strict: bool = False,
                                 may_explain: bool = False) -> ResourceDict:
        """``Patient/{patient_id}/{resource_type}``; ``resource_type`` "*": every type."""
        await self.ctx.search_parameters.refresh_if_pending()
        return await compartment.compartment_search(
            self.ctx, base_url=base_url, params=params, patient_id=patient_id,
            resource_type=resource_type, strict=strict, may_explain=may_explain)

    async def process_bundle(self, bundle: ResourceDict, *, base_url: str,
                             with_resources: bool = False) -> ResourceDict:
        return await self._written(_touches_search_parameters(bundle), transaction.process_bundle(
            self.ctx, bundle, base_url=base_url, with_resources=with_resources))


def _touches_search_parameters(bundle: ResourceDict) -> bool:
    """Whether a transaction or batch may write a SearchParameter."""
    for entry in bundle.get("entry") or ():
        if not isinstance(entry, dict):
            continue
        resource = entry.get("resource")
        request = entry.get("request")
        url = request.get("url") if isinstance(request, dict) else None
        if (isinstance(resource, dict) and resource.get("resourceType") == SEARCH_PARAMETER) or (
                isinstance(url, str) and url.lstrip("/").startswith(SEARCH_PARAMETER)):
            return True
    return False
