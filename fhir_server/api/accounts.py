"""The account endpoints over HTTP (JSON): registration, email verification, password reset,
the owner's deletion request, and administrators' and medical directors' actions.

Public: ``POST /accounts/register``, ``GET|POST /accounts/verify-email``,
``POST /accounts/forgot-password``, ``POST /accounts/reset-password``. Signed in (a person's
access token): ``POST /accounts/deletion-request``. Admin (an ``admin`` account, or the
operator token): ``POST /admin/accounts/{id}/warn|suspend|terminate``. Medical director:
``POST /admin/doctors/{id}/verify``. Operator or admin: ``POST /admin/accounts`` (an account
created verified, as ``fhir-server admin create-user``). Operator only: ``POST /admin/clients``
(a SMART client, as ``fhir-server clients add``). The service is ``request.app.state.accounts`` (an
``AccountService``); the caller comes from ``auth_gate.principal_of_request``.

Refusals are OperationOutcome-like JSON bodies: the stable code in ``details.coding``, the
French message in ``details.text`` with its English translation, the English one in
``diagnostics``; a 429 carries ``Retry-After``. Links in emails start with the service's
configured public root, else with this request's (``oauth.public_root``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhir_server.access.principal import Principal, Role
from fhir_server.accounts.model import AccountError
from fhir_server.accounts.service import (
    OPERATOR_ROLES,
    AccountService,
    NewUser,
    Registration,
    SelfRegisteredRole,
)
from fhir_server.api.auth_gate import access_of, is_operator, principal_of_request
from fhir_server.api.oauth import public_root
from fhir_server.api.responses import error_response
from fhir_server.auth.cli import ClientInputError, client_registration
from fhir_server.auth.model import AuthStore, ClientExists
from fhir_server.errors import FhirError
from fhir_server.validation.messages import TRANSLATION_EXTENSION, Text

ACCOUNT_ERROR_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/account-error"
MAX_BODY_BYTES: Final = 64 * 1024
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
ISSUE_TYPES: Final = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
                      409: "conflict", 422: "business-rule", 429: "throttled"}
SELF_REGISTERED: Final[dict[str, SelfRegisteredRole]] = {"pharmacist": "pharmacist",
                                                         "doctor": "doctor"}

BAD_BODY: Final = Text(en="The body must be a JSON object (at most 64 KiB).",
                       fr="Le corps doit être un objet JSON (64 Kio au plus).")
FIELD_REQUIRED: Final = Text(en="The field {name} is required (a string).",
                             fr="Le champ {name} est obligatoire (une chaîne).")
FIELD_TYPE: Final = Text(en="The field {name} must be {kind}.",
                         fr="Le champ {name} doit être {kind_fr}.")
BAD_DATE: Final = Text(
    en="The field until must be a date-time with its time zone (2026-12-01T00:00:00Z).",
    fr="Le champ until doit être une date et heure avec son fuseau (2026-12-01T00:00:00Z).")
SIGN_IN_NEEDED: Final = Text(en="Sign in first: send 'Authorization: Bearer <token>'.",
                             fr="Connectez-vous d'abord : envoyez « Authorization: Bearer "
                                "<jeton> ».")
ADMIN_ONLY: Final = Text(en="Only an administrator may do this.",
                         fr="Seul un administrateur peut faire cela.")
PERSON_ONLY: Final = Text(en="Only a person's account may ask for its deletion.",
                          fr="Seul le compte d'une personne peut demander sa suppression.")
OPERATOR_ONLY: Final = Text(en="Only the operator (the API token) may do this.",
                            fr="Seul l'exploitant (le jeton de l'API) peut faire cela.")
BAD_CLIENT: Final = Text(en="The client cannot be registered: {reason}.",
                         fr="Le client ne peut pas être enregistré : {reason}.")
CLIENT_ID_TAKEN: Final = Text(en="A client with this id exists already; send again.",
                              fr="Un client avec cet identifiant existe déjà ; renvoyez.")
UNKNOWN_ACCOUNT_ROLE: Final = Text(en="Unknown role {role}: use one of {roles}.",
                                   fr="Rôle inconnu {role} : utilisez l'un de {roles}.")
UNKNOWN_ROLE: Final = Text(en="role must be pharmacist or doctor.",
                           fr="role doit valoir pharmacist ou doctor.")

Endpoint = Callable[[Request], Awaitable[Response]]


def answering(work: Callable[[Request], Awaitable[Response]]) -> Endpoint:
    """The endpoint answering ``work``'s refusals: AccountError as a bilingual outcome,
    FhirError (the FHIR records refused) as the server's OperationOutcome."""

    async def endpoint(request: Request) -> Response:
        try:
            return await work(request)
        except AccountError as error:
            return refusal_response(error)
        except FhirError as error:
            return error_response(error)

    endpoint.__name__ = work.__name__
    endpoint.__doc__ = work.__doc__
    return endpoint


