"""The ``smart`` group's Backend Services checks: a ``client_credentials`` token got with a signed
assertion, used, introspected and revoked, and every way an assertion must be refused.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/backend-services.html. Success: 200,
Bearer, ``expires_in`` at most 300, the scope, no refresh token, ``no-store``. Refused with 401
``invalid_client``: another ``client_assertion_type``, an expired assertion, one whose ``exp`` is
more than five minutes ahead, a reused ``jti``, a wrong ``aud``, an unknown ``kid``. An unknown
grant type is 400 ``unsupported_grant_type``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial

from conformance.client import CheckFailure, Reply
from conformance.smart.context import Discovery, SmartRun
from conformance.smart.options import BackendOptions
from conformance.smart.scopes import covered_search_type
from conformance.smart.signing import AssertionClaims, assertion_claims, sign_assertion
from conformance.smart.tokens import (
    TokenAnswer,
    check_active,
    check_forbidden_search,
    check_inactive,
    check_unauthorized,
    expect_refusal,
    expect_status,
    token_answer,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
OTHER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
UNSUPPORTED_GRANT = "urn:conformance-kit:unsupported-grant"
MAX_EXPIRES_IN = 300
STALE = 600
"""Seconds by which the kit's refused assertions are expired or too long-lived: far beyond any
tolerated clock difference."""
INVALID_CLIENT = ({401}, {"invalid_client"})


@dataclass(frozen=True, slots=True)
class Backend:
    """The backend client under test and where it asks for tokens."""

    run: SmartRun
    discovery: Discovery
    options: BackendOptions
    token_url: str

    def claims(self) -> AssertionClaims:
        """The claims of a valid assertion, with a fresh ``jti``."""
        return assertion_claims(client_id=self.options.client_id, audience=self.token_url,
                                kid=self.options.kid)

    def authentication(self, claims: AssertionClaims) -> dict[str, str]:
        """The form fields that authenticate the client with an assertion of ``claims``."""
        return {"client_id": self.options.client_id, "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": sign_assertion(self.options.key, claims)}

    def request_token(self, claims: AssertionClaims,
                      changes: Mapping[str, str] | None = None) -> Reply:
        fields = {"grant_type": "client_credentials", "scope": self.options.scope,
                  **self.authentication(claims), **(changes or {})}
        return self.run.auth.post_form(self.token_url, fields)


def _issue(backend: Backend, claims: AssertionClaims) -> TokenAnswer:
    answer = token_answer(backend.request_token(claims), backend.run.vault)
    if answer.expires_in > MAX_EXPIRES_IN:
        raise CheckFailure(f"expires_in is {answer.expires_in}, SMART allows at most "
                           f"{MAX_EXPIRES_IN}")
    if answer.refresh_token is not None:
        raise CheckFailure("a backend token answer must not carry a refresh_token")
    others = [scope for scope in answer.scope.split() if not scope.startswith("system/")]
    if others:
        raise CheckFailure(f"granted scopes that are not system/ scopes: {', '.join(others)}")
    return answer


def _search(backend: Backend, answer: TokenAnswer) -> None:
    resource_type = covered_search_type(answer.scope)
    if resource_type is None:
        raise CheckFailure(f"the granted scope {answer.scope!r} lets the kit search none of the "
                           "types it tries: ask for one like system/Patient.rs")
    bundle = backend.run.fhir_get(resource_type, answer.access_token,
                                  params={"_count": "1"}).expect(200).resource("Bundle")
    if bundle.get("type") != "searchset":
        raise CheckFailure(f"expected a searchset Bundle, got {bundle.get('type')!r}")


def _refused(backend: Backend, claims: AssertionClaims, *, statuses: set[int],
             errors: set[str], changes: Mapping[str, str] | None = None) -> None:
    expect_refusal(backend.request_token(claims, changes), statuses=statuses, errors=errors)


def _revoke_then_unauthorized(backend: Backend, answer: TokenAnswer) -> None:
    fields = {"token": answer.access_token, **backend.authentication(backend.claims())}
    expect_status(backend.run.auth.post_form(backend.discovery.endpoint("revocation_endpoint"),
                                             fields), 200)
    check_unauthorized(backend.run, covered_search_type(answer.scope) or "Patient",
                       answer.access_token)


def _refusal_checks(backend: Backend, used: AssertionClaims) -> None:
    run, now = backend.run, int(time.time())
    statuses, errors = INVALID_CLIENT
    run.check("backend: an unknown grant_type answers 400 unsupported_grant_type",
              lambda: _refused(backend, backend.claims(), statuses={400},
                               errors={"unsupported_grant_type"},
                               changes={"grant_type": UNSUPPORTED_GRANT}))
    run.check("backend: another client_assertion_type answers 401 invalid_client",
              lambda: _refused(backend, backend.claims(), statuses=statuses, errors=errors,
                               changes={"client_assertion_type": OTHER_ASSERTION_TYPE}))
    cases = {
        "an expired assertion": replace(backend.claims(), issued_at=now - 2 * STALE,
                                        expires_at=now - STALE),
        "an assertion whose exp is more than 5 minutes ahead": replace(
            backend.claims(), expires_at=now + STALE),
        "an assertion reusing a jti": replace(backend.claims(), jti=used.jti),
        "an assertion whose aud is not the token endpoint": replace(
            backend.claims(), audience=run.kit.client.base),
        "an assertion signed with an unknown kid": replace(
            backend.claims(), kid=f"unknown-{run.kit.run_id}"),
    }
    for label, claims in cases.items():
        run.check(f"backend: {label} answers 401 invalid_client",
                  partial(_refused, backend, claims, statuses=statuses, errors=errors))


def run_backend(run: SmartRun, discovery: Discovery, options: BackendOptions) -> None:
    """The Backend Services checks; GroupStopped when no token can be had."""
    backend = run.require("backend: the token endpoint is advertised",
                          lambda: Backend(run, discovery, options,
                                          discovery.endpoint("token_endpoint")))
    claims = backend.claims()
    answer = run.require(
        f"backend: client_credentials with a {options.key.algorithm} assertion answers 200: "
        f"Bearer, expires_in ≤ {MAX_EXPIRES_IN}, scope, no refresh_token, no-store",
        lambda: _issue(backend, claims))
    run.check("backend: the token searches the FHIR API (200 searchset)",
              lambda: _search(backend, answer))
    run.check("backend: introspection of the token: active, scope, client_id, exp",
              lambda: check_active(run, discovery, answer, client_id=options.client_id))
    run.check("backend: introspection of an unknown token answers exactly {\"active\": false}",
              lambda: check_inactive(run, discovery, caller=answer.access_token))
    run.check("backend: a search outside the token's scopes answers 403 OperationOutcome",
              lambda: check_forbidden_search(run, answer))
    _refusal_checks(backend, claims)
    run.check("backend: the client revokes its token (200), which then gets 401 on the API",
              lambda: _revoke_then_unauthorized(backend, answer))
