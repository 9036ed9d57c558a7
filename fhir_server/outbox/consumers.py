"""The consumer registry: which async handlers run for an outbox event's topic.

A consumer is a name, a topic and a handler ``(event, store) -> None``. The name is what the
consumer records in its ``Consumption`` (committed with its effects), so it must be unique and
never change. Modules register their consumers when imported; the workers import the modules
listed in ``FHIR_SERVER_CONSUMER_MODULES`` (comma-separated) at start.

Some consumers need more than the store: the engine's keys and search parameters (``$reindex``
jobs). They are bound to an engine by the process that runs them: the API registers them in a
registry layered over the process-wide one (``ConsumerRegistry(parent=registry)``), a worker
builds them through ``BoundConsumers`` on the first event of one of their topics.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_server.storage.protocol import OutboxEvent, Store

Handler = Callable[[OutboxEvent, Store], Awaitable[None]]

CONSUMER_MODULES_ENV = "FHIR_SERVER_CONSUMER_MODULES"


@dataclass(frozen=True, slots=True)
class Consumer:
    """One handler of one topic. ``name`` keys its ``Consumption`` records."""

    name: str
    topic: str
    handler: Handler


@dataclass(frozen=True, slots=True)
class BoundConsumers:
    """Consumers of ``topics`` that a worker builds for its store (once per process)."""

    topics: frozenset[str]
    build: Callable[[Store], Coroutine[Any, Any, Sequence[Consumer]]]


class ConsumerRegistry:
    """Consumers by topic, in registration order; a name belongs to one consumer only.

    A registry with a ``parent`` also runs the parent's consumers (first), as registered at the
    time of the event.
    """

    def __init__(self, parent: ConsumerRegistry | None = None) -> None:
        self._by_name: dict[str, Consumer] = {}
        self._parent = parent

    def register(self, name: str, topic: str, handler: Handler) -> Consumer:
        """Add a consumer; registering the very same one again is a no-op.

        Raises ValueError when the name is empty or already names a different consumer.
        """
        if not name or not topic:
            raise ValueError("a consumer needs a non-empty name and topic")
        if self._parent is not None and self._parent.named(name) is not None:
            raise ValueError(f"outbox consumer name {name!r} is already registered in the parent")
        existing = self._by_name.get(name)
        if existing is None:
            self._by_name[name] = Consumer(name=name, topic=topic, handler=handler)
            return self._by_name[name]
        if existing.topic != topic or existing.handler is not handler:
            raise ValueError(f"outbox consumer name {name!r} is already registered "
                             f"(topic {existing.topic!r})")
        return existing

    def consumers_for(self, topic: str) -> tuple[Consumer, ...]:
        """The consumers of a topic, in registration order (empty when none)."""
        inherited = self._parent.consumers_for(topic) if self._parent is not None else ()
        return (*inherited, *(c for c in self._by_name.values() if c.topic == topic))

    def named(self, name: str) -> Consumer | None:
        """The consumer of that name, here or in the parent."""
        found = self._by_name.get(name)
        if found is None and self._parent is not None:
            return self._parent.named(name)
        return found


registry = ConsumerRegistry()
"""The process-wide registry that domain modules register into."""


def register(name: str, topic: str, handler: Handler) -> Consumer:
    """Add a consumer to the process-wide registry."""
    return registry.register(name, topic, handler)


def consumers_for(topic: str) -> tuple[Consumer, ...]:
    """The consumers of a topic in the process-wide registry."""
    return registry.consumers_for(topic)


def consumer(name: str, *, topic: str,
             into: ConsumerRegistry | None = None) -> Callable[[Handler], Handler]:
    """Decorator form of ``register``: ``@consumer("report-pdf", topic="report.requested")``."""

    def add(handler: Handler) -> Handler:
        (into or registry).register(name, topic, handler)
        return handler

    return add


def consumer_modules_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Module names listed in ``FHIR_SERVER_CONSUMER_MODULES`` (comma-separated, blanks ignored)."""
    raw = (os.environ if environ is None else environ).get(CONSUMER_MODULES_ENV, "")
    return tuple(name.strip() for name in raw.split(",") if name.strip())


def import_consumer_modules(names: Iterable[str]) -> None:
    """Import each module so that its consumers register themselves."""
    for name in names:
        importlib.import_module(name)
