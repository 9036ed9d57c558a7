"""``$reindex``: re-extract the index of stored resources, then mark custom parameters ready.

``POST [base]/$reindex`` takes optional ``url`` parameters (canonical URLs of active custom
SearchParameters) and ``type`` parameters (resource types). Without either it covers every
pending parameter. It answers 202 Accepted with a Parameters naming the job, which it records as
an outbox event: the job runs from the outbox, in-process on the embedded default or in a Celery
worker, at least once.

The job reloads the catalogue (a worker sees what the API wrote), walks every current resource
of the affected types by (type, id), ``BATCH_SIZE`` at a time, extracts its entries with every
active parameter and replaces them through ``Store.replace_index`` (one store transaction per
batch): no new version, the same ``lastUpdated``, no history. A rewrite applies only while the
version it was extracted from is current, so a concurrent update keeps its own entries. Rerunning
the job (a restart midway, a redelivered event) rewrites the same entries again: harmless. At
the end it marks ready the pending parameters whose bases it covered (``mark_ready``), for the
definitions it loaded at its start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from fhir_server.engine.context import EngineContext
from fhir_server.engine.instants import now_instant
from fhir_server.engine.operations import (
    Operation,
    OperationCall,
    OperationResult,
    parameter_values,
    parameters_of,
)
from fhir_server.engine.resource_types import known_types
from fhir_server.engine.search_parameters import CatalogueEntry
from fhir_server.engine.writing import load, new_id
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.outbox.consumers import Consumer
from fhir_server.outcome import information
from fhir_server.storage.protocol import IndexRewrite, OutboxEvent, Store
from fhir_server.storage.query import SearchQuery

REINDEX_TOPIC = "search-parameters.reindex"
CONSUMER_NAME = "search-parameter-reindex"
DEFINITION = "https://fhir.pictaderm.com/OperationDefinition/reindex"
BATCH_SIZE = 200


@dataclass(frozen=True, slots=True)
class ReindexJob:
    """What one ``$reindex`` asked for: parameters by url and resource types (neither: every
    pending parameter)."""

    id: str
    urls: tuple[str, ...] = ()
    types: tuple[str, ...] = ()

    def event(self, created: str) -> OutboxEvent:
        payload = orjson.dumps({"job": self.id, "urls": list(self.urls),
                                "types": list(self.types)})
        return OutboxEvent(id=self.id, topic=REINDEX_TOPIC, payload=payload, created=created)

    @classmethod
    def from_event(cls, event: OutboxEvent) -> ReindexJob:
        data = orjson.loads(event.payload)
        return cls(id=str(data["job"]), urls=tuple(str(u) for u in data.get("urls", ())),
                   types=tuple(str(t) for t in data.get("types", ())))


@dataclass(frozen=True, slots=True)
class ReindexPlan:
    """The types a job walks and the pending parameters it makes ready."""

    types: tuple[str, ...]
    ready: tuple[CatalogueEntry, ...]


@dataclass(frozen=True, slots=True)
class ReindexReport:
    """What a job did: resources rewritten per type, parameters made ready."""

    rewritten: tuple[tuple[str, int], ...]
    ready: tuple[str, ...]


def plan(job: ReindexJob, entries: Sequence[CatalogueEntry]) -> ReindexPlan:
    """The types covering the job's parameters (or its types), and the pending parameters whose
    every base is among them."""
    if job.urls or job.types:
        chosen = [e for e in entries if e.parameter.url in job.urls]
    else:
        chosen = [e for e in entries if not e.ready]
    types = sorted({*job.types, *(base for e in chosen for base in e.parameter.base)})
    ready = tuple(e for e in entries if not e.ready and set(e.parameter.base) <= set(types))
    return ReindexPlan(tuple(types), ready)


async def invoke(ctx: EngineContext, call: OperationCall) -> OperationResult:
    """The ``$reindex`` operation: check the request, record the job, answer 202."""
    catalogue = ctx.search_parameters
    await catalogue.reload()
    urls = tuple(dict.fromkeys(parameter_values(call.parameters, "url")))
    types = tuple(dict.fromkeys(parameter_values(call.parameters, "type")))
    _check_request(ctx, urls, types)
    job = ReindexJob(id=new_id(), urls=urls, types=types)
    work = plan(job, catalogue.entries)
    if not work.types:
        return OperationResult(information("No search parameter awaits $reindex: nothing to do"))
    await ctx.store.commit([], [job.event(now_instant())])
    return OperationResult(parameters_of({
        "job": [("valueString", job.id)],
        "status": [("valueCode", "accepted")],
        "url": [("valueCanonical", e.parameter.url) for e in work.ready],
        "type": [("valueCode", t) for t in work.types],
    }), status=202)


OPERATION = Operation(name="reindex", handler=invoke, levels=frozenset({"system"}),
                      definition=DEFINITION, affects_state=True, admin_only=True)
"""``$reindex`` at the system level, POST only, for operators only."""


def _check_request(ctx: EngineContext, urls: Sequence[str], types: Sequence[str]) -> None:
    unknown = [url for url in urls if ctx.search_parameters.find(url) is None]
    if unknown:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        f"url: no active custom SearchParameter has the url {unknown[0][:200]} "
                        "(use 'type' to re-extract resource types)", expression=("url",))
    wrong = [t for t in types if t not in known_types()]
    if wrong:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        f"type: '{wrong[0][:60]}' is not a resource type", expression=("type",))


async def run_job(ctx: EngineContext, job: ReindexJob, *,
                  batch_size: int = BATCH_SIZE) -> ReindexReport:
    """Re-extract every resource of the job's types, then mark its pending parameters ready."""
    catalogue = ctx.search_parameters
    await catalogue.reload()
    work = plan(job, catalogue.entries)
    rewritten = [(resource_type, await reindex_type(ctx, resource_type, batch_size=batch_size))
                 for resource_type in work.types]
    if work.ready:
        await catalogue.mark_ready(work.ready)
        await catalogue.reload()
    return ReindexReport(tuple(rewritten), tuple(e.parameter.url for e in work.ready))


async def reindex_type(ctx: EngineContext, resource_type: str, *, batch_size: int = BATCH_SIZE,
                       after_id: str | None = None, batches: int | None = None) -> int:
    """Re-extract the current resources of one type after ``after_id``, batch by batch (at most
    ``batches`` of them when given); returns how many were rewritten."""
    rewritten = 0
    after: tuple[object, ...] | None = None if after_id is None else (resource_type, after_id)
    done = 0
    while batches is None or done < batches:
        page = await ctx.store.search(SearchQuery(resource_type, count=batch_size, after=after))
        if not page.matches:
            break
        rewrites = [IndexRewrite(stored.id, stored.version, ctx.indexer.extract(load(ctx, stored)))
                    for stored in page.matches]
        rewritten += await ctx.store.replace_index(resource_type, rewrites)
        done += 1
        if len(page.matches) < batch_size:
            break
        after = (resource_type, page.matches[-1].id)
    return rewritten


def reindex_consumer(ctx: EngineContext) -> Consumer:
    """The outbox consumer running ``$reindex`` jobs with this engine context."""

    async def handle(event: OutboxEvent, store: Store) -> None:
        await run_job(ctx, ReindexJob.from_event(event))

    return Consumer(name=CONSUMER_NAME, topic=REINDEX_TOPIC, handler=handle)

