"""The authorization code flow without HTTP, on the real server's runtime: its auth store, its
accounts and its role policy deciding which patient a user may open (a patient of the
pharmacist's pharmacy, not one of another pharmacy). Authorization requests, codes, their
exchange, refresh rotation and family revocation, launch contexts, client authentication and
sign-out, through ``AppAuthorization`` as the started app holds it."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jws, jwt
from joserfc.jwk import RSAKey

from fhir_server.access.policies import ORGANIZATION_TAG_SYSTEM
from fhir_server.auth.authorization_code import (
    AppAuthorization,
    AuthorizeRequest,
    PatientRefused,
    RedirectedError,
    ShownError,
    refreshed_scope,
    with_query,
    within_role,
)
from fhir_server.auth.launch import LaunchRefused, create_launch
from fhir_server.auth.model import utc_now
from fhir_server.auth.scopes import parse_scopes
from fhir_server.auth.token_endpoint import ASSERTION_TYPE, AppTokenResponse, OAuthError
from fhir_server.auth.users import SignedInUser, SignInRefused
from tests.support.app_launch import (
    BACKEND,
    CALLBACK,
    FHIR_BASE,
    KEYS_APP,
    OPERATOR,
    PASSWORD,
    PHARMACIST_EMAIL,
    PUBLIC_APP,
    SECRET_APP,
    TOKEN_URL,
    LaunchKit,
    Pkce,
    Prepared,
    authorize_parameters,
    launch_kit,
    published_keys,
)


@pytest.fixture
async def kit(tmp_path: Path, prepared: Prepared, key_pem: str) -> AsyncIterator[LaunchKit]:
    async with launch_kit(tmp_path, prepared, key_pem, authorization_code_seconds=60,
                          app_access_token_seconds=600, refresh_token_seconds=3600) as started:
        yield started


def service(kit: LaunchKit) -> AppAuthorization:
    """The authorization server the started app holds."""
    return kit.runtime.authorization


def pharmacist(kit: LaunchKit) -> SignedInUser:
    return SignedInUser(account_id=kit.pharmacist.account_id, email=kit.pharmacist.email,
                        principal=kit.pharmacist.principal())


def admin(kit: LaunchKit) -> SignedInUser:
    return SignedInUser(account_id=kit.admin.account_id, email=kit.admin.email,
                        principal=kit.admin.principal())


async def request_for(kit: LaunchKit, pkce: Pkce, **changes: str | None) -> AuthorizeRequest:
    return await service(kit).authorize_request(authorize_parameters(pkce, **changes),
                                                fhir_base=FHIR_BASE)


async def code_for(kit: LaunchKit, pkce: Pkce, *, user: SignedInUser | None = None,
                   with_patient: bool = True, **changes: str | None) -> str:
    """A code for the pharmacist (or ``user``), who chose the kit's patient unless
    ``with_patient`` is false."""
    request = await request_for(kit, pkce, **changes)
    return await service(kit).issue_code(request, user or pharmacist(kit),
                                         patient=kit.patient if with_patient else None,
                                         fhir_base=FHIR_BASE)


async def exchange(kit: LaunchKit, code: str, pkce: Pkce, *, authorization: str | None = None,
                   **changes: str | None) -> AppTokenResponse:
    parameters: dict[str, str | None] = {
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
        "code_verifier": pkce.verifier, "client_id": PUBLIC_APP}
    parameters.update(changes)
    return await service(kit).exchange_code(
        {name: value for name, value in parameters.items() if value is not None},
        authorization=authorization, token_url=TOKEN_URL, fhir_base=FHIR_BASE)


async def refresh(kit: LaunchKit, token: str, **changes: str | None) -> AppTokenResponse:
    parameters: dict[str, str | None] = {"grant_type": "refresh_token", "refresh_token": token,
                                         "client_id": PUBLIC_APP}
    parameters.update(changes)
    return await service(kit).refresh(
        {name: value for name, value in parameters.items() if value is not None},
        authorization=None, token_url=TOKEN_URL)


async def refused_exchange(kit: LaunchKit, code: str, pkce: Pkce, **changes: str | None
                           ) -> OAuthError:
    with pytest.raises(OAuthError) as refused:
        await exchange(kit, code, pkce, **changes)
    return refused.value


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# --- the authorization request ---------------------------------------------------------------


async def test_a_valid_request_keeps_the_asked_scopes_the_client_may_have(
        kit: LaunchKit) -> None:
    pkce = Pkce.new()
    request = await request_for(
        kit, pkce, scope="openid fhirUser launch/patient patient/*.rs user/Patient.cruds "
                         "system/*.rs profile patient/Observation.read")
    assert request.client.client_id == PUBLIC_APP
    assert request.redirect_uri == CALLBACK and request.state == "state-é&1"
    assert request.code_challenge == pkce.challenge and request.nonce == "nonce-42"
    # user/Patient.cruds is beyond the registration, system/ never reaches an app, profile is
    # unknown
    assert request.scopes.render() == ("openid fhirUser launch/patient patient/*.rs "
                                       "patient/Observation.read")
    assert [unknown.text for unknown in request.scopes.unknown] == ["profile"]
    assert request.asks_patient and request.launch is None
    assert dict(request.parameters)["code_challenge_method"] == "S256"


@pytest.mark.parametrize(("changes", "shown"), [
    ({"client_id": "nobody"}, "not registered"),
    ({"client_id": None}, "client_id"),
    ({"client_id": BACKEND}, "not registered"),
    ({"redirect_uri": "https://evil.example/callback"}, "redirect_uri"),
    ({"redirect_uri": CALLBACK + "/"}, "redirect_uri"),
    ({"redirect_uri": None}, "redirect_uri"),
])
async def test_a_bad_client_or_redirect_uri_is_shown_never_redirected(
        kit: LaunchKit, changes: dict[str, str | None], shown: str) -> None:
    with pytest.raises(ShownError, match=shown) as refused:
        await request_for(kit, Pkce.new(), **changes)
    assert refused.value.message_fr and refused.value.message_en


async def test_a_revoked_client_is_shown_an_error(kit: LaunchKit) -> None:
    await kit.auth_store.revoke_client(PUBLIC_APP)
    with pytest.raises(ShownError):
        await request_for(kit, Pkce.new())


async def test_a_repeated_redirect_uri_is_shown_an_error(kit: LaunchKit) -> None:
    items = [*authorize_parameters(Pkce.new()), ("redirect_uri", "https://evil.example/cb")]
    with pytest.raises(ShownError):
        await service(kit).authorize_request(items, fhir_base=FHIR_BASE)


@pytest.mark.parametrize(("changes", "error", "says"), [
    ({"aud": "https://elsewhere.example/fhir"}, "invalid_request", "aud"),
    ({"aud": None}, "invalid_request", "aud"),
    ({"response_type": "token"}, "unsupported_response_type", "code"),
    ({"response_type": None}, "invalid_request", "response_type"),
    ({"code_challenge": None}, "invalid_request", "code_challenge is required"),
    ({"code_challenge_method": "plain"}, "invalid_request", "plain"),
    ({"code_challenge_method": None}, "invalid_request", "S256"),
    ({"scope": None}, "invalid_scope", "required"),
    ({"scope": "patient/Observation.sr"}, "invalid_scope", "order"),
    ({"scope": "user/Practitioner.cruds system/*.rs"}, "invalid_scope", "none"),
    ({"launch": "no-such-launch", "scope": "launch openid"}, "invalid_request", "launch"),
    ({"launch": "no-such-launch"}, "invalid_scope", "'launch' scope"),
    ({"state": "x" * 5000}, "invalid_request", "longer"),
])
async def test_other_problems_go_back_to_the_app_without_a_code(
        kit: LaunchKit, changes: dict[str, str | None], error: str, says: str) -> None:
    with pytest.raises(RedirectedError) as refused:
        await request_for(kit, Pkce.new(), **changes)
    location = urlsplit(refused.value.location)
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    assert query["error"] == [error] and says in query["error_description"][0]
    assert "code" not in query
    if "state" not in changes:
        assert query["state"] == ["state-é&1"]


async def test_repeated_parameters_are_refused_on_the_redirect(kit: LaunchKit) -> None:
    items = [*authorize_parameters(Pkce.new()), ("scope", "openid")]
    with pytest.raises(RedirectedError) as refused:
        await service(kit).authorize_request(items, fhir_base=FHIR_BASE)
    assert refused.value.error == "invalid_request" and "scope" in refused.value.description


async def test_the_aud_may_end_with_a_slash(kit: LaunchKit) -> None:
    request = await request_for(kit, Pkce.new(), aud=FHIR_BASE + "/")
    assert request.client.client_id == PUBLIC_APP


def test_redirects_keep_the_registered_query() -> None:
    assert (with_query("http://127.0.0.1:9000/cb?tenant=1", {"code": "a b", "state": "s&t"})
            == "http://127.0.0.1:9000/cb?tenant=1&code=a+b&state=s%26t")


# --- codes and their exchange ----------------------------------------------------------------


async def test_sign_in_redirects_with_a_code_and_the_state(kit: LaunchKit) -> None:
    pkce = Pkce.new()
    request = await request_for(kit, pkce)
    location = await service(kit).sign_in(
        request, email=PHARMACIST_EMAIL, password=PASSWORD, address="192.0.2.1",
        patient=kit.patient, fhir_base=FHIR_BASE)
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(CALLBACK + "?")
    assert query["state"] == ["state-é&1"] and len(query["code"][0]) >= 43
    tokens = await exchange(kit, query["code"][0], pkce)
    assert tokens.patient == kit.patient


async def test_a_wrong_password_is_refused_by_the_user_directory(kit: LaunchKit) -> None:
    request = await request_for(kit, Pkce.new())
    with pytest.raises(SignInRefused) as refused:
        await service(kit).sign_in(request, email=PHARMACIST_EMAIL, password="wrong one",
                                   address="192.0.2.1", patient=kit.patient,
                                   fhir_base=FHIR_BASE)
    assert refused.value.code == "invalid-credentials"


async def test_the_code_exchange_answers_every_token_and_the_context(kit: LaunchKit) -> None:
    pkce = Pkce.new()
    code = await code_for(kit, pkce)
    answer = await exchange(kit, code, pkce)
    body = answer.body()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token",
                         "id_token", "patient"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    assert body["scope"] == "openid fhirUser launch/patient offline_access patient/*.rs"
    assert body["patient"] == kit.patient
    principal = kit.pharmacist.principal()
    fhir_user = f"{FHIR_BASE}/{principal.practitioner_role}"
    access = await kit.auth_store.find_token(answer.access_token)
    assert access is not None and access.kind == "access"
    assert access.subject == kit.pharmacist.account_id and access.client_id == PUBLIC_APP
    assert access.context == {"patient": kit.patient, "fhirUser": fhir_user, "iss": FHIR_BASE}
    assert access.expires_at - access.issued_at == timedelta(seconds=600)
    refresh_record = await kit.auth_store.find_token(answer.refresh_token or "")
    assert refresh_record is not None and refresh_record.kind == "refresh"
    assert refresh_record.grant_id == access.grant_id is not None
    assert refresh_record.expires_at - refresh_record.issued_at == timedelta(seconds=3600)
    claims = jwt.decode(answer.id_token or "", published_keys(service(kit).signer.jwks()),
                        algorithms=["RS256"]).claims
    assert claims["iss"] == FHIR_BASE and claims["sub"] == kit.pharmacist.account_id
    assert claims["aud"] == PUBLIC_APP and claims["nonce"] == "nonce-42"
    assert claims["fhirUser"] == fhir_user
    assert claims["exp"] > time.time() and claims["iat"] <= time.time() + 1
    assert claims["auth_time"] <= claims["iat"]


async def test_without_openid_and_offline_access_there_is_no_id_or_refresh_token(
        kit: LaunchKit) -> None:
    pkce = Pkce.new()
    code = await code_for(kit, pkce, scope="fhirUser patient/*.rs launch/patient")
    answer = await exchange(kit, code, pkce)
    assert answer.id_token is None and answer.refresh_token is None
    stored = await kit.auth_store.find_token(answer.access_token)
    assert stored is not None and "iss" not in stored.context
    assert stored.context["fhirUser"].startswith(f"{FHIR_BASE}/PractitionerRole/")


async def test_a_second_exchange_fails_and_revokes_what_the_first_issued(
        kit: LaunchKit) -> None:
    pkce = Pkce.new()
    code = await code_for(kit, pkce)
    first = await exchange(kit, code, pkce)
    replay = await refused_exchange(kit, code, pkce)
    assert replay.error == "invalid_grant" and "already used" in replay.description
    assert await kit.auth_store.find_token(first.access_token) is None
    assert await kit.auth_store.find_token(first.refresh_token or "") is None


@pytest.mark.parametrize(("verifier", "says"), [
    (None, "required"), ("", "required"), ("wrong", "43 to 128"),
    ("w" * 64, "does not match"), ("challenge", "plain")])
async def test_a_bad_verifier_is_invalid_grant_and_spends_the_code(
        kit: LaunchKit, verifier: str | None, says: str) -> None:
    pkce = Pkce.new()
    code = await code_for(kit, pkce)
    sent = pkce.challenge if verifier == "challenge" else verifier
    refused = await refused_exchange(kit, code, pkce, code_verifier=sent)
    assert refused.error == "invalid_grant" and says in refused.description
    again = await refused_exchange(kit, code, pkce)
    assert "already used" in again.description


async def test_the_redirect_uri_must_be_the_requests(kit: LaunchKit) -> None:
    pkce = Pkce.new()
    code = await code_for(kit, pkce)
    for sent in (None, "http://127.0.0.1:9000/cb?tenant=1"):
        refused = await refused_exchange(kit, code, pkce, redirect_uri=sent)
        assert refused.error == "invalid_grant"


async def test_a_code_only_works_for_its_client(kit: LaunchKit) -> None:
    pkce = Pkce.new()
    code = await code_for(kit, pkce, client_id=SECRET_APP)
    refused = await refused_exchange(kit, code, pkce)  # as the public app
    assert refused.error == "invalid_grant" and "another client" in refused.description


async def test_an_unknown_or_expired_code_is_invalid_grant(kit: LaunchKit) -> None:
    pkce = Pkce.new()
    assert (await refused_exchange(kit, "made-up", pkce)).error == "invalid_grant"
    request = await request_for(kit, pkce)
    code = await service(kit).issue_code(request, pharmacist(kit), patient=kit.patient,
                                         fhir_base=FHIR_BASE,
                                         now=utc_now() - timedelta(seconds=61))
    refused = await refused_exchange(kit, code, pkce)
    assert refused.error == "invalid_grant" and "expired" in refused.description


async def test_a_suspended_account_cannot_exchange_its_code(kit: LaunchKit) -> None:
    pkce = Pkce.new()
    code = await code_for(kit, pkce)
    await kit.accounts.suspend(kit.pharmacist.account_id, utc_now() + timedelta(days=1),
                               "review")
    refused = await refused_exchange(kit, code, pkce)
    assert refused.error == "invalid_grant" and "account" in refused.description


# --- role and launch context -----------------------------------------------------------------


async def test_scopes_are_clipped_to_the_users_role(kit: LaunchKit) -> None:
    pkce = Pkce.new()
    code = await code_for(kit, pkce, user=admin(kit), with_patient=False,
                          scope="openid launch/patient patient/*.rs user/*.rs")
    answer = await exchange(kit, code, pkce)
    assert answer.scope == "openid" and answer.patient is None
    with pytest.raises(RedirectedError) as refused:
        await code_for(kit, Pkce.new(), user=admin(kit), scope="patient/*.rs")
    assert refused.value.error == "access_denied"


def test_role_ceilings() -> None:
    asked = parse_scopes("openid launch/patient patient/*.rs user/Practitioner.read "
                         "user/Observation.rs")
    assert within_role(asked, "pharmacist") == asked
    assert within_role(asked, "support").render() == "openid user/Practitioner.read"
    assert within_role(asked, "system").scopes == ()


async def test_a_standalone_launch_needs_a_patient_the_user_may_access(
        kit: LaunchKit) -> None:
    request = await request_for(kit, Pkce.new())
    # another pharmacy's patient, an unknown one, none, a malformed id
    for chosen in (kit.other_patient, "patient-2", None, "  ", "bad id!"):
        with pytest.raises(PatientRefused) as refused:
            await service(kit).issue_code(request, pharmacist(kit), patient=chosen,
                                          fhir_base=FHIR_BASE)
        assert refused.value.message_fr and refused.value.message_en
    code = await service(kit).issue_code(request, pharmacist(kit),
                                         patient=f" {kit.patient} ", fhir_base=FHIR_BASE)
    assert code


async def test_an_ehr_launch_gives_its_context_once(kit: LaunchKit) -> None:
    created = await create_launch(
        kit.auth_store, kit.pharmacist.principal(), patient=kit.patient, encounter="enc-1",
        fhir_context=("ServiceRequest/case-1",), patient_access=service(kit).patient_access)
    pkce = Pkce.new()
    request = await request_for(kit, pkce, launch=created.launch,
                                scope="launch openid patient/*.rs")
    assert request.launch_patient == kit.patient and not request.asks_patient
    code = await service(kit).issue_code(request, pharmacist(kit), patient="ignored",
                                         fhir_base=FHIR_BASE)
    answer = await exchange(kit, code, pkce)
    assert answer.body()["patient"] == kit.patient and answer.body()["encounter"] == "enc-1"
    assert answer.body()["fhirContext"] == [{"reference": "ServiceRequest/case-1"}]
    stored = await kit.auth_store.find_token(answer.access_token)
    assert stored is not None and stored.context["encounter"] == "enc-1"
    with pytest.raises(RedirectedError) as used:
        await request_for(kit, Pkce.new(), launch=created.launch, scope="launch openid")
    assert used.value.error == "invalid_request"


async def test_an_ehr_launch_serves_only_the_user_who_made_it(kit: LaunchKit) -> None:
    created = await create_launch(kit.auth_store, kit.pharmacist.principal(),
                                  patient=kit.patient,
                                  patient_access=service(kit).patient_access)
    request = await request_for(kit, Pkce.new(), launch=created.launch, scope="launch openid")
    with pytest.raises(RedirectedError) as refused:
        await service(kit).issue_code(request, admin(kit), patient=None,
                                      fhir_base=FHIR_BASE)
    assert refused.value.error == "access_denied"
    # not consumed by the refusal: its user may still use it
    assert await service(kit).issue_code(request, pharmacist(kit), patient=None,
                                         fhir_base=FHIR_BASE)


async def hand_over_to_the_other_pharmacy(kit: LaunchKit, patient_id: str) -> None:
    """The operator gives ``patient_id`` the access tag of the other pharmacy's patient."""
    other = await kit.http.get(f"/fhir/Patient/{kit.other_patient}", headers=OPERATOR)
    (tag,) = [tag for tag in other.json()["meta"]["tag"]
              if tag["system"] == ORGANIZATION_TAG_SYSTEM]
    patient = (await kit.http.get(f"/fhir/Patient/{patient_id}", headers=OPERATOR)).json()
    patient["meta"]["tag"] = [tag]
    updated = await kit.http.put(f"/fhir/Patient/{patient_id}", headers=OPERATOR, json=patient)
    assert updated.status_code == 200, updated.text


