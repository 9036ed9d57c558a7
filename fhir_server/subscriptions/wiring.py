"""The subscription consumers bound to a process's engine, auth store and accounts: what the
composition root (``runtime.py``) registers for in-process delivery, and what a worker builds
for its own store."""

from __future__ import annotations

from typing import Final

from fhir_server.auth.model import AuthStore
from fhir_server.engine.engine import Engine
from fhir_server.engine.writing import CHANGE_TOPIC
from fhir_server.outbox.consumers import Consumer
from fhir_server.subscriptions.delivery import NOTIFIER, DeliveryPolicy, SubscriptionNotifier
from fhir_server.subscriptions.matching import MATCHER, NOTIFICATION_TOPIC, SubscriptionMatcher
from fhir_server.subscriptions.subscribers import PrincipalLookup, Subscribers

SUBSCRIPTION_TOPICS: Final = frozenset({CHANGE_TOPIC, NOTIFICATION_TOPIC})
"""The outbox topics the subscription consumers read (a worker builds them on the first)."""
WATCHED_TYPE: Final = "Task"
"""The type whose every write records a ``resource-changed`` event for the matcher."""


def subscription_consumers(engine: Engine, auth_store: AuthStore, users: PrincipalLookup, *,
                           policy: DeliveryPolicy | None = None) -> tuple[Consumer, Consumer]:
    """The matcher (``resource-changed`` → ``subscription-notification`` events) and the
    notifier (``subscription-notification`` → POST to the endpoint), over ``engine`` (an
    unlimited engine: each acts as the subscriber itself)."""
    subscribers = Subscribers(auth_store=auth_store, users=users)
    matcher = SubscriptionMatcher(engine, subscribers)
    notifier = SubscriptionNotifier(engine, subscribers, policy or DeliveryPolicy())
    return (Consumer(MATCHER, CHANGE_TOPIC, matcher.handle),
            Consumer(NOTIFIER, NOTIFICATION_TOPIC, notifier.handle))
