"""The outbox consumer that delivers ``subscription-notification`` events to rest-hook
endpoints, and keeps each Subscription's delivery state.

A notification is a POST to the channel's endpoint with the channel's headers: an empty body
(no payload) or the Task version that matched, as its subscriber reads it, in
``application/fhir+json``. A 2xx answer is a delivery; anything else (another status, a
timeout, a refused connection; redirects are not followed) is a failure.

The delivery state lives in the Subscription (``records.py``): consecutive failures and the
next attempt's instant, so it survives a restart. A failure counts one more and sets the next
attempt ``backoff_seconds(failures)`` later (doubling from ``retry_base_seconds``, capped at
``retry_max_seconds``), then raises: the outbox keeps the event and redelivers it, and until the
next attempt is due the event is turned back (``NotDueYet``). At ``max_failures`` consecutive
failures the Subscription's status becomes ``error`` with an ``error`` note, and its pending
notifications are dropped (the owner re-activates it with ``requested``). A delivery resets the
count. A Subscription no longer active, or whose owner may no longer act or read the Task,
gets nothing. Nothing logged names an endpoint, a header or content.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import httpx

from fhir_server.engine.engine import Engine
from fhir_server.engine.instants import now_instant, to_instant
from fhir_server.engine.writing import change_event, load, plan_put
from fhir_server.errors import FhirError
from fhir_server.outbox.dispatcher import backoff_seconds
from fhir_server.storage.protocol import (
    Consumption,
    OutboxEvent,
    Store,
    StoredVersion,
    VersionConflict,
)
from fhir_server.subscriptions.channel import (
    CRITERIA_TYPE,
    FHIR_JSON,
    SUBSCRIPTION,
    RestHook,
    read_rest_hook,
)
from fhir_server.subscriptions.matching import Notification
from fhir_server.subscriptions.records import DeliveryState, delivery_state, with_delivery_state
from fhir_server.subscriptions.subscribers import Subscriber, Subscribers
from fhir_server.types import ResourceDict

logger = logging.getLogger(__name__)

NOTIFIER: Final = "subscription-notifier"
"""The consumer's name (its ``Consumption`` records)."""
STATE_WRITE_TRIES: Final = 5
"""How often the delivery state is re-read and written again when someone wrote meanwhile."""


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How notifications are tried: the settings ``subscription_max_failures``,
    ``subscription_retry_base_seconds``, ``subscription_retry_max_seconds`` and
    ``subscription_timeout_seconds``; ``https_only`` in production."""

    max_failures: int = 5
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 1800.0
    timeout_seconds: float = 10.0
    https_only: bool = False


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST: delivered, or why not (a status or an error kind, never a body)."""

    delivered: bool
    failure: str = ""


class NotDueYet(Exception):
    """The Subscription's endpoint failed lately: its next attempt is not due yet."""


class EndpointFailed(Exception):
    """The endpoint did not take the notification; the outbox will redeliver it."""


