"""Extension points where domain modules (workflow, privacy, audit, billing) plug into writes.

A before-commit hook sees every write of a commit (a single interaction, or a whole transaction)
before anything is stored, with the engine context of the commit: the store (to read what the
writes refer to) and the caller's access (``ctx.access``; None for the operator and the server's
own work). It may refuse the commit by raising ``FhirError`` (nothing is written), and may
return outbox events and further writes — the domain's own effects, such as a Provenance or a
ServiceRequest closed with its Task — committed atomically with the writes. Those further
writes are the server's: no access check and no hook runs on them.

A prepare hook transforms each resource a client writes (create, update, patch result,
transaction or batch entry) before it is validated: it returns the resource to store (the same
one when it has nothing to change) or refuses it by raising ``FhirError``. It sees one resource
at a time and must be idempotent, since a write that loses a race is prepared again. Photo
scrubbing (``fhir_server/media/``) is one: it strips an image's metadata before it is stored.

A bundle check sees a whole transaction or batch Bundle before any of its entries is planned
(the MHD Document Recipient's check of a Provide Document Bundle, ``fhir_server/dmp/``); it
refuses the Bundle by raising ``FhirError``, and nothing of it is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fhir_server.storage.protocol import Change, OutboxEvent
from fhir_server.types import ResourceDict

if TYPE_CHECKING:
    from fhir_server.engine.context import EngineContext


@dataclass(frozen=True, slots=True)
class PlannedWrite:
    """One write about to be committed, with the plaintext resource and the one it replaces."""

    change: Change
    resource: ResourceDict | None
    body: bytes | None
    previous: ResourceDict | None
    created: bool

    @property
    def status(self) -> int:
        return 201 if self.created else 200


HookOutput = OutboxEvent | PlannedWrite
"""What a hook adds to a commit: an outbox event, or a write of the server's own."""
BeforeCommitHook = Callable[[Sequence[PlannedWrite], "EngineContext"],
                            Awaitable[Sequence[HookOutput]]]
PrepareHook = Callable[[ResourceDict, "EngineContext"], ResourceDict]
"""Gives the resource to validate and store in place of the one a client wrote."""
BundleCheck = Callable[[ResourceDict, "EngineContext"], Awaitable[None]]
"""Refuses (``FhirError``) a transaction or batch Bundle before anything of it is planned."""


@dataclass
class Hooks:
    """The registered hooks, called in registration order."""

    before_commit: list[BeforeCommitHook] = field(default_factory=list)
    prepare: list[PrepareHook] = field(default_factory=list)
    before_bundle: list[BundleCheck] = field(default_factory=list)

    def on_before_commit(self, hook: BeforeCommitHook) -> BeforeCommitHook:
        """Register a before-commit hook (usable as a decorator)."""
        self.before_commit.append(hook)
        return hook

    async def run_before_commit(self, writes: Sequence[PlannedWrite],
                                ctx: EngineContext) -> list[HookOutput]:
        """Every hook's events and further writes, in registration order."""
        added: list[HookOutput] = []
        for hook in self.before_commit:
            added.extend(await hook(writes, ctx))
        return added

    async def run_before_bundle(self, bundle: ResourceDict, ctx: EngineContext) -> None:
        """Every bundle check, in registration order (the first refusal stops)."""
        for check in self.before_bundle:
            await check(bundle, ctx)

    def run_prepare(self, resource: ResourceDict, ctx: EngineContext) -> ResourceDict:
        """The resource after every prepare hook, applied in registration order."""
        for hook in self.prepare:
            resource = hook(resource, ctx)
        return resource