async def test_an_ehr_launch_is_refused_when_the_patient_became_inaccessible(
        kit: LaunchKit) -> None:
    created = await create_launch(kit.auth_store, kit.pharmacist.principal(),
                                  patient=kit.patient,
                                  patient_access=service(kit).patient_access)
    request = await request_for(kit, Pkce.new(), launch=created.launch, scope="launch openid")
    await hand_over_to_the_other_pharmacy(kit, kit.patient)
    assert not await service(kit).patient_access(kit.pharmacist.principal(), kit.patient)
    with pytest.raises(RedirectedError) as refused:
        await service(kit).issue_code(request, pharmacist(kit), patient=None,
                                      fhir_base=FHIR_BASE)
    assert refused.value.error == "access_denied"


OTHER_PATIENT: Final = "<the other pharmacy's patient>"
"""Stands, in a parametrization, for ``kit.other_patient`` (known once the kit started)."""


@pytest.mark.parametrize(("changes", "says"), [
    ({"patient": OTHER_PATIENT}, "not accessible"),
    ({"patient": "patient-2"}, "not accessible"),
    ({"patient": "bad id!"}, "resource id"),
    ({"encounter": "bad id!"}, "resource id"),
    ({"fhir_context": ("case-1",)}, "Type/id"),
])
async def test_a_launch_is_refused_for_a_bad_or_inaccessible_context(
        kit: LaunchKit, changes: dict[str, Any], says: str) -> None:
    arguments: dict[str, Any] = {"patient": kit.patient, **changes}
    if arguments["patient"] == OTHER_PATIENT:
        arguments["patient"] = kit.other_patient
    with pytest.raises(LaunchRefused, match=says):
        await create_launch(kit.auth_store, kit.pharmacist.principal(),
                            patient_access=service(kit).patient_access, **arguments)