class SubscriptionNotifier:
    """``handle`` is the consumer of ``subscription-notification`` events."""

    def __init__(self, engine: Engine, subscribers: Subscribers, policy: DeliveryPolicy) -> None:
        self._engine = engine
        self._subscribers = subscribers
        self._policy = policy

    async def handle(self, event: OutboxEvent, store: Store) -> None:
        notification = Notification.of_event(event)
        subscription = await self._active_subscription(store, notification.subscription)
        if subscription is None:
            return
        due = delivery_state(subscription).next_attempt
        if due is not None and due > now_instant():
            raise NotDueYet(f"subscription {notification.subscription}: next attempt at {due}")
        subscriber = await self._subscribers.of(subscription)
        if subscriber is None:
            return
        try:
            hook = read_rest_hook(subscription, https_only=self._policy.https_only)
        except FhirError as invalid:
            await self._record(store, event, notification,
                               Attempt(False, invalid.diagnostics), give_up=True)
            return
        body = b""
        if hook.full_payload:
            task = await self._task_body(subscriber, notification)
            if task is None:
                return
            body = task
        attempt = await post(hook, body, timeout=self._policy.timeout_seconds)
        await self._record(store, event, notification, attempt)

    async def _active_subscription(self, store: Store, id: str) -> ResourceDict | None:
        stored = await store.read(SUBSCRIPTION, id)
        if stored is None or stored.deleted:
            return None
        subscription = load(self._engine.ctx, stored)
        return subscription if subscription.get("status") == "active" else None

    async def _task_body(self, subscriber: Subscriber,
                         notification: Notification) -> bytes | None:
        """The matched Task version as the subscriber reads it (None: it may not any more)."""
        try:
            result = await self._engine.acting_as(subscriber.access).vread(
                CRITERIA_TYPE, notification.task, str(notification.version))
        except FhirError:
            return None
        return result.body

    async def _record(self, store: Store, event: OutboxEvent, notification: Notification,
                      attempt: Attempt, *, give_up: bool = False) -> None:
        """Keep the outcome in the Subscription; raise ``EndpointFailed`` when the event must
        be delivered again. ``give_up``: a failure no retry can mend (the stored channel is no
        longer acceptable, e.g. http after a switch to production): straight to ``error``."""
        consumed = (Consumption(NOTIFIER, event.id),)
        for _ in range(STATE_WRITE_TRIES):
            stored = await store.read(SUBSCRIPTION, notification.subscription)
            if stored is None or stored.deleted:
                await store.commit((), (), consumed)
                return
            try:
                retry = await self._save_outcome(store, stored, attempt, consumed,
                                                 give_up=give_up)
            except VersionConflict:
                continue
            if retry:
                raise EndpointFailed(f"subscription {notification.subscription}: "
                                     f"{attempt.failure}")
            return
        raise EndpointFailed(f"subscription {notification.subscription}: its delivery state "
                             "kept changing")

    async def _save_outcome(self, store: Store, stored: StoredVersion, attempt: Attempt,
                            consumed: tuple[Consumption, ...], *, give_up: bool) -> bool:
        """Write the new state (with the consumption unless the event must come again);
        True when it must."""
        subscription = load(self._engine.ctx, stored)
        state = delivery_state(subscription)
        if subscription.get("status") != "active":
            await store.commit((), (), consumed)
            return False
        if attempt.delivered:
            await self._commit(store, stored, subscription,
                               with_delivery_state(subscription, DeliveryState()), consumed)
            return False
        failures = state.failures + 1
        if give_up or failures >= self._policy.max_failures:
            await self._commit(store, stored, subscription,
                               given_up(subscription, failures, attempt), consumed)
            logger.warning("subscription %s: status error after %d failed notifications",
                           subscription.get("id"), failures)
            return False
        delay = backoff_seconds(failures, base=self._policy.retry_base_seconds,
                                cap=self._policy.retry_max_seconds)
        next_attempt = to_instant(datetime.now(UTC) + timedelta(seconds=delay))
        retrying = with_delivery_state(subscription, DeliveryState(failures, next_attempt))
        await self._commit(store, stored, subscription, retrying, ())
        return True

    async def _commit(self, store: Store, stored: StoredVersion, before: ResourceDict,
                      after: ResourceDict, consumed: tuple[Consumption, ...]) -> None:
        """The server's own write of the Subscription (no hook, no access check), with its
        change event like any write, and the consumption."""
        if after == before:
            await store.commit((), (), consumed)
            return
        ctx = self._engine.ctx
        write = plan_put(ctx, resource=after, resource_type=SUBSCRIPTION, id=stored.id,
                         current=stored, method="PUT")
        events = [change_event(write)] if ctx.change_events else []
        await store.commit([write.change], events, consumed)


def given_up(subscription: ResourceDict, failures: int, attempt: Attempt) -> ResourceDict:
    """The Subscription in ``error`` after ``failures`` consecutive failed notifications."""
    stopped = with_delivery_state(subscription, DeliveryState(failures=failures))
    times = f"{failures} times in a row" if failures > 1 else "once, for good"
    return {**stopped, "status": "error",
            "error": f"notifications failed {times} (last: {attempt.failure}); set the status "
                     "to 'requested' to resume"}


async def post(hook: RestHook, body: bytes, *, timeout: float) -> Attempt:
    """POST one notification; redirects are not followed."""
    headers = [*hook.headers, *([("Content-Type", FHIR_JSON)] if hook.full_payload else [])]
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
        try:
            response = await http.post(hook.endpoint, content=body, headers=headers)
        except httpx.TimeoutException:
            return Attempt(False, f"no answer within {timeout:g} s")
        except httpx.HTTPError as exc:
            return Attempt(False, f"connection failed ({type(exc).__name__})")
    if 200 <= response.status_code < 300:
        return Attempt(True)
    return Attempt(False, f"HTTP {response.status_code}")
