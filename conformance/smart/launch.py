"""The ``smart`` group's app-launch checks: a standalone launch of a public app with PKCE, from
the sign-in page to the FHIR API, the refresh token's rotation, revocation, and every way a
request must be refused.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html and RFC 7636. The kit acts
as the app and its user's browser: it reads the sign-in form, posts it with the user's email and
password (and the patient), and reads the redirect without following it. Each refused exchange
uses a code of its own, so one refusal cannot hide another; the launch's own code is sent again
last, as a server may revoke what a replayed code issued.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from functools import partial
from urllib.parse import parse_qs, urlencode, urlsplit

from conformance.client import CheckFailure, Reply
from conformance.smart.auth_client import HTML
from conformance.smart.context import Discovery, SmartRun
from conformance.smart.forms import HtmlForm, page_text, sign_in_form
from conformance.smart.id_token import verify_id_token
from conformance.smart.options import AppLaunchOptions
from conformance.smart.pkce import Pkce, new_pkce
from conformance.smart.tokens import (
    TokenAnswer,
    check_active,
    check_forbidden_search,
    check_inactive,
    check_unauthorized,
    expect_refusal,
    expect_status,
    random_token,
    token_answer,
)

SIGN_IN_ACTION = "sign-in"
WRONG_AUDIENCE = "https://fhir.conformance.invalid/fhir"
INVALID_GRANT = ({400}, {"invalid_grant"})
REFUSED_REFRESH = ({400, 401}, {"invalid_grant", "invalid_client"})
REFUSED_CLIENT = ({400, 401}, {"invalid_client", "invalid_grant", "unauthorized_client"})


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    """One authorization request: what goes in the URL, and the PKCE verifier kept back."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str
    aud: str
    pkce: Pkce

    def params(self) -> dict[str, str]:
        return {"response_type": "code", "client_id": self.client_id,
                "redirect_uri": self.redirect_uri, "scope": self.scope, "state": self.state,
                "aud": self.aud, "code_challenge": self.pkce.challenge,
                "code_challenge_method": self.pkce.method}


@dataclass(frozen=True, slots=True)
class Launch:
    """The app under test, its user, and the endpoints it uses."""

    run: SmartRun
    discovery: Discovery
    options: AppLaunchOptions
    authorize_url: str
    token_url: str

    def request(self) -> AuthorizeRequest:
        """A valid authorization request with a fresh state and PKCE pair."""
        return AuthorizeRequest(client_id=self.options.client_id,
                                redirect_uri=self.options.redirect_uri, scope=self.options.scope,
                                state=secrets.token_urlsafe(12), aud=self.run.kit.client.base,
                                pkce=new_pkce())

    def asks(self, scope: str) -> bool:
        return scope in self.options.scope.split()

    def exchange(self, code: str, verifier: str | None, *, client_id: str | None = None
                 ) -> Reply:
        """The token request for ``code`` (``verifier`` None: no ``code_verifier`` at all)."""
        fields = {"grant_type": "authorization_code", "code": code,
                  "redirect_uri": self.options.redirect_uri,
                  "client_id": client_id or self.options.client_id}
        if verifier is not None:
            fields["code_verifier"] = verifier
        return self.run.auth.post_form(self.token_url, fields)

    def refresh(self, refresh_token: str) -> Reply:
        return self.run.auth.post_form(self.token_url, {
            "grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_id": self.options.client_id})

    def revoke(self, token: str, hint: str) -> Reply:
        """RFC 7009 revocation by the public app (it authenticates with its client_id)."""
        return self.run.auth.post_form(self.discovery.endpoint("revocation_endpoint"), {
            "token": token, "token_type_hint": hint, "client_id": self.options.client_id})


def authorize_page_url(launch: Launch, request: AuthorizeRequest) -> str:
    return f"{launch.authorize_url}?{urlencode(request.params())}"


