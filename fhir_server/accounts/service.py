"""``AccountService``: registration, email verification, password reset, sign-in with
throttling, the owner's deletion request, administrators' warnings, suspensions and
terminations, a medical director's verification of doctors, and operators' accounts.

It implements ``fhir_server.auth.users.UserDirectory`` for the authorization server. Every state
change emails the owner through the outbox (``mail.py``). A change is a compare-and-set on the
account's version, retried a few times, so concurrent changes never overwrite each other. After
a suspension, a termination or a deletion request, ``on_disabled(account_id)`` runs (the
authorization server revokes that account's tokens there); in any case ``principal_of`` answers
None from then on, so the account stops acting on its next request. A suspension ends by itself
at its end date (``Account.status_at``).

Sign-in refuses an unknown email and a wrong password with the same message, after the same
work (a decoy hash is verified for an unknown email), and only then says why a known account
may not act (unverified, suspended until…, closed). Failures are counted per email and per
client address; a lock-out is answered with the seconds to wait.
"""

from __future__ import annotations

import math
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final, Literal

from fhir_server.access.principal import ROLES, Principal, Role
from fhir_server.accounts import mail
from fhir_server.accounts import messages as text
from fhir_server.accounts.directory import (
    Anchors,
    PersonName,
    Pharmacy,
    PractitionerDirectory,
    check_finess,
    check_rpps,
    check_tier,
    tier_names,
)
from fhir_server.accounts.mail import AccountEmail, AccountMailer
from fhir_server.accounts.model import (
    Account,
    AccountError,
    AccountToken,
    TokenPurpose,
    is_email,
    normalise_email,
)
from fhir_server.accounts.passwords import Passwords, password_problem
from fhir_server.accounts.store import AccountConflict, AccountExists, AccountStore
from fhir_server.accounts.throttle import (
    SignInThrottle,
    ThrottlePolicy,
    account_key,
    address_key,
    throttle_key,
)
from fhir_server.auth.model import utc_millis, utc_now
from fhir_server.auth.users import SignedInUser, SignInRefused
from fhir_server.settings import Settings
from fhir_server.validation.messages import Text

Clock = Callable[[], datetime]
DisabledCallback = Callable[[str], Awaitable[None]]
SelfRegisteredRole = Literal["pharmacist", "doctor"]

VERIFY_EMAIL_PATH: Final = "/accounts/verify-email"
RESET_PASSWORD_PATH: Final = "/accounts/reset-password"
CHANGE_ATTEMPTS: Final = 5
TOKEN_BYTES: Final = 32
MAX_NAME_LENGTH: Final = 200
MAX_REASON_LENGTH: Final = 2000
OPERATOR_ROLES: Final[tuple[Role, ...]] = tuple(role for role in ROLES if role != "system")
"""The roles a person's account may have (``system`` is a backend client's)."""
CLOSED_STATUSES: Final = frozenset({"terminated", "deletion-requested"})


@dataclass(frozen=True, slots=True)
class Registration:
    """What a pharmacist or a doctor registers with.

    A pharmacist gives the pharmacy's FINESS (and its name, when the pharmacy is new to us), and
    may give an RPPS; a doctor gives an RPPS.
    """

    role: SelfRegisteredRole
    email: str
    password: str = field(repr=False)
    family_name: str
    given_names: tuple[str, ...] = ()
    rpps: str | None = None
    finess: str | None = None
    pharmacy_name: str | None = None


@dataclass(frozen=True, slots=True)
class NewUser:
    """An account an operator creates (any person's role, its email taken as verified)."""

    email: str
    role: Role
    password: str = field(repr=False)
    family_name: str | None = None
    given_names: tuple[str, ...] = ()
    rpps: str | None = None
    organization_finess: str | None = None
    pharmacy_name: str | None = None