async def test_a_system_principal_cannot_make_a_launch(kit: LaunchKit) -> None:
    system = replace(kit.pharmacist.principal(), role="system", subject=BACKEND)
    # the pharmacy's system may read the patient: the launch is refused for what it is
    assert await service(kit).patient_access(system, kit.patient)
    with pytest.raises(LaunchRefused, match="system"):
        await create_launch(kit.auth_store, system, patient=kit.patient,
                            patient_access=service(kit).patient_access)


# --- client authentication -------------------------------------------------------------------


async def test_client_secret_basic_and_post_authenticate_a_confidential_app(
        kit: LaunchKit) -> None:
    pkce = Pkce.new()
    code = await code_for(kit, pkce, client_id=SECRET_APP)
    answer = await exchange(kit, code, pkce, client_id=None,
                            authorization=basic(SECRET_APP, kit.client_secret))
    assert answer.access_token
    pkce = Pkce.new()
    code = await code_for(kit, pkce, client_id=SECRET_APP)
    answer = await exchange(kit, code, pkce, client_id=SECRET_APP,
                            client_secret=kit.client_secret)
    assert answer.access_token


@pytest.mark.parametrize(("changes", "authorization", "error"), [
    ({"client_id": SECRET_APP}, None, "invalid_client"),  # no credentials
    ({"client_id": SECRET_APP, "client_secret": "wrong"}, None, "invalid_client"),
    ({"client_id": None}, "basic-wrong", "invalid_client"),
    ({"client_id": None}, "Basic not-base64!", "invalid_client"),
    ({"client_id": "derm-keys"}, "basic", "invalid_client"),  # body id differs
    ({"client_id": SECRET_APP, "client_secret": "x"}, "basic", "invalid_request"),
    ({"client_id": None}, None, "invalid_request"),
])
async def test_confidential_client_authentication_failures(
        kit: LaunchKit, changes: dict[str, str | None], authorization: str | None,
        error: str) -> None:
    pkce = Pkce.new()
    code = await code_for(kit, pkce, client_id=SECRET_APP)
    header = {"basic": basic(SECRET_APP, kit.client_secret),
              "basic-wrong": basic(SECRET_APP, "wrong")}.get(authorization or "",
                                                             authorization)
    with pytest.raises(OAuthError) as refused:
        await exchange(kit, code, pkce, authorization=header, **changes)
    assert refused.value.error == error
    assert refused.value.status == (401 if error == "invalid_client" else 400)
    # the code was not spent: the client, once authenticated, still gets its tokens
    answer = await exchange(kit, code, pkce, client_id=SECRET_APP,
                            client_secret=kit.client_secret)
    assert answer.access_token


