"""The authorization server's records (clients, issued tokens, authorization codes, EHR launches)
and the ``AuthStore`` protocol.

Tokens, codes and launch ids are kept by their SHA-256 (``token_hash``), never in clear: whoever
reads the database cannot use what it holds. The tokens issued from one authorization (its code,
then each refresh) share a ``grant_id``, so that the whole family can be revoked at once.
Client secrets are kept as scrypt hashes (``client_secrets.py``). Times are UTC, kept to the
millisecond (the precision both backends store).
Implementation notes: ``docs/implementation/auth-store.md``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from fhir_server.auth.scopes import ScopeSet, parse_scopes
from fhir_server.storage.protocol import StoreError

ClientKind = Literal["backend", "confidential", "public"]
"""backend: a system using client_credentials with a signed assertion (private_key_jwt);
confidential: an app that authenticates (secret or keys); public: an app that cannot."""
ClientStatus = Literal["active", "revoked"]
TokenKind = Literal["access", "refresh"]

CLIENT_KINDS: tuple[ClientKind, ...] = ("backend", "confidential", "public")


class ClientExists(StoreError):
    """``add_client`` with a client_id already registered."""


def utc_millis(moment: datetime) -> datetime:
    """``moment`` in UTC, truncated to the millisecond; a naive datetime is taken as UTC."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.replace(microsecond=aware.microsecond // 1000 * 1000)


def utc_now() -> datetime:
    return utc_millis(datetime.now(UTC))


