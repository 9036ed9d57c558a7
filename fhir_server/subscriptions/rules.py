"""The before-commit hook that checks every Subscription written and activates it.

A Subscription created or updated (by its owner or the operator) must be a rest-hook whose
criteria run as a Task search for the writer (``channel.py``; the search itself is tried, as the
writer, so an unknown parameter or a writer that may not search Tasks is refused now rather
than never notified): otherwise 422, nothing written. Its status follows the R4 life cycle: the
client asks ``requested`` (or ``active``) and the server activates it; ``off`` pauses it;
``error`` is the server's (set by the notifier after repeated failures), which a client may
keep but not set.

What the server owns is settled by a write of its own, committed with the caller's as the next
version: ``requested`` becomes ``active``; an activation clears ``error`` and the delivery
state, otherwise both stay as the server left them (the operator may write ``error``); the
grant becomes the writer's (its token's scopes and launch patient, ``records.py``; the
operator's writes keep the grant given or stored). The caller's answer shows the version it
wrote; a read shows the settled one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from fhir_server.engine.context import EngineContext
from fhir_server.engine.engine import Engine
from fhir_server.engine.hooks import BeforeCommitHook, HookOutput, PlannedWrite
from fhir_server.engine.writing import plan_put
from fhir_server.errors import FhirError
from fhir_server.storage.protocol import StoredVersion
from fhir_server.subscriptions.channel import (
    CRITERIA_TYPE,
    SUBSCRIPTION,
    RestHook,
    read_rest_hook,
    refusal,
)
from fhir_server.subscriptions.records import (
    DeliveryState,
    delivery_state,
    grant_of,
    grant_of_access,
    with_delivery_state,
    with_grant,
)
from fhir_server.types import ResourceDict

CHECK_BASE: Final = "urn:pictaderm:subscription-check"
"""The base URL given to the trial search (its links are never shown)."""
ACTIVATING: Final = frozenset({"requested", "active"})


def subscription_rules(*, https_only: bool) -> BeforeCommitHook:
    """The hook; ``https_only``: production, where endpoints must be https and public."""

    async def check_subscriptions(writes: Sequence[PlannedWrite],
                                  ctx: EngineContext) -> Sequence[HookOutput]:
        settled: list[HookOutput] = []
        for write in writes:
            if write.change.resource_type != SUBSCRIPTION or write.resource is None:
                continue
            hook = read_rest_hook(write.resource, https_only=https_only)
            await check_criteria_search(ctx, hook)
            server_view = settled_subscription(write, ctx)
            if server_view != write.resource:
                settled.append(server_write(ctx, write, server_view))
        return settled

    return check_subscriptions


async def check_criteria_search(ctx: EngineContext, hook: RestHook) -> None:
    """Run the criteria once as the writer: a parameter the server cannot search by, a
    malformed value or a writer that may not search Tasks is a 422."""
    try:
        await Engine(ctx).search(base_url=CHECK_BASE, params=[*hook.criteria, ("_count", "1")],
                                 resource_type=CRITERIA_TYPE, strict=True)
    except FhirError as refused:
        if refused.status not in (400, 403):
            raise
        raise refusal("Subscription.criteria", refused.diagnostics) from None


def settled_subscription(write: PlannedWrite, ctx: EngineContext) -> ResourceDict:
    """The Subscription as the server keeps it after this write (see the module notes)."""
    assert write.resource is not None
    resource, previous = write.resource, write.previous or {}
    status, before = resource.get("status"), previous.get("status")
    if status == "error" and before != "error" and ctx.access is not None:
        raise refusal("Subscription.status",
                      "'error' is set by the server when notifications fail; ask 'requested' "
                      "to activate the subscription, or 'off' to pause it")
    activating = status == "requested" or (status == "active" and before != "active")
    settled = {key: value for key, value in resource.items() if key != "error"}
    if status in ACTIVATING:
        settled["status"] = "active"
    if activating:
        settled = with_delivery_state(settled, DeliveryState())
    else:
        error = resource.get("error") if ctx.access is None else previous.get("error")
        if error is not None:
            settled["error"] = error
        settled = with_delivery_state(settled, delivery_state(previous))
    grant = (grant_of_access(ctx.access) if ctx.access is not None
             else grant_of(resource) or grant_of(previous))
    return _in_order_of(with_grant(settled, grant), resource)


def _in_order_of(settled: ResourceDict, written: ResourceDict) -> ResourceDict:
    """``settled`` with its elements in the order the writer gave them (so that an unchanged
    Subscription compares equal), new elements last."""
    ordered = {key: settled[key] for key in written if key in settled}
    ordered.update((key, value) for key, value in settled.items() if key not in ordered)
    return ordered


def server_write(ctx: EngineContext, write: PlannedWrite, settled: ResourceDict
                 ) -> PlannedWrite:
    """The server's version of the Subscription, following the caller's in the same commit."""
    change = write.change
    written = StoredVersion(resource_type=change.resource_type, id=change.id,
                            version=change.version, last_updated=change.last_updated,
                            method=change.method, body=change.body)
    return plan_put(replace(ctx, access=None), resource=settled,
                    resource_type=change.resource_type, id=change.id, current=written,
                    method="PUT")
