"""Access policies over HTTP with real tokens, on SQLite and MongoDB: two pharmacies' pharmacists
and pharmacy A's backend system, a doctor verified in tier 2 by a medical director, the medical
director and an admin, each signed in through the authorization-code flow (the system through
Backend Services); the cases written with the pharmacists' own tokens
(``tests/support/authorization_world.py``).

What each role may read and write of each case resource type; what must not leak through
``_include``, ``_revinclude``, ``_has``, chains, history, batch and transaction entries, paging
and totals; tokens that stop working at once (suspended account, revoked client, sign-out); and
no password, code, token or client secret in the database files or the logs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import pytest_asyncio

from fhir_server.access.policies import ORGANIZATION_TAG_SYSTEM
from fhir_server.accounts.mail import MAIL_TOPIC
from fhir_server.auth.model import Client, utc_now
from tests.support.app_launch import (
    CALLBACK,
    OPERATOR,
    PASSWORD,
    client_credentials,
    pharmacist,
    running_app,
    settings_for,
)
from tests.support.authorization_world import (
    APP_SCOPES,
    FINESS_A,
    PHARMACIST_A,
    PRO_APP,
    WEB_APP,
    World,
    build_world,
    emailed_token,
    mongo_auth_store,
    operator_read,
)
from tests.support.backends import BACKENDS, make_store
from tests.support.pharmacy_case import CASE_TYPES

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROLES: Final = ("pharmacist_a", "pharmacist_b", "system_a", "doctor", "director", "admin")
PATIENT_LEVEL: Final = ("Patient", "Coverage", "Consent")
"""The case types of the patient itself; the others belong to one request."""
FHIR_JSON: Final = {"Accept": "application/fhir+json"}


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                key_pem: str) -> AsyncIterator[World]:
    directory = tmp_path_factory.mktemp(f"authorization-{request.param}")
    mongo = request.param == "mongo"
    store = make_store("mongo", directory) if mongo else None
    auth_store = mongo_auth_store(directory) if mongo else None
    async with running_app(settings_for(directory / "data", key_pem), store=store,
                           auth_store=auth_store) as (app, http):
        yield await build_world(app, http)


def headers_of(world: World, role: str) -> dict[str, str]:
    if role == "system_a":
        return {**world.system_a, **FHIR_JSON}
    persona = getattr(world, role)
    return {**persona.headers, **FHIR_JSON}


def visible(world: World, role: str, resource_type: str) -> frozenset[str] | None:
    """What ``role`` may see of a case type (None: the type is refused, 403)."""
    if role in ("pharmacist_a", "system_a"):
        return world.case_a.of(resource_type)
    if role == "pharmacist_b":
        return world.case_b.of(resource_type)
    if role == "doctor":
        if resource_type in PATIENT_LEVEL:
            return world.case_a.of(resource_type)
        return frozenset({world.case_a.request(0, resource_type)})
    return None


def every_case_id(world: World, resource_type: str) -> frozenset[str]:
    return world.case_a.of(resource_type) | world.case_b.of(resource_type)


def ids_of(bundle: Mapping[str, Any], mode: str = "match") -> set[tuple[str, str]]:
    return {(entry["resource"]["resourceType"], entry["resource"]["id"])
            for entry in bundle.get("entry", ())
            if entry.get("search", {}).get("mode", "match") == mode}


def match_ids(bundle: Mapping[str, Any]) -> set[str]:
    return {resource_id for _, resource_id in ids_of(bundle)}


async def search(world: World, role: str, path: str, **params: str) -> dict[str, Any]:
    response = await world.http.get(f"/fhir/{path}", headers=headers_of(world, role),
                                    params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def diagnostics(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return " ".join(issue.get("diagnostics", "") for issue in body["issue"])


# --- per role and per case resource type ----------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_searches_and_reads_what_its_policy_allows(world: World,
                                                                   role: str) -> None:
    headers = headers_of(world, role)
    for resource_type in CASE_TYPES:
        allowed = visible(world, role, resource_type)
        found = await world.http.get(f"/fhir/{resource_type}", headers=headers,
                                     params={"_count": "100", "_total": "accurate"})
        if allowed is None:
            assert found.status_code == 403, (resource_type, found.text)
            assert found.json()["issue"][0]["code"] == "forbidden"
        else:
            assert found.status_code == 200, (resource_type, found.text)
            assert match_ids(found.json()) == allowed, resource_type
            assert found.json()["total"] == len(allowed), resource_type
        for resource_id in every_case_id(world, resource_type):
            read = await world.http.get(f"/fhir/{resource_type}/{resource_id}",
                                        headers=headers)
            expected = 403 if allowed is None else 200 if resource_id in allowed else 404
            assert read.status_code == expected, (resource_type, resource_id, read.text)


async def test_the_staff_read_the_directory_but_no_health_data(world: World) -> None:
    for role in ("director", "admin"):
        roles = await search(world, role, "PractitionerRole")
        assert len(match_ids(roles)) >= 3, role
        pharmacies = await search(world, role, "Organization")
        assert {world.organization_a, world.organization_b} <= {
            f"Organization/{resource_id}" for resource_id in match_ids(pharmacies)}, role
    admin_reads_patient = await world.http.get(
        f"/fhir/Patient/{world.case_a.patient}", headers=headers_of(world, "admin"))
    assert admin_reads_patient.status_code == 403
    assert "user/Patient.r" in diagnostics(admin_reads_patient)
    director_reads_task = await world.http.get(
        f"/fhir/Task/{world.case_a.request(0, 'Task')}", headers=headers_of(world, "director"))
    assert director_reads_task.status_code == 403
    assert "medical-director" in diagnostics(director_reads_task)


async def test_writes_per_role(world: World) -> None:
    http, case_a = world.http, world.case_a
    patient_path = f"Patient/{case_a.patient}"
    before = await operator_read(http, patient_path)
    note = {"resourceType": "Communication", "status": "completed",
            "basedOn": [{"reference": f"ServiceRequest/{case_a.request(0, 'ServiceRequest')}"}],
            "subject": {"reference": patient_path},
            "payload": [{"contentString": "Photo complémentaire à venir"}]}
    written = await http.post("/fhir/Communication", json=note,
                              headers=headers_of(world, "pharmacist_a"))
    assert written.status_code == 201, written.text
    assert {"system": ORGANIZATION_TAG_SYSTEM, "code": world.organization_a} in \
        written.json()["meta"]["tag"]
    note_id = written.json()["id"]
    changed = {**before, "gender": "male"}
    changed.pop("meta")
    # pharmacy B may not even read A's records (404); the others are refused (403): the doctor
    # by its policy, the staff by theirs or their scopes, the system by its .rs scope
    refusals = {"pharmacist_b": 404, "doctor": 403, "director": 403, "admin": 403,
                "system_a": 403}
    for role, status in refusals.items():
        headers = headers_of(world, role)
        update = await http.put(f"/fhir/{patient_path}", json=changed, headers=headers)
        assert update.status_code == status, (role, update.text)
        removal = await http.delete(f"/fhir/Communication/{note_id}", headers=headers)
        assert removal.status_code == status, (role, removal.text)
    for role in ("doctor", "director", "admin", "system_a"):
        created = await http.post("/fhir/Communication", json=note,
                                  headers=headers_of(world, role))
        assert created.status_code == 403, (role, created.text)
    doctor_report = await http.post("/fhir/DiagnosticReport", headers=headers_of(
        world, "doctor"), json={
        "resourceType": "DiagnosticReport", "status": "final",
        "code": {"text": "Avis dermatologique"},
        "basedOn": [{"reference": f"ServiceRequest/{case_a.request(0, 'ServiceRequest')}"}],
        "subject": {"reference": patient_path}})
    assert doctor_report.status_code == 403, "the doctor does not own the case yet"
    after = await operator_read(http, patient_path)
    assert after["meta"]["versionId"] == before["meta"]["versionId"]
    assert (await operator_read(http, f"Communication/{note_id}"))["status"] == "completed"


# --- leaks -----------------------------------------------------------------------------------


async def test_include_and_revinclude_carry_the_reach_of_the_included_type(
        world: World) -> None:
    included = await search(world, "pharmacist_b", "Communication",
                            _include="Communication:subject")
    assert ids_of(included) == {("Communication", world.cross_note)}
    assert ids_of(included, "include") == set(), "pharmacy A's patient was included for B"
    iterated = await search(world, "pharmacist_b", "Communication", **{
        "_include": "Communication:*", "_include:iterate": "ServiceRequest:subject"})
    assert ids_of(iterated, "include") == {
        ("ServiceRequest", world.case_b.request(0, "ServiceRequest")),
        ("Patient", world.case_b.patient)}
    revincluded = await search(world, "pharmacist_a", "Patient",
                               _revinclude="Communication:subject")
    assert ids_of(revincluded) == {("Patient", world.case_a.patient)}
    assert ("Communication", world.cross_note) not in ids_of(revincluded, "include"), \
        "pharmacy B's note was revincluded for A"
    case_a = world.case_a
    tasks = await search(world, "doctor", "Patient", _revinclude="Task:patient",
                         _total="accurate")
    assert ids_of(tasks, "include") == {("Task", case_a.request(0, "Task"))}
    assert tasks["total"] == 1
    photos = await search(world, "doctor", "Patient", _revinclude="Media:subject")
    assert ids_of(photos, "include") == {("Media", case_a.request(0, "Media"))}
    focus = await search(world, "doctor", "Task", _include="Task:focus")
    assert ids_of(focus, "include") == {("ServiceRequest", case_a.request(0, "ServiceRequest"))}
    by_a = await search(world, "pharmacist_a", "Patient", _revinclude="Task:patient")
    assert ids_of(by_a, "include") == {("Task", task) for task in case_a.of("Task")}


async def test_has_and_chains_are_confined_to_what_the_caller_reads(world: World) -> None:
    case_a, case_b = world.case_a, world.case_b
    about_a = await search(world, "pharmacist_a", "Patient",
                           **{"_has:Communication:subject:_id": world.cross_note})
    assert match_ids(about_a) == set(), "B's note revealed A's patient to A"
    control = await search(world, "pharmacist_a", "Patient",
                           **{"_has:Task:patient:status": "requested"})
    assert match_ids(control) == {case_a.patient}
    hidden_photo = await search(world, "doctor", "Patient", **{
        "_has:Media:subject:_id": case_a.request(1, "Media")})
    assert match_ids(hidden_photo) == set()
    shown_photo = await search(world, "doctor", "Patient", **{
        "_has:Media:subject:_id": case_a.request(0, "Media")})
    assert match_ids(shown_photo) == {case_a.patient}
    probed = await search(world, "pharmacist_b", "Communication",
                          **{"subject:Patient.family": case_a.family, "_total": "accurate"})
    assert match_ids(probed) == set() and probed["total"] == 0
    own = await search(world, "pharmacist_b", "Media",
                       **{"subject:Patient.family": case_b.family})
    assert match_ids(own) == case_b.of("Media")
    tasks_of_a = await search(world, "pharmacist_b", "Task",
                              **{"patient.family": case_a.family})
    assert match_ids(tasks_of_a) == set()
    tier_3 = await search(world, "doctor", "Media", **{
        "based-on:ServiceRequest._id": case_a.request(1, "ServiceRequest")})
    assert match_ids(tier_3) == set()
    refused_inner = await world.http.get("/fhir/PractitionerRole", headers=headers_of(
        world, "director"), params={"_has:Task:owner:status": "requested"})
    assert refused_inner.status_code == 403


async def test_history_of_a_hidden_resource_is_unknown_and_type_history_refused(
        world: World) -> None:
    headers = headers_of(world, "pharmacist_b")
    path = f"/fhir/Patient/{world.case_a.patient}"
    for hidden in (path, f"{path}/_history", f"{path}/_history/1"):
        response = await world.http.get(hidden, headers=headers)
        assert response.status_code == 404, hidden
        assert world.case_a.family not in response.text
    own = await world.http.get(f"/fhir/Patient/{world.case_b.patient}/_history",
                               headers=headers)
    assert own.status_code == 200 and len(own.json()["entry"]) >= 1
    for across in ("/fhir/Patient/_history", "/fhir/_history"):
        response = await world.http.get(across, headers=headers)
        assert response.status_code == 403, across
    doctor = await world.http.get(
        f"/fhir/Task/{world.case_a.request(1, 'Task')}/_history",
        headers=headers_of(world, "doctor"))
    assert doctor.status_code == 404


async def test_batch_entries_answer_each_under_the_policy(world: World) -> None:
    theirs, mine = world.case_a.patient, world.case_b.patient
    before = await operator_read(world.http, f"Patient/{theirs}")
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Patient/{theirs}"}},
        {"request": {"method": "GET", "url": f"Patient/{mine}"}},
        {"request": {"method": "GET", "url": "Media?_count=50&_total=accurate"}},
        {"request": {"method": "PUT", "url": f"Patient/{theirs}"},
         "resource": {"resourceType": "Patient", "id": theirs, "gender": "male"}},
        {"request": {"method": "DELETE", "url": f"Patient/{theirs}"}}]}
    response = await world.http.post("/fhir", json=batch,
                                     headers=headers_of(world, "pharmacist_b"))
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    statuses = [entry["response"]["status"].split()[0] for entry in entries]
    assert statuses == ["404", "200", "200", "404", "404"]
    assert entries[1]["resource"]["id"] == mine
    searched = entries[2]["resource"]
    assert match_ids(searched) == world.case_b.of("Media") and searched["total"] == 1
    after = await operator_read(world.http, f"Patient/{theirs}")
    assert after["meta"]["versionId"] == before["meta"]["versionId"]


async def test_a_transaction_with_one_refused_entry_writes_nothing(world: World) -> None:
    theirs = world.case_a.patient
    headers = headers_of(world, "pharmacist_b")
    before = await operator_read(world.http, f"Patient/{theirs}")
    patients_before = match_ids(await search(world, "pharmacist_b", "Patient"))
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6f1c1f5e-8a57-4c55-9f0e-0d5a3f3f2c11",
         "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "gender": "female",
                      "name": [{"family": "Nouvelle"}]}},
        {"request": {"method": "PUT", "url": f"Patient/{theirs}"},
         "resource": {"resourceType": "Patient", "id": theirs, "gender": "male"}}]}
    response = await world.http.post("/fhir", json=transaction, headers=headers)
    assert response.status_code == 404, response.text
    assert match_ids(await search(world, "pharmacist_b", "Patient")) == patients_before
    everyone = await world.http.get("/fhir/Patient", headers=OPERATOR,
                                    params={"family": "Nouvelle"})
    assert everyone.json()["total"] == 0
    after = await operator_read(world.http, f"Patient/{theirs}")
    assert after["meta"]["versionId"] == before["meta"]["versionId"]


async def test_pages_and_totals_count_only_what_the_caller_sees(world: World) -> None:
    first = await search(world, "pharmacist_a", "Media", _count="1", _total="accurate")
    assert first["total"] == 2 and len(first["entry"]) == 1
    seen = match_ids(first)
    following = [link["url"] for link in first["link"] if link["relation"] == "next"]
    while following:
        page = await world.http.get(following[0], headers=headers_of(world, "pharmacist_a"))
        assert page.status_code == 200
        seen |= match_ids(page.json())
        following = [link["url"] for link in page.json()["link"] if link["relation"] == "next"]
    assert seen == world.case_a.of("Media")
    counted = {role: (await search(world, role, "Task", _summary="count"))["total"]
               for role in ("pharmacist_a", "pharmacist_b", "doctor", "system_a")}
    assert counted == {"pharmacist_a": 2, "pharmacist_b": 1, "doctor": 1, "system_a": 2}
    everything = await world.http.get("/fhir/Task", headers=OPERATOR,
                                      params={"_summary": "count"})
    assert everything.json()["total"] == 3
    several = await world.http.get("/fhir", headers=headers_of(world, "doctor"),
                                   params={"_type": "Task,Media,Patient", "_total": "accurate"})
    assert several.status_code == 200
    assert several.json()["total"] == 3


# --- tokens that stop working ------------------------------------------------------------------


async def test_a_suspended_account_gets_401_at_once(world: World) -> None:
    email = "remplacante@pharmacie-du-centre.example"
    account = await world.runtime.accounts.create_user(pharmacist(
        email, FINESS_A, "Pharmacie du Centre", "Garnier"))
    issued = await world.sign_in(email)
    assert account.organization == world.organization_a
    works = await world.http.get("/fhir/Patient", headers=issued.bearer)
    assert works.status_code == 200 and match_ids(works.json()) == {world.case_a.patient}
    until = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
    suspended = await world.http.post(f"/admin/accounts/{account.account_id}/suspend",
                                      headers=world.admin.headers,
                                      json={"until": until, "reason": "Partage de compte"})
    assert suspended.status_code == 200, suspended.text
    refused = await world.http.get("/fhir/Patient", headers=issued.bearer)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    refresh = await world.http.post("/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": issued.refresh_token,
        "client_id": WEB_APP})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    by_pharmacist = await world.http.post(f"/admin/accounts/{account.account_id}/warn",
                                          headers=world.pharmacist_a.headers,
                                          json={"reason": "x"})
    assert by_pharmacist.status_code == 403


async def test_a_revoked_client_s_tokens_get_401(world: World) -> None:
    runtime = world.runtime
    await runtime.auth_store.add_client(Client(
        client_id="legacy-app", name="Ancienne appli", kind="public", scope=APP_SCOPES,
        created=utc_now(), redirect_uris=(CALLBACK,)))
    await runtime.auth_store.add_client(Client(
        client_id="legacy-system", name="Ancien logiciel", kind="backend",
        scope="system/*.rs", created=utc_now(), organization=world.organization_a,
        jwks={"keys": [dict(world.system_key.as_dict(private=False))]}))
    app_token = await world.sign_in(PHARMACIST_A, client_id="legacy-app")
    system_token = {"Authorization": f"Bearer {await world.system_token('legacy-system')}"}
    for headers in (app_token.bearer, system_token):
        assert (await world.http.get("/fhir/Patient", headers=headers)).status_code == 200
    for client_id in ("legacy-app", "legacy-system"):
        assert await runtime.auth_store.revoke_client(client_id) is not None
    for headers in (app_token.bearer, system_token):
        refused = await world.http.get("/fhir/Patient", headers=headers)
        assert refused.status_code == 401
    still = await world.http.get("/fhir/Patient", headers=world.system_a)
    assert still.status_code == 200, "another client of the same pharmacy is not affected"
    assert (await world.http.get("/fhir/Patient",
                                 headers=world.pharmacist_a.headers)).status_code == 200


async def test_logout_ends_the_session_and_only_it(world: World) -> None:
    session = await world.sign_in(PHARMACIST_A)
    assert (await world.http.get("/fhir/Task", headers=session.bearer)).status_code == 200
    out = await world.http.post("/auth/logout", headers=session.bearer)
    assert out.status_code == 204
    assert (await world.http.get("/fhir/Task", headers=session.bearer)).status_code == 401
    refresh = await world.http.post("/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": session.refresh_token,
        "client_id": WEB_APP})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    other = await world.http.get("/fhir/Task", headers=world.pharmacist_a.headers)
    assert other.status_code == 200, "the pharmacist's other session goes on"


# --- no plaintext secret anywhere ----------------------------------------------------------------


async def the_flows_of_a_day(world: World) -> None:
    """Refresh, a confidential app with its secret (in the body, then Basic), introspection,
    revocation and sign-out, on top of the sign-ins and writes of the world."""
    refreshed = await world.http.post("/auth/token", data={
        "grant_type": "refresh_token", "refresh_token": world.pharmacist_a.issued.refresh_token,
        "client_id": WEB_APP})
    assert refreshed.status_code == 200
    world.secrets.extend([refreshed.json()["access_token"], refreshed.json()["refresh_token"]])
    secret, _, _ = client_credentials()
    pro = await world.sign_in(PHARMACIST_A, client_id=PRO_APP, client_secret=secret)
    renewed = await world.http.post("/auth/token", auth=(PRO_APP, secret), data={
        "grant_type": "refresh_token", "refresh_token": pro.refresh_token})
    assert renewed.status_code == 200, renewed.text
    world.secrets.extend([renewed.json()["access_token"], renewed.json()["refresh_token"]])
    introspected = await world.http.post("/auth/introspect", headers=OPERATOR,
                                         data={"token": renewed.json()["access_token"]})
    assert introspected.json()["active"] is True
    revoked = await world.http.post("/auth/revoke", auth=(PRO_APP, secret),
                                    data={"token": renewed.json()["refresh_token"]})
    assert revoked.status_code == 200
    out = await world.http.post("/auth/logout", headers=world.doctor.headers)
    assert out.status_code == 204
    reset = await world.http.post("/accounts/forgot-password", json={"email": PHARMACIST_A})
    assert reset.status_code == 202
    token = await emailed_token(world.runtime, world.settings, PHARMACIST_A)
    world.secrets.append(token)
    changed = await world.http.post("/accounts/reset-password", json={
        "token": token, "password": f"{PASSWORD} renewed"})
    assert changed.status_code == 200
    world.secrets.append(f"{PASSWORD} renewed")


async def emails_sent(world: World) -> None:
    """Wait until the dispatcher has sent every account email (and logged it)."""
    for _ in range(200):
        pending = await world.runtime.store.outbox_pending(1000)
        if not any(record.event.topic == MAIL_TOPIC for record in pending):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the account emails were not sent")


def databases_under(directory: Path) -> dict[str, bytes]:
    """The bytes of each SQLite database under ``directory``, its WAL and journal included."""
    databases: dict[str, bytes] = {}
    for path in sorted(directory.rglob("*.sqlite3*")):
        name = path.name.split("-")[0]
        databases[name] = databases.get(name, b"") + path.read_bytes()
    return databases


async def test_no_plaintext_secret_in_the_database_files_or_the_logs(
        tmp_path: Path, key_pem: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    data_dir = tmp_path / "data"
    settings = settings_for(data_dir, key_pem, outbox_dispatch=True, outbox_poll_seconds=0.05)
    async with running_app(settings) as (app, http):
        world = await build_world(app, http)
        await the_flows_of_a_day(world)
        await emails_sent(world)
    secrets = sorted(set(world.secrets))
    assert len(secrets) >= 20 and PASSWORD in secrets
    stored = databases_under(data_dir)
    assert set(stored) == {"auth.sqlite3", "fhir.sqlite3"}
    assert PHARMACIST_A.encode() in stored["auth.sqlite3"], "the accounts' rows are read"
    assert world.case_a.family.encode() in stored["fhir.sqlite3"], "the FHIR rows are read"
    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    sent = [record for record in caplog.records if record.name == "fhir_server.accounts.mail"]
    assert len(sent) >= 8, "the emails' log lines are among the logs read"
    for secret in secrets:
        encoded = secret.encode()
        for name, content in stored.items():
            assert encoded not in content, f"a secret ({len(secret)} chars) is in {name}"
        assert secret not in logged, f"a secret ({len(secret)} chars) is in the logs"
