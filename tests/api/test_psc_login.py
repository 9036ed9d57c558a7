"""Pro Santé Connect sign-in during a SMART app launch, on the real application: the PSC
button of the sign-in page, ``/auth/psc/start`` and ``/auth/psc/callback``, the code exchanged
at ``/auth/token``, the patient choice after a PSC sign-in, and the refusals (none of which
gives a code).

Our side is ``create_app`` driven by httpx over ASGI (with its cookie jar, as a browser); PSC
is the loopback stand-in of ``tests/support/psc_provider.py``, reached over real HTTP. The
accounts are real: a doctor created by an operator and verified in a tier by a medical
director, found by RPPS through ``AccountService.by_rpps``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from pydantic import SecretStr

from fhir_server.accounts import Account, AccountService, NewUser
from fhir_server.api.app import create_app
from fhir_server.api.psc_login import pending_key
from fhir_server.auth.model import Client, utc_now
from fhir_server.auth.pkce import s256_challenge
from fhir_server.auth.pro_sante_connect import PscClientConfig
from fhir_server.auth.psc_pending import open_pending, seal_pending
from fhir_server.engine.engine import Engine
from fhir_server.settings import Settings
from tests.support.psc_provider import (
    AUTHORIZE_PATH,
    DISCOVERY_PATH,
    TOKEN_PATH,
    PscBehaviour,
    PscPractitioner,
    PscProvider,
    authorize,
    psc_signing_key,
    running_psc_provider,
)

ORIGIN = "http://test"
FHIR_BASE = f"{ORIGIN}/fhir"
PSC_CALLBACK = f"{ORIGIN}/auth/psc/callback"
OPERATOR = "operator-token-0123456789"
PSC_CLIENT_ID = "pictaderm-test"
PSC_CLIENT_SECRET = "psc secret: 0123456789"
APP = "derm-viewer"
APP_CALLBACK = "https://app.example/callback"
APP_SCOPE = "openid fhirUser launch/patient offline_access patient/*.rs user/*.rs"
PASSWORD = "correct horse battery staple"
DOCTOR_RPPS = "10987654323"
UNVERIFIED_RPPS = "10000000017"
UNKNOWN_RPPS = "10111222336"
EXAMPLES = Path(__file__).resolve().parents[2] / "profiles" / "examples"
PATIENT = "camille-martin"


# --- pages -----------------------------------------------------------------------------------

@dataclass
class Form:
    action: str
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)

    def fields(self, **typed: str) -> dict[str, str]:
        """What a browser sends: the hidden fields, and ``typed``."""
        sent = {name: attributes.get("value", "") for name, attributes in self.inputs.items()
                if attributes.get("type") == "hidden"}
        sent.update(typed)
        return sent


@dataclass
class Page:
    forms: list[Form] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)

    def form_to(self, path: str) -> Form:
        found = [form for form in self.forms if urlsplit(form.action).path == path]
        assert len(found) == 1, f"{len(found)} forms post to {path}"
        return found[0]

    def posts_to(self, path: str) -> bool:
        return any(urlsplit(form.action).path == path for form in self.forms)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()
        self._alert_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.page.forms.append(Form(action=attributes.get("action", "")))
        elif tag == "input" and self.page.forms:
            self.page.forms[-1].inputs[attributes["name"]] = attributes
        if attributes.get("role") == "alert":
            self.page.alerts.append("")
            self._alert_depth = 1
        elif self._alert_depth:
            self._alert_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self._alert_depth:
            self._alert_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._alert_depth:
            self.page.alerts[-1] += data


def page_of(response: httpx.Response) -> Page:
    assert response.headers["content-type"].startswith("text/html"), response.text
    parser = _PageParser()
    parser.feed(response.text)
    return parser.page


# --- the application, PSC and the accounts ----------------------------------------------------

@dataclass
class Web:
    http: httpx.AsyncClient
    app: FastAPI
    provider: PscProvider
    accounts: AccountService
    doctor: Account
    director: Account

    @property
    def behaviour(self) -> PscBehaviour:
        return self.provider.behaviour


@pytest.fixture(scope="module")
def oidc_key_pem() -> str:
    """Our ID token signing key (made once: RSA generation is the slow part of a start)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def psc_key() -> RSAKey:
    return psc_signing_key()


