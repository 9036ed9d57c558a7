"""The FHIR engine facade: every interaction the API can ask for, over one EngineContext."""

from __future__ import annotations

from collections.abc import Sequence

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
from fhir_server.engine.results import ResourceResult
from fhir_server.types import ResourceDict

Params = Sequence[tuple[str, str]]


class Engine:
    """FHIR interactions, independent of HTTP and of the database behind ``ctx.store``."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx

    async def read(self, resource_type: str, id: str) -> ResourceResult:
        return await read.read(self.ctx, resource_type, id)

    async def vread(self, resource_type: str, id: str, version: str) -> ResourceResult:
        return await read.vread(self.ctx, resource_type, id, version)

    async def create(self, resource_type: str, resource: ResourceDict, *,
                     if_none_exist: str | None = None) -> ResourceResult:
        return await create.create(self.ctx, resource_type, resource, if_none_exist=if_none_exist)

    async def update(self, resource_type: str, id: str, resource: ResourceDict, *,
                     if_match: int | None = None) -> ResourceResult:
        return await update.update(self.ctx, resource_type, id, resource, if_match=if_match)

    async def conditional_update(self, resource_type: str, criteria: str,
                                 resource: ResourceDict, *,
                                 if_match: int | None = None) -> ResourceResult:
        return await update.conditional_update(self.ctx, resource_type, criteria, resource,
                                               if_match=if_match)

    async def patch(self, resource_type: str, id: str, document: PatchDocument, *,
                    if_match: int | None = None) -> ResourceResult:
        return await patch.patch(self.ctx, resource_type, id, document, if_match=if_match)

    async def conditional_patch(self, resource_type: str, criteria: str,
                                document: PatchDocument, *,
                                if_match: int | None = None) -> ResourceResult:
        return await patch.conditional_patch(self.ctx, resource_type, criteria, document,
                                             if_match=if_match)

    async def delete(self, resource_type: str, id: str) -> ResourceResult:
        return await delete.delete(self.ctx, resource_type, id)

    async def conditional_delete(self, resource_type: str,
                                 criteria: str) -> ResourceResult | None:
        return await delete.conditional_delete(self.ctx, resource_type, criteria)

    async def history(self, *, base_url: str, params: Params, resource_type: str | None = None,
                      id: str | None = None) -> ResourceDict:
        return await history.history(self.ctx, base_url=base_url, params=params,
                                     resource_type=resource_type, id=id)

    async def search(self, *, base_url: str, params: Params, resource_type: str | None = None,
                     strict: bool = False) -> ResourceDict:
        return await search.search(self.ctx, base_url=base_url, params=params,
                                   resource_type=resource_type, strict=strict)

    async def compartment_search(self, *, base_url: str, params: Params, patient_id: str,
                                 resource_type: str, strict: bool = False) -> ResourceDict:
        """``Patient/{patient_id}/{resource_type}``; ``resource_type`` "*": every type."""
        return await compartment.compartment_search(
            self.ctx, base_url=base_url, params=params, patient_id=patient_id,
            resource_type=resource_type, strict=strict)

    async def process_bundle(self, bundle: ResourceDict, *, base_url: str,
                             with_resources: bool = False) -> ResourceDict:
        return await transaction.process_bundle(self.ctx, bundle, base_url=base_url,
                                                with_resources=with_resources)
