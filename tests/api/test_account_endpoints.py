"""The account endpoints over HTTP: public registration and password reset, and the signed-in
and administrators' endpoints behind the real bearer-token gate (access tokens issued into a
real auth store, resolved to principals by the real account service)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware

from fhir_server.access.principal import Role
from fhir_server.accounts.directory import PractitionerDirectory
from fhir_server.accounts.mail import MAIL_TOPIC, AccountMailer, MailSealer
from fhir_server.accounts.service import AccountService, NewUser
from fhir_server.accounts.sqlite_accounts import SqliteAccountStore
from fhir_server.api.accounts import ACCOUNT_ERROR_SYSTEM, ACCOUNT_ROUTES
from fhir_server.api.auth_gate import BearerTokenGate
from fhir_server.auth.model import IssuedToken, token_hash, utc_now
from fhir_server.auth.sqlite_auth import SqliteAuthStore
from fhir_server.runtime import build_engine
from fhir_server.settings import Settings
from fhir_server.storage.protocol import Store
from fhir_server.storage.sqlite import SqliteStore
from tests.unit.accounts.conftest import KEYS, PASSWORD, PHARMACY_FINESS, RPPS, fast_passwords

OPERATOR = "operator-token-0123456789"


@dataclass
class AccountApi:
    """An anonymous client on the public endpoints, a client behind the gate, the service."""

    public: httpx.AsyncClient
    gated: httpx.AsyncClient
    service: AccountService
    auth: SqliteAuthStore
    store: Store

    async def token_link(self) -> str:
        sealer = MailSealer(KEYS)
        emails = [sealer.open(record.event) for record in await self.store.outbox_pending(100)
                  if record.event.topic == MAIL_TOPIC]
        found = re.search(r"(http\S+token=[A-Za-z0-9_\-]+)", emails[-1].text)
        assert found is not None
        return found.group(1)

    async def bearer(self, account_id: str) -> dict[str, str]:
        """An access token issued to the account, as an Authorization header."""
        token = f"access-{account_id}"
        now = utc_now()
        await self.auth.save_token(IssuedToken(
            token_hash=token_hash(token), kind="access", client_id="app", scope="user/*.rs",
            issued_at=now, expires_at=now + timedelta(hours=1), subject=account_id))
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AccountApi]:
    settings = Settings(data_dir=tmp_path / "data", change_events=False, login_max_failures=3)
    store = SqliteStore(tmp_path / "fhir.sqlite3")
    accounts = SqliteAccountStore(tmp_path / "auth.sqlite3")
    auth = SqliteAuthStore(tmp_path / "auth.sqlite3")
    for started in (store, accounts, auth):
        await started.start()
    engine = build_engine(store, KEYS, settings)
    await engine.start()
    service = AccountService(store=accounts, directory=PractitionerDirectory(engine),
                             mailer=AccountMailer(store, MailSealer(KEYS)), settings=settings,
                             passwords=fast_passwords(), on_disabled=auth_revoker(auth))
    public = Starlette(routes=ACCOUNT_ROUTES)
    gated = Starlette(routes=ACCOUNT_ROUTES,
                      middleware=[Middleware(BearerTokenGate, token=OPERATOR)])
    for app in (public, gated):
        app.state.accounts = service
        app.state.settings = settings
        app.state.runtime = SimpleNamespace(auth_store=auth, users=service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=public),
                                 base_url="http://test") as public_client, \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=gated),
                              base_url="http://test") as gated_client:
        yield AccountApi(public=public_client, gated=gated_client, service=service, auth=auth,
                         store=store)
    for closed in (auth, accounts, store):
        await closed.close()


def auth_revoker(auth: SqliteAuthStore) -> Any:
    async def revoke(account_id: str) -> None:
        await auth.revoke_tokens_of_subject(account_id)

    return revoke


def pharmacist_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"role": "pharmacist", "email": "claire@pharmacie.example",
                            "password": PASSWORD, "family_name": "Dubois",
                            "given_names": ["Claire"], "finess": PHARMACY_FINESS,
                            "pharmacy_name": "Pharmacie du Centre"}
    body.update(changes)
    return body


def refusal_code(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    (issue,) = body["issue"]
    assert issue["details"]["text"] and issue["diagnostics"]
    assert issue["details"]["text"] != issue["diagnostics"]
    translation = issue["details"]["_text"]["extension"][0]["extension"]
    assert {"url": "content", "valueString": issue["diagnostics"]} in translation
    (coding,) = issue["details"]["coding"]
    assert coding["system"] == ACCOUNT_ERROR_SYSTEM
    return str(coding["code"])


async def registered(api: AccountApi, **changes: Any) -> str:
    response = await api.public.post("/accounts/register", json=pharmacist_body(**changes))
    assert response.status_code == 201, response.text
    link = await api.token_link()
    assert (await api.public.get(link.removeprefix("http://test"))).status_code == 200
    return str(response.json()["account_id"])


async def operator_made(api: AccountApi, email: str, role: Role, **changes: Any) -> str:
    account = await api.service.create_user(NewUser(email=email, role=role,
                                                    password=PASSWORD, **changes))
    return account.account_id


async def test_register_then_verify_by_the_emailed_link(api: AccountApi) -> None:
    response = await api.public.post("/accounts/register", json=pharmacist_body())
    assert response.status_code == 201
    assert response.json()["status"] == "pending-verification"
    assert response.headers["cache-control"] == "no-store"
    link = await api.token_link()
    assert link.startswith("http://test/accounts/verify-email?token=")
    verified = await api.public.get(link.removeprefix("http://test"))
    assert verified.status_code == 200 and verified.json()["status"] == "active"
    again = await api.public.get(link.removeprefix("http://test"))
    assert again.status_code == 400 and refusal_code(again) == "invalid-token"


async def test_verification_by_post(api: AccountApi) -> None:
    await api.public.post("/accounts/register", json=pharmacist_body())
    token = (await api.token_link()).split("token=")[1]
    response = await api.public.post("/accounts/verify-email", json={"token": token})
    assert response.status_code == 200 and response.json()["status"] == "active"
    missing = await api.public.get("/accounts/verify-email")
    assert missing.status_code == 400 and refusal_code(missing) == "field-required"


@pytest.mark.parametrize(("body", "status", "code"), [
    (pharmacist_body(password="short"), 422, "weak-password"),
    (pharmacist_body(finess="950012345"), 422, "invalid-finess"),
    (pharmacist_body(role="doctor", rpps="10987654324"), 422, "invalid-rpps"),
    (pharmacist_body(role="admin"), 422, "invalid-role"),
    (pharmacist_body(email="not an email"), 422, "invalid-email"),
    ({"role": "pharmacist"}, 400, "field-required"),
    (pharmacist_body(given_names=[1]), 400, "field-type"),
    ([1, 2], 400, "bad-body"),
])
async def test_registration_refusals(api: AccountApi, body: Any, status: int,
                                     code: str) -> None:
    response = await api.public.post("/accounts/register", json=body)
    assert response.status_code == status and refusal_code(response) == code


async def test_a_taken_email_is_a_conflict(api: AccountApi) -> None:
    await api.public.post("/accounts/register", json=pharmacist_body())
    response = await api.public.post("/accounts/register", json=pharmacist_body())
    assert response.status_code == 409 and refusal_code(response) == "email-taken"
    assert "adresse e-mail" in response.json()["issue"][0]["details"]["text"]


async def test_malformed_json_is_a_bad_request(api: AccountApi) -> None:
    response = await api.public.post("/accounts/register", content=b"{not json",
                                     headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and refusal_code(response) == "bad-body"


async def test_forgot_password_answers_alike_then_the_link_resets_once(api: AccountApi) -> None:
    await registered(api)
    unknown = await api.public.post("/accounts/forgot-password",
                                    json={"email": "nobody@pharmacie.example"})
    known = await api.public.post("/accounts/forgot-password",
                                  json={"email": "claire@pharmacie.example"})
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()
    token = (await api.token_link()).split("token=")[1]
    weak = await api.public.post("/accounts/reset-password",
                                 json={"token": token, "password": "short"})
    assert weak.status_code == 422 and refusal_code(weak) == "weak-password"
    done = await api.public.post("/accounts/reset-password",
                                 json={"token": token, "password": "a brand new passphrase"})
    assert done.status_code == 200
    again = await api.public.post("/accounts/reset-password",
                                  json={"token": token, "password": "another new passphrase"})
    assert again.status_code == 400 and refusal_code(again) == "invalid-token"


async def test_too_many_reset_requests_get_429_with_retry_after(api: AccountApi) -> None:
    for _ in range(3):
        response = await api.public.post("/accounts/forgot-password",
                                         json={"email": "nobody@pharmacie.example"})
        assert response.status_code == 202
    refused = await api.public.post("/accounts/forgot-password",
                                    json={"email": "other@pharmacie.example"})
    assert refused.status_code == 429 and refusal_code(refused) == "too-many-requests"
    assert int(refused.headers["retry-after"]) > 0


async def test_a_signed_in_person_asks_for_deletion_and_is_out_at_once(
        api: AccountApi) -> None:
    account_id = await registered(api)
    bearer = await api.bearer(account_id)
    response = await api.gated.post("/accounts/deletion-request", headers=bearer)
    assert response.status_code == 202 and response.json()["status"] == "deletion-requested"
    after = await api.gated.post("/accounts/deletion-request", headers=bearer)
    assert after.status_code == 401
    anonymous = await api.gated.post("/accounts/deletion-request")
    assert anonymous.status_code == 401
    operator = await api.gated.post("/accounts/deletion-request",
                                    headers={"Authorization": f"Bearer {OPERATOR}"})
    assert operator.status_code == 403


async def test_admins_warn_suspend_and_terminate(api: AccountApi) -> None:
    account_id = await registered(api)
    admin = await api.bearer(await operator_made(api, "ops@pictaderm.example", "admin"))
    warned = await api.gated.post(f"/admin/accounts/{account_id}/warn", headers=admin,
                                  json={"reason": "Photos floues"})
    assert warned.status_code == 200 and warned.json()["warnings"] == 1
    until = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    suspended = await api.gated.post(f"/admin/accounts/{account_id}/suspend", headers=admin,
                                     json={"until": until.isoformat(), "reason": "Abus"})
    assert suspended.status_code == 200
    assert suspended.json() == {"account_id": account_id, "status": "suspended",
                                "suspended_until": until.isoformat().replace("+00:00", "Z")}
    assert await api.service.principal_of(account_id) is None
    terminated = await api.gated.post(f"/admin/accounts/{account_id}/terminate", headers=admin,
                                      json={"reason": "Fraude"})
    assert terminated.status_code == 200 and terminated.json()["status"] == "terminated"
    twice = await api.gated.post(f"/admin/accounts/{account_id}/terminate", headers=admin,
                                 json={"reason": "Fraude"})
    assert twice.status_code == 409


async def test_a_suspension_revokes_the_account_tokens(api: AccountApi) -> None:
    account_id = await registered(api)
    bearer = await api.bearer(account_id)
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = await api.gated.post(f"/admin/accounts/{account_id}/suspend",
                                    headers={"Authorization": f"Bearer {OPERATOR}"},
                                    json={"until": until, "reason": "Abus"})
    assert response.status_code == 200
    assert await api.auth.find_token(bearer["Authorization"].removeprefix("Bearer ")) is None


async def test_admin_endpoints_refuse_others_and_bad_input(api: AccountApi) -> None:
    account_id = await registered(api)
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    pharmacist = await api.bearer(account_id)
    refused = await api.gated.post(f"/admin/accounts/{account_id}/warn", headers=pharmacist,
                                   json={"reason": "x"})
    assert refused.status_code == 403 and refusal_code(refused) == "forbidden"
    unknown = await api.gated.post("/admin/accounts/nobody/warn", headers=operator,
                                   json={"reason": "x"})
    assert unknown.status_code == 404 and refusal_code(unknown) == "not-found"
    bad_date = await api.gated.post(f"/admin/accounts/{account_id}/suspend", headers=operator,
                                    json={"until": "next week", "reason": "x"})
    assert bad_date.status_code == 400 and refusal_code(bad_date) == "bad-date"
    naive = await api.gated.post(f"/admin/accounts/{account_id}/suspend", headers=operator,
                                 json={"until": "2030-01-01T00:00:00", "reason": "x"})
    assert naive.status_code == 400
    past = await api.gated.post(f"/admin/accounts/{account_id}/suspend", headers=operator,
                                json={"until": "2020-01-01T00:00:00Z", "reason": "x"})
    assert past.status_code == 422 and refusal_code(past) == "suspension-in-past"
    no_token = await api.gated.post(f"/admin/accounts/{account_id}/warn", json={"reason": "x"})
    assert no_token.status_code == 401


async def test_a_medical_director_verifies_a_doctor(api: AccountApi) -> None:
    response = await api.public.post("/accounts/register", json=pharmacist_body(
        role="doctor", email="julien@cabinet.example", family_name="Moreau", rpps=RPPS,
        finess=None, pharmacy_name=None))
    assert response.status_code == 201
    doctor_id = response.json()["account_id"]
    director = await api.bearer(await operator_made(api, "direction@pictaderm.example",
                                                    "medical-director"))
    admin = await api.bearer(await operator_made(api, "ops@pictaderm.example", "admin"))
    refused = await api.gated.post(f"/admin/doctors/{doctor_id}/verify", headers=admin,
                                   json={"tier": "tier-1"})
    assert refused.status_code == 403
    verified = await api.gated.post(f"/admin/doctors/{doctor_id}/verify", headers=director,
                                    json={"tier": "tier-3"})
    assert verified.status_code == 200, verified.text
    assert verified.json()["tier"] == "tier-3"
    bad_tier = await api.gated.post(f"/admin/doctors/{doctor_id}/verify", headers=director,
                                    json={"tier": "tier-7"})
    assert bad_tier.status_code == 422 and refusal_code(bad_tier) == "invalid-tier"
