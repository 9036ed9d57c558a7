"""Who is told about a case: the email addresses of the accounts behind the case's roles.

A role (``PractitionerRole/<id>``) reaches a person through the account that acts through it:
the account of the role's Practitioner whose ``practitioner_role`` is that role. Only an account
that may act now (active, its email confirmed, not suspended) receives case emails.
- doctors offered a case: the verified (active) doctors' roles of the Task's tier
  (``workflow.routing.eligible_doctors``) that have not declined it, whose account is a doctor's
  verified in that tier;
- the pharmacy: the requester's account (a pharmacist's); when that role has none, the accounts
  of the pharmacy's other active pharmacist roles; a requester that is the pharmacy itself
  (a pharmacy's software) goes to its pharmacists directly;
- the owner: the account of the doctor's role that owns the Task.
Reads are the server's own (no caller's access). Nothing is logged but references.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Final, Protocol

from fhir_server.accounts.model import Account
from fhir_server.auth.model import utc_now
from fhir_server.engine.context import EngineContext
from fhir_server.engine.writing import load
from fhir_server.storage.query import (
    ReferenceClause,
    ReferenceValue,
    SearchQuery,
    TokenClause,
    TokenValue,
)
from fhir_server.types import ResourceDict
from fhir_server.workflow.case_facts import reference_key
from fhir_server.workflow.routing import eligible_doctors
from fhir_server.workflow.task_rules import TIER_SYSTEM, declined_by, tier_of

logger = logging.getLogger(__name__)

PHARMACIST_CODE: Final = "pharmacist"
MAX_PHARMACISTS: Final = 200
"""The most pharmacist roles of one pharmacy read for a notification."""


class AccountLookup(Protocol):
    """Finds the account acting through a Practitioner (``AccountStore`` provides it)."""

    async def by_practitioner(self, practitioner: str) -> Account | None:
        """The account of ``Practitioner/<id>``, or None."""


class Recipients:
    """The email addresses a case's notifications go to (see the module doc)."""

    def __init__(self, ctx: EngineContext, accounts: AccountLookup, *,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self._ctx = replace(ctx, access=None) if ctx.access is not None else ctx
        self._accounts = accounts
        self._clock = clock

    def on(self, ctx: EngineContext) -> Recipients:
        """The same recipients read through ``ctx`` (e.g. the store a consumer is given)."""
        return Recipients(ctx, self._accounts, clock=self._clock)

    async def offered_doctors(self, task: ResourceDict) -> tuple[str, ...]:
        """The doctors a requested Task is offered to: its tier's eligible, verified doctors
        who have not declined it."""
        tier = tier_of(task)
        if tier is None:
            return ()
        roles = sorted(await eligible_doctors(self._ctx, tier) - declined_by(task))
        emails: list[str] = []
        for role in roles:
            account = await self._account_of(role, await self._read(role))
            if account is not None and account.role == "doctor" and account.tier == tier:
                emails.append(account.email)
        return _unique(emails)

    async def pharmacy(self, task: ResourceDict) -> tuple[str, ...]:
        """The requesting pharmacist, else the pharmacy's other pharmacists, else nobody."""
        requester_key = reference_key(task.get("requester"))
        requester = await self._read(requester_key)
        if requester is None or requester_key is None:
            logger.info("notification: the requester of a case cannot be read (%s)",
                        requester_key)
            return ()
        if requester.get("resourceType") == "Organization":
            pharmacy: str | None = requester_key
        else:
            account = await self._account_of(requester_key, requester)
            if account is not None and account.role == "pharmacist":
                return (account.email,)
            pharmacy = reference_key(requester.get("organization"))
        colleagues = await self._pharmacists_of(pharmacy, besides=requester_key)
        if not colleagues:
            logger.info("notification: no pharmacist account to tell for %s (pharmacy %s)",
                        requester_key, pharmacy)
        return colleagues

    async def owner(self, task: ResourceDict) -> tuple[str, ...]:
        """The doctor who owns the Task, when it has an owner with an account."""
        role = reference_key(task.get("owner"))
        if role is None or not role.startswith("PractitionerRole/"):
            return ()
        account = await self._account_of(role, await self._read(role))
        return (account.email,) if account is not None and account.role == "doctor" else ()

    async def pharmacy_name(self, task: ResourceDict) -> str | None:
        """The name of the requesting pharmacy (the requester's organization), if known."""
        requester_key = reference_key(task.get("requester"))
        requester = await self._read(requester_key)
        if requester is not None and requester.get("resourceType") != "Organization":
            requester = await self._read(reference_key(requester.get("organization")))
        name = (requester or {}).get("name")
        if not isinstance(name, str) or not name.strip():
            return None
        return name.strip()

    async def _pharmacists_of(self, pharmacy: str | None, *, besides: str) -> tuple[str, ...]:
        if pharmacy is None or not pharmacy.startswith("Organization/"):
            return ()
        page = await self._ctx.store.search(SearchQuery("PractitionerRole", (
            ReferenceClause("organization", (
                ReferenceValue("Organization", pharmacy.removeprefix("Organization/")),)),
            TokenClause("role", (TokenValue(TIER_SYSTEM, PHARMACIST_CODE),)),
            TokenClause("active", (TokenValue(None, "true"),))), count=MAX_PHARMACISTS))
        emails: list[str] = []
        for stored in page.matches:
            role = f"PractitionerRole/{stored.id}"
            if role == besides or stored.deleted:
                continue
            account = await self._account_of(role, load(self._ctx, stored))
            if account is not None and account.role == "pharmacist":
                emails.append(account.email)
        return _unique(emails)

    async def _account_of(self, role: str, resource: ResourceDict | None) -> Account | None:
        """The account acting through ``role`` that may act now, or None."""
        if resource is None or resource.get("resourceType") != "PractitionerRole":
            return None
        practitioner = reference_key(resource.get("practitioner"))
        if practitioner is None:
            return None
        account = await self._accounts.by_practitioner(practitioner)
        if account is None or account.practitioner_role != role \
                or not account.may_act(self._clock()):
            return None
        return account

    async def _read(self, key: str | None) -> ResourceDict | None:
        """The current version of ``Type/id``, or None (unknown, deleted, malformed)."""
        if key is None or "/" not in key:
            return None
        resource_type, _, id = key.partition("/")
        stored = await self._ctx.store.read(resource_type, id)
        if stored is None or stored.deleted:
            return None
        return load(self._ctx, stored)


def _unique(emails: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(emails))
