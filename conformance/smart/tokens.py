"""What the token, introspection and revocation endpoints and the FHIR API must answer, shared
by the app-launch and Backend Services parts of the ``smart`` group.

RFC 6749 section 5 (token answers and errors), RFC 7662 (introspection), RFC 7009
(revocation), and SMART's rules on top: ``token_type`` Bearer, ``Cache-Control: no-store``, an
unknown token introspected as exactly ``{"active": false}``, 401 with ``WWW-Authenticate:
Bearer`` for a token the API does not accept, 403 with an OperationOutcome for a missing scope.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from conformance.client import CheckFailure, Reply
from conformance.smart.context import Discovery, SmartRun
from conformance.smart.scopes import uncovered_search_type
from conformance.smart.vault import Vault

DESCRIPTION_LIMIT = 200


@dataclass(frozen=True, slots=True)
class TokenAnswer:
    """A successful token response (RFC 6749 section 5.1) and its SMART members."""

    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None
    id_token: str | None
    patient: str | None


def json_object(reply: Reply) -> dict[str, Any]:
    """The reply's JSON object body; CheckFailure naming what came instead."""
    if not isinstance(reply.body, dict):
        kind = reply.header("content-type") or "no content type"
        raise CheckFailure(f"{reply.method} {reply.path}: expected a JSON object, got {kind} "
                           f"({len(reply.text)} characters)")
    return reply.body


def described(reply: Reply) -> str:
    """``status`` and, for an OAuth error body, ``error: error_description``."""
    body = reply.body if isinstance(reply.body, dict) else {}
    error = body.get("error")
    if not isinstance(error, str):
        return str(reply.status)
    detail = str(body.get("error_description") or "")[:DESCRIPTION_LIMIT]
    return f"{reply.status} {error}" + (f" ({detail})" if detail else "")


def expect_status(reply: Reply, *statuses: int) -> Reply:
    """``reply`` when its status is one of ``statuses``; else CheckFailure with the error."""
    if reply.status not in statuses:
        wanted = " or ".join(map(str, statuses))
        raise CheckFailure(f"{reply.method} {reply.path}: expected {wanted}, got "
                           f"{described(reply)}")
    return reply


def expect_no_store(reply: Reply) -> None:
    if "no-store" not in (reply.header("cache-control") or "").lower():
        raise CheckFailure(f"{reply.method} {reply.path}: expected Cache-Control: no-store, got "
                           f"{reply.header('cache-control')!r}")


def token_answer(reply: Reply, vault: Vault) -> TokenAnswer:
    """The token answer of a 200 with access_token, Bearer, expires_in, scope and no-store."""
    body = json_object(expect_status(reply, 200))
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise CheckFailure("the token answer has no access_token")
    vault.keep(access_token)
    for name in ("refresh_token", "id_token"):
        if isinstance(body.get(name), str):
            vault.keep(body[name])
    if str(body.get("token_type", "")).lower() != "bearer":
        raise CheckFailure(f"token_type is {body.get('token_type')!r}, expected Bearer")
    expires_in = body.get("expires_in")
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
        raise CheckFailure(f"expires_in is {expires_in!r}, expected a positive integer")
    if not isinstance(body.get("scope"), str) or not body["scope"].strip():
        raise CheckFailure(f"scope is {body.get('scope')!r}, expected the granted scopes")
    expect_no_store(reply)
    return TokenAnswer(access_token=access_token, expires_in=expires_in, scope=body["scope"],
                       refresh_token=_optional_string(body, "refresh_token"),
                       id_token=_optional_string(body, "id_token"),
                       patient=_optional_string(body, "patient"))


def _optional_string(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) and value else None


def expect_refusal(reply: Reply, *, statuses: Collection[int], errors: Collection[str]) -> None:
    """An OAuth error answer: a status of ``statuses``, an ``error`` of ``errors``, no token."""
    body = reply.body if isinstance(reply.body, dict) else {}
    if "access_token" in body:
        raise CheckFailure(f"{reply.method} {reply.path}: answered {reply.status} with an "
                           "access_token")
    wanted = f"{' or '.join(map(str, sorted(statuses)))} {' or '.join(sorted(errors))}"
    if reply.status not in statuses or body.get("error") not in errors:
        raise CheckFailure(f"{reply.method} {reply.path}: expected {wanted}, got "
                           f"{described(reply)}")


def random_token() -> str:
    """A token no server issued."""
    return "conformance-kit-" + secrets.token_urlsafe(24)


def introspect(run: SmartRun, discovery: Discovery, token: str, *, caller: str) -> Reply:
    """POST ``token`` to the introspection endpoint, the caller presenting ``caller``."""
    return run.auth.post_form(discovery.endpoint("introspection_endpoint"), {"token": token},
                              headers={"Authorization": f"Bearer {caller}"})


def check_active(run: SmartRun, discovery: Discovery, answer: TokenAnswer, *, client_id: str,
                 patient: str | None = None) -> None:
    """Introspection of a live token: active, its scope, client_id, a future exp (and the
    patient of its launch context)."""
    body = json_object(expect_status(introspect(run, discovery, answer.access_token,
                                                caller=answer.access_token), 200))
    if body.get("active") is not True:
        raise CheckFailure(f"active is {body.get('active')!r} for a token just issued")
    if set(str(body.get("scope", "")).split()) != set(answer.scope.split()):
        raise CheckFailure(f"scope is {body.get('scope')!r}, the token answer said "
                           f"{answer.scope!r}")
    if body.get("client_id") != client_id:
        raise CheckFailure(f"client_id is {body.get('client_id')!r}, expected {client_id!r}")
    exp = body.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool) or exp <= time.time():
        raise CheckFailure(f"exp is {exp!r}, expected a time ahead (seconds since 1970)")
    if patient is not None and body.get("patient") != patient:
        raise CheckFailure(f"patient is {body.get('patient')!r}, expected {patient!r}")


def check_inactive(run: SmartRun, discovery: Discovery, *, caller: str) -> None:
    """Introspection of a token nobody issued: HTTP 200 and exactly ``{"active": false}``."""
    reply = expect_status(introspect(run, discovery, random_token(), caller=caller), 200)
    if reply.body != {"active": False}:
        raise CheckFailure(f"expected exactly {{\"active\": false}}, got "
                           f"{reply.text[:DESCRIPTION_LIMIT]!r}")


def check_forbidden_search(run: SmartRun, answer: TokenAnswer) -> None:
    """A search of a type the token's scopes do not reach answers 403 with an OperationOutcome."""
    resource_type = uncovered_search_type(answer.scope)
    if resource_type is None:
        raise CheckFailure(f"the granted scope {answer.scope!r} lets the token search every "
                           "type the kit tries: ask for a narrower scope")
    reply = run.fhir_get(resource_type, answer.access_token, params={"_count": "1"})
    reply.expect(403).resource("OperationOutcome")


def check_unauthorized(run: SmartRun, path: str, token: str) -> None:
    """``path`` answers 401 with a Bearer challenge to ``token``."""
    reply = run.fhir_get(path, token).expect(401)
    challenge = reply.header("www-authenticate") or ""
    if not challenge.lower().startswith("bearer"):
        raise CheckFailure(f"the 401 has WWW-Authenticate {challenge!r}, expected a Bearer "
                           "challenge")
