"""SMART Backend Services end to end through the ASGI app: token, scopes on the FHIR API,
introspection, revocation, CORS and discovery, with clients in the real AuthStore (both backends)
and keys served over HTTP by a JWKS server or registered inline."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey
from pydantic import SecretStr

from fhir_server.api.app import create_app
from fhir_server.auth.model import AuthStore, Client, IssuedToken, token_hash, utc_now
from fhir_server.auth.token_endpoint import ASSERTION_TYPE
from fhir_server.settings import Settings
from tests.support.backends import BACKENDS, make_store, mongo_is_live
from tests.support.jwks_server import JwksServer, public_jwk, running_jwks_server, signing_key

OPERATOR_TOKEN = "operator-token-0123456789"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
ORIGIN = "http://test"
TOKEN_URL = f"{ORIGIN}/auth/token"
PHARMACY = "pharmacy-by-url"
EHR = "ehr-inline"
PHARMACY_SCOPE = "system/Patient.rs system/Observation.rs system/Encounter.rs?status=finished"


@dataclass
class Smart:
    """The app over HTTP, its auth store, and the two registered clients' private keys."""

    http: httpx.AsyncClient
    auth_store: AuthStore
    rsa_key: RSAKey | ECKey
    ec_key: RSAKey | ECKey
    jwks: JwksServer


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey | ECKey:
    return signing_key("RS384", "pharmacy-rsa")


@pytest.fixture(scope="module")
def ec_key() -> RSAKey | ECKey:
    return signing_key("ES384", "ehr-ec")


@pytest.fixture
def jwks(rsa_key: RSAKey | ECKey) -> Iterator[JwksServer]:
    with running_jwks_server(public_jwk(rsa_key), cache_control="max-age=300") as server:
        yield server


def _auth_store(backend: str, tmp_path: Path) -> AuthStore:
    if backend == "sqlite":
        from fhir_server.auth.sqlite_auth import SqliteAuthStore

        return SqliteAuthStore(tmp_path / "auth.sqlite3")
    from fhir_server.auth.mongo_auth import MongoAuthStore

    name = f"test_auth_{uuid.uuid4().hex[:12]}"
    if mongo_is_live():
        from motor.motor_asyncio import AsyncIOMotorClient

        client: Any = AsyncIOMotorClient(os.environ["MONGODB_URL"])
        return MongoAuthStore(client[name], client=client)
    from tests.support.mongomock_sessions import session_capable_mongomock_client

    return MongoAuthStore(session_capable_mongomock_client()[name])


@pytest.fixture(params=BACKENDS)
async def smart(request: pytest.FixtureRequest, tmp_path: Path, jwks: JwksServer,
                rsa_key: RSAKey | ECKey, ec_key: RSAKey | ECKey) -> AsyncIterator[Smart]:
    store = make_store(request.param, tmp_path)
    auth_store = _auth_store(request.param, tmp_path)
    settings = Settings(data_dir=tmp_path / "data", api_token=SecretStr(OPERATOR_TOKEN),
                        outbox_poll_seconds=0.05)
    app = create_app(settings, store=store, auth_store=auth_store)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as http:
        await auth_store.add_client(Client(
            client_id=PHARMACY, name="Pharmacie du Port", kind="backend", scope=PHARMACY_SCOPE,
            created=utc_now(), jwks_url=jwks.url))
        await auth_store.add_client(Client(
            client_id=EHR, name="Cabinet EHR", kind="backend", scope="system/*.cruds",
            created=utc_now(), jwks={"keys": [public_jwk(ec_key)]}))
        yield Smart(http=http, auth_store=auth_store, rsa_key=rsa_key, ec_key=ec_key, jwks=jwks)


def assertion(key: RSAKey | ECKey, client_id: str, *, aud: str = TOKEN_URL,
              expires_in: float = 120, jti: str | None = None, kid: str | None = None) -> str:
    """A client assertion signed with ``key`` (RS384 for RSA, ES384 for EC)."""
    now = time.time()
    header = {"alg": "RS384" if isinstance(key, RSAKey) else "ES384", "typ": "JWT",
              "kid": kid or str(key.kid)}
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "exp": int(now + expires_in),
              "iat": int(now), "jti": jti or uuid.uuid4().hex}
    return jws.serialize_compact(header, json.dumps(claims).encode(), key,
                                 algorithms=[header["alg"]])


