"""OutboxDispatcher over a real SQLite store with in-process delivery."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from fhir_server.outbox.consumers import ConsumerRegistry
from fhir_server.outbox.delivery import InProcessDeliverer
from fhir_server.outbox.dispatcher import OutboxDispatcher, backoff_seconds
from fhir_server.storage.protocol import OutboxEvent, OutboxRecord, Store, StoreUnavailable
from fhir_server.storage.sqlite import SqliteStore
from tests.unit.outbox.builders import BasicWriter, Clock, FailingFirst, Recorder, event, patient


def dispatcher(store: Store, consumers: ConsumerRegistry, *, clock: Clock | None = None,
               batch_size: int = 100) -> OutboxDispatcher:
    return OutboxDispatcher(store, InProcessDeliverer(store, consumers), poll_seconds=0.01,
                            batch_size=batch_size, clock=clock or Clock())


async def pending(store: Store) -> list[tuple[str, int]]:
    return [(r.event.id, r.attempts) for r in await store.outbox_pending(100)]


async def test_events_committed_with_a_change_are_delivered_once(store: SqliteStore) -> None:
    consumers, recorder = ConsumerRegistry(), Recorder()
    consumers.register("recorder", "case.created", recorder)
    await store.commit([patient("p1")], [event("e1"), event("e2")])
    outbox = dispatcher(store, consumers)

    assert await outbox.run_once() == 2
    assert await outbox.run_once() == 0
    assert recorder.seen == ["e1", "e2"]
    assert await pending(store) == []


async def test_events_of_other_topics_reach_only_their_consumers(store: SqliteStore) -> None:
    consumers, cases, reports = ConsumerRegistry(), Recorder(), Recorder()
    consumers.register("cases", "case.created", cases)
    consumers.register("reports", "report.requested", reports)
    await store.commit([patient("p1")], [event("e1"), event("e2", topic="report.requested"),
                                         event("e3", topic="nobody.listens")])

    assert await dispatcher(store, consumers).run_once() == 3
    assert (cases.seen, reports.seen) == (["e1"], ["e2"])


async def test_failing_consumer_leaves_event_pending_and_it_is_retried(
        store: SqliteStore) -> None:
    consumers, flaky, clock = ConsumerRegistry(), FailingFirst(failures=2), Clock()
    consumers.register("flaky", "case.created", flaky)
    await store.commit([patient("p1")], [event("e1")])
    outbox = dispatcher(store, consumers, clock=clock)

    assert await outbox.run_once() == 0
    assert await pending(store) == [("e1", 1)]

    assert await outbox.run_once() == 0, "retried before its backoff elapsed"
    assert flaky.calls == 1

    clock.now += backoff_seconds(1)
    assert await outbox.run_once() == 0
    assert await pending(store) == [("e1", 2)]

    clock.now += backoff_seconds(2) - 0.5
    assert await outbox.run_once() == 0
    assert flaky.calls == 2, "the second wait is longer than the first"

    clock.now += 0.5
    assert await outbox.run_once() == 1
    assert flaky.calls == 3
    assert await pending(store) == []


async def test_an_event_in_backoff_does_not_hold_back_newer_ones(store: SqliteStore) -> None:
    consumers, recorder = ConsumerRegistry(), Recorder()
    consumers.register("fails-once", "case.created", FailingFirst(failures=1))
    consumers.register("recorder", "report.requested", recorder)
    await store.commit([patient("p1")], [event("old")])
    outbox = dispatcher(store, consumers, batch_size=1)
    assert await outbox.run_once() == 0

    await store.commit([], [event("new", topic="report.requested", second=2)])
    assert await outbox.run_once() == 1
    assert recorder.seen == ["new"]
    assert await pending(store) == [("old", 1)]


async def test_a_failing_consumer_does_not_stop_the_others(store: SqliteStore) -> None:
    consumers, clock, writer = ConsumerRegistry(), Clock(), BasicWriter("writer")
    consumers.register("writer", "case.created", writer)
    consumers.register("flaky", "case.created", FailingFirst(failures=1))
    await store.commit([patient("p1")], [event("e1")])
    outbox = dispatcher(store, consumers, clock=clock)

    assert await outbox.run_once() == 0
    assert await store.read("Basic", "e1") is not None, "the healthy consumer ran"

    clock.now += backoff_seconds(1)
    assert await outbox.run_once() == 1
    written = await store.read("Basic", "e1")
    assert written is not None and written.version == 1
    assert writer.effects == 1, "the retry skipped the consumer that had succeeded"


async def test_a_consumer_given_the_same_event_twice_applies_it_once(store: SqliteStore) -> None:
    consumers, writer = ConsumerRegistry(), BasicWriter("writer")
    consumers.register("writer", "case.created", writer)
    deliverer = InProcessDeliverer(store, consumers)
    same = event("e1")

    await deliverer.deliver(same)
    await deliverer.deliver(same)

    assert writer.effects == 1
    versions = await store.read("Basic", "e1")
    assert versions is not None and versions.version == 1


async def test_undelivered_events_survive_a_restart(store_path: Path) -> None:
    consumers, recorder = ConsumerRegistry(), Recorder()
    consumers.register("fails-once", "case.created", FailingFirst(failures=1))
    first = SqliteStore(store_path)
    await first.start()
    await first.commit([patient("p1")], [event("e1"), event("e2", topic="report.requested")])
    assert await dispatcher(first, consumers).run_once() == 1
    await first.close()

    consumers.register("recorder", "case.created", recorder)
    second = SqliteStore(store_path)
    await second.start()
    try:
        assert await pending(second) == [("e1", 1)]
        assert await dispatcher(second, consumers).run_once() == 1
        assert recorder.seen == ["e1"]
        assert await pending(second) == []
    finally:
        await second.close()


async def test_delivery_order_is_oldest_first(store: SqliteStore) -> None:
    consumers, recorder = ConsumerRegistry(), Recorder()
    consumers.register("recorder", "case.created", recorder)
    await store.commit([patient("p1")], [event("c", second=1)])
    await store.commit([patient("p2")], [event("a", second=2), event("b", second=3)])
    await store.commit([], [event("0", second=4)])
    outbox = dispatcher(store, consumers, batch_size=2)

    assert await outbox.run_once() == 2
    assert await outbox.run_once() == 2
    assert recorder.seen == ["c", "a", "b", "0"]


async def test_failures_are_logged_without_payload_or_message(
        store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    consumers = ConsumerRegistry()
    consumers.register("flaky", "case.created", FailingFirst(failures=1))
    secret = b'{"nir":"1840399012345"}'
    await store.commit([patient("p1")], [event("e1", payload=secret)])

    with caplog.at_level(logging.DEBUG, logger="fhir_server.outbox"):
        await dispatcher(store, consumers).run_once()

    assert "e1" in caplog.text and "flaky" in caplog.text and "RuntimeError" in caplog.text
    assert "1840399012345" not in caplog.text


class FirstReadFails(SqliteStore):
    """The real store, except that its first ``outbox_pending`` finds the database unavailable."""

    failed = False

    async def outbox_pending(self, limit: int) -> tuple[OutboxRecord, ...]:
        if not self.failed:
            self.failed = True
            raise StoreUnavailable("database is locked")
        return await super().outbox_pending(limit)


async def test_run_survives_a_failing_round_and_stops_when_asked(
        store_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    arrived = asyncio.Event()

    async def signal(event: OutboxEvent, store: Store) -> None:
        arrived.set()

    consumers = ConsumerRegistry()
    consumers.register("signal", "case.created", signal)
    store = FirstReadFails(store_path)
    await store.start()
    try:
        await store.commit([patient("p1")], [event("e1")])
        stop = asyncio.Event()
        running = asyncio.create_task(dispatcher(store, consumers).run(stop))
        await asyncio.wait_for(arrived.wait(), 5)
        stop.set()
        await asyncio.wait_for(running, 5)
        assert store.failed and await pending(store) == []
        assert "StoreUnavailable" in caplog.text
    finally:
        await store.close()


async def test_wake_starts_a_round_before_the_poll_pause_ends(store: SqliteStore) -> None:
    arrived = asyncio.Event()

    async def signal(event: OutboxEvent, store: Store) -> None:
        arrived.set()

    consumers = ConsumerRegistry()
    consumers.register("signal", "case.created", signal)
    outbox = OutboxDispatcher(store, InProcessDeliverer(store, consumers), poll_seconds=60)
    stop = asyncio.Event()
    running = asyncio.create_task(outbox.run(stop))
    try:
        await asyncio.sleep(0.05)
        await store.commit([patient("p1")], [event("e1")])
        outbox.wake()
        await asyncio.wait_for(arrived.wait(), 5)
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)


def test_backoff_doubles_by_attempt_and_is_capped() -> None:
    assert [backoff_seconds(n) for n in range(5)] == [0.0, 1.0, 2.0, 4.0, 8.0]
    assert backoff_seconds(9) == 256.0
    assert backoff_seconds(10) == backoff_seconds(10_000) == 300.0
    assert backoff_seconds(3, base=0.5, cap=1.5) == 1.5
