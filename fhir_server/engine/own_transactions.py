"""The server's own transactions (a report filed, a DMP export recorded): whole resources PUT by
id in one atomic Bundle, under an internal base URL, by compare-and-set where a version is given.

They go through the ordinary transaction path, so validation and the before-commit hooks (the
state machine, the report and export events) apply to them as to any write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from fhir_server.engine.context import EngineContext
from fhir_server.engine.interactions.transaction import process_bundle
from fhir_server.types import ResourceDict

INTERNAL_BASE: Final = "urn:pictaderm:internal"
"""Base URL of the server's own transactions (their answer's locations are not used)."""


def put_entry(resource: ResourceDict, *, if_match: int | str | None = None) -> ResourceDict:
    """A transaction entry storing ``resource`` at its id; ``if_match``: the version it must
    replace (the transaction fails with 412 when another write came first)."""
    request: dict[str, str] = {"method": "PUT",
                               "url": f"{resource['resourceType']}/{resource['id']}"}
    if if_match is not None and str(if_match):
        request["ifMatch"] = f'W/"{if_match}"'
    return {"fullUrl": f"{INTERNAL_BASE}/{resource['resourceType']}/{resource['id']}",
            "resource": resource, "request": request}


async def put_together(ctx: EngineContext, entries: Sequence[ResourceDict]) -> ResourceDict:
    """Commit the ``put_entry`` entries in one transaction; its transaction-response."""
    return await process_bundle(ctx, {"resourceType": "Bundle", "type": "transaction",
                                      "entry": list(entries)}, base_url=INTERNAL_BASE)