def token_form(key: RSAKey | ECKey, client_id: str, *, scope: str = "system/Patient.rs",
               **overrides: Any) -> dict[str, str]:
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(key, client_id), "scope": scope}
    form.update(overrides)
    return {name: value for name, value in form.items() if value is not None}


async def access_token(smart: Smart, *, scope: str = "system/Patient.rs",
                       client_id: str = PHARMACY) -> str:
    key = smart.rsa_key if client_id == PHARMACY else smart.ec_key
    response = await smart.http.post("/auth/token", data=token_form(key, client_id, scope=scope))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_patient(smart: Smart) -> str:
    response = await smart.http.post("/fhir/Patient", headers=OPERATOR,
                                     json={"resourceType": "Patient", "gender": "female"})
    assert response.status_code == 201, response.text
    patient_id: str = response.json()["id"]
    return patient_id


def outcome_text(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return " ".join(issue.get("diagnostics", "") for issue in body["issue"])


async def test_token_by_jwks_url_reads_and_searches_within_its_scopes(smart: Smart) -> None:
    patient_id = await create_patient(smart)
    response = await smart.http.post("/auth/token", data=token_form(
        smart.rsa_key, PHARMACY, scope="system/Patient.rs system/Observation.r "
                                       "system/Practitioner.rs"))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 300
    assert body["scope"] == "system/Patient.rs system/Observation.r"
    token = body["access_token"]
    assert len(token) >= 43
    stored = await smart.auth_store.find_token(token)
    assert stored is not None and stored.token_hash == token_hash(token) != token
    assert stored.client_id == PHARMACY and stored.scope == body["scope"]

    read = await smart.http.get(f"/fhir/Patient/{patient_id}", headers=bearer(token))
    assert read.status_code == 200 and read.json()["id"] == patient_id
    search = await smart.http.get("/fhir/Patient", headers=bearer(token))
    assert search.status_code == 200 and search.json()["total"] == 1
    posted = await smart.http.post("/fhir/Patient/_search", headers=bearer(token),
                                   data={"gender": "female"})
    assert posted.status_code == 200 and posted.json()["total"] == 1
    assert smart.jwks.requests == 1


async def test_missing_letters_are_refused_with_403_naming_the_scope(smart: Smart) -> None:
    patient_id = await create_patient(smart)
    token = await access_token(smart, scope="system/Patient.rs system/Observation.r")
    headers = bearer(token)
    created = await smart.http.post("/fhir/Patient", headers=headers,
                                    json={"resourceType": "Patient"})
    assert created.status_code == 403
    assert "system/Patient.c" in outcome_text(created)
    updated = await smart.http.put(f"/fhir/Patient/{patient_id}", headers=headers,
                                   json={"resourceType": "Patient", "id": patient_id})
    assert updated.status_code == 403 and "system/Patient.u" in outcome_text(updated)
    deleted = await smart.http.delete(f"/fhir/Patient/{patient_id}", headers=headers)
    assert deleted.status_code == 403 and "system/Patient.d" in outcome_text(deleted)
    observations = await smart.http.get("/fhir/Observation", headers=headers)
    assert observations.status_code == 403 and "system/Observation.s" in outcome_text(observations)
    other = await smart.http.get("/fhir/Practitioner/x", headers=headers)
    assert other.status_code == 403 and "system/Practitioner.r" in outcome_text(other)
    everything = await smart.http.get("/fhir", headers=headers)
    assert everything.status_code == 403 and "system/*.s" in outcome_text(everything)
    typed = await smart.http.get("/fhir", headers=headers, params={"_type": "Patient"})
    assert typed.status_code == 200
    still_there = await smart.http.get(f"/fhir/Patient/{patient_id}", headers=OPERATOR)
    assert still_there.status_code == 200


async def test_inline_es384_client_with_every_letter_writes(smart: Smart) -> None:
    token = await access_token(smart, scope="system/*.cruds", client_id=EHR)
    created = await smart.http.post("/fhir/Patient", headers=bearer(token),
                                    json={"resourceType": "Patient", "gender": "male"})
    assert created.status_code == 201, created.text
    patient_id = created.json()["id"]
    deleted = await smart.http.delete(f"/fhir/Patient/{patient_id}", headers=bearer(token))
    assert deleted.status_code in (200, 204)
    gone = await smart.http.get(f"/fhir/Patient/{patient_id}", headers=OPERATOR)
    assert gone.status_code == 410


async def observation_of(smart: Smart, patient_id: str, status: str) -> str:
    created = await smart.http.post("/fhir/Observation", headers=OPERATOR, json={
        "resourceType": "Observation", "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
        "subject": {"reference": f"Patient/{patient_id}"}})
    assert created.status_code == 201, created.text
    identifier: str = created.json()["id"]
    return identifier


async def test_scopes_are_checked_in_bundles_includes_chains_and_has(smart: Smart) -> None:
    patient_id = await create_patient(smart)
    await observation_of(smart, patient_id, "final")
    token = await access_token(smart, scope="system/Patient.rs", client_id=EHR)
    headers = bearer(token)
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Observation"}},
        {"request": {"method": "POST", "url": "Patient"}, "resource": {"resourceType": "Patient"}}]}
    answered = await smart.http.post("/fhir", headers=headers, json=batch)
    assert answered.status_code == 200, answered.text
    statuses = [entry["response"]["status"] for entry in answered.json()["entry"]]
    assert statuses[0].startswith("200") and statuses[1].startswith("403")
    assert statuses[2].startswith("403")
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "gender": "other"}}]}
    refused = await smart.http.post("/fhir", headers=headers, json=transaction)
    assert refused.status_code == 403
    others = await smart.http.get("/fhir/Patient", headers=OPERATOR, params={"gender": "other"})
    assert "entry" not in others.json()
    included = await smart.http.get("/fhir/Patient", headers=headers,
                                    params={"_id": patient_id,
                                            "_revinclude": "Observation:subject"})
    assert included.status_code == 200
    assert [e["resource"]["resourceType"] for e in included.json()["entry"]] == ["Patient"]
    for path, params in (("/fhir/Observation", {"subject.gender": "female"}),
                         ("/fhir/Patient", {"_has:Observation:subject:status": "final"}),
                         (f"/fhir/Patient/{patient_id}/Observation", {})):
        response = await smart.http.get(path, headers=headers, params=params)
        assert response.status_code == 403, (path, response.text)
    validated = await smart.http.post("/fhir/Patient/$validate", headers=headers,
                                      json={"resourceType": "Patient"})
    assert validated.status_code == 200, validated.text
    reindex = await smart.http.post("/fhir/$reindex", headers=headers, json={
        "resourceType": "Parameters"})
    assert reindex.status_code == 403 and "operator" in outcome_text(reindex)


