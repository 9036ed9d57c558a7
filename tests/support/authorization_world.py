"""A populated server for authorization tests over HTTP: every person signs in through the real
authorization-code flow and every case is written with its pharmacist's own token.

- Two pharmacies (A and B), each with a pharmacist made by the operator (``create_user``), and a
  backend system of pharmacy A (``client_credentials``, registered with its organization).
- A doctor who registered (``POST /accounts/register``, the emailed token posted back) and was
  verified in tier 2 by a medical director (``POST /admin/doctors/{id}/verify``), the medical
  director, and an admin.
- Pharmacy A's case: one patient, two open requests, offered to tier 2 and to tier 3. Pharmacy
  B's case: one patient, one request offered to tier 1, and a Communication of B's request that
  names A's patient as subject (a reference B could write, to a patient B may not read).

``World.secrets`` holds every password, authorization code, access and refresh token and client
secret the world used, for the tests that look for them where they must never be.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any, Final

import httpx
from fastapi import FastAPI
from joserfc import jws
from joserfc.jwk import ECKey
from stdnum import luhn

from fhir_server.accounts import NewUser
from fhir_server.accounts.mail import MAIL_DIRECTORY, MAIL_TOPIC, MailSealer
from fhir_server.auth.model import AuthStore, Client, utc_now
from fhir_server.auth.token_endpoint import ASSERTION_TYPE
from fhir_server.crypto.keys import load_keys
from fhir_server.runtime import Runtime
from fhir_server.settings import Settings
from tests.support.app_launch import (
    CALLBACK,
    OPERATOR,
    PASSWORD,
    TOKEN_URL,
    Issued,
    authorization_code_tokens,
    client_credentials,
    pharmacist,
    runtime_of,
)
from tests.support.backends import mongo_is_live
from tests.support.pharmacy_case import CreatedCase, created_case, intake_bundle

WEB_APP: Final = "pictaderm-web"
"""The public app everybody signs in through."""
PRO_APP: Final = "pictaderm-pro"
"""A confidential app, authenticated with a client secret."""
PHARMACY_SYSTEM: Final = "pharmacy-a-system"
"""Pharmacy A's backend system, registered with pharmacy A as its organization."""
APP_SCOPES: Final = "openid fhirUser offline_access launch/patient patient/*.rs user/*.cruds"
USER_SCOPE: Final = "openid fhirUser offline_access user/*.cruds"
"""What pharmacists, doctors and the medical director ask for (then clipped to their role)."""
ADMIN_SCOPE: Final = ("openid fhirUser offline_access user/Practitioner.rs "
                      "user/PractitionerRole.rs user/Organization.rs")
"""What the admin asks for: the directory, the most an admin may have."""
PHARMACIST_A: Final = "claire@pharmacie-du-centre.example"
PHARMACIST_B: Final = "marc@pharmacie-du-port.example"
DOCTOR: Final = "julien@cabinet.example"
DIRECTOR: Final = "direction@pictaderm.example"
ADMIN: Final = "ops@pictaderm.example"
FINESS_A: Final = "33000123" + luhn.calc_check_digit("33000123")
FINESS_B: Final = "13000456" + luhn.calc_check_digit("13000456")
DOCTOR_RPPS: Final = "1098765432" + luhn.calc_check_digit("1098765432")
DOCTOR_TIER: Final = "tier-2"
CASE_A_TIERS: Final = ("tier-2", "tier-3")
"""Pharmacy A's two requests: the first one is offered to the doctor's tier, not the second."""
CASE_B_TIERS: Final = ("tier-1",)
_LINK_TOKEN: Final = re.compile(r"https?://\S+token=([A-Za-z0-9_\-]+)")


@dataclass(frozen=True, slots=True)
class Persona:
    """A person who signed in: the account and the tokens of that sign-in."""

    account_id: str
    email: str
    issued: Issued

    @property
    def headers(self) -> dict[str, str]:
        return self.issued.bearer


@dataclass(frozen=True)
class World:
    """The started server and who and what it holds (see the module doc)."""

    app: FastAPI
    http: httpx.AsyncClient
    pharmacist_a: Persona
    pharmacist_b: Persona
    doctor: Persona
    director: Persona
    admin: Persona
    system_a: dict[str, str]
    """Pharmacy A's backend system's Authorization header."""
    organization_a: str
    organization_b: str
    case_a: CreatedCase
    case_b: CreatedCase
    cross_note: str
    """The id of pharmacy B's Communication naming pharmacy A's patient."""
    system_key: ECKey
    secrets: list[str] = field(default_factory=list)

    @property
    def runtime(self) -> Runtime:
        return runtime_of(self.app)

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.state.settings
        return settings

    async def sign_in(self, email: str, *, scope: str = USER_SCOPE,
                      client_id: str = WEB_APP, **credentials: str) -> Issued:
        """A new session of ``email`` through the authorization-code flow."""
        issued = await authorization_code_tokens(self.http, email=email, password=PASSWORD,
                                                 scope=scope, client_id=client_id,
                                                 **credentials)
        self.secrets.extend(issued.secrets)
        return issued

    async def system_token(self, client_id: str = PHARMACY_SYSTEM) -> str:
        """A new access token of a backend client signing with ``system_key``."""
        token = await backend_token(self.http, self.system_key, client_id)
        self.secrets.append(token)
        return token


