"""Celery tasks: ``workers.tasks.handle_event`` runs an outbox event's consumers in a worker.

The task receives the event's fields (see ``fhir_server.outbox.delivery.event_to_task_kwargs``)
and runs the consumers registered for its topic against the store named by the settings, opened
once per worker process. Any failure is retried with a capped exponential backoff, without end:
an event handed to the broker must not be dropped. Consumers are idempotent (``Consumption``),
so a consumer that succeeded before a sibling failed is skipped on the retry.

Consumers that need the engine (``$reindex`` jobs) come from ``BoundConsumers``: they are built
for the worker's store on the first event of one of their topics, once per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from celery.signals import worker_process_shutdown, worker_shutdown

from fhir_server.outbox.consumers import BoundConsumers, Consumer, ConsumerRegistry, registry
from fhir_server.outbox.delivery import (
    HANDLE_EVENT_TASK,
    DeliveryFailed,
    describe_failure,
    event_from_task_kwargs,
    run_consumers,
)
from fhir_server.outbox.dispatcher import backoff_seconds
from fhir_server.settings import Settings
from fhir_server.storage.factory import open_store
from fhir_server.storage.protocol import OutboxEvent, Store

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 300.0
CLOSE_TIMEOUT_SECONDS = 30.0


class WorkerRuntime:
    """One event loop (on its own thread) and one started store per worker process.

    Celery tasks are synchronous while the store is async and bound to the loop it started on,
    so every task of a process runs its coroutine on this one loop, whatever the pool. Both are
    made on first use in the process that runs tasks; a forked child makes its own.
    """

    def __init__(self, settings: Settings, consumers: ConsumerRegistry | None = None, *,
                 bound: BoundConsumers | None = None) -> None:
        self._settings = settings
        self._consumers = consumers or registry
        self._bound = bound
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._store: Store | None = None
        self._bound_consumers: tuple[Consumer, ...] | None = None

    def handle(self, event: OutboxEvent) -> None:
        """Run the event's consumers; any failure is raised as a payload-free ``DeliveryFailed``."""
        try:
            loop, store = self._started()
            consumers = (*self._consumers.consumers_for(event.topic),
                         *self._bound_for(event.topic, loop, store))
            asyncio.run_coroutine_threadsafe(run_consumers(event, store, consumers), loop).result()
        except DeliveryFailed:
            raise
        except Exception as exc:
            raise DeliveryFailed(event.id, [describe_failure(exc)]) from None

    def close(self) -> None:
        """Close the store and stop the loop, if this process started them; safe to repeat."""
        with self._lock:
            if self._pid != os.getpid() or self._loop is None:
                return
            loop, thread, store = self._loop, self._thread, self._store
            self._loop = self._thread = self._store = None
            self._bound_consumers = None
            self._pid = None
        if store is not None:
            try:
                asyncio.run_coroutine_threadsafe(store.close(), loop).result(CLOSE_TIMEOUT_SECONDS)
            except Exception as exc:
                logger.warning("closing the worker's store failed: %s", describe_failure(exc))
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(CLOSE_TIMEOUT_SECONDS)
        if not loop.is_running():
            loop.close()

    def _started(self) -> tuple[asyncio.AbstractEventLoop, Store]:
        with self._lock:
            if self._pid != os.getpid():
                self._loop = self._thread = self._store = None
                self._bound_consumers = None
            if self._loop is None:
                self._loop, self._thread = _loop_on_thread()
                self._pid = os.getpid()
            if self._store is None:
                self._store = _started_store(self._settings, self._loop)
            return self._loop, self._store

    def _bound_for(self, topic: str, loop: asyncio.AbstractEventLoop,
                   store: Store) -> tuple[Consumer, ...]:
        """The bound consumers of ``topic``, built for this process's store on first need."""
        bound = self._bound
        if bound is None or topic not in bound.topics:
            return ()
        with self._lock:
            if self._bound_consumers is None:
                future = asyncio.run_coroutine_threadsafe(bound.build(store), loop)
                self._bound_consumers = tuple(future.result())
            return tuple(c for c in self._bound_consumers if c.topic == topic)


def _loop_on_thread() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="outbox-worker-loop", daemon=True)
    thread.start()
    return loop, thread


def _started_store(settings: Settings, loop: asyncio.AbstractEventLoop) -> Store:
    store = open_store(settings)
    try:
        asyncio.run_coroutine_threadsafe(store.start(), loop).result()
    except BaseException:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(store.close(), loop).result(CLOSE_TIMEOUT_SECONDS)
        raise
    return store


def register_tasks(app: Celery, runtime: WorkerRuntime) -> None:
    """Register ``workers.tasks.handle_event`` on the app, running events through ``runtime``."""

    def handle_event(task: Any, *, id: str, topic: str, created: str, payload: str) -> None:
        event = event_from_task_kwargs(id=id, topic=topic, created=created, payload=payload)
        try:
            runtime.handle(event)
        except DeliveryFailed as failure:
            attempts = int(task.request.retries) + 1
            delay = backoff_seconds(attempts, base=RETRY_BASE_SECONDS, cap=RETRY_MAX_SECONDS)
            logger.warning("outbox event %s (topic %s) failed in worker, attempt %d, "
                           "retry in %.1fs", event.id, event.topic, attempts, delay)
            raise task.retry(exc=failure, countdown=delay) from None

    app.task(name=HANDLE_EVENT_TASK, bind=True, shared=False, max_retries=None,
             acks_late=True, reject_on_worker_lost=True, ignore_result=True)(handle_event)

    def close_runtime(**_: object) -> None:
        runtime.close()

    worker_process_shutdown.connect(close_runtime, weak=False)
    worker_shutdown.connect(close_runtime, weak=False)
