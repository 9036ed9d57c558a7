"""How an outbox event reaches its consumers: run here, or sent to the Celery workers.

Nothing here logs or raises an event's payload or a consumer's exception message (either may
hold health data): failures are described by exception type and source location only.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from fhir_server.outbox.consumers import Consumer, ConsumerRegistry, registry
from fhir_server.storage.protocol import AlreadyConsumed, OutboxEvent, Store

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger(__name__)

HANDLE_EVENT_TASK = "workers.tasks.handle_event"
"""Name of the Celery task that runs an event's consumers in a worker."""


class Deliverer(Protocol):
    """Hands one event on. Raising means "not delivered": the dispatcher will try again."""

    async def deliver(self, event: OutboxEvent) -> None:
        """Deliver the event, or raise."""


class DeliveryFailed(Exception):
    """One or more consumers of an event failed; the message names them, never the payload."""

    def __init__(self, event_id: str, failures: Sequence[str]) -> None:
        super().__init__(f"event {event_id}: " + "; ".join(failures))
        self.event_id = event_id
        self.failures = tuple(failures)


def describe_failure(exc: BaseException) -> str:
    """The exception's type and where it was raised, without its message (it may hold data)."""
    if isinstance(exc, DeliveryFailed):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    innermost = frames[-1]
    return f"{type(exc).__name__} at {os.path.basename(innermost.filename)}:{innermost.lineno}"


async def run_consumers(event: OutboxEvent, store: Store,
                        consumers: Sequence[Consumer]) -> None:
    """Run every consumer of the event, each failure isolated from the others.

    A consumer raising ``AlreadyConsumed`` handled the event before: that counts as done.
    Raises ``DeliveryFailed`` naming the consumers that failed, after all have run.
    """
    failures: list[str] = []
    for item in consumers:
        try:
            await item.handler(event, store)
        except AlreadyConsumed:
            logger.debug("outbox consumer %s already handled event %s", item.name, event.id)
        except Exception as exc:
            failure = f"{item.name}: {describe_failure(exc)}"
            logger.warning("outbox consumer failed on event %s (topic %s): %s",
                           event.id, event.topic, failure)
            failures.append(failure)
    if failures:
        raise DeliveryFailed(event.id, failures)


class InProcessDeliverer:
    """Runs the registered consumers of the event's topic in this process, on this store."""

    def __init__(self, store: Store, consumers: ConsumerRegistry | None = None) -> None:
        self._store = store
        self._consumers = consumers or registry

    async def deliver(self, event: OutboxEvent) -> None:
        await run_consumers(event, self._store, self._consumers.consumers_for(event.topic))


def event_to_task_kwargs(event: OutboxEvent) -> dict[str, str]:
    """The event as JSON-safe task arguments (the payload base64-encoded)."""
    return {"id": event.id, "topic": event.topic, "created": event.created,
            "payload": base64.b64encode(event.payload).decode("ascii")}


def event_from_task_kwargs(*, id: str, topic: str, created: str, payload: str) -> OutboxEvent:
    """The event back from ``event_to_task_kwargs``'s arguments."""
    return OutboxEvent(id=id, topic=topic, created=created,
                       payload=base64.b64decode(payload.encode("ascii"), validate=True))


class CeleryDeliverer:
    """Sends each event to the workers as a ``workers.tasks.handle_event`` task.

    The task id is the event id, so a re-sent event is recognisable; the payload is kept out of
    the task's logged representation. Publishing blocks, so it runs in a thread.
    """

    def __init__(self, app: Celery) -> None:
        self._app = app

    async def deliver(self, event: OutboxEvent) -> None:
        await asyncio.to_thread(self._send, event)

    def _send(self, event: OutboxEvent) -> None:
        self._app.send_task(
            HANDLE_EVENT_TASK,
            kwargs=event_to_task_kwargs(event),
            task_id=event.id,
            argsrepr="()",
            kwargsrepr=repr({"id": event.id, "topic": event.topic}),
        )