@pytest.fixture
def provider(psc_key: RSAKey) -> Iterator[PscProvider]:
    behaviour = PscBehaviour(
        client_id=PSC_CLIENT_ID, client_secret=PSC_CLIENT_SECRET,
        redirect_uris=frozenset({PSC_CALLBACK}), signing_key=psc_key,
        practitioner=practitioner(DOCTOR_RPPS))
    with running_psc_provider(behaviour) as running:
        yield running


def practitioner(rpps: str) -> PscPractitioner:
    return PscPractitioner(id_nat_ps="8" + rpps, given_name="Julien", family_name="Moreau")


def settings_for(tmp_path: Path, oidc_key_pem: str, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data", "api_token": SecretStr(OPERATOR),
        "outbox_dispatch": False, "oidc_signing_key": SecretStr(oidc_key_pem)}
    values.update(changes)
    return Settings(**values)


def psc_settings(provider: PscProvider) -> dict[str, Any]:
    return {"psc_issuer": provider.issuer, "psc_client_id": PSC_CLIENT_ID,
            "psc_client_secret": SecretStr(PSC_CLIENT_SECRET)}


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The started application with the app client registered, and a browser on it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as http:
        await app.state.runtime.auth_store.add_client(Client(
            client_id=APP, name="Derm Viewer", kind="public", scope=APP_SCOPE,
            created=utc_now(), redirect_uris=(APP_CALLBACK,)))
        yield app, http


@pytest.fixture
async def web(tmp_path: Path, oidc_key_pem: str,
              provider: PscProvider) -> AsyncIterator[Web]:
    settings = settings_for(tmp_path, oidc_key_pem, **psc_settings(provider))
    async with running_app(settings) as (app, http):
        accounts: AccountService = app.state.accounts
        director = await accounts.create_user(NewUser(
            email="direction@pictaderm.example", role="medical-director", password=PASSWORD))
        doctor = await accounts.create_user(NewUser(
            email="julien@cabinet.example", role="doctor", password=PASSWORD,
            family_name="Moreau", given_names=("Julien",), rpps=DOCTOR_RPPS))
        doctor = await accounts.verify_doctor(doctor.account_id, "tier-2", director.principal())
        yield Web(http=http, app=app, provider=provider, accounts=accounts, doctor=doctor,
                  director=director)


# --- the browser's steps ----------------------------------------------------------------------

@dataclass(frozen=True)
class Pkce:
    verifier: str = "v" * 43 + "-pkce-verifier-of-the-app"

    @property
    def challenge(self) -> str:
        return s256_challenge(self.verifier)


def authorization_parameters(pkce: Pkce, **changes: str) -> dict[str, str]:
    parameters = {"response_type": "code", "client_id": APP, "redirect_uri": APP_CALLBACK,
                  "scope": "openid fhirUser offline_access user/*.rs", "state": "app-state-é",
                  "aud": FHIR_BASE, "code_challenge": pkce.challenge,
                  "code_challenge_method": "S256", "nonce": "app-nonce"}
    parameters.update(changes)
    return parameters


async def sign_in_page(http: httpx.AsyncClient, pkce: Pkce, **changes: str) -> Page:
    response = await http.get("/auth/authorize",
                              params=authorization_parameters(pkce, **changes))
    assert response.status_code == 200, response.text
    return page_of(response)


async def start(web: Web, pkce: Pkce, **changes: str) -> httpx.Response:
    """Click "Se connecter avec Pro Santé Connect" on the sign-in page."""
    page = await sign_in_page(web.http, pkce, **changes)
    return await web.http.post("/auth/psc/start",
                               data=page.form_to("/auth/psc/start").fields())


async def at_psc(started: httpx.Response) -> dict[str, str]:
    """The browser at PSC (no UI in the stand-in): what PSC sends back to our callback."""
    assert started.status_code == 302, started.text
    return await authorize(started.headers["location"])


async def psc_round_trip(web: Web, pkce: Pkce, **changes: str) -> httpx.Response:
    """Start, PSC, and our callback's answer."""
    back = await at_psc(await start(web, pkce, **changes))
    return await web.http.get("/auth/psc/callback", params=back)


def cookie_header(response: httpx.Response) -> str:
    cookies = [value for name, value in response.headers.multi_items()
               if name == "set-cookie" and value.startswith("psc_pending=")]
    assert len(cookies) == 1, cookies
    return cookies[0]


def assert_cookie_cleared(response: httpx.Response, http: httpx.AsyncClient) -> None:
    cleared = cookie_header(response)
    assert cleared.startswith('psc_pending="";') or cleared.startswith("psc_pending=;")
    assert "Max-Age=0" in cleared and "Path=/auth/psc" in cleared
    assert "psc_pending" not in http.cookies