def client_assertion(key: RSAKey, client_id: str) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 120,
              "iat": now, "jti": uuid.uuid4().hex}
    return jws.serialize_compact({"alg": "RS384", "typ": "JWT", "kid": "app-key"},
                                 json.dumps(claims).encode(), key, algorithms=["RS384"])


async def test_private_key_jwt_authenticates_a_confidential_app(kit: LaunchKit) -> None:
    pkce = Pkce.new()
    code = await code_for(kit, pkce, client_id=KEYS_APP)
    answer = await exchange(kit, code, pkce, client_id=None,
                            client_assertion_type=ASSERTION_TYPE,
                            client_assertion=client_assertion(kit.client_key, KEYS_APP))
    assert answer.access_token


async def test_a_backend_client_may_not_use_the_code_grant(kit: LaunchKit) -> None:
    with pytest.raises(OAuthError) as refused:
        await exchange(kit, "any", Pkce.new(), client_id=None,
                       client_assertion_type=ASSERTION_TYPE,
                       client_assertion=client_assertion(kit.client_key, BACKEND))
    assert refused.value.error == "unauthorized_client"


# --- refresh ---------------------------------------------------------------------------------


async def tokens_for(kit: LaunchKit) -> AppTokenResponse:
    pkce = Pkce.new()
    return await exchange(kit, await code_for(kit, pkce), pkce)


