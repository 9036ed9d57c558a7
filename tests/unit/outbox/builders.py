"""Small builders of changes, events and consumers for the outbox tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from fhir_server.storage.protocol import Change, Consumption, OutboxEvent, Store


def instant(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}.000000Z"


def patient(id: str, second: int = 1) -> Change:
    """A first version of a Patient, created at ``second``."""
    body = orjson.dumps({"resourceType": "Patient", "id": id, "meta": {"versionId": "1"}})
    return Change(resource_type="Patient", id=id, version=1, expected_version=0,
                  last_updated=instant(second), method="POST", body=body)


def event(id: str, *, topic: str = "case.created", second: int = 1,
          payload: bytes = b'{"nir":"1"}') -> OutboxEvent:
    return OutboxEvent(id=id, topic=topic, payload=payload, created=instant(second))


@dataclass(eq=False)
class Recorder:
    """A consumer handler that remembers the ids of the events it was given."""

    seen: list[str] = field(default_factory=list)

    async def __call__(self, event: OutboxEvent, store: Store) -> None:
        self.seen.append(event.id)


@dataclass(eq=False)
class FailingFirst:
    """A handler failing its first ``failures`` calls (with a message quoting the payload)."""

    failures: int
    calls: int = 0

    async def __call__(self, event: OutboxEvent, store: Store) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"cannot handle {event.payload.decode()}")


@dataclass(eq=False)
class BasicWriter:
    """An idempotent consumer: commits ``Basic/<event id>`` with its ``Consumption``."""

    name: str
    effects: int = 0

    async def __call__(self, event: OutboxEvent, store: Store) -> None:
        body = orjson.dumps({"resourceType": "Basic", "id": event.id, "meta": {"versionId": "1"}})
        change = Change(resource_type="Basic", id=event.id, version=1, expected_version=0,
                        last_updated=event.created, method="POST", body=body)
        await store.commit([change], consumed=[Consumption(self.name, event.id)])
        self.effects += 1


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