def refusal_response(error: AccountError) -> Response:
    """The JSON answer to a refused account request."""
    issue = {"severity": "error", "code": ISSUE_TYPES.get(error.status, "processing"),
             "details": {"coding": [{"system": ACCOUNT_ERROR_SYSTEM, "code": error.code}],
                         "text": error.message_fr,
                         "_text": {"extension": [{
                             "url": TRANSLATION_EXTENSION,
                             "extension": [{"url": "lang", "valueCode": "en"},
                                           {"url": "content", "valueString": error.message_en}],
                         }]}},
             "diagnostics": error.message_en}
    headers = dict(NO_STORE)
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="fhir"'
    return _json({"resourceType": "OperationOutcome", "issue": [issue]}, status=error.status,
                 headers=headers)


@answering
async def register(request: Request) -> Response:
    """``POST /accounts/register``: ``{"role": "pharmacist"|"doctor", "email", "password",
    "family_name", "given_names"?: [..], "rpps"?, "finess"?, "pharmacy_name"?}``."""
    body = await _body(request)
    role = SELF_REGISTERED.get(_text(body, "role"))
    if role is None:
        raise AccountError("invalid-role", 422, UNKNOWN_ROLE)
    registration = Registration(
        role=role, email=_text(body, "email"), password=_text(body, "password"),
        family_name=_text(body, "family_name"), given_names=_names(body, "given_names"),
        rpps=_optional_text(body, "rpps"), finess=_optional_text(body, "finess"),
        pharmacy_name=_optional_text(body, "pharmacy_name"))
    account = await _service(request).register(registration, link_root=public_root(request))
    return _json({"account_id": account.account_id, "status": account.status}, status=201)


@answering
async def verify_email(request: Request) -> Response:
    """``GET /accounts/verify-email?token=…`` (the emailed link) or ``POST`` ``{"token"}``."""
    if request.method == "GET":
        token = request.query_params.get("token") or ""
        if not token:
            raise AccountError("field-required", 400, FIELD_REQUIRED, name="token")
    else:
        token = _text(await _body(request), "token")
    account = await _service(request).verify_email(token)
    return _json({"account_id": account.account_id, "status": account.status})


@answering
async def forgot_password(request: Request) -> Response:
    """``POST /accounts/forgot-password`` ``{"email"}``: 202 whether the account exists or
    not."""
    email = _text(await _body(request), "email")
    await _service(request).request_password_reset(email, address=_address(request),
                                                   link_root=public_root(request))
    return _json({"status": "accepted"}, status=202)


@answering
async def reset_password(request: Request) -> Response:
    """``POST /accounts/reset-password`` ``{"token", "password"}``."""
    body = await _body(request)
    account = await _service(request).reset_password(_text(body, "token"),
                                                     _text(body, "password"))
    return _json({"account_id": account.account_id, "status": account.status})


@answering
async def deletion_request(request: Request) -> Response:
    """``POST /accounts/deletion-request``: the signed-in person asks for their account to be
    deleted."""
    principal = _caller(request)
    if principal.role == "system":
        raise AccountError("forbidden", 403, PERSON_ONLY)
    account = await _service(request).request_deletion(principal.subject)
    return _json({"account_id": account.account_id, "status": account.status}, status=202)