async def backend_token(http: httpx.AsyncClient, key: ECKey, client_id: str,
                        scope: str = "system/*.rs") -> str:
    """An access token through Backend Services (``client_credentials``, a signed assertion)."""
    response = await http.post("/auth/token", data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(key, client_id), "scope": scope})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def client_assertion(key: ECKey, client_id: str) -> str:
    """A Backend Services client assertion (ES384) for the token endpoint."""
    now = int(time.time())
    header = {"alg": "ES384", "typ": "JWT", "kid": str(key.kid)}
    claims = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 120,
              "iat": now, "jti": uuid.uuid4().hex}
    return jws.serialize_compact(header, json.dumps(claims).encode(), key,
                                 algorithms=["ES384"])


def mongo_auth_store(tmp_path: Path) -> AuthStore:
    """A MongoDB auth store (mongomock, or the live one MONGODB_URL names)."""
    from fhir_server.auth.mongo_auth import MongoAuthStore

    name = f"test_auth_{uuid.uuid4().hex[:12]}"
    if mongo_is_live():
        from motor.motor_asyncio import AsyncIOMotorClient

        client: Any = AsyncIOMotorClient(os.environ["MONGODB_URL"])
        return MongoAuthStore(client[name], client=client)
    from tests.support.mongomock_sessions import session_capable_mongomock_client

    return MongoAuthStore(session_capable_mongomock_client()[name])


async def register_apps(store: AuthStore, *, secret_hash: str, organization: str,
                        system_key: ECKey) -> None:
    """The public app, the confidential app and pharmacy A's backend system."""
    now = utc_now()
    for client in (
        Client(client_id=WEB_APP, name="Pictaderm web", kind="public", scope=APP_SCOPES,
               created=now, redirect_uris=(CALLBACK,)),
        Client(client_id=PRO_APP, name="Pictaderm pro", kind="confidential", scope=APP_SCOPES,
               created=now, redirect_uris=(CALLBACK,), secret_hash=secret_hash),
        Client(client_id=PHARMACY_SYSTEM, name="Logiciel de la pharmacie A", kind="backend",
               scope="system/*.cruds", created=now, organization=organization,
               jwks={"keys": [dict(system_key.as_dict(private=False))]})):
        await store.add_client(client)


def _mailbox_texts(settings: Settings, to: str) -> list[str]:
    """The texts of the ``.eml`` files sent to ``to`` (the outbox dispatcher's development
    transport writes them under ``<data dir>/mail``)."""
    texts = []
    for path in sorted((settings.data_dir / MAIL_DIRECTORY).glob("*.eml")):
        message = BytesParser(policy=default).parsebytes(path.read_bytes())
        body = message.get_body(preferencelist=("plain",))
        if message["To"] == to and body is not None:
            texts.append(body.get_content())
    return texts


async def emailed_token(runtime: Runtime, settings: Settings, to: str) -> str:
    """The token of the link emailed to ``to``: from its sealed outbox event, or from the file
    the dispatcher wrote once it sent it."""
    sealer = MailSealer(load_keys(settings))
    emails = [sealer.open(record.event)
              for record in await runtime.store.outbox_pending(1000)
              if record.event.topic == MAIL_TOPIC]
    texts = [email.text for email in emails if email.to == to] + _mailbox_texts(settings, to)
    tokens = [found.group(1) for text in texts if (found := _LINK_TOKEN.search(text))]
    assert tokens, f"no account email with a link to {to}"
    return tokens[-1]


async def registered_doctor(http: httpx.AsyncClient, runtime: Runtime,
                            settings: Settings) -> tuple[str, str]:
    """A doctor's account, registered and its email verified with the emailed token (posted,
    so that no URL carries it); the account id and that token."""
    response = await http.post("/accounts/register", json={
        "role": "doctor", "email": DOCTOR, "password": PASSWORD, "family_name": "Moreau",
        "given_names": ["Julien"], "rpps": DOCTOR_RPPS})
    assert response.status_code == 201, response.text
    token = await emailed_token(runtime, settings, DOCTOR)
    verified = await http.post("/accounts/verify-email", json={"token": token})
    assert verified.status_code == 200 and verified.json()["status"] == "active", verified.text
    account_id: str = response.json()["account_id"]
    return account_id, token