def assert_no_code(response: httpx.Response) -> None:
    assert "location" not in response.headers
    assert "code=" not in response.text


async def exchange(web: Web, location: str, pkce: Pkce) -> dict[str, Any]:
    query = parse_qs(urlsplit(location).query)
    token = await web.http.post("/auth/token", data={
        "grant_type": "authorization_code", "code": query["code"][0],
        "redirect_uri": APP_CALLBACK, "code_verifier": pkce.verifier, "client_id": APP})
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body


# --- the sign-in --------------------------------------------------------------------------------

async def test_a_verified_doctor_signs_in_through_psc_and_the_app_gets_a_token(
        web: Web) -> None:
    pkce = Pkce()
    started = await start(web, pkce)
    assert started.status_code == 302
    assert started.headers["cache-control"] == "no-store"
    to_psc = urlsplit(started.headers["location"])
    assert f"{to_psc.scheme}://{to_psc.netloc}{to_psc.path}" == web.provider.root + AUTHORIZE_PATH
    assert parse_qs(to_psc.query)["redirect_uri"] == [PSC_CALLBACK]
    cookie = cookie_header(started)
    attributes = {part.strip().split("=")[0].lower(): part.strip()
                  for part in cookie.split(";")[1:]}
    assert cookie.startswith("psc_pending=v1.")
    assert attributes["path"] == "Path=/auth/psc" and attributes["max-age"] == "Max-Age=600"
    assert attributes["samesite"].lower() == "samesite=lax" and "httponly" in attributes
    assert "secure" not in attributes  # the public root is http here
    assert pkce.challenge not in cookie  # sealed: nothing of the request can be read

    back = await at_psc(started)
    answered = await web.http.get("/auth/psc/callback", params=back)
    assert answered.status_code == 302, answered.text
    assert_cookie_cleared(answered, web.http)
    location = urlsplit(answered.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == APP_CALLBACK
    assert parse_qs(location.query)["state"] == ["app-state-é"]

    body = await exchange(web, answered.headers["location"], pkce)
    role = web.doctor.principal().practitioner_role
    assert role is not None and body["scope"] == "openid fhirUser offline_access user/*.rs"
    published = KeySet.import_key_set((await web.http.get("/auth/jwks")).json())
    claims = jwt.decode(body["id_token"], published, algorithms=["RS256"]).claims
    assert claims["sub"] == web.doctor.account_id and claims["nonce"] == "app-nonce"
    assert claims["fhirUser"] == f"{FHIR_BASE}/{role}"
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    introspected = await web.http.post("/auth/introspect",
                                       data={"token": body["access_token"]}, headers=bearer)
    assert introspected.json()["fhirUser"] == f"{FHIR_BASE}/{role}"
    own_role = await web.http.get(f"/fhir/{role}", headers=bearer)
    assert own_role.status_code == 200 and own_role.json()["code"][0]["coding"][0]["code"] \
        == "tier-2"

    again = await start(web, Pkce())
    assert again.status_code == 302
    assert web.provider.requests(DISCOVERY_PATH) == 1  # one PSC client, its cache kept


async def test_the_code_of_a_psc_sign_in_needs_the_apps_pkce_verifier(web: Web) -> None:
    answered = await psc_round_trip(web, Pkce())
    query = parse_qs(urlsplit(answered.headers["location"]).query)
    wrong_verifier = await web.http.post("/auth/token", data={
        "grant_type": "authorization_code", "code": query["code"][0],
        "redirect_uri": APP_CALLBACK, "code_verifier": "w" * 64, "client_id": APP})
    assert wrong_verifier.status_code == 400
    assert wrong_verifier.json()["error"] == "invalid_grant"


async def test_the_pending_cookie_is_secure_behind_https(web: Web) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web.app),
                                 base_url="https://test") as https:
        page = await sign_in_page(https, Pkce(), aud="https://test/fhir")
        psc = page.form_to("/auth/psc/start")
        assert psc.action == "https://test/auth/psc/start"
        started = await https.post("/auth/psc/start", data=psc.fields())
    assert started.status_code == 302, started.text
    assert "secure" in [part.strip().lower() for part in cookie_header(started).split(";")]
    redirect_uri = parse_qs(urlsplit(started.headers["location"]).query)["redirect_uri"]
    assert redirect_uri == ["https://test/auth/psc/callback"]


