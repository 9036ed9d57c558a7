"""The outbox: events committed with a change, handed at least once to idempotent consumers.

A write that must cause later work adds an ``OutboxEvent`` in the same store commit as the
resource. ``OutboxDispatcher`` reads pending events oldest first and gives each to a
``Deliverer``: ``InProcessDeliverer`` runs the registered consumers here (the embedded default,
with the store's outbox table as the durable queue), ``CeleryDeliverer`` sends the event to the
workers through the broker. Consumers record a ``Consumption`` with their effects, so a second
delivery of the same event is recognised and skipped.
"""

from fhir_server.outbox.consumers import (
    BoundConsumers,
    Consumer,
    ConsumerRegistry,
    Handler,
    consumer,
    consumers_for,
    register,
    registry,
)
from fhir_server.outbox.delivery import (
    CeleryDeliverer,
    Deliverer,
    DeliveryFailed,
    InProcessDeliverer,
    run_consumers,
)
from fhir_server.outbox.dispatcher import OutboxDispatcher, backoff_seconds

__all__ = [
    "BoundConsumers",
    "CeleryDeliverer",
    "Consumer",
    "ConsumerRegistry",
    "Deliverer",
    "DeliveryFailed",
    "Handler",
    "InProcessDeliverer",
    "OutboxDispatcher",
    "backoff_seconds",
    "consumer",
    "consumers_for",
    "register",
    "registry",
    "run_consumers",
]
