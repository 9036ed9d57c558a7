"""Deliverers: the Celery message an event becomes, and the worker side that runs it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from fhir_server.outbox.consumers import ConsumerRegistry
from fhir_server.outbox.delivery import (
    HANDLE_EVENT_TASK,
    CeleryDeliverer,
    DeliveryFailed,
    event_from_task_kwargs,
    event_to_task_kwargs,
)
from fhir_server.settings import Settings
from fhir_server.storage.sqlite import SqliteStore
from tests.unit.outbox.builders import BasicWriter, FailingFirst, event
from workers.app import create_app
from workers.tasks import WorkerRuntime

BINARY = bytes(range(256))


def test_task_arguments_carry_the_event_exactly() -> None:
    original = event("e1", payload=BINARY)
    kwargs = event_to_task_kwargs(original)
    assert all(isinstance(value, str) for value in kwargs.values())
    assert event_from_task_kwargs(**kwargs) == original


def received_messages(app: Any) -> list[Any]:
    """Drain the default queue of the app's (in-memory) broker."""
    messages = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue("celery")
        try:
            while True:
                message = queue.get(block=False)
                messages.append(message)
                message.ack()
        except queue.Empty:
            pass
        finally:
            queue.close()
    return messages


async def test_celery_deliverer_sends_the_event_as_the_handle_event_task() -> None:
    app = create_app(Settings(broker="memory://"))
    deliverer = CeleryDeliverer(app)
    sent = event("evt-42", payload=b'{"nir":"1840399012345"}')

    await deliverer.deliver(sent)
    await deliverer.deliver(sent)

    messages = received_messages(app)
    assert len(messages) == 2
    for message in messages:
        headers = message.headers
        assert headers["task"] == HANDLE_EVENT_TASK
        assert headers["id"] == "evt-42", "the task id is the event id"
        assert "1840399012345" not in headers["kwargsrepr"]
        assert message.content_type == "application/json"
        _, kwargs, _ = message.decode()
        assert event_from_task_kwargs(**kwargs) == sent


def test_app_is_configured_for_at_least_once_json_tasks() -> None:
    app = create_app(Settings(broker="redis://127.0.0.1:1/0"))
    conf = app.conf
    assert conf.broker_url == "redis://127.0.0.1:1/0"
    assert (conf.task_serializer, list(conf.accept_content)) == ("json", ["json"])
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert HANDLE_EVENT_TASK in app.tasks


def test_app_needs_a_broker() -> None:
    with pytest.raises(ValueError, match="FHIR_SERVER_BROKER"):
        create_app(Settings(broker=None))


async def test_worker_runtime_runs_consumers_on_its_own_store(store_path: Path) -> None:
    consumers, writer = ConsumerRegistry(), BasicWriter("writer")
    consumers.register("writer", "case.created", writer)
    consumers.register("flaky", "case.created", FailingFirst(failures=1))
    runtime = WorkerRuntime(Settings(store=f"sqlite:///{store_path}"), consumers)
    try:
        with pytest.raises(DeliveryFailed, match="flaky: RuntimeError"):
            await asyncio.to_thread(runtime.handle, event("e1"))
        await asyncio.to_thread(runtime.handle, event("e1"))
    finally:
        await asyncio.to_thread(runtime.close)
        await asyncio.to_thread(runtime.close)

    assert writer.effects == 1
    reader = SqliteStore(store_path)
    await reader.start()
    try:
        written = await reader.read("Basic", "e1")
        assert written is not None and written.version == 1
    finally:
        await reader.close()


async def test_worker_runtime_reports_an_unreachable_store_without_details(
        tmp_path: Path) -> None:
    runtime = WorkerRuntime(Settings(store="postgres://user:hunter2@db/fhir"))
    with pytest.raises(DeliveryFailed) as failure:
        await asyncio.to_thread(runtime.handle, event("e1"))
    await asyncio.to_thread(runtime.close)
    assert "ValueError" in str(failure.value)
    assert "hunter2" not in str(failure.value)