async def test_a_standalone_patient_launch_asks_the_patient_after_psc(web: Web) -> None:
    await give_a_case_to(web.app.state.engine, web.doctor)
    pkce = Pkce()
    answered = await psc_round_trip(web, pkce, scope="openid launch/patient patient/*.rs")
    assert answered.status_code == 200, answered.text
    assert_no_code(answered)
    assert_cookie_cleared(answered, web.http)
    page = page_of(answered)
    assert not page.alerts and not page.posts_to("/auth/psc/start")
    form = page.form_to("/auth/authorize")
    assert "password" not in form.inputs and form.inputs["patient"]["type"] == "text"
    assert form.inputs["action"]["value"] == "choose-patient"
    assert form.inputs["account"]["value"] == web.doctor.account_id
    assert "julien@cabinet.example" in answered.text

    hidden = await web.http.post("/auth/authorize", data=form.fields(patient="lucas-bernard"))
    assert hidden.status_code == 400
    assert_no_code(hidden)
    refused = page_of(hidden)
    assert any("not accessible" in alert for alert in refused.alerts)
    form = refused.form_to("/auth/authorize")
    assert form.inputs["patient"]["value"] == "lucas-bernard"

    forged = form.fields(patient=PATIENT, account=web.director.account_id)
    forged_answer = await web.http.post("/auth/authorize", data=forged)
    assert forged_answer.status_code == 400
    assert_no_code(forged_answer)
    assert any("expired" in alert for alert in page_of(forged_answer).alerts)

    chosen = await web.http.post("/auth/authorize", data=form.fields(patient=PATIENT))
    assert chosen.status_code == 302, chosen.text
    body = await exchange(web, chosen.headers["location"], pkce)
    assert body["patient"] == PATIENT and body["scope"] == "openid launch/patient patient/*.rs"


async def give_a_case_to(engine: Engine, doctor: Account) -> None:
    """A patient, and the example case's Task owned by ``doctor``: a patient it may open
    (loaded by the operator, as an import)."""
    patient = json.loads((EXAMPLES / f"Patient-{PATIENT}.json").read_text())
    task = json.loads((EXAMPLES / "Task-skin-camille-martin.json").read_text())
    assert task["for"] == {"reference": f"Patient/{PATIENT}"}
    task["owner"] = {"reference": doctor.principal().practitioner_role}
    await engine.update("Patient", PATIENT, patient)
    await engine.update("Task", task["id"], task)


# --- refusals ---------------------------------------------------------------------------------

async def test_an_unknown_rpps_is_refused_with_the_sign_in_page(web: Web) -> None:
    web.behaviour.practitioner = practitioner(UNKNOWN_RPPS)
    answered = await psc_round_trip(web, Pkce())
    page = assert_refused_on_the_sign_in_page(answered, web.http)
    assert any(UNKNOWN_RPPS in alert and "Register" in alert for alert in page.alerts)


async def test_an_unverified_doctor_is_refused(web: Web) -> None:
    await web.accounts.create_user(NewUser(
        email="nouveau@cabinet.example", role="doctor", password=PASSWORD,
        family_name="Nouveau", rpps=UNVERIFIED_RPPS))
    web.behaviour.practitioner = practitioner(UNVERIFIED_RPPS)
    answered = await psc_round_trip(web, Pkce())
    page = assert_refused_on_the_sign_in_page(answered, web.http)
    assert any("wait for your account to be verified" in alert for alert in page.alerts)


async def test_a_cancelled_psc_sign_in_is_refused(web: Web) -> None:
    web.behaviour.deny = True
    page = assert_refused_on_the_sign_in_page(await psc_round_trip(web, Pkce()), web.http)
    assert any("cancelled" in alert for alert in page.alerts)


async def test_a_wrong_state_is_refused_before_the_code_is_spent(web: Web) -> None:
    back = await at_psc(await start(web, Pkce()))
    answered = await web.http.get("/auth/psc/callback",
                                  params={**back, "state": back["state"] + "x"})
    page = assert_refused_on_the_sign_in_page(answered, web.http)
    assert any("expired" in alert for alert in page.alerts)
    assert web.provider.requests(TOKEN_PATH) == 0