async def test_a_refresh_rotates_the_refresh_token(kit: LaunchKit) -> None:
    first = await tokens_for(kit)
    second = await refresh(kit, first.refresh_token or "")
    assert second.refresh_token not in (None, first.refresh_token)
    assert second.access_token != first.access_token
    assert second.scope == first.scope and second.patient == kit.patient
    assert second.id_token is None
    assert await kit.auth_store.find_token(first.refresh_token or "") is None
    assert await kit.auth_store.find_token(first.access_token) is not None
    renewed = await kit.auth_store.find_token(second.access_token)
    original = await kit.auth_store.find_token(first.access_token)
    assert renewed is not None and original is not None
    assert renewed.grant_id == original.grant_id and renewed.context == original.context
    third = await refresh(kit, second.refresh_token or "")
    assert third.access_token


async def test_a_replayed_refresh_token_revokes_the_whole_family(kit: LaunchKit) -> None:
    first = await tokens_for(kit)
    second = await refresh(kit, first.refresh_token or "")
    with pytest.raises(OAuthError) as refused:
        await refresh(kit, first.refresh_token or "")
    assert refused.value.error == "invalid_grant"
    for token in (first.access_token, second.access_token, second.refresh_token or ""):
        assert await kit.auth_store.find_token(token) is None
    other = await tokens_for(kit)  # another authorization of the same user is untouched
    assert await kit.auth_store.find_token(other.access_token) is not None


