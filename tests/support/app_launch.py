"""The SMART app launch on the real server, for tests: the FastAPI app (``create_app``) with its
lifespan started, reached through httpx's ASGI transport; its runtime's accounts (a pharmacist,
a pharmacist of another pharmacy, an admin); registered app clients; a patient of each pharmacy,
created by the operator with the pharmacy's access tag; the sign-in page read as a browser
reads it; PKCE helpers.

Accounts are hashed with the runtime's argon2id parameters (the production ones), which takes a
while, so a test module prepares one data directory once (``prepare_data_dir``) and each test
starts the server on a copy of it (``launch_kit``).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import FastAPI
from joserfc.jwk import KeySet, RSAKey
from pydantic import SecretStr
from stdnum import luhn

from fhir_server.access.policies import ORGANIZATION_TAG_SYSTEM
from fhir_server.accounts import Account, AccountService, NewUser
from fhir_server.api.app import create_app
from fhir_server.auth.authorization_code import AppAuthorization
from fhir_server.auth.client_secrets import hash_secret
from fhir_server.auth.model import AuthStore, Client, utc_now
from fhir_server.auth.pkce import s256_challenge
from fhir_server.runtime import Runtime
from fhir_server.settings import Settings
from fhir_server.storage.protocol import Store

ORIGIN: Final = "http://test"
FHIR_BASE: Final = f"{ORIGIN}/fhir"
TOKEN_URL: Final = f"{ORIGIN}/auth/token"
OPERATOR_TOKEN: Final = "operator-token-0123456789"
OPERATOR: Final = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
PASSWORD: Final = "correct horse battery staple"
CALLBACK: Final = "https://app.example/callback"
PUBLIC_APP: Final = "derm-viewer"
SECRET_APP: Final = "derm-pro"
KEYS_APP: Final = "derm-keys"
BACKEND: Final = "pharmacy-system"
APP_SCOPE: Final = ("openid fhirUser launch launch/patient offline_access patient/*.rs "
                    "user/*.rs user/Observation.cruds system/*.rs")
PHARMACIST_EMAIL: Final = "claire@pharmacie.example"
OTHER_PHARMACIST_EMAIL: Final = "marc@pharmacie-du-port.example"
ADMIN_EMAIL: Final = "admin@pictaderm.example"
FINESS: Final = "33000123" + luhn.calc_check_digit("33000123")
"""A made-up FINESS number with a valid key."""
OTHER_FINESS: Final = "13000456" + luhn.calc_check_digit("13000456")
"""Another pharmacy's made-up FINESS number."""
DATA: Final = "data"


def rsa_signing_key() -> RSAKey:
    """A fresh 2048-bit RSA private key (the smallest an ID token signer accepts)."""
    return RSAKey.generate_key(2048, private=True)


def signing_pem(key: RSAKey) -> str:
    """The PEM the ``oidc_signing_key`` setting takes."""
    pem = key.as_pem(private=True)
    return pem.decode("ascii") if isinstance(pem, bytes) else str(pem)


def settings_for(data_dir: Path, key_pem: str, **changes: Any) -> Settings:
    """The server's settings for tests: the operator token, the ID token key, no outbox
    dispatcher (account emails stay in the outbox, sealed)."""
    values: dict[str, Any] = {"data_dir": data_dir, "api_token": SecretStr(OPERATOR_TOKEN),
                              "oidc_signing_key": SecretStr(key_pem), "outbox_dispatch": False,
                              "change_events": False}
    values.update(changes)
    return Settings(**values)


@asynccontextmanager
async def running_app(settings: Settings, *, store: Store | None = None,
                      auth_store: AuthStore | None = None
                      ) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """``create_app(settings)`` with its lifespan started and an HTTP client on it (no
    credentials: each request says who it is)."""
    app = create_app(settings, store=store, auth_store=auth_store)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as http:
        yield app, http


