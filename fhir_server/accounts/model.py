"""The account records (people who sign in), their one-time tokens, and the account errors.

An account is a person: an email (kept lower-case), an argon2id password hash, a role and the
FHIR records it acts through (Practitioner, PractitionerRole, the pharmacy's Organization).
Whether it may act is a matter of its status *at an instant*: a suspension carries its end,
and past that end the account acts again without anyone touching it. One-time tokens (email
verification, password reset) are kept by their SHA-256 only. Times are UTC, to the
millisecond (``auth.model.utc_millis``), like the rest of the authorization data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from fhir_server.access.principal import Principal, Role
from fhir_server.auth.model import token_hash, utc_millis
from fhir_server.validation.messages import Text

AccountStatus = Literal["pending-verification", "active", "suspended", "terminated",
                        "deletion-requested"]
"""pending-verification: registered, email not yet confirmed; suspended: until
``suspended_until``; terminated: for good; deletion-requested: the person asked to be erased."""
TokenPurpose = Literal["verify-email", "reset-password"]

ACCOUNT_STATUSES: Final[tuple[AccountStatus, ...]] = (
    "pending-verification", "active", "suspended", "terminated", "deletion-requested")
MAX_EMAIL_LENGTH: Final = 254
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def normalise_email(email: str) -> str:
    """The email as accounts keep it: trimmed and lower-case."""
    return email.strip().lower()


def is_email(email: str) -> bool:
    """Whether a (normalised) email has the shape ``local@domain.tld`` within the length limit."""
    return len(email) <= MAX_EMAIL_LENGTH and _EMAIL.fullmatch(email) is not None


@dataclass(frozen=True, slots=True)
class Account:
    """One person's account. ``version`` counts its stored changes (compare-and-set).

    ``practitioner``, ``practitioner_role``, ``organization``: relative FHIR references;
    ``tier``: a doctor's tier code once a medical director verified it, None before.
    """

    account_id: str
    email: str
    role: Role
    status: AccountStatus
    password_hash: str = field(repr=False)
    created: datetime
    practitioner: str | None = None
    practitioner_role: str | None = None
    organization: str | None = None
    tier: str | None = None
    email_verified_at: datetime | None = None
    suspended_until: datetime | None = None
    warnings: int = 0
    last_warning_at: datetime | None = None
    last_warning_reason: str | None = None
    version: int = 1

    def status_at(self, at: datetime) -> AccountStatus:
        """The status in force at ``at``: a suspension whose end has passed reads as active."""
        if (self.status == "suspended" and self.suspended_until is not None
                and self.suspended_until <= utc_millis(at)):
            return "active"
        return self.status

    def may_act(self, at: datetime) -> bool:
        """Whether the account may sign in and use its tokens at ``at``."""
        return self.status_at(at) == "active"

    def principal(self) -> Principal:
        """What the account acts as (check ``may_act`` first)."""
        return Principal(role=self.role, subject=self.account_id, practitioner=self.practitioner,
                         practitioner_role=self.practitioner_role,
                         organization=self.organization, tier=self.tier)


@dataclass(frozen=True, slots=True)
class AccountToken:
    """A one-time token as stored: its SHA-256, never the token itself."""

    token_hash: str
    account_id: str
    purpose: TokenPurpose
    created: datetime
    expires_at: datetime
    used_at: datetime | None = None

    @classmethod
    def of(cls, token: str, *, account_id: str, purpose: TokenPurpose, created: datetime,
           expires_at: datetime) -> AccountToken:
        """The record of a freshly drawn ``token``."""
        return cls(token_hash=token_hash(token), account_id=account_id, purpose=purpose,
                   created=utc_millis(created), expires_at=utc_millis(expires_at))


class AccountError(Exception):
    """A refused account request: a stable ``code`` for programs, the HTTP ``status`` it maps
    to, a French and an English message, and ``retry_after`` seconds when waiting helps."""

    def __init__(self, code: str, status: int, text: Text, *, retry_after: int | None = None,
                 **params: Any) -> None:
        self.message_en, self.message_fr = text.render(**params)
        super().__init__(self.message_en)
        self.code = code
        self.status = status
        self.retry_after = retry_after