async def test_a_refresh_may_narrow_but_not_widen_the_scopes(kit: LaunchKit) -> None:
    first = await tokens_for(kit)
    with pytest.raises(OAuthError) as widened:
        await refresh(kit, first.refresh_token or "", scope="patient/*.cruds offline_access")
    assert widened.value.error == "invalid_scope"
    # the refused request did not spend the token
    narrowed = await refresh(kit, first.refresh_token or "",
                             scope="patient/Observation.rs offline_access")
    assert narrowed.scope == "patient/Observation.rs offline_access"
    last = await refresh(kit, narrowed.refresh_token or "", scope="patient/Observation.r")
    assert last.scope == "patient/Observation.r" and last.refresh_token is None


def test_refreshed_scope_rules() -> None:
    original = "openid patient/*.rs offline_access"
    assert refreshed_scope(original, None).render() == original
    assert refreshed_scope(original, " ").render() == original
    assert refreshed_scope(original, "patient/Patient.read").render() == "patient/Patient.read"
    for beyond in ("user/*.rs", "fhirUser", "profile"):
        with pytest.raises(OAuthError, match="beyond"):
            refreshed_scope(original, beyond)
    with pytest.raises(OAuthError) as malformed:
        refreshed_scope(original, "patient/Patient.sr")
    assert malformed.value.error == "invalid_scope"


