"""Who a Subscription notifies for, as an ``Access``: its owner as it may act now, with the
rights stored with the Subscription.

- An account owner acts as ``UserDirectory.principal_of`` says today (a suspended, terminated
  or deleted account gets nothing), with the scopes of the token that last wrote the
  Subscription (contexts ``user`` and ``patient``, as the gate gives people).
- A client owner must still be registered and active; it acts for its organization, with the
  stored scopes clipped to what its registration still allows (or that registration when no
  scopes were stored).
- A Subscription without owner is the operator's: unlimited.
A grant whose scopes no longer parse gives nothing (fail closed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from fhir_server.access.access import Access
from fhir_server.access.principal import Principal
from fhir_server.auth.model import AuthStore
from fhir_server.auth.scopes import InvalidScope, ScopeSet, parse_scopes
from fhir_server.subscriptions.records import Owner, SubscriberGrant, grant_of, owner_of
from fhir_server.types import ResourceDict

logger = logging.getLogger(__name__)


class PrincipalLookup(Protocol):
    """What an account acts as now (``UserDirectory`` and ``AccountService`` provide it)."""

    async def principal_of(self, account_id: str) -> Principal | None:
        """The account's principal; None once it may no longer act."""


@dataclass(frozen=True, slots=True)
class Subscriber:
    """The access a Subscription's notifications are computed with (None: unlimited)."""

    access: Access | None


class Subscribers:
    """Rebuilds the subscriber of a Subscription from its owner tag and stored grant."""

    def __init__(self, *, auth_store: AuthStore, users: PrincipalLookup) -> None:
        self._auth_store = auth_store
        self._users = users

    async def of(self, subscription: ResourceDict) -> Subscriber | None:
        """The subscriber, or None when its owner may no longer act."""
        owner = owner_of(subscription)
        if owner is None:
            return Subscriber(access=None)
        grant = grant_of(subscription)
        try:
            if owner.kind == "account":
                return await self._account(owner, grant)
            return await self._client(owner, grant)
        except InvalidScope:
            logger.warning("subscription %s: its stored scopes no longer parse",
                           subscription.get("id"))
            return None

    async def _account(self, owner: Owner, grant: SubscriberGrant | None) -> Subscriber | None:
        principal = await self._users.principal_of(owner.id)
        if principal is None:
            return None
        scopes = (parse_scopes(grant.scopes) if grant is not None and grant.scopes is not None
                  else None)
        return Subscriber(Access(principal, scopes, ("user", "patient"),
                                 patient=grant.patient if grant is not None else None))

    async def _client(self, owner: Owner, grant: SubscriberGrant | None) -> Subscriber | None:
        client = await self._auth_store.get_client(owner.id)
        if client is None or not client.active:
            return None
        registered = client.scopes()
        scopes: ScopeSet = (registered.narrowed(grant.scopes)
                            if grant is not None and grant.scopes is not None else registered)
        principal = Principal("system", client.client_id, organization=client.organization)
        return Subscriber(Access(principal, scopes, ("system",)))