@pytest.mark.parametrize("cookie", ["tampered", "missing", "another key"])
async def test_a_callback_needs_the_cookie_this_server_sealed(web: Web, cookie: str) -> None:
    started = await start(web, Pkce())
    back = await at_psc(started)
    (kept,) = [stored for stored in web.http.cookies.jar if stored.name == "psc_pending"]
    sealed, domain = kept.value or "", kept.domain
    web.http.cookies.clear()
    if cookie == "tampered":
        position = len(sealed) // 2
        flipped = "A" if sealed[position] != "A" else "B"
        web.http.cookies.set("psc_pending", sealed[:position] + flipped + sealed[position + 1:],
                             domain=domain, path="/auth/psc")
    elif cookie == "another key":
        pending = open_pending(sealed, key=pending_key(web.app.state.authorization))
        web.http.cookies.set("psc_pending", seal_pending(pending, key=b"k" * 32),
                             domain=domain, path="/auth/psc")
    answered = await web.http.get("/auth/psc/callback", params=back)
    assert answered.status_code == 401
    assert_no_code(answered)
    assert_cookie_cleared(answered, web.http)
    assert any("did not start in this browser" in alert for alert in page_of(answered).alerts)
    assert web.provider.requests(TOKEN_PATH) == 0


def assert_refused_on_the_sign_in_page(response: httpx.Response,
                                       http: httpx.AsyncClient) -> Page:
    """401, no code, the cookie cleared, and the sign-in page again (PSC offered again)."""
    assert response.status_code == 401, response.text
    assert_no_code(response)
    assert_cookie_cleared(response, http)
    page = page_of(response)
    assert page.alerts
    assert page.posts_to("/auth/psc/start") and "password" in page.form_to(
        "/auth/authorize").inputs
    return page


async def test_start_needs_the_form_this_server_rendered(web: Web) -> None:
    page = await sign_in_page(web.http, Pkce())
    sent = page.form_to("/auth/psc/start").fields()
    sent["scope"] = "openid user/*.rs patient/*.rs"
    widened = await web.http.post("/auth/psc/start", data=sent)
    assert widened.status_code == 400 and "set-cookie" not in widened.headers
    assert any("expired" in alert for alert in page_of(widened).alerts)

    stranger = await web.http.get("/auth/psc/start", params={
        **page.form_to("/auth/psc/start").fields(), "client_id": "nobody"})
    assert stranger.status_code == 400 and "location" not in stranger.headers
    assert "set-cookie" not in stranger.headers
    assert web.provider.requests(AUTHORIZE_PATH) == 0


# --- configuration ------------------------------------------------------------------------------

async def test_without_psc_there_is_no_button_and_no_psc_sign_in(
        tmp_path: Path, oidc_key_pem: str) -> None:
    async with running_app(settings_for(tmp_path, oidc_key_pem)) as (app, http):
        assert app.state.runtime.psc is None
        page = await sign_in_page(http, Pkce())
        assert not page.posts_to("/auth/psc/start") and page.posts_to("/auth/authorize")
        started = await http.post("/auth/psc/start",
                                  data=page.form_to("/auth/authorize").fields())
        assert started.status_code == 404 and "set-cookie" not in started.headers


async def test_the_psc_button_carries_the_request_and_needs_no_script(web: Web) -> None:
    pkce = Pkce()
    response = await web.http.get("/auth/authorize", params=authorization_parameters(pkce))
    page = page_of(response)
    psc = page.form_to("/auth/psc/start")
    sent = psc.fields()
    assert sent.pop("form_token")
    assert sent == authorization_parameters(pkce)
    assert "Se connecter avec Pro Santé Connect" in response.text
    assert "Sign in with Pro Santé Connect" in response.text
    assert "<script" not in response.text


async def test_the_discovery_url_setting_is_what_the_runtime_reads(
        tmp_path: Path, oidc_key_pem: str, provider: PscProvider) -> None:
    settings = settings_for(tmp_path, oidc_key_pem, **psc_settings(provider),
                            psc_discovery_url=provider.root + "/nowhere/wallet-configuration")
    config = PscClientConfig.from_settings(settings)
    assert config is not None
    assert config.resolved_discovery_url() == provider.root + "/nowhere/wallet-configuration"
    async with running_app(settings) as (_, http):
        page = await sign_in_page(http, Pkce())
        started = await http.post("/auth/psc/start",
                                  data=page.form_to("/auth/psc/start").fields())
    assert started.status_code == 503 and "set-cookie" not in started.headers
    assert any("could not be reached" in alert for alert in page_of(started).alerts)
    assert provider.requests("/nowhere/wallet-configuration") == 1
    assert provider.requests(DISCOVERY_PATH) == 0