def submit_sign_in(launch: Launch, form: HtmlForm, page_url: str) -> Reply:
    """Post the sign-in form as the user would, with the button ``action=sign-in``."""
    values = {"email": launch.options.user, "password": launch.options.password,
              "action": SIGN_IN_ACTION}
    if launch.asks("launch/patient") or form.has("patient"):
        values["patient"] = launch.options.patient
    action = launch.run.auth.resolve(form.action or page_url, relative_to=page_url)
    if form.method == "get":
        return launch.run.auth.get(action, params=dict(form.submission(values)), accept=HTML)
    return launch.run.auth.post_form(action, form.submission(values), accept=HTML)


def final_answer(launch: Launch, request: AuthorizeRequest) -> Reply:
    """What the server answers a new browser for ``request``: its sign-in form, when it shows
    one, is submitted; any other answer to the authorization request is final."""
    launch.run.auth.forget_cookies()
    page_url = authorize_page_url(launch, request)
    page = launch.run.auth.get(page_url, accept=HTML)
    form = sign_in_form(page.text) if page.status == 200 else None
    return submit_sign_in(launch, form, page_url) if form is not None else page


def redirect_query(reply: Reply) -> dict[str, str] | None:
    """The query of a redirect's Location (first value of each name), None for no redirect."""
    if not 300 <= reply.status < 400:
        return None
    query = parse_qs(urlsplit(reply.header("location") or "").query)
    return {name: values[0] for name, values in query.items()}


def code_from(launch: Launch, request: AuthorizeRequest, reply: Reply) -> str:
    """The code of a redirect to the registered redirect_uri echoing the state."""
    query = redirect_query(reply)
    if query is None:
        raise CheckFailure(f"{reply.method} {reply.path}: expected a redirect to the "
                           f"redirect_uri, got {reply.status}: {page_text(reply.text)!r}")
    location = urlsplit(reply.header("location") or "")
    wanted = urlsplit(request.redirect_uri)
    if (location.scheme, location.netloc, location.path) != (wanted.scheme, wanted.netloc,
                                                             wanted.path):
        raise CheckFailure(f"the redirect goes to {location.scheme}://{location.netloc}"
                           f"{location.path}, expected {request.redirect_uri}")
    if "error" in query:
        raise CheckFailure(f"the redirect carries error={query['error']} "
                           f"({query.get('error_description', '')[:200]})")
    if query.get("state") != request.state:
        raise CheckFailure(f"the redirect's state is {query.get('state')!r}, expected "
                           f"{request.state!r}")
    code = query.get("code")
    if not code:
        raise CheckFailure("the redirect carries no code")
    return launch.run.vault.keep(code)


def fresh_code(launch: Launch) -> tuple[str, AuthorizeRequest]:
    """A code from a new sign-in, and the request it answers."""
    request = launch.request()
    return code_from(launch, request, final_answer(launch, request)), request


def _first_token(launch: Launch, code: str, pkce: Pkce) -> TokenAnswer:
    answer = token_answer(launch.exchange(code, pkce.verifier), launch.run.vault)
    if launch.asks("launch/patient") and answer.patient != launch.options.patient:
        raise CheckFailure(f"patient is {answer.patient!r}, expected {launch.options.patient!r}")
    if launch.asks("openid") and answer.id_token is None:
        raise CheckFailure("openid was asked: the answer has no id_token")
    if launch.asks("offline_access") and answer.refresh_token is None:
        raise CheckFailure("offline_access was asked: the answer has no refresh_token")
    return answer


def _reads_patient(launch: Launch, answer: TokenAnswer) -> None:
    path = f"Patient/{launch.options.patient}"
    patient = launch.run.fhir_get(path, answer.access_token).expect(200).resource("Patient")
    if patient.get("id") != launch.options.patient:
        raise CheckFailure(f"GET {path} answered Patient/{patient.get('id')}")


