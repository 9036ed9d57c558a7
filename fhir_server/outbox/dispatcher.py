"""The outbox dispatcher: hands pending outbox events to a deliverer, at least once, oldest first.

Each round reads pending events from the store, delivers those that are due and marks them
delivered. A failed delivery is counted on the event (``outbox_failed``) and the event waits
``backoff_seconds(attempts)`` before its next try; the wait is kept in memory, so after a restart
every pending event is due at once. A crash between delivery and marking re-delivers the event,
which consumers recognise by their ``Consumption``. Nothing is logged of an event but its id,
topic and attempts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from fhir_server.outbox.delivery import Deliverer, describe_failure
from fhir_server.storage.protocol import OutboxRecord, Store

logger = logging.getLogger(__name__)

SCAN_FACTOR = 10
"""Events waiting out a backoff are skipped, so a round reads up to this many batches' worth."""


def backoff_seconds(attempts: int, *, base: float = 1.0, cap: float = 300.0) -> float:
    """Wait before the next try after ``attempts`` failures: doubling from ``base``, capped."""
    if attempts <= 0:
        return 0.0
    return float(min(cap, base * 2.0 ** min(attempts - 1, 62)))


class OutboxDispatcher:
    """Delivers a store's pending outbox events through a ``Deliverer``.

    ``run_once`` does one round; ``run`` loops until ``stop`` is set, pausing ``poll_seconds``
    between rounds unless the last round was full or ``wake()`` was called. No error ends the loop.
    """

    def __init__(self, store: Store, deliverer: Deliverer, *, poll_seconds: float,
                 batch_size: int = 100, retry_base_seconds: float = 1.0,
                 retry_max_seconds: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._store = store
        self._deliverer = deliverer
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self._clock = clock
        self._not_before: dict[str, float] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Start the next round now rather than after the poll pause (call from the loop)."""
        self._wake.set()

    async def run_once(self) -> int:
        """One round: deliver the due pending events, oldest first. Returns how many were."""
        delivered, _ = await self._round()
        return delivered

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver rounds until ``stop`` is set; a failing round is logged and the loop goes on."""
        while not stop.is_set():
            full = False
            try:
                _, attempted = await self._round()
                full = attempted >= self._batch_size
            except Exception as exc:
                logger.error("outbox dispatch round failed: %s", describe_failure(exc))
            if not full:
                await self._pause(stop)

    async def _round(self) -> tuple[int, int]:
        """Deliver one batch of due events; returns (delivered, attempted)."""
        limit = self._batch_size + min(len(self._not_before), SCAN_FACTOR * self._batch_size)
        records = await self._store.outbox_pending(limit)
        if len(records) < limit:
            self._forget_settled(records)
        now = self._clock()
        due = [r for r in records if self._not_before.get(r.event.id, now) <= now]
        due = due[: self._batch_size]
        delivered: list[str] = []
        try:
            for record in due:
                if await self._deliver(record):
                    delivered.append(record.event.id)
        finally:
            if delivered:
                await self._store.outbox_delivered(delivered)
        return len(delivered), len(due)

    async def _deliver(self, record: OutboxRecord) -> bool:
        event = record.event
        try:
            await self._deliverer.deliver(event)
        except Exception as exc:
            await self._record_failure(record, exc)
            return False
        self._not_before.pop(event.id, None)
        return True

    async def _record_failure(self, record: OutboxRecord, exc: Exception) -> None:
        attempts = record.attempts + 1
        delay = backoff_seconds(attempts, base=self._retry_base, cap=self._retry_max)
        self._not_before[record.event.id] = self._clock() + delay
        logger.warning("outbox event %s (topic %s) not delivered, attempt %d, "
                       "next try in %.1fs: %s", record.event.id, record.event.topic,
                       attempts, delay, describe_failure(exc))
        await self._store.outbox_failed(record.event.id)

    def _forget_settled(self, pending: Sequence[OutboxRecord]) -> None:
        """Drop waits of events no longer pending (all pending events were read)."""
        still = {r.event.id for r in pending}
        for event_id in [e for e in self._not_before if e not in still]:
            del self._not_before[event_id]

    async def _pause(self, stop: asyncio.Event) -> None:
        """Wait ``poll_seconds``, or less if stopped or woken."""
        waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())}
        try:
            await asyncio.wait(waiters, timeout=self._poll_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._wake.clear()