async def test_restricted_scopes_limit_searches_reads_and_writes(smart: Smart) -> None:
    patient_id = await create_patient(smart)
    final = await observation_of(smart, patient_id, "final")
    preliminary = await observation_of(smart, patient_id, "preliminary")
    token = await access_token(smart, scope="system/Observation.cruds?status=final",
                               client_id=EHR)
    headers = bearer(token)
    found = await smart.http.get("/fhir/Observation", headers=headers,
                                 params={"subject": f"Patient/{patient_id}"})
    assert found.status_code == 200, found.text
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [final]
    assert found.json()["total"] == 1
    hidden = await smart.http.get(f"/fhir/Observation/{preliminary}", headers=headers)
    assert hidden.status_code == 404
    seen = await smart.http.get(f"/fhir/Observation/{final}", headers=headers)
    assert seen.status_code == 200
    body = {"resourceType": "Observation", "status": "preliminary",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}}
    outside = await smart.http.post("/fhir/Observation", headers=headers, json=body)
    assert outside.status_code == 403, outside.text
    inside = await smart.http.post("/fhir/Observation", headers=headers,
                                   json={**body, "status": "final"})
    assert inside.status_code == 201, inside.text
    moved = await smart.http.put(f"/fhir/Observation/{final}", headers=headers, json={
        **body, "id": final, "status": "amended"})
    assert moved.status_code == 403
    not_yours = await smart.http.delete(f"/fhir/Observation/{preliminary}", headers=headers)
    assert not_yours.status_code == 404