class AccountService:
    """The accounts, over an ``AccountStore`` and the FHIR directory; see the module doc.

    ``public_root``: the server's public root URL (``https://host``) that links in emails start
    with; when None, each call that sends a link must be given one (``link_root``).
    """

    def __init__(self, *, store: AccountStore, directory: PractitionerDirectory,
                 mailer: AccountMailer, settings: Settings, public_root: str | None = None,
                 passwords: Passwords | None = None, clock: Clock = utc_now,
                 on_disabled: DisabledCallback | None = None) -> None:
        self._store = store
        self._directory = directory
        self._mailer = mailer
        self._public_root = public_root.rstrip("/") if public_root else None
        self._passwords = passwords or Passwords()
        self._clock = clock
        self._on_disabled = on_disabled
        self._throttle = SignInThrottle(store, ThrottlePolicy.of(settings))
        self._verification_lifetime = timedelta(seconds=settings.email_verification_seconds)
        self._reset_lifetime = timedelta(seconds=settings.password_reset_seconds)

    # --- UserDirectory ---------------------------------------------------------------------

    async def sign_in(self, email: str, password: str, *, address: str) -> SignedInUser:
        now = self._now()
        normalised = normalise_email(email)
        keys = (account_key(normalised), address_key(address))
        locked = await self._throttle.locked_until(keys, now=now)
        if locked is not None:
            wait = max(1, math.ceil((locked - now).total_seconds()))
            raise _refusal("locked", text.LOCKED, retry_after=wait,
                           minutes=math.ceil(wait / 60))
        account = await self._store.by_email(normalised)
        if account is None:
            await self._passwords.spend_time(password)
        if account is None or not await self._passwords.verify(account.password_hash,
                                                               password):
            await self._throttle.record_failure(keys, now=now)
            raise _refusal("invalid-credentials", text.INVALID_CREDENTIALS)
        await self._throttle.clear(keys[0])
        account = await self._rehashed(account, password)
        _check_may_sign_in(account, now)
        return SignedInUser(account_id=account.account_id, email=account.email,
                            principal=account.principal())

    async def principal_of(self, account_id: str) -> Principal | None:
        account = await self._store.get(account_id)
        if account is None or not account.may_act(self._now()):
            return None
        return account.principal()

    async def by_rpps(self, rpps: str) -> SignedInUser | None:
        try:
            check_rpps(rpps)
        except AccountError:
            return None
        practitioner = await self._directory.find_practitioner(rpps)
        account = (None if practitioner is None
                   else await self._store.by_practitioner(practitioner))
        if account is None or not account.may_act(self._now()) or not _verified(account):
            return None
        return SignedInUser(account_id=account.account_id, email=account.email,
                            principal=account.principal())

    # --- the owner's requests --------------------------------------------------------------

    async def get(self, account_id: str) -> Account | None:
        """The account, or None."""
        return await self._store.get(account_id)

    async def register(self, registration: Registration, *,
                       link_root: str | None = None) -> Account:
        """A pharmacist's or a doctor's new account, awaiting email verification; the
        verification link is emailed."""
        root = self._link_root(link_root)
        email = _checked_email(registration.email)
        _check_password(registration.password, email)
        name = _checked_name(registration.family_name, registration.given_names)
        if registration.role == "pharmacist":
            if not registration.finess:
                raise AccountError("finess-required", 422, text.FINESS_REQUIRED)
            check_finess(registration.finess)
        elif not registration.rpps:
            raise AccountError("rpps-required", 422, text.RPPS_REQUIRED)
        if registration.rpps is not None:
            check_rpps(registration.rpps)
        await self._check_free(email, registration.rpps)
        account = await self._open(email, registration.password, registration.role,
                                   verified=False)
        account = await self._anchored(account, lambda: self._registered_anchors(
            registration, name, email))
        await self._send_verification(account, root)
        return account

    async def verify_email(self, token: str) -> Account:
        """Activate the account of an email verification link (single use)."""
        now = self._now()
        account_id = await self._store.use_token(token, "verify-email", now=now)
        if account_id is None or await self._store.get(account_id) is None:
            raise AccountError("invalid-token", 400, text.INVALID_TOKEN)

        def verified(account: Account) -> Account:
            if account.status in CLOSED_STATUSES:
                raise AccountError("account-closed", 409, text.CLOSED)
            if account.status != "pending-verification":
                return account
            return replace(account, status="active", email_verified_at=now)

        account = await self._change(account_id, verified)
        await self._mail(mail.email_verified_email(
            account.email, awaiting_tier=account.role == "doctor" and account.tier is None))
        return account

    async def request_password_reset(self, email: str, *, address: str,
                                     link_root: str | None = None) -> None:
        """Email a single-use reset link when the account exists and is open; the same (no)
        answer either way, so that nobody learns which emails have an account. Requests are
        throttled per email and per client ``address`` like sign-ins (AccountError 429 with
        ``retry_after``), so that nobody floods a mailbox."""
        root = self._link_root(link_root)
        normalised = normalise_email(email)
        now = self._now()
        keys = (throttle_key("reset-account", normalised), throttle_key("reset-address", address))
        locked = await self._throttle.locked_until(keys, now=now)
        if locked is not None:
            wait = max(1, math.ceil((locked - now).total_seconds()))
            raise AccountError("too-many-requests", 429, text.TOO_MANY_REQUESTS,
                               retry_after=wait, minutes=math.ceil(wait / 60))
        await self._throttle.record_failure(keys, now=now)
        account = await self._store.by_email(normalised)
        if account is None or account.status in CLOSED_STATUSES:
            return
        token = await self._issue_token(account, "reset-password", self._reset_lifetime)
        await self._mail(mail.password_reset_email(
            account.email, link=f"{root}{RESET_PASSWORD_PATH}?token={token}",
            minutes=int(self._reset_lifetime.total_seconds() // 60)))

    async def reset_password(self, token: str, new_password: str) -> Account:
        """Set the password of a reset link's account (the link then no longer works); it also
        confirms the email and lifts the sign-in lock-out of the account."""
        now = self._now()
        account_id = await self._store.token_account(token, "reset-password", now=now)
        account = None if account_id is None else await self._store.get(account_id)
        if account is None:
            raise AccountError("invalid-token", 400, text.INVALID_TOKEN)
        _check_password(new_password, account.email)
        if account.status in CLOSED_STATUSES:
            raise AccountError("account-closed", 409, text.CLOSED)
        if await self._store.use_token(token, "reset-password", now=now) is None:
            raise AccountError("invalid-token", 400, text.INVALID_TOKEN)
        password_hash = await self._passwords.hash(new_password)

        def reset(current: Account) -> Account:
            if current.status in CLOSED_STATUSES:
                raise AccountError("account-closed", 409, text.CLOSED)
            if current.status == "pending-verification":
                current = replace(current, status="active", email_verified_at=now)
            return replace(current, password_hash=password_hash)

        account = await self._change(account.account_id, reset)
        await self._throttle.clear(account_key(account.email))
        await self._mail(mail.password_changed_email(account.email))
        return account

    async def request_deletion(self, account_id: str) -> Account:
        """The owner asks for the account to be deleted: it stops acting at once."""

        def requested(account: Account) -> Account:
            if account.status in CLOSED_STATUSES:
                raise AccountError("account-closed", 409, text.CLOSED)
            return replace(account, status="deletion-requested", suspended_until=None)

        account = await self._change(account_id, requested)
        await self._mail(mail.deletion_requested_email(account.email))
        await self._disabled(account_id)
        return account

    # --- administrators --------------------------------------------------------------------

    async def warn(self, account_id: str, reason: str) -> Account:
        """Record a warning on the account and email it to the owner."""
        why = _checked_reason(reason)
        now = self._now()

        def warned(account: Account) -> Account:
            if account.status == "terminated":
                raise AccountError("already-terminated", 409, text.ALREADY_TERMINATED)
            return replace(account, warnings=account.warnings + 1, last_warning_at=now,
                           last_warning_reason=why)

        account = await self._change(account_id, warned)
        await self._mail(mail.warning_email(account.email, reason=why, count=account.warnings))
        return account

    async def suspend(self, account_id: str, until: datetime, reason: str) -> Account:
        """Suspend an active (or already suspended) account until ``until``."""
        why = _checked_reason(reason)
        now = self._now()
        end = utc_millis(until)
        if end <= now:
            raise AccountError("suspension-in-past", 422, text.SUSPENSION_NOT_IN_FUTURE)

        def suspended(account: Account) -> Account:
            status = account.status_at(now)
            if status not in ("active", "suspended"):
                raise AccountError("cannot-suspend", 409, text.CANNOT_SUSPEND, state=status)
            return replace(account, status="suspended", suspended_until=end)

        account = await self._change(account_id, suspended)
        await self._mail(mail.suspension_email(account.email, until=end, reason=why))
        await self._disabled(account_id)
        return account

    async def terminate(self, account_id: str, reason: str) -> Account:
        """Close the account for good."""
        why = _checked_reason(reason)

        def terminated(account: Account) -> Account:
            if account.status == "terminated":
                raise AccountError("already-terminated", 409, text.ALREADY_TERMINATED)
            return replace(account, status="terminated", suspended_until=None)

        account = await self._change(account_id, terminated)
        await self._mail(mail.termination_email(account.email, reason=why))
        await self._disabled(account_id)
        return account

    async def verify_doctor(self, account_id: str, tier: str, by: Principal) -> Account:
        """A medical director (``by``) verifies a doctor in ``tier``: the doctor's role
        becomes active with the tier code, and the account acts in that tier."""
        if by.role != "medical-director":
            raise AccountError("forbidden", 403, text.MEDICAL_DIRECTOR_ONLY)
        check_tier(tier)
        account = await self._store.get(account_id)
        if account is None:
            raise AccountError("not-found", 404, text.NOT_FOUND)
        if account.role != "doctor":
            raise AccountError("not-a-doctor", 409, text.NOT_A_DOCTOR)
        if account.status in CLOSED_STATUSES:
            raise AccountError("account-closed", 409, text.CLOSED)
        await self._directory.verify_doctor(account.practitioner_role or "", tier)

        def tiered(current: Account) -> Account:
            if current.status in CLOSED_STATUSES:
                raise AccountError("account-closed", 409, text.CLOSED)
            return replace(current, tier=tier)

        account = await self._change(account_id, tiered)
        french, english = tier_names().get(tier, (tier, tier))
        await self._mail(mail.doctor_verified_email(account.email, tier_fr=french,
                                                    tier_en=english))
        return account

    # --- operators -------------------------------------------------------------------------

    async def create_user(self, user: NewUser) -> Account:
        """An operator's account for anyone (admin, support, medical director, doctor,
        pharmacist), active at once. A doctor still awaits a medical director's verification;
        a pharmacist names the pharmacy's FINESS; a doctor, and a medical director who signs in
        through Pro Santé Connect, give an RPPS."""
        if user.role not in OPERATOR_ROLES:
            raise AccountError("unknown-role", 422, text.UNKNOWN_ROLE, role=user.role,
                               roles=", ".join(OPERATOR_ROLES))
        email = _checked_email(user.email)
        _check_password(user.password, email)
        name = _user_name(user)
        await self._check_free(email, user.rpps)
        account = await self._open(email, user.password, user.role, verified=True)
        account = await self._anchored(account, lambda: self._user_anchors(user, name, email))
        await self._mail(mail.account_created_email(account.email, role=account.role))
        return account

    async def has_admin(self) -> bool:
        """Whether any admin account exists (a fresh server has none)."""
        return await self._store.has_role("admin")

    # --- inside ----------------------------------------------------------------------------

    def _now(self) -> datetime:
        return utc_millis(self._clock())

    def _link_root(self, given: str | None) -> str:
        root = self._public_root or (given.rstrip("/") if given else None)
        if root is None:
            raise ValueError("no public root URL to build the email's link with")
        return root

    async def _check_free(self, email: str, rpps: str | None) -> None:
        if await self._store.by_email(email) is not None:
            raise AccountError("email-taken", 409, text.EMAIL_TAKEN)
        if rpps is None:
            return
        practitioner = await self._directory.find_practitioner(rpps)
        if practitioner is not None and await self._store.by_practitioner(practitioner):
            raise AccountError("rpps-taken", 409, text.RPPS_TAKEN)

    async def _open(self, email: str, password: str, role: Role, *, verified: bool) -> Account:
        """Store the new account (before its FHIR records, which need its email free)."""
        now = self._now()
        account = Account(account_id=str(uuid.uuid4()), email=email, role=role,
                          status="active" if verified else "pending-verification",
                          password_hash=await self._passwords.hash(password), created=now,
                          email_verified_at=now if verified else None)
        try:
            await self._store.add(account)
        except AccountExists:
            raise AccountError("email-taken", 409, text.EMAIL_TAKEN) from None
        return account

    async def _anchored(self, account: Account,
                        anchors: Callable[[], Awaitable[Anchors]]) -> Account:
        """The account bound to the FHIR records ``anchors`` creates; the account is removed
        again when they cannot be created."""
        try:
            made = await anchors()
        except BaseException:
            await self._store.remove(account.account_id)
            raise
        return await self._change(account.account_id, lambda current: replace(
            current, practitioner=made.practitioner, practitioner_role=made.practitioner_role,
            organization=made.organization))

    async def _registered_anchors(self, registration: Registration, name: PersonName,
                                  email: str) -> Anchors:
        if registration.role == "pharmacist":
            pharmacy = Pharmacy(finess=registration.finess or "",
                                name=registration.pharmacy_name)
            return await self._directory.register_pharmacist(name, email=email,
                                                             pharmacy=pharmacy,
                                                             rpps=registration.rpps)
        return await self._directory.register_doctor(name, email=email,
                                                     rpps=registration.rpps or "")

    async def _user_anchors(self, user: NewUser, name: PersonName | None,
                            email: str) -> Anchors:
        if name is None:
            return Anchors()
        if user.role == "pharmacist":
            pharmacy = Pharmacy(finess=user.organization_finess or "", name=user.pharmacy_name)
            return await self._directory.register_pharmacist(name, email=email,
                                                             pharmacy=pharmacy, rpps=user.rpps)
        if user.role == "doctor":
            return await self._directory.register_doctor(name, email=email, rpps=user.rpps or "")
        return await self._directory.register_practitioner(name, email=email,
                                                           rpps=user.rpps or "")

    async def _send_verification(self, account: Account, root: str) -> None:
        token = await self._issue_token(account, "verify-email", self._verification_lifetime)
        await self._mail(mail.verification_email(
            account.email, link=f"{root}{VERIFY_EMAIL_PATH}?token={token}",
            hours=int(self._verification_lifetime.total_seconds() // 3600)))

    async def _issue_token(self, account: Account, purpose: TokenPurpose,
                           lifetime: timedelta) -> str:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._now()
        await self._store.save_token(AccountToken.of(
            token, account_id=account.account_id, purpose=purpose, created=now,
            expires_at=now + lifetime))
        return token

    async def _rehashed(self, account: Account, password: str) -> Account:
        """The account, its hash renewed when the hashing parameters changed since."""
        if not self._passwords.needs_rehash(account.password_hash):
            return account
        password_hash = await self._passwords.hash(password)
        try:
            return await self._change(account.account_id,
                                      lambda current: replace(current,
                                                              password_hash=password_hash))
        except AccountError:
            return account

    async def _change(self, account_id: str, change: Callable[[Account], Account]) -> Account:
        """Apply ``change`` to the stored account by compare-and-set, re-reading on conflict."""
        for _ in range(CHANGE_ATTEMPTS):
            current = await self._store.get(account_id)
            if current is None:
                raise AccountError("not-found", 404, text.NOT_FOUND)
            changed = change(current)
            if changed == current:
                return current
            changed = replace(changed, version=current.version + 1)
            try:
                await self._store.replace(changed)
            except AccountConflict:
                continue
            return changed
        raise AccountError("busy", 409, text.BUSY)

    async def _mail(self, email: AccountEmail) -> None:
        await self._mailer.send(email)

    async def _disabled(self, account_id: str) -> None:
        if self._on_disabled is not None:
            await self._on_disabled(account_id)


def _refusal(code: str, message: Text, *, retry_after: int | None = None,
             **params: object) -> SignInRefused:
    english, french = message.render(**params)
    return SignInRefused(code, french, english, retry_after=retry_after)


def _check_may_sign_in(account: Account, now: datetime) -> None:
    """Raise SignInRefused when an account whose password matched may not act now."""
    status = account.status_at(now)
    if status == "pending-verification":
        raise _refusal("unverified", text.UNVERIFIED)
    if status == "suspended":
        until = account.suspended_until or now
        raise SignInRefused("suspended",
                            text.SUSPENDED.fr.format(until=mail.french_date(until)),
                            text.SUSPENDED.en.format(until=mail.english_date(until)))
    if status == "terminated":
        raise _refusal("terminated", text.TERMINATED)
    if status == "deletion-requested":
        raise _refusal("deletion-requested", text.DELETION_REQUESTED)


def _verified(account: Account) -> bool:
    """A verified doctor (tier set) or a medical director."""
    return (account.role == "doctor" and account.tier is not None) or (
        account.role == "medical-director")


def _checked_email(email: str) -> str:
    normalised = normalise_email(email)
    if not is_email(normalised):
        raise AccountError("invalid-email", 422, text.INVALID_EMAIL)
    return normalised


def _check_password(password: str, email: str) -> None:
    problem = password_problem(password, email=email)
    if problem is not None:
        message, params = problem
        raise AccountError("weak-password", 422, message, **params)


def _checked_name(family: str | None, given: tuple[str, ...]) -> PersonName:
    cleaned = (family or "").strip()
    if not cleaned or len(cleaned) > MAX_NAME_LENGTH:
        raise AccountError("name-required", 422, text.NAME_REQUIRED)
    names = tuple(part.strip()[:MAX_NAME_LENGTH] for part in given if part.strip())
    return PersonName(family=cleaned, given=names)


def _user_name(user: NewUser) -> PersonName | None:
    """The practitioner's name an operator's account needs (None for admin and support, and
    for a medical director without an RPPS); refuses options that do not fit the role."""
    if user.role in ("admin", "support") or (user.role == "medical-director" and not user.rpps):
        if user.rpps:
            raise AccountError("not-for-role", 422, text.NOT_FOR_ROLE, option="--rpps",
                               role=user.role)
        if user.organization_finess:
            raise AccountError("not-for-role", 422, text.NOT_FOR_ROLE,
                               option="--organization-finess", role=user.role)
        return None
    if user.role == "pharmacist" and not user.organization_finess:
        raise AccountError("finess-required", 422, text.FINESS_REQUIRED)
    if user.role == "doctor" and not user.rpps:
        raise AccountError("rpps-required", 422, text.RPPS_REQUIRED)
    if user.role != "pharmacist" and user.organization_finess:
        raise AccountError("not-for-role", 422, text.NOT_FOR_ROLE,
                           option="--organization-finess", role=user.role)
    if user.organization_finess:
        check_finess(user.organization_finess)
    if user.rpps:
        check_rpps(user.rpps)
    return _checked_name(user.family_name, user.given_names)


def _checked_reason(reason: str) -> str:
    cleaned = reason.strip()
    if not cleaned:
        raise AccountError("reason-required", 422, text.REASON_REQUIRED)
    return cleaned[:MAX_REASON_LENGTH]
