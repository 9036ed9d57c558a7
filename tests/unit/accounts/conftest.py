"""Account tests: the account store on each backend, a controllable clock, and the account
service over a real engine, SQLite stores and the outbox (emails read back from it)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from fhir_server.accounts.directory import PractitionerDirectory
from fhir_server.accounts.mail import MAIL_TOPIC, AccountEmail, AccountMailer, MailSealer
from fhir_server.accounts.passwords import Passwords
from fhir_server.accounts.service import AccountService, Registration
from fhir_server.accounts.sqlite_accounts import SqliteAccountStore
from fhir_server.accounts.store import AccountStore
from fhir_server.crypto.keys import KeyMaterial
from fhir_server.engine.engine import Engine
from fhir_server.runtime import build_engine
from fhir_server.settings import Settings
from fhir_server.storage.protocol import Store
from fhir_server.storage.sqlite import SqliteStore
from tests.support.backends import BACKENDS, fresh_mongo_database

KEYS = KeyMaterial.from_data_key(bytes(range(32)))
ROOT = "https://pictaderm.example"
PASSWORD = "correct horse battery staple"
PHARMACY_FINESS = "950012344"
RPPS = "10987654323"
OTHER_RPPS = "10000000009"
OTHER_FINESS = "750012346"


def fast_passwords() -> Passwords:
    """argon2id with the smallest costs: the same algorithm, in milliseconds."""
    return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def settings_for(tmp_path: Path, **changes: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path / "data", "change_events": False,
                              "login_max_failures": 3, "login_failure_window_seconds": 600,
                              "login_lockout_seconds": 300}
    values.update(changes)
    return Settings(**values)


@dataclass
class Harness:
    """The account service and everything behind it."""

    service: AccountService
    accounts: AccountStore
    store: Store
    engine: Engine
    clock: Clock
    settings: Settings
    disabled: list[str] = field(default_factory=list)

    async def emails(self) -> list[AccountEmail]:
        """Every account email committed to the outbox so far, oldest first."""
        sealer = MailSealer(KEYS)
        return [sealer.open(record.event) for record in await self.store.outbox_pending(1000)
                if record.event.topic == MAIL_TOPIC]

    async def last_email(self) -> AccountEmail:
        return (await self.emails())[-1]

    async def resource(self, reference: str) -> dict[str, Any]:
        resource_type, _, id = reference.partition("/")
        result = await self.engine.read(resource_type, id)
        assert result.body is not None
        body: dict[str, Any] = json.loads(result.body)
        return body

    def service_again(self) -> AccountService:
        """A second service over the same stores (another process, in effect)."""
        return build_service(self.accounts, self.store, self.engine, self.settings, self.clock,
                             self.disabled)


def token_in(email: AccountEmail) -> str:
    found = re.search(r"token=([A-Za-z0-9_\-]+)", email.text)
    assert found is not None, "no link with a token in the email"
    return found.group(1)


def build_service(accounts: AccountStore, store: Store, engine: Engine, settings: Settings,
                  clock: Clock, disabled: list[str]) -> AccountService:
    async def on_disabled(account_id: str) -> None:
        disabled.append(account_id)

    return AccountService(store=accounts, directory=PractitionerDirectory(engine),
                          mailer=AccountMailer(store, MailSealer(KEYS)), settings=settings,
                          public_root=ROOT, passwords=fast_passwords(), clock=clock,
                          on_disabled=on_disabled)


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[HarnessFactory]:
    """Builds harnesses (settings changes as keyword arguments); closes them afterwards."""
    opened: list[tuple[AccountStore, Store]] = []

    async def make(**changes: Any) -> Harness:
        settings = settings_for(tmp_path, **changes)
        store = SqliteStore(tmp_path / "fhir.sqlite3")
        await store.start()
        accounts = SqliteAccountStore(tmp_path / "auth.sqlite3")
        await accounts.start()
        opened.append((accounts, store))
        engine = build_engine(store, KEYS, settings)
        await engine.start()
        clock = Clock()
        disabled: list[str] = []
        return Harness(service=build_service(accounts, store, engine, settings, clock, disabled),
                       accounts=accounts, store=store, engine=engine, clock=clock,
                       settings=settings, disabled=disabled)

    yield make
    for accounts, store in opened:
        await accounts.close()
        await store.close()


@pytest.fixture
async def harness(make_harness: HarnessFactory) -> Harness:
    return await make_harness()


def pharmacist(email: str = "claire@pharmacie.example", **changes: Any) -> Registration:
    values: dict[str, Any] = {"role": "pharmacist", "email": email, "password": PASSWORD,
                              "family_name": "Dubois", "given_names": ("Claire",),
                              "finess": PHARMACY_FINESS, "pharmacy_name": "Pharmacie du Centre"}
    values.update(changes)
    return Registration(**values)


def doctor(email: str = "julien@cabinet.example", **changes: Any) -> Registration:
    values: dict[str, Any] = {"role": "doctor", "email": email, "password": PASSWORD,
                              "family_name": "Moreau", "given_names": ("Julien",),
                              "rpps": RPPS}
    values.update(changes)
    return Registration(**values)


async def verified(harness: Harness, registration: Registration) -> str:
    """Register and confirm the email; the account id."""
    account = await harness.service.register(registration)
    await harness.service.verify_email(token_in(await harness.last_email()))
    return account.account_id


def account_store_of(backend: str, tmp_path: Path) -> tuple[AccountStore, Any]:
    """A not yet started account store of ``backend``, and the live database to drop."""
    if backend == "sqlite":
        return SqliteAccountStore(tmp_path / "auth.sqlite3"), None
    from fhir_server.accounts.mongo_accounts import MongoAccountStore

    database, client, to_drop = fresh_mongo_database("test_accounts")
    return MongoAccountStore(database, client=client), to_drop


@pytest.fixture(params=BACKENDS)
async def account_store(request: pytest.FixtureRequest,
                        tmp_path: Path) -> AsyncIterator[AccountStore]:
    store, live = account_store_of(request.param, tmp_path)
    await store.start()
    try:
        yield store
    finally:
        if live is not None:
            client, name = live
            await client.drop_database(name)
        await store.close()