def _id_token(launch: Launch, answer: TokenAnswer) -> None:
    if answer.id_token is None:
        raise CheckFailure("the token answer has no id_token (is openid in --smart-scope?)")
    if launch.discovery.jwks is None:
        raise CheckFailure("the server's JWKS could not be read (see the OIDC checks)")
    verify_id_token(answer.id_token, launch.discovery.jwks,
                    issuer=launch.discovery.endpoint("issuer"),
                    client_id=launch.options.client_id)


def _code_reused(launch: Launch, code: str, pkce: Pkce) -> None:
    statuses, errors = INVALID_GRANT
    expect_refusal(launch.exchange(code, pkce.verifier), statuses=statuses, errors=errors)


def _refresh_token(answer: TokenAnswer) -> str:
    if answer.refresh_token is None:
        raise CheckFailure("the token answer has no refresh_token (is offline_access in "
                           "--smart-scope?)")
    return answer.refresh_token


def _rotated(launch: Launch, answer: TokenAnswer) -> TokenAnswer:
    old = _refresh_token(answer)
    renewed = token_answer(launch.refresh(old), launch.run.vault)
    if renewed.refresh_token is None or renewed.refresh_token == old:
        raise CheckFailure("the refresh answer does not carry a new refresh_token (rotation)")
    if renewed.access_token == answer.access_token:
        raise CheckFailure("the refresh answer gives the same access_token again")
    wider = set(renewed.scope.split()) - set(answer.scope.split())
    if wider:
        raise CheckFailure(f"the refreshed token has scopes the first had not: "
                           f"{', '.join(sorted(wider))}")
    return renewed


def _refresh_refused(launch: Launch, refresh_token: str) -> None:
    statuses, errors = REFUSED_REFRESH
    expect_refusal(launch.refresh(refresh_token), statuses=statuses, errors=errors)


def _revoked_access(launch: Launch, answer: TokenAnswer) -> None:
    expect_status(launch.revoke(answer.access_token, "access_token"), 200)
    check_unauthorized(launch.run, f"Patient/{launch.options.patient}", answer.access_token)


def _revoked_refresh(launch: Launch, answer: TokenAnswer) -> None:
    refresh_token = _refresh_token(answer)
    expect_status(launch.revoke(refresh_token, "refresh_token"), 200)
    _refresh_refused(launch, refresh_token)


def _verifier_refused(launch: Launch, case: str) -> None:
    code, request = fresh_code(launch)
    verifier = {"missing": None, "blank": "", "wrong": new_pkce().verifier,
                "plain": request.pkce.challenge}[case]
    statuses, errors = INVALID_GRANT
    expect_refusal(launch.exchange(code, verifier), statuses=statuses, errors=errors)


def _unknown_code(launch: Launch) -> None:
    statuses, errors = INVALID_GRANT
    expect_refusal(launch.exchange(random_token(), new_pkce().verifier), statuses=statuses,
                   errors=errors)


def _other_client(launch: Launch) -> None:
    code, request = fresh_code(launch)
    statuses, errors = REFUSED_CLIENT
    expect_refusal(launch.exchange(code, request.pkce.verifier,
                                   client_id=f"unknown-{launch.run.kit.run_id}"),
                   statuses=statuses, errors=errors)


def _no_code_for_wrong_audience(launch: Launch) -> None:
    reply = final_answer(launch, replace(launch.request(), aud=WRONG_AUDIENCE))
    query = redirect_query(reply) or {}
    if "code" in query:
        raise CheckFailure(f"a code was issued for aud={WRONG_AUDIENCE}")


def _no_redirect(launch: Launch, request: AuthorizeRequest) -> None:
    reply = final_answer(launch, request)
    if 300 <= reply.status < 400:
        target = urlsplit(reply.header("location") or "")
        raise CheckFailure(f"{reply.method} {reply.path}: answered {reply.status} redirecting "
                           f"to {target.scheme}://{target.netloc}{target.path}")
    if reply.status < 400:
        raise CheckFailure(f"{reply.method} {reply.path}: expected an error page (400), got "
                           f"{reply.status}: {page_text(reply.text)!r}")