def token_hash(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Client:
    """A registered client. ``scope``: the most it may be granted (parse with ``scopes()``)."""

    client_id: str
    name: str
    kind: ClientKind
    scope: str
    created: datetime
    redirect_uris: tuple[str, ...] = ()
    jwks_url: str | None = None
    jwks: dict[str, Any] | None = None
    secret_hash: str | None = None
    organization: str | None = None
    """A FHIR reference (``Organization/123``) to the organization the client acts for."""
    status: ClientStatus = "active"

    @property
    def active(self) -> bool:
        return self.status == "active"

    def scopes(self) -> ScopeSet:
        """The allowed scopes, parsed (raises InvalidScope if the stored text is malformed)."""
        return parse_scopes(self.scope)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access or refresh token as stored: its hash, never the token itself.

    ``context``: the launch context given with it (``patient``, ``encounter``, ``fhirUser``,
    ``fhirContext``…); ``subject``: the user it was issued to (None for a backend client);
    ``grant_id``: the family of tokens issued from one authorization (None for a backend
    client's token, which has no family).
    """

    token_hash: str
    kind: TokenKind
    client_id: str
    scope: str
    issued_at: datetime
    expires_at: datetime
    subject: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    revoked_at: datetime | None = None
    grant_id: str | None = None

    def is_active(self, now: datetime) -> bool:
        """Not revoked and not yet expired at ``now``."""
        return self.revoked_at is None and utc_millis(now) < self.expires_at


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """An authorization code as stored (RFC 6749 section 4.1.2): its hash, never the code.

    What the token exchange needs: the client and ``redirect_uri`` it was issued to, the
    ``scope`` granted, the PKCE ``code_challenge`` (S256), the user (``subject``: an account
    id) and when they signed in (``auth_time``), the OIDC ``nonce``, the ``context`` the tokens
    will carry, and the ``grant_id`` the tokens issued from it will share.
    ``consumed_at``: when it was exchanged (a code is single-use).
    """

    code_hash: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    subject: str
    grant_id: str
    auth_time: datetime
    issued_at: datetime
    expires_at: datetime
    context: dict[str, Any] = field(default_factory=dict)
    nonce: str | None = None
    consumed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EhrLaunch:
    """An EHR launch (SMART ``launch`` parameter) as stored, by the hash of its id: the patient
    (an id), the encounter (an id) and other resources (``fhir_context``: relative references
    such as ``ServiceRequest/12``) an app is launched for, by whom (``subject``: an account id),
    until when. ``consumed_at``: when a code was issued with it (a launch is single-use)."""

    launch_hash: str
    subject: str
    patient: str
    issued_at: datetime
    expires_at: datetime
    encounter: str | None = None
    fhir_context: tuple[str, ...] = ()
    consumed_at: datetime | None = None


class AuthStore(Protocol):
    """Where clients, issued tokens, authorization codes, EHR launches and seen assertion ids
    (``jti``) live.

    Every method is safe to call concurrently. ``now`` arguments default to the current time;
    tests pass their own to move through a lifetime without waiting.
    """

    async def start(self) -> None:
        """Open the database; create the schema and indexes if missing."""

    async def close(self) -> None:
        """Release the connections (idempotent)."""

    async def add_client(self, client: Client) -> None:
        """Register ``client``; raises ClientExists if its client_id is taken."""

    async def get_client(self, client_id: str) -> Client | None:
        """The client (active or revoked), or None when unknown."""

    async def list_clients(self) -> tuple[Client, ...]:
        """Every client, oldest first."""

    async def revoke_client(self, client_id: str, *, now: datetime | None = None) -> int | None:
        """Mark the client revoked and revoke its live tokens; the number of tokens revoked,
        None when no such client."""

    async def save_token(self, token: IssuedToken) -> None:
        """Record an issued token (by its hash)."""

    async def find_token(self, token: str, *, now: datetime | None = None
                         ) -> IssuedToken | None:
        """The record of ``token`` (the token itself: it is hashed here) while it is usable:
        None when unknown, revoked or expired at ``now``."""

    async def revoke_token(self, token: str, *, now: datetime | None = None) -> bool:
        """Revoke ``token``; False when it was unknown or already revoked."""

    async def revoke_tokens_of_client(self, client_id: str, *,
                                      now: datetime | None = None) -> int:
        """Revoke every not yet revoked token of the client; how many were revoked."""

    async def revoke_grant(self, grant_id: str, *, now: datetime | None = None) -> int:
        """Revoke every not yet revoked token of the grant family; how many were revoked."""

    async def revoke_tokens_of_subject(self, subject: str, *,
                                       now: datetime | None = None) -> int:
        """Revoke every not yet revoked token issued to the user ``subject`` (an account id);
        how many were revoked."""

    async def use_refresh_token(self, token: str, *, client_id: str,
                                now: datetime | None = None) -> IssuedToken | None:
        """Spend the refresh token ``token`` of ``client_id``: mark it revoked, atomically, and
        return its record as it was before this call. None when it is unknown, expired at
        ``now``, not a refresh token or another client's (it is then left alone). A record
        whose ``revoked_at`` is set was already spent or revoked: a replay."""

    async def save_code(self, code: AuthorizationCode) -> None:
        """Record an issued authorization code (by its hash)."""

    async def consume_code(self, code: str, *, now: datetime | None = None
                           ) -> AuthorizationCode | None:
        """Mark the code (the code itself: it is hashed here) consumed, atomically, and return
        its record as it was before this call: ``consumed_at`` None for the first exchange, set
        for a replay. None when unknown, or expired at ``now`` without having been consumed."""

    async def save_launch(self, launch: EhrLaunch) -> None:
        """Record an EHR launch (by the hash of its id)."""

    async def find_launch(self, launch: str, *, now: datetime | None = None
                          ) -> EhrLaunch | None:
        """The launch (the id itself) while usable: None when unknown, consumed or expired."""

    async def consume_launch(self, launch: str, *, now: datetime | None = None
                             ) -> EhrLaunch | None:
        """Mark a usable launch consumed, atomically, and return it (consumed); None when it is
        unknown, already consumed or expired at ``now``."""

    async def remember_jti(self, client_id: str, jti: str, expires_at: datetime, *,
                           now: datetime | None = None) -> bool:
        """Record an assertion id until ``expires_at``; False when the client already used it
        and it has not expired at ``now`` (a replay)."""

    async def purge_expired(self, now: datetime | None = None) -> int:
        """Delete the tokens, codes, launches and assertion ids expired at ``now``; how many
        were deleted."""