@pytest.mark.parametrize("case", [
    "unsupported grant", "wrong assertion type", "expired", "exp beyond five minutes",
    "wrong aud", "unknown kid", "unknown client", "revoked client", "bad signature",
    "not a jwt"])
async def test_token_refusals(smart: Smart, case: str) -> None:
    if case == "revoked client":
        assert await smart.auth_store.revoke_client(PHARMACY) == 0
    forms: dict[str, dict[str, str]] = {
        "unsupported grant": token_form(smart.rsa_key, PHARMACY, grant_type="password"),
        "wrong assertion type": token_form(smart.rsa_key, PHARMACY,
                                           client_assertion_type="urn:example:saml"),
        "expired": token_form(smart.rsa_key, PHARMACY, client_assertion=assertion(
            smart.rsa_key, PHARMACY, expires_in=-120)),
        "exp beyond five minutes": token_form(smart.rsa_key, PHARMACY, client_assertion=assertion(
            smart.rsa_key, PHARMACY, expires_in=310)),
        "wrong aud": token_form(smart.rsa_key, PHARMACY, client_assertion=assertion(
            smart.rsa_key, PHARMACY, aud="https://elsewhere.example/auth/token")),
        "unknown kid": token_form(smart.rsa_key, PHARMACY, client_assertion=assertion(
            smart.rsa_key, PHARMACY, kid="not-published")),
        "unknown client": token_form(smart.rsa_key, "nobody"),
        "revoked client": token_form(smart.rsa_key, PHARMACY),
        "bad signature": token_form(smart.rsa_key, PHARMACY, client_assertion=assertion(
            signing_key("RS384", smart.rsa_key.kid or ""), PHARMACY)),
        "not a jwt": token_form(smart.rsa_key, PHARMACY, client_assertion="abc"),
    }
    response = await smart.http.post("/auth/token", data=forms[case])
    body = response.json()
    if case == "unsupported grant":
        assert response.status_code == 400 and body["error"] == "unsupported_grant_type"
        return
    assert response.status_code == 401, body
    assert body["error"] == "invalid_client" and body["error_description"]
    assert "invalid_client" in response.headers["www-authenticate"]
    assert response.headers["cache-control"] == "no-store"


async def test_a_reused_jti_is_refused(smart: Smart) -> None:
    form = token_form(smart.rsa_key, PHARMACY)
    first = await smart.http.post("/auth/token", data=form)
    assert first.status_code == 200
    replay = await smart.http.post("/auth/token", data=form)
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"
    assert "jti" in replay.json()["error_description"]


@pytest.mark.parametrize("scope", ["system/Practitioner.rs", "patient/Patient.rs",
                                   "system/Patient.cruds", "system/Encounter.rs", "profile",
                                   "system/Patient.sr"])
async def test_nothing_grantable_is_invalid_scope(smart: Smart, scope: str) -> None:
    response = await smart.http.post("/auth/token",
                                     data=token_form(smart.rsa_key, PHARMACY, scope=scope))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


@pytest.mark.parametrize("missing", ["grant_type", "client_assertion", "client_assertion_type",
                                     "scope"])