def _negative_checks(launch: Launch) -> None:
    run = launch.run
    run.check("launch: an aud that is not the FHIR base gets no code",
              lambda: _no_code_for_wrong_audience(launch))
    for case in ("missing", "blank", "wrong", "plain"):
        label = "plain (equal to the challenge)" if case == "plain" else case
        run.check(f"launch: a {label} code_verifier answers 400 invalid_grant",
                  partial(_verifier_refused, launch, case))
    run.check("launch: an unknown code answers 400 invalid_grant", lambda: _unknown_code(launch))
    run.check("launch: an unknown client_id at the authorize endpoint gets an error page, no "
              "redirect", lambda: _no_redirect(launch, replace(
                  launch.request(), client_id=f"unknown-{run.kit.run_id}")))
    run.check("launch: a code exchanged by another client_id is refused (400/401)",
              lambda: _other_client(launch))
    run.check("launch: an unregistered redirect_uri gets an error page, no redirect",
              lambda: _no_redirect(launch, replace(
                  launch.request(), redirect_uri=launch.options.redirect_uri.rstrip("/")
                  + "/unregistered")))


def _token_checks(launch: Launch, answer: TokenAnswer) -> None:
    run, options = launch.run, launch.options
    run.check(f"launch: the access token reads Patient/{options.patient}",
              lambda: _reads_patient(launch, answer))
    run.check("launch: the id_token verifies with the JWKS (RS256): iss, aud, exp, sub, fhirUser",
              lambda: _id_token(launch, answer))
    run.check("launch: introspection of the token: active, scope, client_id, exp, patient",
              lambda: check_active(run, launch.discovery, answer, client_id=options.client_id,
                                   patient=answer.patient))
    run.check("launch: introspection of an unknown token answers exactly {\"active\": false}",
              lambda: check_inactive(run, launch.discovery, caller=answer.access_token))
    run.check("launch: a search outside the token's scopes answers 403 OperationOutcome",
              lambda: check_forbidden_search(run, answer))


def _refresh_checks(launch: Launch, answer: TokenAnswer) -> None:
    run = launch.run
    renewed: list[TokenAnswer] = []
    run.check("launch: refresh gives a new access token and a new refresh token (rotation), "
              "scopes within the first", lambda: renewed.append(_rotated(launch, answer)))
    if renewed:
        run.check("launch: the refresh token replaced by rotation is refused (400/401)",
                  lambda: _refresh_refused(launch, _refresh_token(answer)))
    run.check("launch: a random refresh token is refused (400/401)",
              lambda: _refresh_refused(launch, random_token()))
    latest = renewed[0] if renewed else answer
    run.check("launch: a revoked access token gets 401 on the FHIR API",
              lambda: _revoked_access(launch, latest))
    run.check("launch: a revoked refresh token is refused (400/401)",
              lambda: _revoked_refresh(launch, latest))


def run_launch(run: SmartRun, discovery: Discovery, options: AppLaunchOptions) -> None:
    """The app-launch checks; GroupStopped when the launch itself fails."""
    launch = run.require("launch: the authorize and token endpoints are advertised",
                         lambda: Launch(run, discovery, options,
                                        discovery.endpoint("authorization_endpoint"),
                                        discovery.endpoint("token_endpoint")))
    request = launch.request()
    code = run.require("launch: signing in redirects to the redirect_uri with a code and the "
                       "state", lambda: code_from(launch, request, final_answer(launch, request)))
    answer = run.require("launch: the code and its PKCE verifier get a token: Bearer, "
                         "expires_in, scope, patient, id_token, refresh_token, no-store",
                         lambda: _first_token(launch, code, request.pkce))
    _token_checks(launch, answer)
    _negative_checks(launch)
    _refresh_checks(launch, answer)
    run.check("launch: the code used a second time answers 400 invalid_grant",
              lambda: _code_reused(launch, code, request.pkce))
