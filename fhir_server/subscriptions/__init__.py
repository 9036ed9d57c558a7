"""R4 Subscriptions on Task with rest-hook delivery (issue #6 §3).

``subscription_rules`` is the before-commit hook that checks and activates each Subscription
written; ``subscription_consumers`` gives the two outbox consumers, bound to an engine: the
matcher turns each Task change into notifications for the Subscriptions whose subscriber finds
it, the notifier POSTs them, with retries, and sets a failing Subscription to ``error``. Who
owns a Subscription is an access policy (``access/policies.py``). Notes:
``docs/implementation/subscriptions.md``.
"""

from fhir_server.subscriptions.delivery import NOTIFIER, DeliveryPolicy, SubscriptionNotifier
from fhir_server.subscriptions.matching import (
    MATCHER,
    NOTIFICATION_TOPIC,
    Notification,
    SubscriptionMatcher,
)
from fhir_server.subscriptions.rules import subscription_rules
from fhir_server.subscriptions.subscribers import PrincipalLookup, Subscriber, Subscribers
from fhir_server.subscriptions.wiring import SUBSCRIPTION_TOPICS, subscription_consumers

__all__ = [
    "MATCHER",
    "NOTIFICATION_TOPIC",
    "NOTIFIER",
    "SUBSCRIPTION_TOPICS",
    "DeliveryPolicy",
    "Notification",
    "PrincipalLookup",
    "Subscriber",
    "Subscribers",
    "SubscriptionMatcher",
    "SubscriptionNotifier",
    "subscription_consumers",
    "subscription_rules",
]