async def test_missing_parameters_are_invalid_request(smart: Smart, missing: str) -> None:
    form = token_form(smart.rsa_key, PHARMACY)
    del form[missing]
    response = await smart.http.post("/auth/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_a_repeated_parameter_or_a_json_body_is_invalid_request(smart: Smart) -> None:
    form: list[tuple[str, str | int | float | bool | None]] = [
        *token_form(smart.rsa_key, PHARMACY).items(), ("scope", "system/Patient.r")]
    repeated = await smart.http.post("/auth/token", content=str(httpx.QueryParams(form)),
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert repeated.status_code == 400 and repeated.json()["error"] == "invalid_request"
    as_json = await smart.http.post("/auth/token", json=token_form(smart.rsa_key, PHARMACY))
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


async def test_introspection(smart: Smart) -> None:
    token = await access_token(smart)
    other = await access_token(smart, scope="system/*.rs", client_id=EHR)
    active = await smart.http.post("/auth/introspect", headers=bearer(other),
                                   data={"token": token})
    assert active.status_code == 200
    assert active.headers["cache-control"] == "no-store"
    claims = active.json()
    assert claims["active"] is True and claims["client_id"] == PHARMACY
    assert claims["scope"] == "system/Patient.rs" and claims["token_type"] == "Bearer"
    assert 0 < claims["exp"] - claims["iat"] <= 300 and "sub" not in claims
    by_operator = await smart.http.post("/auth/introspect", headers=OPERATOR,
                                        data={"token": token})
    assert by_operator.json() == claims
    for unknown in ("not-a-token", token_hash(token)):
        answer = await smart.http.post("/auth/introspect", headers=OPERATOR,
                                       data={"token": unknown})
        assert answer.status_code == 200 and answer.json() == {"active": False}
    expired = "expired-token-value"
    issued = utc_now() - timedelta(minutes=10)
    await smart.auth_store.save_token(IssuedToken(
        token_hash=token_hash(expired), kind="access", client_id=EHR, scope="system/*.rs",
        issued_at=issued, expires_at=issued + timedelta(minutes=5)))
    answer = await smart.http.post("/auth/introspect", headers=OPERATOR, data={"token": expired})
    assert answer.json() == {"active": False}
    missing = await smart.http.post("/auth/introspect", headers=OPERATOR, data={})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


async def test_introspection_needs_an_authenticated_caller(smart: Smart) -> None:
    token = await access_token(smart)
    anonymous = await smart.http.post("/auth/introspect", data={"token": token})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    forged = await smart.http.post("/auth/introspect", headers=bearer("forged"),
                                   data={"token": token})
    assert forged.status_code == 401
    assert 'error="invalid_token"' in forged.headers["www-authenticate"]
    assert "active" not in forged.json()


async def test_revocation_by_the_client_ends_api_access(smart: Smart) -> None:
    patient_id = await create_patient(smart)
    token = await access_token(smart)
    assert (await smart.http.get(f"/fhir/Patient/{patient_id}",
                                 headers=bearer(token))).status_code == 200
    revoked = await smart.http.post("/auth/revoke", data={
        "token": token, "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(smart.rsa_key, PHARMACY)})
    assert revoked.status_code == 200
    after = await smart.http.get(f"/fhir/Patient/{patient_id}", headers=bearer(token))
    assert after.status_code == 401
    assert after.headers["www-authenticate"] == 'Bearer realm="fhir", error="invalid_token"'
    assert after.json()["resourceType"] == "OperationOutcome"
    introspected = await smart.http.post("/auth/introspect", headers=OPERATOR,
                                         data={"token": token})
    assert introspected.json() == {"active": False}
    again = await smart.http.post("/auth/revoke", data={
        "token": "never-issued", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(smart.rsa_key, PHARMACY)})
    assert again.status_code == 200


async def test_revocation_rules(smart: Smart) -> None:
    token = await access_token(smart)
    anonymous = await smart.http.post("/auth/revoke", data={"token": token})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    by_other_client = await smart.http.post("/auth/revoke", data={
        "token": token, "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(smart.ec_key, EHR)})
    assert by_other_client.status_code == 200
    assert await smart.auth_store.find_token(token) is not None
    by_operator = await smart.http.post("/auth/revoke", headers=OPERATOR, data={"token": token})
    assert by_operator.status_code == 200
    assert await smart.auth_store.find_token(token) is None


async def test_a_revoked_client_loses_its_tokens_on_the_api(smart: Smart) -> None:
    token = await access_token(smart)
    assert (await smart.http.get("/fhir/Patient", headers=bearer(token))).status_code == 200
    assert await smart.auth_store.revoke_client(PHARMACY) == 1
    assert (await smart.http.get("/fhir/Patient", headers=bearer(token))).status_code == 401


async def test_the_api_refuses_unknown_and_missing_tokens(smart: Smart) -> None:
    unknown = await smart.http.get("/fhir/Patient", headers=bearer("made-up"))
    assert unknown.status_code == 401
    assert 'error="invalid_token"' in unknown.headers["www-authenticate"]
    missing = await smart.http.get("/fhir/Patient")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong_scheme = await smart.http.get("/fhir/Patient", headers={"Authorization": "Basic eDp5"})
    assert wrong_scheme.status_code == 401


async def test_the_operator_token_keeps_full_access(smart: Smart) -> None:
    patient_id = await create_patient(smart)
    read = await smart.http.get(f"/fhir/Patient/{patient_id}", headers=OPERATOR)
    assert read.status_code == 200
    included = await smart.http.get("/fhir/Patient", headers=OPERATOR,
                                    params={"_revinclude": "Observation:subject"})
    assert included.status_code == 200
    deleted = await smart.http.delete(f"/fhir/Patient/{patient_id}", headers=OPERATOR)
    assert deleted.status_code in (200, 204)


async def test_cors_on_discovery_metadata_and_oauth_endpoints(smart: Smart) -> None:
    token = await access_token(smart)
    responses = [
        await smart.http.get("/fhir/metadata"),
        await smart.http.get("/fhir/.well-known/smart-configuration"),
        await smart.http.post("/auth/token", data=token_form(smart.rsa_key, PHARMACY)),
        await smart.http.post("/auth/token", data={"grant_type": "password"}),
        await smart.http.post("/auth/introspect", headers=OPERATOR, data={"token": token}),
    ]
    for response in responses:
        assert response.headers["access-control-allow-origin"] == "*", response.request.url
    preflight = await smart.http.options("/auth/introspect", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    api = await smart.http.get("/fhir/Patient", headers=OPERATOR)
    assert "access-control-allow-origin" not in api.headers


async def test_discovery_lists_only_what_works(smart: Smart) -> None:
    response = await smart.http.get("/fhir/.well-known/smart-configuration",
                                    headers={"Accept": "application/fhir+json"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document == {
        "issuer": f"{ORIGIN}/fhir",
        "jwks_uri": f"{ORIGIN}/auth/jwks",
        "authorization_endpoint": f"{ORIGIN}/auth/authorize",
        "token_endpoint": TOKEN_URL,
        "introspection_endpoint": f"{ORIGIN}/auth/introspect",
        "revocation_endpoint": f"{ORIGIN}/auth/revoke",
        "management_endpoint": f"{ORIGIN}/accounts",
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                  "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": document["scopes_supported"],
        "capabilities": [
            "launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
            "client-confidential-asymmetric", "sso-openid-connect", "context-standalone-patient",
            "context-ehr-patient", "permission-offline", "permission-patient",
            "permission-user", "permission-v1", "permission-v2"],
        "code_challenge_methods_supported": ["S256"],
    }
    scopes = document["scopes_supported"]
    assert {"openid", "fhirUser", "launch", "launch/patient", "offline_access"} <= set(scopes)
    assert any(scope.startswith("system/") for scope in scopes)
    assert "plain" not in document["code_challenge_methods_supported"]


async def test_discovery_follows_the_configured_base_url(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_token=SecretStr(OPERATOR_TOKEN),
                        base_url="https://fhir.pictaderm.example/api/fhir",
                        outbox_dispatch=False)
    app = create_app(settings, store=make_store("sqlite", tmp_path))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as http:
        document = (await http.get("/fhir/.well-known/smart-configuration")).json()
    assert document["token_endpoint"] == "https://fhir.pictaderm.example/api/auth/token"
