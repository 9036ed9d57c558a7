"""SMART app launch over HTTP on the real server: the sign-in page, signing in with a real
account, the code's exchange at the token endpoint, refresh, sign-out, the OIDC documents and
the refusals.

The app is ``create_app(settings)`` with its lifespan started: the runtime's stores, token
service and accounts, and the role policy deciding which patient a user may choose (a patient of
the pharmacist's pharmacy, not one of another pharmacy).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt

from fhir_server.api import authorize
from fhir_server.auth.authorization_code import AUTHORIZE_PARAMETERS
from tests.support.app_launch import (
    CALLBACK,
    FHIR_BASE,
    OPERATOR_TOKEN,
    ORIGIN,
    PASSWORD,
    PHARMACIST_EMAIL,
    PUBLIC_APP,
    SECRET_APP,
    LaunchKit,
    Page,
    Pkce,
    Prepared,
    authorize_parameters,
    launch_kit,
    operator_patient,
    parse_page,
    published_keys,
    sign_in_form,
)


@pytest.fixture
async def web(tmp_path: Path, prepared: Prepared, key_pem: str) -> AsyncIterator[LaunchKit]:
    async with launch_kit(tmp_path, prepared, key_pem, login_max_failures=3) as kit:
        yield kit


async def sign_in_page(web: LaunchKit, pkce: Pkce, **changes: str | None) -> Page:
    response = await web.http.get("/auth/authorize",
                                  params=tuple(authorize_parameters(pkce, **changes)))
    assert response.status_code == 200, response.text
    return parse_page(response)


async def code_through_the_page(web: LaunchKit, pkce: Pkce, **changes: str | None) -> str:
    page = await sign_in_page(web, pkce, **changes)
    response = await web.http.post("/auth/authorize", data=sign_in_form(
        page, email=PHARMACIST_EMAIL, password=PASSWORD, patient=web.patient))
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    code: str = query["code"][0]
    return code


def assert_framing_refused(response: httpx.Response) -> None:
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"


async def test_a_standalone_launch_end_to_end(web: LaunchKit) -> None:
    pkce = Pkce.new()
    page = await sign_in_page(web, pkce)
    assert page.form_action == f"{ORIGIN}/auth/authorize"
    response = await web.http.post("/auth/authorize", data=sign_in_form(
        page, email=PHARMACIST_EMAIL, password=PASSWORD, patient=web.patient))
    assert response.status_code == 302
    assert response.headers["cache-control"] == "no-store"
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == ["state-é&1"]

    token = await web.http.post("/auth/token", data={
        "grant_type": "authorization_code", "code": query["code"][0],
        "redirect_uri": CALLBACK, "code_verifier": pkce.verifier, "client_id": PUBLIC_APP})
    assert token.status_code == 200, token.text
    assert token.headers["cache-control"] == "no-store"
    assert token.headers["pragma"] == "no-cache"
    body = token.json()
    assert body["token_type"] == "Bearer" and body["patient"] == web.patient
    assert body["scope"] == "openid fhirUser launch/patient offline_access patient/*.rs"
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    chosen = await web.http.get(f"/fhir/Patient/{web.patient}", headers=bearer)
    assert chosen.status_code == 200 and chosen.json()["id"] == web.patient
    elsewhere = await web.http.get(f"/fhir/Patient/{web.other_patient}", headers=bearer)
    assert elsewhere.status_code == 404
    pharmacy = web.pharmacist.principal().organization
    assert pharmacy is not None
    sibling = await operator_patient(web.http, pharmacy, family="Voisin")
    assert (await web.http.get(f"/fhir/Patient/{sibling}", headers=bearer)).status_code == 404
    listed = (await web.http.get("/fhir/Patient", headers=bearer)).json()
    assert [entry["resource"]["id"] for entry in listed.get("entry", [])
            if entry["search"]["mode"] == "match"] == [web.patient]

    published = (await web.http.get("/auth/jwks")).json()
    claims = jwt.decode(body["id_token"], published_keys(published),
                        algorithms=["RS256"]).claims
    principal = web.pharmacist.principal()
    assert claims["iss"] == FHIR_BASE and claims["aud"] == PUBLIC_APP
    assert claims["sub"] == web.pharmacist.account_id
    assert claims["fhirUser"] == f"{FHIR_BASE}/{principal.practitioner_role}"

    refreshed = await web.http.post("/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"],
        "client_id": PUBLIC_APP})
    assert refreshed.status_code == 200, refreshed.text
    renewed = refreshed.json()
    assert renewed["refresh_token"] != body["refresh_token"]
    assert renewed["patient"] == web.patient

    out = await web.http.post("/auth/logout",
                              headers={"Authorization": f"Bearer {renewed['access_token']}"})
    assert out.status_code == 204
    for revoked in (body["access_token"], renewed["access_token"]):
        assert await web.auth_store.find_token(revoked) is None
    after = await web.http.post("/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": renewed["refresh_token"],
        "client_id": PUBLIC_APP})
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
    again = await web.http.post("/auth/logout",
                                headers={"Authorization": f"Bearer {renewed['access_token']}"})
    assert again.status_code == 401 and "invalid_token" in again.headers["www-authenticate"]


async def test_the_sign_in_page_names_the_app_lists_the_scopes_and_cannot_be_framed(
        web: LaunchKit) -> None:
    pkce = Pkce.new()
    response = await web.http.get("/auth/authorize",
                                  params=tuple(authorize_parameters(pkce)))
    assert response.status_code == 200
    assert_framing_refused(response)
    html = response.text
    assert '<html lang="fr">' in html and 'lang="en"' in html
    assert "Derm &lt;Viewer&gt;" in html and "<Viewer>" not in html
    assert "patient/*.rs" in html and "Lire, rechercher" in html and "Read, search" in html
    assert "<script" not in html and not re.search(r'(src|href)="', html)
    page = parse_page(response)
    assert page.inputs["email"]["type"] == "email"
    assert page.inputs["email"]["autocomplete"] == "username"
    assert page.inputs["password"]["type"] == "password"
    assert page.inputs["patient"]["type"] == "text"
    assert {"email", "password", "patient"} <= page.labels
    assert page.inputs["action"]["value"] == "sign-in"
    assert page.inputs["form_token"]["value"]
    hidden = {name: attributes["value"] for name, attributes in page.inputs.items()
              if attributes.get("type") == "hidden" and name in AUTHORIZE_PARAMETERS}
    assert hidden == dict(authorize_parameters(pkce))
    digest = base64.b64encode(hashlib.sha256(page.style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_the_authorize_parameters_may_come_in_a_post_body(web: LaunchKit) -> None:
    response = await web.http.post("/auth/authorize",
                                   data=dict(authorize_parameters(Pkce.new())))
    assert response.status_code == 200
    assert parse_page(response).inputs["client_id"]["value"] == PUBLIC_APP


async def test_no_patient_field_without_launch_patient(web: LaunchKit) -> None:
    page = await sign_in_page(web, Pkce.new(), scope="openid patient/*.rs")
    assert "patient" not in page.inputs


async def test_a_wrong_password_shows_the_form_again_then_the_lock_out(web: LaunchKit) -> None:
    page = await sign_in_page(web, Pkce.new())
    for _ in range(3):
        refused = await web.http.post("/auth/authorize", data=sign_in_form(
            page, email=PHARMACIST_EMAIL, password="not my password", patient=web.patient))
        assert refused.status_code == 401
        assert_framing_refused(refused)
        again = parse_page(refused)
        assert again.alerts and "location" not in refused.headers
        assert again.inputs["email"]["value"] == PHARMACIST_EMAIL
        assert "not my password" not in refused.text
        assert again.inputs["form_token"]["value"]
    locked = await web.http.post("/auth/authorize", data=sign_in_form(
        page, email=PHARMACIST_EMAIL, password=PASSWORD, patient=web.patient))
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert parse_page(locked).alerts


async def test_a_patient_the_user_may_not_open_shows_the_form_again(web: LaunchKit) -> None:
    page = await sign_in_page(web, Pkce.new())
    refused = await web.http.post("/auth/authorize", data=sign_in_form(
        page, email=PHARMACIST_EMAIL, password=PASSWORD, patient=web.other_patient))
    assert refused.status_code == 400 and "location" not in refused.headers
    again = parse_page(refused)
    assert any("not accessible" in alert for alert in again.alerts)
    assert again.inputs["patient"]["value"] == web.other_patient
    allowed = await web.http.post("/auth/authorize", data=sign_in_form(
        again, email=PHARMACIST_EMAIL, password=PASSWORD, patient=web.patient))
    assert allowed.status_code == 302


@pytest.mark.parametrize("tampering", ["scope", "redirect", "token", "expired", "missing"])
async def test_a_sign_in_needs_the_form_this_server_rendered(web: LaunchKit,
                                                             tampering: str) -> None:
    page = await sign_in_page(web, Pkce.new(), scope="openid patient/Patient.rs")
    sent = sign_in_form(page, email=PHARMACIST_EMAIL, password=PASSWORD)
    if tampering == "scope":
        sent["scope"] = "openid patient/*.rs"
    elif tampering == "redirect":
        sent["redirect_uri"] = "http://127.0.0.1:9000/cb?tenant=1"
    elif tampering == "token":
        sent["form_token"] = sent["form_token"][:-2] + "AA"
    elif tampering == "expired":
        sent["form_token"] = authorize.form_token(
            web.authorization.form_key,
            [(name, sent[name]) for name in AUTHORIZE_PARAMETERS if name in sent],
            now=0)
    else:
        del sent["form_token"]
    refused = await web.http.post("/auth/authorize", data=sent)
    assert refused.status_code == 400 and "location" not in refused.headers
    assert any("expired" in alert for alert in parse_page(refused).alerts)


def test_form_tokens_are_bound_to_their_parameters_and_expire() -> None:
    key = b"k" * 32
    parameters = [("client_id", "a"), ("scope", "openid")]
    token = authorize.form_token(key, parameters, now=1000)
    assert authorize.form_token_valid(key, token, parameters, now=1000 + 899)
    assert not authorize.form_token_valid(key, token, parameters, now=1000 + 901)
    assert not authorize.form_token_valid(key, token, [("client_id", "a")], now=1000)
    assert not authorize.form_token_valid(b"x" * 32, token, parameters, now=1000)
    for broken in ("", "1900.abc", "abc.def", token.replace(".", "")):
        assert not authorize.form_token_valid(key, broken, parameters, now=1000)


@pytest.mark.parametrize("changes", [
    {"client_id": "nobody"}, {"redirect_uri": "https://evil.example/cb"},
    {"redirect_uri": None}])
async def test_an_unknown_client_or_redirect_uri_gets_an_error_page_never_a_redirect(
        web: LaunchKit, changes: dict[str, str | None]) -> None:
    for response in (
            await web.http.get("/auth/authorize",
                               params=tuple(authorize_parameters(Pkce.new(), **changes))),
            await web.http.post("/auth/authorize",
                                data=dict(authorize_parameters(Pkce.new(), **changes)))):
        assert response.status_code == 400 and "location" not in response.headers
        assert_framing_refused(response)
        page = parse_page(response)
        assert page.alerts and "email" not in page.inputs


async def test_a_wrong_aud_goes_back_to_the_app_without_a_code(web: LaunchKit) -> None:
    response = await web.http.get("/auth/authorize", params=tuple(authorize_parameters(
        Pkce.new(), aud="https://elsewhere.example/fhir")))
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["state-é&1"]
    assert "code" not in query


async def test_the_token_endpoint_refuses_bad_exchanges(web: LaunchKit) -> None:
    pkce = Pkce.new()
    code = await code_through_the_page(web, pkce)
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                "client_id": PUBLIC_APP}
    for verifier_of in (lambda _: "", lambda sent: sent.challenge,
                        lambda _: Pkce.new().verifier):
        fresh = Pkce.new()
        other = await code_through_the_page(web, fresh)
        refused = await web.http.post("/auth/token", data={
            **exchange, "code": other, "code_verifier": verifier_of(fresh)})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    first = await web.http.post("/auth/token", data={**exchange,
                                                     "code_verifier": pkce.verifier})
    assert first.status_code == 200
    replay = await web.http.post("/auth/token", data={**exchange,
                                                      "code_verifier": pkce.verifier})
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert await web.auth_store.find_token(first.json()["access_token"]) is None
    random = await web.http.post("/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": "random", "client_id": PUBLIC_APP})
    assert random.status_code == 400 and random.json()["error"] == "invalid_grant"
    unsupported = await web.http.post("/auth/token", data={"grant_type": "password"})
    assert unsupported.status_code == 400
    assert unsupported.json()["error"] == "unsupported_grant_type"


async def tokens_through_the_page(web: LaunchKit, *, client_id: str = PUBLIC_APP,
                                  **credentials: str) -> dict[str, str]:
    pkce = Pkce.new()
    code = await code_through_the_page(web, pkce, client_id=client_id)
    response = await web.http.post("/auth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
        "code_verifier": pkce.verifier, "client_id": client_id, **credentials})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def test_an_app_revokes_its_refresh_token_and_the_grant_with_it(web: LaunchKit) -> None:
    tokens = await tokens_through_the_page(web)
    other = await tokens_through_the_page(web)
    anonymous = await web.http.post("/auth/revoke", data={"token": tokens["refresh_token"]})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    revoked = await web.http.post("/auth/revoke", data={"token": tokens["refresh_token"],
                                                        "client_id": PUBLIC_APP})
    assert revoked.status_code == 200
    for token in (tokens["access_token"], tokens["refresh_token"]):
        assert await web.auth_store.find_token(token) is None
    assert await web.auth_store.find_token(other["access_token"]) is not None
    refresh = await web.http.post("/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": PUBLIC_APP})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    # an access token goes alone; another client's token is left alone
    by_other = await web.http.post("/auth/revoke", data={
        "token": other["access_token"], "client_id": SECRET_APP,
        "client_secret": web.client_secret})
    assert by_other.status_code == 200
    assert await web.auth_store.find_token(other["access_token"]) is not None
    alone = await web.http.post("/auth/revoke", data={"token": other["access_token"],
                                                      "client_id": PUBLIC_APP})
    assert alone.status_code == 200
    assert await web.auth_store.find_token(other["access_token"]) is None
    assert await web.auth_store.find_token(other["refresh_token"]) is not None


async def test_a_confidential_app_revokes_with_basic_authentication(web: LaunchKit) -> None:
    tokens = await tokens_through_the_page(web, client_id=SECRET_APP,
                                           client_secret=web.client_secret)
    credentials = base64.b64encode(f"{SECRET_APP}:{web.client_secret}".encode()).decode()
    wrong = base64.b64encode(f"{SECRET_APP}:wrong".encode()).decode()
    refused = await web.http.post("/auth/revoke", headers={"Authorization": f"Basic {wrong}"},
                                  data={"token": tokens["access_token"]})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")
    revoked = await web.http.post("/auth/revoke",
                                  headers={"Authorization": f"Basic {credentials}"},
                                  data={"token": tokens["refresh_token"]})
    assert revoked.status_code == 200
    assert await web.auth_store.find_token(tokens["access_token"]) is None
    by_operator = await tokens_through_the_page(web)
    operator = await web.http.post("/auth/revoke", data={"token": by_operator["access_token"]},
                                   headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
    assert operator.status_code == 200
    assert await web.auth_store.find_token(by_operator["access_token"]) is None


async def test_a_failed_basic_authentication_is_challenged_with_basic(web: LaunchKit) -> None:
    wrong = base64.b64encode(f"{SECRET_APP}:wrong".encode()).decode()
    response = await web.http.post("/auth/token", headers={"Authorization": f"Basic {wrong}"},
                                   data={"grant_type": "authorization_code", "code": "x",
                                         "redirect_uri": CALLBACK, "code_verifier": "v" * 43})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_logout_needs_a_bearer_token(web: LaunchKit) -> None:
    response = await web.http.post("/auth/logout")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="fhir"'
    preflight = await web.http.options("/auth/logout", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"


async def test_the_openid_configuration_is_served_for_the_fhir_base_issuer(web: LaunchKit) -> None:
    at_issuer = await web.http.get("/fhir/.well-known/openid-configuration")
    at_root = await web.http.get("/.well-known/openid-configuration")
    assert at_issuer.status_code == at_root.status_code == 200
    document = at_issuer.json()
    assert at_root.json() == document
    assert at_issuer.headers["access-control-allow-origin"] == "*"
    assert document["issuer"] == FHIR_BASE
    assert document["jwks_uri"] == f"{ORIGIN}/auth/jwks"
    assert document["authorization_endpoint"] == f"{ORIGIN}/auth/authorize"
    assert document["token_endpoint"] == f"{ORIGIN}/auth/token"
    assert "RS256" in document["id_token_signing_alg_values_supported"]
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    smart = (await web.http.get("/fhir/.well-known/smart-configuration")).json()
    assert smart["issuer"] == document["issuer"] and smart["jwks_uri"] == document["jwks_uri"]
    assert "sso-openid-connect" in smart["capabilities"]


async def test_the_jwks_publishes_the_public_key_only(web: LaunchKit) -> None:
    response = await web.http.get("/auth/jwks")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    (key,) = response.json()["keys"]
    assert set(key) == {"kty", "n", "e", "kid", "alg", "use"}
    assert key["kid"] == web.authorization.signer.kid


async def test_a_sign_in_form_must_be_form_encoded(web: LaunchKit) -> None:
    response = await web.http.post("/auth/authorize", json={"action": "sign-in"})
    assert response.status_code == 400 and "location" not in response.headers
