"""Signing in through Pro Santé Connect during an app's authorization (issue #5 §3):
``GET|POST /auth/psc/start`` and ``GET /auth/psc/callback``.

The sign-in page (``authorize.py``) offers a "Se connecter avec Pro Santé Connect" button that
posts the authorization parameters and the form token here. ``start`` checks both again, begins
the OIDC flow with our callback URL and keeps the pending sign-in, together with the
authorization request (as the local path ``/auth/authorize?<parameters>``), in a sealed cookie
(AES-256-GCM, key derived from the ID token signing key) limited to ``/auth/psc``. ``callback``
opens the cookie, checks the authorization request again, lets ``ProSanteConnect.sign_in`` do
every protocol check and find the verified doctor's or medical director's account by RPPS,
then goes on exactly as after a password sign-in (``authorize.code_or_form``): the redirect to
the app with the code, or first the patient choice of a standalone ``launch/patient`` launch.
A refusal shows the sign-in page again (401), never a redirect with a code; the cookie is
cleared whatever the outcome. The PSC client lives on the runtime (``Runtime.psc``).
Notes: ``docs/implementation/pro-sante-connect.md``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhir_server.api.authorize import (
    FORM_EXPIRED,
    NOT_A_FORM,
    PSC_CALLBACK_PATH,
    PSC_START_PATH,
    Message,
    SignInForm,
    authorization_items,
    authorization_service,
    checked_request,
    code_or_form,
    error_page,
    form_items,
    form_token_valid,
    psc_of,
    redirect,
)
from fhir_server.api.negotiation import header, media_type
from fhir_server.api.oauth import AUTHORIZE_PATH, FORM, endpoint_url, public_root
from fhir_server.auth.authorization_code import AppAuthorization, AuthorizeRequest
from fhir_server.auth.pro_sante_connect import (
    PENDING_SECONDS,
    PscSignInRefused,
)
from fhir_server.auth.psc_pending import open_pending, seal_pending

logger = logging.getLogger(__name__)

PENDING_COOKIE: Final = "psc_pending"
COOKIE_PATH: Final = "/auth/psc"
PENDING_KEY_LABEL: Final = "psc pending v1"
"""Label of the cookie's key, derived from the ID token signing key (nothing hard-coded)."""
MAX_COOKIE_VALUE: Final = 3800
"""The longest sealed value sent as a cookie: browsers keep about 4,096 bytes per cookie,
name and attributes included."""
NOT_OFFERED: Final = Message(
    "La connexion par Pro Santé Connect n'est pas proposée sur ce serveur.",
    "Pro Santé Connect sign-in is not offered on this server.")
TOO_LONG: Final = Message(
    "Cette demande est trop longue pour une connexion par Pro Santé Connect : connectez-vous "
    "avec votre adresse électronique et votre mot de passe.",
    "This request is too long for a Pro Santé Connect sign-in: sign in with your email "
    "address and your password.")
_NOTABLE: Final = frozenset({"psc-invalid-response", "psc-unavailable"})
"""Refusals that point at PSC or at an attack rather than at the person (logged as warnings)."""


async def start(request: Request) -> Response:
    """``GET|POST /auth/psc/start``: the authorization request and its form token checked
    again, then 302 to PSC with the pending sign-in in a sealed cookie."""
    psc = psc_of(request)
    if psc is None:
        return error_page(NOT_OFFERED, status=404)
    items = await _submitted(request)
    if isinstance(items, Response):
        return items
    checked = await checked_request(request, authorization_items(items))
    if isinstance(checked, Response):
        return checked
    service = authorization_service(request)
    form = SignInForm(request, checked)
    if not form_token_valid(service.form_key, _first(items, "form_token"), checked.parameters):
        return form.show(FORM_EXPIRED, status=400)
    try:
        begun = await psc.begin(redirect_uri=endpoint_url(request, PSC_CALLBACK_PATH),
                                return_to=return_path(checked))
    except PscSignInRefused as refusal:
        _log(refusal)
        return form.show(Message(refusal.message_fr, refusal.message_en), status=503)
    sealed = seal_pending(begun.pending, key=pending_key(service))
    if len(sealed) > MAX_COOKIE_VALUE:
        return form.show(TOO_LONG, status=400)
    response = redirect(begun.authorization_url)
    response.set_cookie(PENDING_COOKIE, sealed, max_age=PENDING_SECONDS, path=COOKIE_PATH,
                        secure=_secure(request), httponly=True, samesite="lax")
    return response


async def callback(request: Request) -> Response:
    """``GET /auth/psc/callback``: the account PSC vouches for, then the redirect to the app
    with a code (or the patient choice); the sign-in page again on a refusal. The pending
    sign-in cookie is cleared in every case."""
    response = await _callback_answer(request)
    response.delete_cookie(PENDING_COOKIE, path=COOKIE_PATH, secure=_secure(request),
                           httponly=True, samesite="lax")
    return response


def return_path(authorize_request: AuthorizeRequest) -> str:
    """Where the sign-in resumes: the authorization request as a local path, kept sealed in
    the pending sign-in (``PendingSignIn.return_to``)."""
    return f"{AUTHORIZE_PATH}?{urlencode(authorize_request.parameters)}"


def pending_key(service: AppAuthorization) -> bytes:
    """The key that seals the pending sign-in cookie (derived from the ID token signing key)."""
    return service.signer.derived_key(PENDING_KEY_LABEL)


async def _callback_answer(request: Request) -> Response:
    psc = psc_of(request)
    if psc is None:
        return error_page(NOT_OFFERED, status=404)
    service = authorization_service(request)
    try:
        pending = open_pending(request.cookies.get(PENDING_COOKIE, ""),
                               key=pending_key(service))
    except PscSignInRefused as refusal:
        _log(refusal)
        return error_page(Message(refusal.message_fr, refusal.message_en), status=401)
    checked = await checked_request(
        request, parse_qsl(urlsplit(pending.return_to).query, keep_blank_values=True))
    if isinstance(checked, Response):
        return checked
    form = SignInForm(request, checked)
    try:
        user = await psc.sign_in(pending, request.query_params,
                                 find_by_rpps=service.users.by_rpps)
    except PscSignInRefused as refusal:
        _log(refusal)
        return form.refused(refusal)
    signed_in = replace(form, email=user.email, signed_in=user)
    if checked.asks_patient:
        return signed_in.show(None, status=200)
    return await code_or_form(signed_in, user, patient=None)


async def _submitted(request: Request) -> list[tuple[str, str]] | Response:
    """The fields sent to ``start``: the query of a GET, the form of a POST."""
    if request.method == "GET":
        return list(request.query_params.multi_items())
    if media_type(header(request, "content-type")) != FORM:
        return error_page(NOT_A_FORM)
    return form_items(await request.form())


def _first(items: list[tuple[str, str]], name: str) -> str:
    return next((value for key, value in items if key == name), "")


def _secure(request: Request) -> bool:
    """Whether the cookie is ``Secure``: when the public root is https."""
    return public_root(request).startswith("https://")


def _log(refusal: PscSignInRefused) -> None:
    level = logging.WARNING if refusal.code in _NOTABLE else logging.INFO
    logger.log(level, "Pro Santé Connect sign-in refused: %s (%s)", refusal.code,
               refusal.reason)


ROUTES: Final = [
    Route(PSC_START_PATH, start, methods=["GET", "POST"]),
    Route(PSC_CALLBACK_PATH, callback, methods=["GET"]),
]
"""The Pro Santé Connect sign-in's routes, to add to the application."""