async def sent_intake(http: httpx.AsyncClient, pharmacist_headers: dict[str, str], *,
                      role: str, organization: str, tiers: tuple[str, ...],
                      family: str) -> CreatedCase:
    """A case sent as one transaction with the pharmacist's own token."""
    intake = intake_bundle(role=role, organization=organization, tiers=tiers, family=family)
    response = await http.post("/fhir", json=intake.bundle, headers=pharmacist_headers)
    assert response.status_code == 200, response.text
    return created_case(intake, response.json())


async def cross_reference(http: httpx.AsyncClient, headers: dict[str, str], *,
                          service_request: str, patient: str) -> str:
    """A Communication of ``service_request`` whose subject is ``patient``, written with
    ``headers``; its id."""
    response = await http.post("/fhir/Communication", headers=headers, json={
        "resourceType": "Communication", "status": "completed",
        "basedOn": [{"reference": f"ServiceRequest/{service_request}"}],
        "subject": {"reference": f"Patient/{patient}"},
        "payload": [{"contentString": "Même patiente que dans l'autre pharmacie ?"}]})
    assert response.status_code == 201, response.text
    note_id: str = response.json()["id"]
    return note_id


async def build_world(app: FastAPI, http: httpx.AsyncClient) -> World:
    """Populate a started server (see the module doc)."""
    runtime = runtime_of(app)
    settings: Settings = app.state.settings
    accounts = runtime.accounts
    secrets: list[str] = [PASSWORD]
    account_a = await accounts.create_user(pharmacist(PHARMACIST_A, FINESS_A,
                                                      "Pharmacie du Centre", "Dubois"))
    account_b = await accounts.create_user(pharmacist(PHARMACIST_B, FINESS_B,
                                                      "Pharmacie du Port", "Leroy"))
    director = await accounts.create_user(NewUser(email=DIRECTOR, role="medical-director",
                                                  password=PASSWORD))
    admin = await accounts.create_user(NewUser(email=ADMIN, role="admin", password=PASSWORD))
    assert account_a.organization is not None and account_b.organization is not None
    assert account_a.practitioner_role is not None and account_b.practitioner_role is not None
    client_secret, secret_hash, _ = client_credentials()
    secrets.append(client_secret)
    system_key = ECKey.generate_key("P-384", parameters={"kid": "pharmacy-a-key"})
    await register_apps(runtime.auth_store, secret_hash=secret_hash,
                        organization=account_a.organization, system_key=system_key)
    doctor_id, verification = await registered_doctor(http, runtime, settings)
    secrets.append(verification)

    async def signed_in(account_id: str, email: str, scope: str = USER_SCOPE) -> Persona:
        issued = await authorization_code_tokens(http, email=email, password=PASSWORD,
                                                 scope=scope, client_id=WEB_APP)
        secrets.extend(issued.secrets)
        return Persona(account_id=account_id, email=email, issued=issued)

    pharmacist_a = await signed_in(account_a.account_id, PHARMACIST_A)
    pharmacist_b = await signed_in(account_b.account_id, PHARMACIST_B)
    director_persona = await signed_in(director.account_id, DIRECTOR)
    admin_persona = await signed_in(admin.account_id, ADMIN, ADMIN_SCOPE)
    verified = await http.post(f"/admin/doctors/{doctor_id}/verify",
                               headers=director_persona.headers, json={"tier": DOCTOR_TIER})
    assert verified.status_code == 200, verified.text
    doctor = await signed_in(doctor_id, DOCTOR)
    case_a = await sent_intake(http, pharmacist_a.headers, role=account_a.practitioner_role,
                               organization=account_a.organization, tiers=CASE_A_TIERS,
                               family="Santoni")
    case_b = await sent_intake(http, pharmacist_b.headers, role=account_b.practitioner_role,
                               organization=account_b.organization, tiers=CASE_B_TIERS,
                               family="Rossi")
    note = await cross_reference(http, pharmacist_b.headers,
                                 service_request=case_b.request(0, "ServiceRequest"),
                                 patient=case_a.patient)
    system_token = await backend_token(http, system_key, PHARMACY_SYSTEM)
    secrets.append(system_token)
    return World(app=app, http=http, pharmacist_a=pharmacist_a, pharmacist_b=pharmacist_b,
                 doctor=doctor, director=director_persona, admin=admin_persona,
                 system_a={"Authorization": f"Bearer {system_token}"},
                 organization_a=account_a.organization, organization_b=account_b.organization,
                 case_a=case_a, case_b=case_b, cross_note=note, system_key=system_key,
                 secrets=secrets)


async def operator_read(http: httpx.AsyncClient, path: str) -> dict[str, Any]:
    """A resource as the operator reads it (unlimited)."""
    response = await http.get(f"/fhir/{path}", headers=OPERATOR)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