def runtime_of(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


@dataclass(frozen=True, slots=True)
class Pkce:
    """A PKCE verifier and its S256 challenge."""

    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        return cls(verifier=verifier, challenge=s256_challenge(verifier))


@cache
def client_credentials() -> tuple[str, str, RSAKey]:
    """A client secret, its stored hash and a client's RSA key: made once per test process
    (scrypt and RSA key generation are what a kit would otherwise spend most time on)."""
    secret = secrets.token_urlsafe(32)
    return secret, hash_secret(secret), rsa_signing_key()


async def register_clients(store: AuthStore, *, secret_hash: str, client_key: RSAKey) -> None:
    """A public app, a confidential app with a secret, one with keys, and a backend."""
    now = utc_now()
    public_jwks = {"keys": [dict(client_key.as_dict(private=False), kid="app-key",
                                 alg="RS384")]}
    for client in (
        Client(client_id=PUBLIC_APP, name="Derm <Viewer>", kind="public", scope=APP_SCOPE,
               created=now, redirect_uris=(CALLBACK, "http://127.0.0.1:9000/cb?tenant=1")),
        Client(client_id=SECRET_APP, name="Derm Pro", kind="confidential", scope=APP_SCOPE,
               created=now, redirect_uris=(CALLBACK,), secret_hash=secret_hash),
        Client(client_id=KEYS_APP, name="Derm Keys", kind="confidential", scope=APP_SCOPE,
               created=now, redirect_uris=(CALLBACK,), jwks=public_jwks),
        Client(client_id=BACKEND, name="Pharmacy system", kind="backend",
               scope="system/*.rs", created=now, redirect_uris=(CALLBACK,),
               jwks=public_jwks)):
        await store.add_client(client)


def organization_tag(organization: str) -> dict[str, str]:
    """The meta.tag giving a resource to a pharmacy (``Organization/<id>``)."""
    return {"system": ORGANIZATION_TAG_SYSTEM, "code": organization}


async def operator_patient(http: httpx.AsyncClient, organization: str, *, family: str) -> str:
    """A Patient of ``organization``'s pharmacy, created with the operator token and the
    pharmacy's access tag; its id."""
    response = await http.post("/fhir/Patient", headers=OPERATOR, json={
        "resourceType": "Patient", "meta": {"tag": [organization_tag(organization)]},
        "name": [{"family": family, "given": ["Jeanne"]}], "gender": "female",
        "birthDate": "1961-07-02"})
    assert response.status_code == 201, response.text
    patient_id: str = response.json()["id"]
    return patient_id


def pharmacist(email: str, finess: str, pharmacy: str, family: str) -> NewUser:
    return NewUser(email=email, role="pharmacist", password=PASSWORD, family_name=family,
                   given_names=("Claire",), organization_finess=finess, pharmacy_name=pharmacy)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A data directory holding the accounts, clients and patients of a launch kit."""

    directory: Path
    pharmacist_id: str
    other_pharmacist_id: str
    admin_id: str
    patient: str
    """A patient of the pharmacist's pharmacy."""
    other_patient: str
    """A patient of the other pharmacist's pharmacy."""


def prepare_data_dir(directory: Path, key_pem: str) -> Prepared:
    """Fill ``directory`` (a new data dir) through a started server: run from synchronous code
    (a module-scoped fixture), outside any event loop."""
    return asyncio.run(_prepare(directory, key_pem))


async def _prepare(directory: Path, key_pem: str) -> Prepared:
    async with running_app(settings_for(directory, key_pem)) as (app, http):
        runtime = runtime_of(app)
        mine = await runtime.accounts.create_user(pharmacist(
            PHARMACIST_EMAIL, FINESS, "Pharmacie du Centre", "Martin"))
        theirs = await runtime.accounts.create_user(pharmacist(
            OTHER_PHARMACIST_EMAIL, OTHER_FINESS, "Pharmacie du Port", "Leroy"))
        admin = await runtime.accounts.create_user(NewUser(email=ADMIN_EMAIL, role="admin",
                                                           password=PASSWORD))
        _, secret_hash, client_key = client_credentials()
        await register_clients(runtime.auth_store, secret_hash=secret_hash,
                               client_key=client_key)
        assert mine.organization and theirs.organization
        assert mine.organization != theirs.organization
        patient = await operator_patient(http, mine.organization, family="Santoni")
        other_patient = await operator_patient(http, theirs.organization, family="Rossi")
    return Prepared(directory=directory, pharmacist_id=mine.account_id,
                    other_pharmacist_id=theirs.account_id, admin_id=admin.account_id,
                    patient=patient, other_patient=other_patient)


@dataclass
class LaunchKit:
    """Everything an app-launch test uses, the server started."""

    settings: Settings
    app: FastAPI
    http: httpx.AsyncClient
    runtime: Runtime
    pharmacist: Account
    admin: Account
    patient: str
    other_patient: str
    client_secret: str
    client_key: RSAKey

    @property
    def auth_store(self) -> AuthStore:
        return self.runtime.auth_store

    @property
    def accounts(self) -> AccountService:
        return self.runtime.accounts

    @property
    def authorization(self) -> AppAuthorization:
        authorization: AppAuthorization = self.app.state.authorization
        return authorization


@asynccontextmanager
async def launch_kit(tmp_path: Path, prepared: Prepared, key_pem: str,
                     **settings_changes: Any) -> AsyncIterator[LaunchKit]:
    """The server started on a copy of ``prepared`` under ``tmp_path``; stopped when the
    block ends."""
    data_dir = tmp_path / DATA
    shutil.copytree(prepared.directory, data_dir)
    settings = settings_for(data_dir, key_pem, **settings_changes)
    async with running_app(settings) as (app, http):
        runtime = runtime_of(app)
        found = (await runtime.accounts.get(prepared.pharmacist_id),
                 await runtime.accounts.get(prepared.admin_id))
        mine, admin = found
        assert mine is not None and admin is not None
        secret, _, client_key = client_credentials()
        yield LaunchKit(settings=settings, app=app, http=http, runtime=runtime,
                        pharmacist=mine, admin=admin, patient=prepared.patient,
                        other_patient=prepared.other_patient, client_secret=secret,
                        client_key=client_key)


def authorize_parameters(pkce: Pkce, **changes: str | None) -> list[tuple[str, str]]:
    """A valid authorization request's parameters (the public app, a standalone launch);
    ``changes`` replace (None removes) one."""
    parameters: dict[str, str | None] = {
        "response_type": "code", "client_id": PUBLIC_APP, "redirect_uri": CALLBACK,
        "scope": "openid fhirUser launch/patient offline_access patient/*.rs",
        "state": "state-é&1", "aud": FHIR_BASE, "code_challenge": pkce.challenge,
        "code_challenge_method": "S256", "nonce": "nonce-42"}
    parameters.update(changes)
    return [(name, value) for name, value in parameters.items() if value is not None]


def published_keys(jwks: Any) -> KeySet:
    """The key set of a JWKS document (as served, or as the signer gives it)."""
    return KeySet.import_key_set(jwks)


@dataclass
class Page:
    """What a test reads from an HTML page."""

    form_action: str | None = None
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    labels: set[str] = field(default_factory=set)
    alerts: list[str] = field(default_factory=list)
    style: str = ""


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()
        self._in_alert = 0
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.page.form_action = attributes.get("action")
        elif tag == "input":
            self.page.inputs[attributes["name"]] = attributes
        elif tag == "label":
            self.page.labels.add(attributes.get("for", ""))
        elif tag == "style":
            self._in_style = True
        if attributes.get("role") == "alert" or self._in_alert:
            self._in_alert += 1
            if attributes.get("role") == "alert":
                self.page.alerts.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._in_alert:
            self._in_alert -= 1
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_alert:
            self.page.alerts[-1] += data
        if self._in_style:
            self.page.style += data


def parse_page(response: httpx.Response) -> Page:
    assert response.headers["content-type"].startswith("text/html")
    parser = _PageParser()
    parser.feed(response.text)
    return parser.page


def sign_in_form(page: Page, **fields: str) -> dict[str, str]:
    """The form's fields as a browser would send them, with ``fields`` typed in."""
    sent = {name: attributes.get("value", "") for name, attributes in page.inputs.items()
            if attributes.get("type") == "hidden"}
    sent.update(fields)
    return sent


async def signed_in_code(http: httpx.AsyncClient, pkce: Pkce, *, email: str, password: str,
                         patient: str | None = None, **changes: str | None) -> str:
    """The code of a sign-in through the page, for the authorization request
    ``authorize_parameters(pkce, **changes)``."""
    page = await http.get("/auth/authorize", params=tuple(authorize_parameters(pkce, **changes)))
    assert page.status_code == 200, page.text
    typed = {"email": email, "password": password}
    if patient is not None:
        typed["patient"] = patient
    response = await http.post("/auth/authorize",
                               data=sign_in_form(parse_page(page), **typed))
    assert response.status_code == 302, response.text
    code: str = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
    return code


@dataclass(frozen=True, slots=True)
class Issued:
    """A code and the token answer its exchange got."""

    code: str
    answer: dict[str, Any]

    @property
    def access_token(self) -> str:
        return str(self.answer["access_token"])

    @property
    def refresh_token(self) -> str:
        return str(self.answer["refresh_token"])

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def secrets(self) -> tuple[str, ...]:
        """The code and the tokens: what must never be stored or logged in clear."""
        tokens = (self.answer.get("access_token"), self.answer.get("refresh_token"))
        return (self.code, *(token for token in tokens if isinstance(token, str)))


async def authorization_code_tokens(http: httpx.AsyncClient, *, email: str, password: str,
                                    scope: str, client_id: str = PUBLIC_APP,
                                    patient: str | None = None, **credentials: str) -> Issued:
    """A whole authorization-code flow: the page, the sign-in, the code's exchange
    (``credentials``: a confidential client's ``client_secret``…)."""
    pkce = Pkce.new()
    code = await signed_in_code(http, pkce, email=email, password=password, patient=patient,
                                client_id=client_id, scope=scope)
    response = await http.post("/auth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
        "code_verifier": pkce.verifier, "client_id": client_id, **credentials})
    assert response.status_code == 200, response.text
    return Issued(code=code, answer=response.json())
