"""Outbox events through a real Redis broker to a real ``celery -A workers.app worker`` process.

Starts ``redis-server`` on a free loopback port and one worker whose store is a temp SQLite file
shared with the test; the worker imports ``tests.e2e.celery_consumer`` through
``FHIR_SERVER_CONSUMER_MODULES``. Skipped when ``redis-server`` is not installed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis

from fhir_server.outbox.delivery import CeleryDeliverer
from fhir_server.outbox.dispatcher import OutboxDispatcher
from fhir_server.settings import Settings
from fhir_server.storage.protocol import Change, OutboxEvent, StoredVersion
from fhir_server.storage.sqlite import SqliteStore
from tests.e2e.celery_consumer import TOPIC
from workers.app import create_app

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("redis-server") is None,
                       reason="redis-server is not installed (apt-get install redis-server; "
                              ".ci/run installs it)"),
]

REPO = Path(__file__).resolve().parents[2]
EFFECT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Cluster:
    broker: str
    store_path: Path
    worker_log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group we started, then SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def wait_for_redis(port: int, process: subprocess.Popen[bytes]) -> None:
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
    finally:
        client.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("celery-redis")
    port = free_port()
    redis_server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    worker: subprocess.Popen[bytes] | None = None
    try:
        wait_for_redis(port, redis_server)
        setup = Cluster(broker=f"redis://127.0.0.1:{port}/0", store_path=base / "store.sqlite3",
                        worker_log=base / "worker.log")
        env = {**os.environ,
               "FHIR_SERVER_STORE": f"sqlite:///{setup.store_path}",
               "FHIR_SERVER_BROKER": setup.broker,
               "FHIR_SERVER_CONSUMER_MODULES": "tests.e2e.celery_consumer",
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        with setup.worker_log.open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers.app", "worker",
                 "--concurrency=1", "--loglevel=INFO", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "--hostname", f"e2e-{port}@localhost"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        yield setup
    finally:
        if worker is not None:
            stop_process(worker)
        stop_process(redis_server)


@pytest.fixture
async def store(cluster: Cluster) -> AsyncIterator[SqliteStore]:
    instance = SqliteStore(cluster.store_path)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.close()


def new_event(**request: str) -> OutboxEvent:
    return OutboxEvent(id=f"evt-{uuid.uuid4().hex}", topic=TOPIC,
                       payload=orjson.dumps(request), created="2026-01-01T00:00:00.000000Z")


def patient_change() -> Change:
    id = uuid.uuid4().hex
    return Change(resource_type="Patient", id=id, version=1, expected_version=0,
                  last_updated="2026-01-01T00:00:00.000000Z", method="POST",
                  body=orjson.dumps({"resourceType": "Patient", "id": id}))


async def effect_of(event: OutboxEvent, store: SqliteStore, cluster: Cluster) -> StoredVersion:
    """The Basic the consumer commits for the event, waited for (bounded)."""
    deadline = time.monotonic() + EFFECT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        found = await store.read("Basic", event.id)
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    log = cluster.worker_log.read_text(errors="replace")[-4000:]
    raise AssertionError(f"no effect of {event.id} after {EFFECT_TIMEOUT_SECONDS}s; "
                         f"worker log:\n{log}")


def dispatcher(store: SqliteStore, cluster: Cluster) -> OutboxDispatcher:
    deliverer = CeleryDeliverer(create_app(Settings(broker=cluster.broker)))
    return OutboxDispatcher(store, deliverer, poll_seconds=0.1)


async def test_committed_event_reaches_the_worker_consumer(
        cluster: Cluster, store: SqliteStore) -> None:
    event = new_event(note="lésion pigmentée, dos")
    await store.commit([patient_change()], [event])

    assert await dispatcher(store, cluster).run_once() == 1
    assert await store.outbox_pending(10) == ()

    effect = await effect_of(event, store, cluster)
    assert effect.body is not None
    assert orjson.loads(effect.body)["code"] == {"text": "lésion pigmentée, dos"}


async def test_a_failing_consumer_is_retried_by_the_worker(
        cluster: Cluster, store: SqliteStore, tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"
    event = new_event(note="retry", fail_once_marker=str(marker))
    await store.commit([patient_change()], [event])

    assert await dispatcher(store, cluster).run_once() == 1

    await effect_of(event, store, cluster)
    assert marker.exists(), "the first call failed"


async def test_a_resent_event_is_applied_once(
        cluster: Cluster, store: SqliteStore, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    event = new_event(note="twice", calls_file=str(calls))
    deliverer = CeleryDeliverer(create_app(Settings(broker=cluster.broker)))

    await deliverer.deliver(event)
    await deliverer.deliver(event)

    effect = await effect_of(event, store, cluster)
    deadline = time.monotonic() + EFFECT_TIMEOUT_SECONDS
    while time.monotonic() < deadline and len(calls.read_text().split()) < 2:
        await asyncio.sleep(0.1)
    assert calls.read_text().split() == [event.id, event.id], "the worker ran both messages"
    assert effect.version == 1
    latest = await store.read("Basic", event.id)
    assert latest is not None and latest.version == 1