@answering
async def warn(request: Request) -> Response:
    """``POST /admin/accounts/{id}/warn`` ``{"reason"}``."""
    require_admin(request)
    reason = _text(await _body(request), "reason")
    account = await _service(request).warn(request.path_params["id"], reason)
    return _json({"account_id": account.account_id, "status": account.status,
                  "warnings": account.warnings})


@answering
async def suspend(request: Request) -> Response:
    """``POST /admin/accounts/{id}/suspend`` ``{"until": "<date-time>", "reason"}``."""
    require_admin(request)
    body = await _body(request)
    until = _moment(_text(body, "until"))
    account = await _service(request).suspend(request.path_params["id"], until,
                                              _text(body, "reason"))
    return _json({"account_id": account.account_id, "status": account.status,
                  "suspended_until": _iso(account.suspended_until)})


@answering
async def terminate(request: Request) -> Response:
    """``POST /admin/accounts/{id}/terminate`` ``{"reason"}``."""
    require_admin(request)
    reason = _text(await _body(request), "reason")
    account = await _service(request).terminate(request.path_params["id"], reason)
    return _json({"account_id": account.account_id, "status": account.status})


@answering
async def verify_doctor(request: Request) -> Response:
    """``POST /admin/doctors/{id}/verify`` ``{"tier": "tier-1"|"tier-2"|"tier-3"}``, by a
    medical director."""
    principal = _caller(request)
    tier = _text(await _body(request), "tier")
    account = await _service(request).verify_doctor(request.path_params["id"], tier,
                                                    principal)
    return _json({"account_id": account.account_id, "status": account.status,
                  "tier": account.tier, "practitioner_role": account.practitioner_role})


@answering
async def create_account(request: Request) -> Response:
    """``POST /admin/accounts`` ``{"email", "role", "password", "family_name"?,
    "given_names"?: [..], "rpps"?, "organization_finess"?, "organization_name"?}``, by the
    operator or an admin: a verified account, its FHIR records made as by ``fhir-server admin
    create-user`` (a doctor still awaits a medical director's verification)."""
    require_admin(request)
    body = await _body(request)
    user = NewUser(email=_text(body, "email"), role=_person_role(_text(body, "role")),
                   password=_text(body, "password"),
                   family_name=_optional_text(body, "family_name"),
                   given_names=_names(body, "given_names"), rpps=_optional_text(body, "rpps"),
                   organization_finess=_optional_text(body, "organization_finess"),
                   pharmacy_name=_optional_text(body, "organization_name"))
    account = await _service(request).create_user(user)
    return _json({"account_id": account.account_id, "role": account.role,
                  "status": account.status, "practitioner": account.practitioner,
                  "practitioner_role": account.practitioner_role,
                  "organization": account.organization}, status=201)


@answering
async def register_client(request: Request) -> Response:
    """``POST /admin/clients`` ``{"name", "scope", "public"?: bool, "secret"?: bool,
    "redirect_uris"?: [..], "jwks"?: {..}, "jwks_url"?, "organization"?}``, by the operator
    only: the client as ``fhir-server clients add`` registers it (same checks, whose messages
    name that command's options); the secret, when asked for, is in this answer only."""
    if not is_operator(request):
        if principal_of_request(request) is None and access_of(request) is None:
            raise AccountError("unauthenticated", 401, SIGN_IN_NEEDED)
        raise AccountError("forbidden", 403, OPERATOR_ONLY)
    body = await _body(request)
    try:
        registration = client_registration(
            name=_text(body, "name"), scope=_text(body, "scope"),
            public=_flag(body, "public"), secret=_flag(body, "secret"),
            redirect_uris=_names(body, "redirect_uris"), jwks_url=_optional_text(body, "jwks_url"),
            jwks=_optional_object(body, "jwks"),
            organization=_optional_text(body, "organization"))
    except ClientInputError as error:
        raise AccountError("invalid-client", 422, BAD_CLIENT, reason=str(error)) from None
    try:
        await _auth_store(request).add_client(registration.client)
    except ClientExists:
        raise AccountError("client-id-taken", 409, CLIENT_ID_TAKEN) from None
    client = registration.client
    answer: dict[str, Any] = {"client_id": client.client_id, "kind": client.kind,
                              "name": client.name, "scope": client.scope,
                              "redirect_uris": list(client.redirect_uris),
                              "organization": client.organization}
    if registration.secret is not None:
        answer["client_secret"] = registration.secret
    return _json(answer, status=201)


