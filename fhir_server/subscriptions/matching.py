"""The outbox consumer that finds, for each changed Task, the Subscriptions to notify.

It reads ``resource-changed`` events (``engine/writing.py``) of Tasks only. A Task that was
deleted, or changed again since the event (its later event will be matched on the state it
has then), notifies no one. Each active Subscription is then tried by running its criteria
plus ``_id=<task id>`` as its subscriber (``subscribers.py``): the same search, with the same
access policy and scopes, as if the subscriber polled — so a subscriber is never notified of a
Task it may not read. Each match becomes a ``subscription-notification`` outbox event,
committed with this consumer's ``Consumption`` of the change event, which the notifier
(``delivery.py``) delivers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

import orjson

from fhir_server.engine.engine import Engine
from fhir_server.engine.instants import fhir_range, now_instant
from fhir_server.engine.writing import load, new_id
from fhir_server.errors import FhirError
from fhir_server.storage.protocol import Consumption, OutboxEvent, Store
from fhir_server.storage.query import SearchQuery, TokenClause, TokenValue
from fhir_server.subscriptions.channel import (
    CRITERIA_TYPE,
    SUBSCRIPTION,
    criteria_parameters,
)
from fhir_server.subscriptions.subscribers import Subscriber, Subscribers
from fhir_server.types import ResourceDict

logger = logging.getLogger(__name__)

MATCHER: Final = "subscription-matcher"
"""The consumer's name (its ``Consumption`` records)."""
NOTIFICATION_TOPIC: Final = "subscription-notification"
MATCH_BASE: Final = "urn:pictaderm:subscription-match"
"""The base URL given to the matching searches (their links are never shown)."""
PAGE: Final = 200
"""Active Subscriptions read per store query."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One Task version to notify to one Subscription: an outbox event's payload (ids only,
    never content)."""

    subscription: str
    task: str
    version: int

    def event(self, created: str) -> OutboxEvent:
        payload = {"subscription": self.subscription, "task": self.task,
                   "version": self.version}
        return OutboxEvent(id=new_id(), topic=NOTIFICATION_TOPIC, payload=orjson.dumps(payload),
                           created=created)

    @classmethod
    def of_event(cls, event: OutboxEvent) -> Notification:
        data = orjson.loads(event.payload)
        return cls(subscription=str(data["subscription"]), task=str(data["task"]),
                   version=int(data["version"]))


@dataclass(frozen=True, slots=True)
class TaskChange:
    """What a ``resource-changed`` event says of a Task that still exists."""

    id: str
    version: int


def task_change(event: OutboxEvent) -> TaskChange | None:
    """The Task created or updated by the event (None for other types and deletions)."""
    data = orjson.loads(event.payload)
    if data.get("resourceType") != CRITERIA_TYPE or data.get("action") == "delete":
        return None
    return TaskChange(id=str(data["id"]), version=int(data["versionId"]))


class SubscriptionMatcher:
    """``handle`` is the consumer of ``resource-changed`` events."""

    def __init__(self, engine: Engine, subscribers: Subscribers) -> None:
        self._engine = engine
        self._subscribers = subscribers

    async def handle(self, event: OutboxEvent, store: Store) -> None:
        change = task_change(event)
        if change is None or not await self._still_current(store, change):
            return
        notifications = [Notification(subscription, change.id, change.version)
                         async for subscription in self._matching(store, change.id)]
        if notifications:
            created = now_instant()
            await store.commit((), [n.event(created) for n in notifications],
                               (Consumption(MATCHER, event.id),))
            logger.info("task change %s: %d subscription notification(s)", event.id,
                        len(notifications))

    async def _still_current(self, store: Store, change: TaskChange) -> bool:
        stored = await store.read(CRITERIA_TYPE, change.id)
        return stored is not None and not stored.deleted and stored.version == change.version

    async def _matching(self, store: Store, task_id: str) -> AsyncIterator[str]:
        """The ids of the active Subscriptions whose subscriber's search finds the Task."""
        async for subscription in self._active(store):
            subscriber = await self._subscribers.of(subscription)
            if subscriber is not None and await self._finds(subscription, subscriber, task_id):
                yield str(subscription["id"])

    async def _active(self, store: Store) -> AsyncIterator[ResourceDict]:
        """Every active, unexpired Subscription, read page by page."""
        active = TokenClause("status", (TokenValue(None, "active"),))
        after: tuple[object, ...] | None = None
        now = now_instant()
        while True:
            page = await store.search(SearchQuery(SUBSCRIPTION, (active,), count=PAGE,
                                                  after=after))
            for stored in page.matches:
                subscription = load(self._engine.ctx, stored)
                if not _expired(subscription, now):
                    yield subscription
            if len(page.matches) < PAGE:
                return
            last = page.matches[-1]
            after = (last.resource_type, last.id)

    async def _finds(self, subscription: ResourceDict, subscriber: Subscriber,
                     task_id: str) -> bool:
        try:
            params = [*criteria_parameters(subscription.get("criteria")), ("_id", task_id)]
            bundle = await self._engine.acting_as(subscriber.access).search(
                base_url=MATCH_BASE, params=params, resource_type=CRITERIA_TYPE, strict=True)
        except FhirError as refused:
            logger.info("subscription %s: its criteria cannot run for its subscriber (%s)",
                        subscription.get("id"), refused.error.code)
            return False
        return any(entry.get("search", {}).get("mode") == "match"
                   for entry in bundle.get("entry") or ())


def _expired(subscription: ResourceDict, now: str) -> bool:
    """Whether the Subscription's ``end`` has passed."""
    end = subscription.get("end")
    if not isinstance(end, str):
        return False
    try:
        return fhir_range(end)[0] <= now
    except ValueError:
        return False
