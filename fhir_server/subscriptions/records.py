"""The parts of a Subscription that only the server writes: who owns it (its owner tag), the
rights its notifications are computed with (the ``subscription-grant`` extension) and its
delivery state (the ``subscription-delivery`` extension: consecutive failures, next attempt).

Keeping the delivery state in the resource makes it survive a restart and shows the owner why
notifications wait; keeping the grant there lets a worker rebuild the subscriber's access
without the token that created it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from fhir_server.access.access import Access
from fhir_server.access.policies import OWNER_TAG_SYSTEM
from fhir_server.types import ResourceDict

GRANT_URL: Final = "https://fhir.pictaderm.com/StructureDefinition/subscription-grant"
"""Complex extension: ``scope`` (the token's scopes, space-separated; absent: none were
checked), ``patient`` (the token's launch patient)."""
DELIVERY_URL: Final = "https://fhir.pictaderm.com/StructureDefinition/subscription-delivery"
"""Complex extension: ``failures`` (consecutive failed deliveries), ``nextAttempt`` (not
before this instant)."""
SERVER_EXTENSIONS: Final = frozenset({GRANT_URL, DELIVERY_URL})

OwnerKind = Literal["account", "client"]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who created a Subscription: an account (a person) or a registered client."""

    kind: OwnerKind
    id: str


@dataclass(frozen=True, slots=True)
class SubscriberGrant:
    """The rights of the token that last wrote the Subscription: its scopes (None: the
    caller's scopes were not checked) and its launch patient."""

    scopes: str | None
    patient: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """Consecutive failed deliveries, and the instant before which none is tried again."""

    failures: int = 0
    next_attempt: str | None = None

    @property
    def fresh(self) -> bool:
        return self.failures == 0 and self.next_attempt is None


def owner_of(subscription: ResourceDict) -> Owner | None:
    """The owner named by the Subscription's owner tag (None: the operator's own)."""
    for tag in (subscription.get("meta") or {}).get("tag") or ():
        if not isinstance(tag, dict) or tag.get("system") != OWNER_TAG_SYSTEM:
            continue
        kind, _, id = str(tag.get("code", "")).partition("/")
        if kind == "account" and id:
            return Owner("account", id)
        if kind == "client" and id:
            return Owner("client", id)
    return None


def grant_of_access(access: Access) -> SubscriberGrant:
    """The grant to store for a Subscription written by ``access``."""
    scopes = access.scopes.render() if access.scopes is not None else None
    return SubscriberGrant(scopes=scopes, patient=access.patient)


def grant_of(subscription: ResourceDict) -> SubscriberGrant | None:
    """The stored grant, or None when the Subscription has none."""
    parts = _parts(subscription, GRANT_URL)
    if parts is None:
        return None
    return SubscriberGrant(scopes=_string(parts, "scope"), patient=_string(parts, "patient"))


def with_grant(subscription: ResourceDict, grant: SubscriberGrant | None) -> ResourceDict:
    """The Subscription with ``grant`` as its only grant extension (None, or a grant without
    scopes nor patient: without one)."""
    if grant is None:
        return _with_extension(subscription, GRANT_URL, None)
    parts: list[dict[str, object]] = []
    if grant.scopes is not None:
        parts.append({"url": "scope", "valueString": grant.scopes})
    if grant.patient is not None:
        parts.append({"url": "patient", "valueString": grant.patient})
    return _with_extension(subscription, GRANT_URL, parts)


def delivery_state(subscription: ResourceDict) -> DeliveryState:
    """The stored delivery state (fresh when there is none)."""
    parts = _parts(subscription, DELIVERY_URL)
    if parts is None:
        return DeliveryState()
    failures = next((part.get("valueInteger") for part in parts
                     if part.get("url") == "failures"), 0)
    attempt = next((part.get("valueInstant") for part in parts
                    if part.get("url") == "nextAttempt"), None)
    return DeliveryState(failures=failures if isinstance(failures, int) else 0,
                         next_attempt=attempt if isinstance(attempt, str) else None)


def with_delivery_state(subscription: ResourceDict, state: DeliveryState) -> ResourceDict:
    """The Subscription with ``state`` recorded (a fresh state leaves no extension)."""
    if state.fresh:
        return _with_extension(subscription, DELIVERY_URL, None)
    parts: list[dict[str, object]] = [{"url": "failures", "valueInteger": state.failures}]
    if state.next_attempt is not None:
        parts.append({"url": "nextAttempt", "valueInstant": state.next_attempt})
    return _with_extension(subscription, DELIVERY_URL, parts)


def _parts(subscription: ResourceDict, url: str) -> list[dict[str, object]] | None:
    for extension in subscription.get("extension") or ():
        if isinstance(extension, dict) and extension.get("url") == url:
            return [part for part in extension.get("extension") or ()
                    if isinstance(part, dict)]
    return None


def _string(parts: list[dict[str, object]], name: str) -> str | None:
    for part in parts:
        value = part.get("valueString")
        if part.get("url") == name and isinstance(value, str):
            return value
    return None


def _with_extension(subscription: ResourceDict, url: str,
                    parts: list[dict[str, object]] | None) -> ResourceDict:
    """The Subscription with the extension ``url`` replaced in place by ``parts`` (None or
    empty: removed)."""
    replacement = [{"url": url, "extension": parts}] if parts else []
    kept: list[object] = []
    for extension in subscription.get("extension") or ():
        if isinstance(extension, dict) and extension.get("url") == url:
            kept.extend(replacement)
            replacement = []
        else:
            kept.append(extension)
    kept.extend(replacement)
    changed = {key: value for key, value in subscription.items() if key != "extension"}
    if kept:
        changed["extension"] = kept
    return changed