async def test_a_refresh_token_works_only_for_its_client_and_is_not_spent_by_another(
        kit: LaunchKit) -> None:
    first = await tokens_for(kit)
    with pytest.raises(OAuthError) as refused:
        await refresh(kit, first.refresh_token or "", client_id=SECRET_APP,
                      client_secret=kit.client_secret)
    assert refused.value.error == "invalid_grant"
    assert (await refresh(kit, first.refresh_token or "")).access_token


async def test_random_and_access_tokens_do_not_refresh(kit: LaunchKit) -> None:
    first = await tokens_for(kit)
    for presented in ("random-value", first.access_token):
        with pytest.raises(OAuthError) as refused:
            await refresh(kit, presented)
        assert refused.value.error == "invalid_grant"
    assert await kit.auth_store.find_token(first.access_token) is not None


async def test_no_refresh_once_the_account_may_no_longer_act(kit: LaunchKit) -> None:
    first = await tokens_for(kit)
    await kit.accounts.terminate(kit.pharmacist.account_id, "left the pharmacy")
    with pytest.raises(OAuthError) as refused:
        await refresh(kit, first.refresh_token or "")
    assert refused.value.error == "invalid_grant"
    assert await kit.auth_store.find_token(first.access_token) is None


# --- sign-out --------------------------------------------------------------------------------


async def test_sign_out_revokes_the_session_of_the_token(kit: LaunchKit) -> None:
    first = await tokens_for(kit)
    second = await refresh(kit, first.refresh_token or "")
    other = await tokens_for(kit)
    assert await service(kit).sign_out(second.access_token) is True
    for token in (first.access_token, second.access_token, second.refresh_token or ""):
        assert await kit.auth_store.find_token(token) is None
    assert await kit.auth_store.find_token(other.access_token) is not None
    assert await service(kit).sign_out(second.access_token) is False
    assert await service(kit).sign_out("never-issued") is False
