"""How the authorization server meets people: signing in with email and password, and the
principal an account acts as on each request (``UserDirectory``, implemented by
``fhir_server.accounts``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from fhir_server.access.principal import Principal


@dataclass(frozen=True, slots=True)
class SignedInUser:
    """A person whose credentials were just checked, and the principal they act as."""

    account_id: str
    email: str
    principal: Principal


class SignInRefused(Exception):
    """A refused sign-in: ``code`` for programs (``invalid-credentials``, ``locked``,
    ``unverified``, ``suspended``, ``terminated``…), a message in French and in English for the
    person, and ``retry_after`` seconds when waiting helps (a lock-out)."""

    def __init__(self, code: str, message_fr: str, message_en: str, *,
                 retry_after: int | None = None) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_fr = message_fr
        self.message_en = message_en
        self.retry_after = retry_after


class UserDirectory(Protocol):
    """The accounts, as the authorization server needs them."""

    async def sign_in(self, email: str, password: str, *, address: str) -> SignedInUser:
        """The user whose email and password match; raises ``SignInRefused`` otherwise.
        ``address``: the caller's IP address, for throttling."""

    async def principal_of(self, account_id: str) -> Principal | None:
        """What the account acts as now; None once it may no longer act (suspended,
        terminated, deletion requested, unknown)."""

    async def by_rpps(self, rpps: str) -> SignedInUser | None:
        """The active account of the verified doctor (or medical director) whose Practitioner
        carries this RPPS number; None when there is none."""