ACCOUNT_ROUTES: Final = [
    Route("/accounts/register", register, methods=["POST"]),
    Route("/accounts/verify-email", verify_email, methods=["GET", "POST"]),
    Route("/accounts/forgot-password", forgot_password, methods=["POST"]),
    Route("/accounts/reset-password", reset_password, methods=["POST"]),
    Route("/accounts/deletion-request", deletion_request, methods=["POST"]),
    Route("/admin/accounts/{id}/warn", warn, methods=["POST"]),
    Route("/admin/accounts/{id}/suspend", suspend, methods=["POST"]),
    Route("/admin/accounts/{id}/terminate", terminate, methods=["POST"]),
    Route("/admin/doctors/{id}/verify", verify_doctor, methods=["POST"]),
    Route("/admin/accounts", create_account, methods=["POST"]),
    Route("/admin/clients", register_client, methods=["POST"]),
]
"""Every account endpoint, for the application to mount at its root."""


def _service(request: Request) -> AccountService:
    service: AccountService = request.app.state.accounts
    return service


def _auth_store(request: Request) -> AuthStore:
    store: AuthStore = request.app.state.runtime.auth_store
    return store


def _caller(request: Request) -> Principal:
    principal = principal_of_request(request)
    if principal is None:
        if is_operator(request):
            raise AccountError("forbidden", 403, PERSON_ONLY)
        raise AccountError("unauthenticated", 401, SIGN_IN_NEEDED)
    return principal


def require_admin(request: Request) -> None:
    if is_operator(request):
        return
    principal = principal_of_request(request)
    if principal is None:
        raise AccountError("unauthenticated", 401, SIGN_IN_NEEDED)
    if principal.role != "admin":
        raise AccountError("forbidden", 403, ADMIN_ONLY)


def _address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise AccountError("bad-body", 400, BAD_BODY)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise AccountError("bad-body", 400, BAD_BODY) from None
    if not isinstance(body, dict):
        raise AccountError("bad-body", 400, BAD_BODY)
    return body


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise AccountError("field-required", 400, FIELD_REQUIRED, name=name)
    return value


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise AccountError("field-type", 400, FIELD_TYPE, name=name, kind="a string",
                           kind_fr="une chaîne")
    return value.strip()


def _person_role(text: str) -> Role:
    for role in OPERATOR_ROLES:
        if role == text:
            return role
    raise AccountError("unknown-role", 422, UNKNOWN_ACCOUNT_ROLE, role=text,
                       roles=", ".join(OPERATOR_ROLES))


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise AccountError("field-type", 400, FIELD_TYPE, name=name, kind="true or false",
                           kind_fr="true ou false")
    return value


def _optional_object(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AccountError("field-type", 400, FIELD_TYPE, name=name, kind="a JSON object",
                           kind_fr="un objet JSON")
    return value


def _names(body: dict[str, Any], name: str) -> tuple[str, ...]:
    value = body.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise AccountError("field-type", 400, FIELD_TYPE, name=name,
                           kind="a list of strings", kind_fr="une liste de chaînes")
    return tuple(value)


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise AccountError("bad-date", 400, BAD_DATE) from None
    if moment.tzinfo is None:
        raise AccountError("bad-date", 400, BAD_DATE)
    return moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json(document: dict[str, Any], *, status: int = 200,
          headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(document), status_code=status, media_type="application/json",
                    headers=headers or dict(NO_STORE))

