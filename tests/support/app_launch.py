"""The SMART app launch on real parts, for tests: the runtime (FHIR store, engine, auth store),
the accounts (``AccountService``, the real ``UserDirectory``), an ``AppAuthorization`` over them,
registered app clients, and PKCE helpers.

Patient access is the one injected policy the runtime will provide from the access policies;
here it is a set of (account id, patient id) pairs the test allows.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from joserfc.jwk import KeySet, RSAKey
from pydantic import SecretStr
from stdnum import luhn

from fhir_server.access.principal import Principal
from fhir_server.accounts import (
    Account,
    AccountService,
    AccountStore,
    NewUser,
    PractitionerDirectory,
    mailer_for,
    open_account_store,
)
from fhir_server.accounts.passwords import Passwords
from fhir_server.auth.authorization_code import AppAuthorization, Lifetimes
from fhir_server.auth.client_secrets import hash_secret
from fhir_server.auth.id_tokens import IdTokenSigner
from fhir_server.auth.model import AuthStore, Client, utc_now
from fhir_server.auth.pkce import s256_challenge
from fhir_server.runtime import Runtime
from fhir_server.settings import Settings

ORIGIN = "http://test"
FHIR_BASE = f"{ORIGIN}/fhir"
TOKEN_URL = f"{ORIGIN}/auth/token"
OPERATOR_TOKEN = "operator-token-0123456789"
PASSWORD = "correct horse battery staple"
CALLBACK = "https://app.example/callback"
PUBLIC_APP = "derm-viewer"
SECRET_APP = "derm-pro"
KEYS_APP = "derm-keys"
BACKEND = "pharmacy-system"
APP_SCOPE = ("openid fhirUser launch launch/patient offline_access patient/*.rs "
             "user/*.rs user/Observation.cruds system/*.rs")
PHARMACIST_EMAIL = "claire@pharmacie.example"
ADMIN_EMAIL = "admin@pictaderm.example"
FINESS = "33000123" + luhn.calc_check_digit("33000123")
"""A made-up FINESS number with a valid key."""


def rsa_signing_key() -> RSAKey:
    """A fresh 2048-bit RSA private key (the smallest an ID token signer accepts)."""
    return RSAKey.generate_key(2048, private=True)


@dataclass(frozen=True, slots=True)
class Pkce:
    """A PKCE verifier and its S256 challenge."""

    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        return cls(verifier=verifier, challenge=s256_challenge(verifier))


@dataclass
class PatientAccessRule:
    """Which patients each account may open (the access policies' answer, stood in for)."""

    allowed: set[tuple[str, str]] = field(default_factory=set)

    async def __call__(self, principal: Principal, patient_id: str) -> bool:
        return (principal.subject, patient_id) in self.allowed


@dataclass
class LaunchKit:
    """Everything an app-launch test uses, started."""

    settings: Settings
    runtime: Runtime
    auth_store: AuthStore
    accounts: AccountService
    account_store: AccountStore
    authorization: AppAuthorization
    signer: IdTokenSigner
    patient_access: PatientAccessRule
    pharmacist: Account
    admin: Account
    client_secret: str
    client_key: RSAKey


@asynccontextmanager
async def launch_kit(tmp_path: Path, signing_key: RSAKey, *,
                     lifetimes: Lifetimes | None = None,
                     **settings_changes: Any) -> AsyncIterator[LaunchKit]:
    """A started kit on SQLite under ``tmp_path``: a pharmacist and an admin account, the
    four clients (public, secret, keys, backend); stopped when the block ends."""
    settings = Settings(data_dir=tmp_path / "data", api_token=SecretStr(OPERATOR_TOKEN),
                        outbox_dispatch=False, **settings_changes)
    runtime = await Runtime.start(settings)
    account_store = open_account_store(settings)
    await account_store.start()
    try:
        accounts = AccountService(
            store=account_store, directory=PractitionerDirectory(runtime.engine),
            mailer=mailer_for(runtime.store, settings), settings=settings, public_root=ORIGIN,
            passwords=Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)))
        signer = IdTokenSigner(signing_key)
        rule = PatientAccessRule()
        authorization = AppAuthorization(
            store=runtime.auth_store, tokens=runtime.tokens, users=accounts,
            patient_access=rule, signer=signer, lifetimes=lifetimes)
        pharmacist = await accounts.create_user(NewUser(
            email=PHARMACIST_EMAIL, role="pharmacist", password=PASSWORD,
            family_name="Martin", given_names=("Claire",), organization_finess=FINESS,
            pharmacy_name="Pharmacie du Port"))
        admin = await accounts.create_user(NewUser(email=ADMIN_EMAIL, role="admin",
                                                   password=PASSWORD))
        secret, secret_hash, client_key = client_credentials()
        await register_clients(runtime.auth_store, secret_hash=secret_hash,
                               client_key=client_key)
        yield LaunchKit(settings=settings, runtime=runtime, auth_store=runtime.auth_store,
                        accounts=accounts, account_store=account_store,
                        authorization=authorization, signer=signer, patient_access=rule,
                        pharmacist=pharmacist, admin=admin, client_secret=secret,
                        client_key=client_key)
    finally:
        await account_store.close()
        await runtime.stop()


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
