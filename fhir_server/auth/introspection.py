"""What an issued token is worth: the ``Grant`` an access token carries on the FHIR API, its
RFC 7662 introspection answer, and its RFC 7009 revocation.

Spec: https://www.rfc-editor.org/rfc/rfc7662 and https://www.rfc-editor.org/rfc/rfc7009 (notes:
``docs/implementation/smart-backend-services.md``). An unknown, expired or revoked token
introspects as exactly ``{"active": false}``; revoking an unknown token is not an error.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_server.auth.model import AuthStore, IssuedToken
from fhir_server.auth.scopes import InvalidScope, ScopeSet, parse_scopes

INACTIVE: dict[str, Any] = {"active": False}
"""The whole introspection answer for a token that is not usable (RFC 7662 section 2.2)."""

_CORE_MEMBERS = frozenset({"active", "scope", "client_id", "exp", "iat", "token_type", "sub"})


@dataclass(frozen=True, slots=True)
class Grant:
    """What a request presenting an access token may do: the client's granted scopes, the
    account it was issued to (``subject``; None for a backend client) and the launch patient of
    its ``patient/`` scopes."""

    client_id: str
    scopes: ScopeSet
    subject: str | None = None
    patient: str | None = None


async def grant_for(store: AuthStore, token: str, *, now: datetime | None = None
                    ) -> Grant | None:
    """The grant of a usable access token; None when unknown, expired, revoked, a refresh
    token, or stored with scopes that no longer parse (fail closed)."""
    record = await store.find_token(token, now=now)
    if record is None or record.kind != "access":
        return None
    try:
        scopes = parse_scopes(record.scope)
    except InvalidScope:
        return None
    patient = record.context.get("patient")
    return Grant(client_id=record.client_id, scopes=scopes, subject=record.subject,
                 patient=patient if isinstance(patient, str) else None)


async def may_introspect(store: AuthStore, presented: str | None, *, operator_token: str,
                         now: datetime | None = None) -> bool:
    """Whether the bearer token of an introspection caller authenticates it: the operator token,
    or any usable access token of this server."""
    if not presented:
        return False
    if hmac.compare_digest(presented.encode(), operator_token.encode()):
        return True
    return await grant_for(store, presented, now=now) is not None


async def introspect(store: AuthStore, token: str, *, now: datetime | None = None
                     ) -> dict[str, Any]:
    """The RFC 7662 answer for ``token``: its claims while usable, else ``{"active": false}``."""
    record = await store.find_token(token, now=now)
    return INACTIVE.copy() if record is None else active_claims(record)


def active_claims(record: IssuedToken) -> dict[str, Any]:
    """The introspection members of a usable token, with its launch context when it has one."""
    claims: dict[str, Any] = {
        "active": True, "scope": record.scope, "client_id": record.client_id,
        "exp": int(record.expires_at.timestamp()), "iat": int(record.issued_at.timestamp())}
    if record.kind == "access":
        claims["token_type"] = "Bearer"
    if record.subject is not None:
        claims["sub"] = record.subject
    for name, value in record.context.items():
        if name not in _CORE_MEMBERS:
            claims[name] = value
    return claims


async def revoke(store: AuthStore, token: str, *, client_id: str | None,
                 now: datetime | None = None) -> bool:
    """Revoke ``token`` for a caller: a client (only its own tokens) or the operator
    (``client_id=None``, any token). True when a usable token was revoked; an unknown token,
    or another client's, changes nothing and is not an error (RFC 7009 section 2.2)."""
    record = await store.find_token(token, now=now)
    if record is None or (client_id is not None and record.client_id != client_id):
        return False
    return await store.revoke_token(token, now=now)
