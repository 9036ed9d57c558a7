"""``POST /admin/accounts`` (operator or admin) and ``POST /admin/clients`` (operator only) on
both backends: accounts created verified with their FHIR records, clients registered with the
checks of ``fhir-server clients add``, and who may not call them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from stdnum import luhn

from fhir_server.auth.client_secrets import verify_secret
from fhir_server.demo import Person, Server, sign_in
from tests.api.conftest import TOKEN, Api

ROOT = "http://test"
CALLBACK = "http://127.0.0.1/pictaderm-demo/callback"
PASSWORD = "a long enough password 42"
FINESS = "33000987" + luhn.calc_check_digit("33000987")
RPPS = "1012345678" + luhn.calc_check_digit("1012345678")
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


def server() -> Server:
    return Server(fhir_base=f"{ROOT}/fhir", operator_token=TOKEN)


async def post(api: Api, path: str, body: Any,
               headers: dict[str, str] | None = None) -> httpx.Response:
    return await api.anonymous.post(f"{ROOT}{path}", json=body, headers=headers)


async def public_app(api: Api) -> str:
    answer = await post(api, "/admin/clients", {
        "name": "Tests", "scope": "openid fhirUser user/*.cruds", "public": True,
        "redirect_uris": [CALLBACK]}, OPERATOR)
    assert answer.status_code == 201, answer.text
    client_id: str = answer.json()["client_id"]
    return client_id


async def signed_in(api: Api, email: str, account_id: str) -> Person:
    person = Person(label=email, email=email, password=PASSWORD, account_id=account_id)
    return await sign_in(api.anonymous, server(), person, await public_app(api))


async def test_the_operator_creates_a_verified_pharmacist_with_the_pharmacy(api: Api) -> None:
    answer = await post(api, "/admin/accounts", {
        "email": "Agnes@Pharmacie.example", "role": "pharmacist", "password": PASSWORD,
        "family_name": "Lefèvre", "given_names": ["Agnès"], "organization_finess": FINESS,
        "organization_name": "Pharmacie des Tests"}, OPERATOR)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["role"], body["status"]) == ("pharmacist", "active")
    account = await api.app.state.accounts.get(body["account_id"])
    assert account is not None and account.email == "agnes@pharmacie.example"
    assert account.email_verified_at is not None
    assert body["organization"] == account.organization
    pharmacy = await api.client.get(f"/{account.organization}")
    assert pharmacy.json()["name"] == "Pharmacie des Tests"
    role = await api.client.get(f"/{body['practitioner_role']}")
    assert role.json()["organization"] == {"reference": account.organization}
    person = await signed_in(api, "agnes@pharmacie.example", body["account_id"])
    refused = await post(api, "/admin/accounts", {
        "email": "x@pharmacie.example", "role": "admin", "password": PASSWORD},
        person.headers)
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["details"]["coding"][0]["code"] == "forbidden"


async def test_an_admin_creates_a_doctor_who_awaits_verification(api: Api) -> None:
    admin = await post(api, "/admin/accounts", {
        "email": "ops@pictaderm.example", "role": "admin", "password": PASSWORD}, OPERATOR)
    assert admin.status_code == 201, admin.text
    person = await signed_in(api, "ops@pictaderm.example", admin.json()["account_id"])
    doctor = await post(api, "/admin/accounts", {
        "email": "julien@cabinet.example", "role": "doctor", "password": PASSWORD,
        "family_name": "Moreau", "rpps": RPPS}, person.headers)
    assert doctor.status_code == 201, doctor.text
    account = await api.app.state.accounts.get(doctor.json()["account_id"])
    assert account.role == "doctor" and account.tier is None
    assert account.practitioner_role == doctor.json()["practitioner_role"]
    again = await post(api, "/admin/accounts", {
        "email": "julien@cabinet.example", "role": "doctor", "password": PASSWORD,
        "family_name": "Moreau", "rpps": RPPS}, OPERATOR)
    assert again.status_code == 409


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"role": "admin", "password": PASSWORD}, 400, "field-required"),
    ({"email": "a@b.example", "role": "wizard", "password": PASSWORD}, 422, "unknown-role"),
    ({"email": "a@b.example", "role": "admin", "password": "short"}, 422, "weak-password"),
    ({"email": "a@b.example", "role": "doctor", "password": PASSWORD, "family_name": "X"},
     422, "rpps-required"),
    ({"email": "a@b.example", "role": "admin", "password": PASSWORD, "given_names": 3},
     400, "field-type"),
])
async def test_invalid_accounts_are_refused_with_a_stable_code(
        api: Api, body: dict[str, Any], status: int, code: str) -> None:
    answer = await post(api, "/admin/accounts", body, OPERATOR)
    assert answer.status_code == status, answer.text
    assert answer.json()["issue"][0]["details"]["coding"][0]["code"] == code


async def test_accounts_need_a_token(api: Api) -> None:
    answer = await post(api, "/admin/accounts", {
        "email": "a@b.example", "role": "admin", "password": PASSWORD})
    assert answer.status_code == 401
    assert await api.app.state.accounts.has_admin() is False


async def test_the_operator_registers_clients_and_gets_the_secret_once(api: Api) -> None:
    client_id = await public_app(api)
    stored = await api.app.state.runtime.auth_store.get_client(client_id)
    assert (stored.kind, stored.redirect_uris, stored.secret_hash) == (
        "public", (CALLBACK,), None)
    answer = await post(api, "/admin/clients", {
        "name": "Derm Pro", "scope": "openid fhirUser user/*.rs", "secret": True,
        "redirect_uris": ["https://pro.example/cb"], "organization": "Organization/abc"},
        OPERATOR)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    stored = await api.app.state.runtime.auth_store.get_client(body["client_id"])
    assert stored.kind == "confidential" and stored.organization == "Organization/abc"
    assert stored.secret_hash != body["client_secret"]
    assert verify_secret(body["client_secret"], stored.secret_hash)
    backend = await post(api, "/admin/clients", {
        "name": "Pharmacy system", "scope": "system/*.rs",
        "jwks": {"keys": [{"kty": "EC", "crv": "P-384", "x": "abc", "y": "def"}]}}, OPERATOR)
    assert backend.status_code == 201, backend.text
    assert backend.json()["kind"] == "backend" and "client_secret" not in backend.json()


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"name": "X", "scope": "user/Nothing.zz", "public": True,
      "redirect_uris": [CALLBACK]}, 422, "--scope"),
    ({"name": "X", "scope": "user/*.rs", "public": True}, 422, "--redirect-uri"),
    ({"name": "X", "scope": "user/*.rs", "public": True,
      "redirect_uris": ["http://evil.example/cb"]}, 422, "https"),
    ({"name": "X", "scope": "system/*.rs", "jwks": {"keys": [{"kty": "EC", "d": "secret"}]}},
     422, "private key"),
    ({"name": "X", "scope": "system/*.rs", "public": "yes"}, 400, "public"),
])
async def test_invalid_clients_are_refused_with_the_reason(
        api: Api, body: dict[str, Any], status: int, words: str) -> None:
    answer = await post(api, "/admin/clients", body, OPERATOR)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["issue"][0]["diagnostics"]
    assert not await api.app.state.runtime.auth_store.list_clients()


async def test_only_the_operator_registers_clients(api: Api) -> None:
    admin = await post(api, "/admin/accounts", {
        "email": "ops@pictaderm.example", "role": "admin", "password": PASSWORD}, OPERATOR)
    person = await signed_in(api, "ops@pictaderm.example", admin.json()["account_id"])
    body = {"name": "X", "scope": "user/*.rs", "public": True, "redirect_uris": [CALLBACK]}
    assert (await post(api, "/admin/clients", body, person.headers)).status_code == 403
    assert (await post(api, "/admin/clients", body)).status_code == 401
    assert len(await api.app.state.runtime.auth_store.list_clients()) == 1
