"""R4 Subscriptions with rest-hook delivery, over HTTP with real tokens, on SQLite and MongoDB.

The server of ``tests/support/authorization_world.py`` (two pharmacies' pharmacists, pharmacy
A's backend system, a tier-2 doctor…) plus a doctor verified in tier 1, with the subscription
hook in its engine. Cases are intake transactions sent with the pharmacists' own tokens; the
outbox is delivered by a real dispatcher running the subscription consumers built around the
app's runtime objects, to a loopback receiver (``tests/support/hook_receiver.py``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
import pytest
import pytest_asyncio
from stdnum import luhn

from fhir_server.access.policies import OWNER_TAG_SYSTEM
from fhir_server.access.principal import Principal
from fhir_server.accounts import NewUser
from fhir_server.api.app import create_app
from fhir_server.auth.model import Client, utc_now
from fhir_server.errors import FhirError
from fhir_server.outbox.consumers import ConsumerRegistry
from fhir_server.outbox.delivery import InProcessDeliverer
from fhir_server.outbox.dispatcher import OutboxDispatcher
from fhir_server.runtime import Runtime
from fhir_server.storage.protocol import Store
from fhir_server.subscriptions import DeliveryPolicy, subscription_consumers
from fhir_server.subscriptions.channel import read_rest_hook
from fhir_server.subscriptions.records import DELIVERY_URL, GRANT_URL
from tests.support.app_launch import (
    OPERATOR,
    ORIGIN,
    PASSWORD,
    settings_for,
)
from tests.support.authorization_world import (
    PHARMACY_SYSTEM,
    Persona,
    World,
    backend_token,
    build_world,
    mongo_auth_store,
    sent_intake,
)
from tests.support.backends import BACKENDS, make_store
from tests.support.hook_receiver import HookReceiver, running_hook_receiver

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIER_1_DOCTOR: Final = "lea@cabinet-nord.example"
TIER_1_RPPS: Final = "1012345678" + luhn.calc_check_digit("1012345678")
OTHER_RPPS: Final = "1023456789" + luhn.calc_check_digit("1023456789")
SYSTEM_SCOPE: Final = "system/Subscription.cruds system/Task.rs"
FAST: Final = DeliveryPolicy(max_failures=3, retry_base_seconds=0.05, retry_max_seconds=0.1,
                             timeout_seconds=5.0)


@dataclass
class Bench:
    """The world, a tier-1 doctor, the pharmacists' roles, and the Subscriptions to remove
    after each test."""

    world: World
    doctor_1: Persona
    role_a: str
    role_b: str
    created: list[str] = field(default_factory=list)

    @property
    def http(self) -> httpx.AsyncClient:
        return self.world.http

    @property
    def runtime(self) -> Runtime:
        return self.world.runtime


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def bench(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                key_pem: str) -> AsyncIterator[Bench]:
    directory = tmp_path_factory.mktemp(f"subscriptions-{request.param}")
    mongo = request.param == "mongo"
    app = create_app(settings_for(directory / "data", key_pem, outbox_dispatch=False),
                     store=make_store("mongo", directory) if mongo else None,
                     auth_store=mongo_auth_store(directory) if mongo else None)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=ORIGIN) as http:
        world = await build_world(app, http)
        accounts = world.runtime.accounts
        doctor = await accounts.create_user(NewUser(
            email=TIER_1_DOCTOR, role="doctor", password=PASSWORD, family_name="Martin",
            given_names=("Léa",), rpps=TIER_1_RPPS))
        await accounts.verify_doctor(doctor.account_id, "tier-1",
                                     by=Principal("medical-director", world.director.account_id))
        doctor_1 = Persona(doctor.account_id, TIER_1_DOCTOR,
                           await world.sign_in(TIER_1_DOCTOR))
        yield Bench(world=world, doctor_1=doctor_1,
                    role_a=await role_of(world, world.pharmacist_a),
                    role_b=await role_of(world, world.pharmacist_b))


async def role_of(world: World, persona: Persona) -> str:
    """The PractitionerRole a pharmacist's account acts in."""
    account = await world.runtime.accounts.get(persona.account_id)
    assert account is not None and account.practitioner_role is not None
    return account.practitioner_role


@pytest_asyncio.fixture(loop_scope="module")
async def hooks(bench: Bench) -> AsyncIterator[Bench]:
    """The bench, cleared of the Subscriptions a test made when it ends."""
    await Outbox.of(bench).drain()
    yield bench
    for id in bench.created:
        response = await bench.http.delete(f"/fhir/Subscription/{id}", headers=OPERATOR)
        assert response.status_code in (200, 204), response.text
    bench.created.clear()
    await Outbox.of(bench).drain()


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    with running_hook_receiver() as running:
        yield running


@dataclass
class Outbox:
    """A fresh outbox dispatcher (nothing in memory, as after a restart) running the
    subscription consumers built around the app's runtime objects."""

    dispatcher: OutboxDispatcher
    store: Store

    @classmethod
    def of(cls, bench: Bench, policy: DeliveryPolicy = FAST) -> Outbox:
        runtime = bench.runtime
        registry = ConsumerRegistry()
        for consumer in subscription_consumers(runtime.engine, runtime.auth_store,
                                               runtime.accounts, policy=policy):
            registry.register(consumer.name, consumer.topic, consumer.handler)
        dispatcher = OutboxDispatcher(runtime.store, InProcessDeliverer(runtime.store, registry),
                                      poll_seconds=0.01, retry_base_seconds=0.01,
                                      retry_max_seconds=0.05)
        return cls(dispatcher=dispatcher, store=runtime.store)

    async def drain(self, *, until: Callable[[], bool] | None = None,
                    seconds: float = 10.0) -> None:
        """Dispatch until nothing is pending (or ``until`` holds), at most ``seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            await self.dispatcher.run_once()
            if until() if until is not None else not await self.store.outbox_pending(1):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the outbox was not delivered in time")


def subscription(criteria: str, endpoint: str, *, payload: str | None = None,
                 headers: tuple[str, ...] = (), **changes: Any) -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": endpoint}
    if payload is not None:
        channel["payload"] = payload
    if headers:
        channel["header"] = list(headers)
    return {"resourceType": "Subscription", "status": "requested",
            "reason": "Être prévenu des demandes de téléexpertise", "criteria": criteria,
            "channel": channel, **changes}


async def subscribe(bench: Bench, headers: dict[str, str], body: dict[str, Any]
                    ) -> dict[str, Any]:
    response = await bench.http.post("/fhir/Subscription", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    bench.created.append(created["id"])
    return created


async def read(bench: Bench, headers: dict[str, str], id: str) -> dict[str, Any]:
    response = await bench.http.get(f"/fhir/Subscription/{id}", headers=headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def case_of(bench: Bench, pharmacy: str, tier: str, family: str) -> str:
    """A new case of pharmacy ``a`` or ``b`` offered to ``tier``; its Task id."""
    persona = bench.world.pharmacist_a if pharmacy == "a" else bench.world.pharmacist_b
    case = await sent_intake(
        bench.http, persona.headers, role=bench.role_a if pharmacy == "a" else bench.role_b,
        organization=(bench.world.organization_a if pharmacy == "a"
                      else bench.world.organization_b), tiers=(tier,), family=family)
    return case.request(0, "Task")


def extension(resource: dict[str, Any], url: str) -> dict[str, Any] | None:
    parts = [item for item in resource.get("extension", ()) if item["url"] == url]
    return {part["url"]: next(v for k, v in part.items() if k.startswith("value"))
            for part in parts[0]["extension"]} if parts else None


async def test_a_doctor_hears_of_the_cases_offered_to_its_tier(hooks: Bench,
                                                                 receiver: HookReceiver) -> None:
    doctor = hooks.doctor_1.headers
    await subscribe(hooks, doctor, subscription(
        "Task?status=requested&tier=tier-1", receiver.url("/tier-1"),
        payload="application/fhir+json",
        headers=("Authorization: Bearer hook-secret-1", "X-Source: pictaderm")))
    await subscribe(hooks, doctor, subscription("Task?status=requested",
                                                receiver.url("/offered")))
    tier_1 = await case_of(hooks, "b", "tier-1", "Rossi-Un")
    await case_of(hooks, "a", "tier-2", "Santoni-Deux")
    await Outbox.of(hooks).drain()

    (notified,) = receiver.to("/tier-1")
    assert notified.method == "POST"
    assert notified.headers["authorization"] == "Bearer hook-secret-1"
    assert notified.headers["x-source"] == "pictaderm"
    assert notified.headers["content-type"] == "application/fhir+json"
    task = json.loads(notified.body)
    assert (task["resourceType"], task["id"], task["status"]) == ("Task", tier_1, "requested")
    assert task["performerType"][0]["coding"][0]["code"] == "tier-1"
    (offered,) = receiver.to("/offered")
    assert offered.body == b"" and "content-type" not in offered.headers
    assert "authorization" not in offered.headers


async def test_a_pharmacy_hears_of_its_own_cases_with_or_without_payload(
        hooks: Bench, receiver: HookReceiver) -> None:
    await subscribe(hooks, hooks.world.pharmacist_a.headers,
                    subscription("Task?status=requested", receiver.url("/pharmacist-a")))
    system = {"Authorization": "Bearer " + await backend_token(
        hooks.http, hooks.world.system_key, PHARMACY_SYSTEM, scope=SYSTEM_SCOPE)}
    await subscribe(hooks, system, subscription("Task", receiver.url("/system-a"),
                                                payload="application/fhir+json"))
    await case_of(hooks, "b", "tier-1", "Rossi-Trois")
    own = await case_of(hooks, "a", "tier-3", "Santoni-Quatre")
    await Outbox.of(hooks).drain()

    (empty,) = receiver.to("/pharmacist-a")
    assert empty.body == b"" and empty.headers["content-length"] == "0"
    (full,) = receiver.to("/system-a")
    task = json.loads(full.body)
    assert task["id"] == own
    assert task["requester"] == {"reference": hooks.role_a}


async def test_a_failing_endpoint_is_retried_with_backoff_then_set_to_error(
        hooks: Bench, receiver: HookReceiver) -> None:
    policy = DeliveryPolicy(max_failures=3, retry_base_seconds=0.3, retry_max_seconds=0.6,
                            timeout_seconds=5.0)
    doctor = hooks.doctor_1.headers
    receiver.answer(then=503)
    created = await subscribe(hooks, doctor, subscription(
        "Task?status=requested&tier=tier-1", receiver.url("/failing")))
    await case_of(hooks, "b", "tier-1", "Rossi-Cinq")
    await Outbox.of(hooks, policy).drain(until=lambda: bool(receiver.requests))

    waiting = await read(hooks, doctor, created["id"])
    state = extension(waiting, DELIVERY_URL)
    assert waiting["status"] == "active" and state is not None and state["failures"] == 1
    assert state["nextAttempt"] > datetime.now(UTC).isoformat()
    restarted = Outbox.of(hooks, policy)
    await restarted.dispatcher.run_once()
    assert len(receiver.requests) == 1, "after a restart, the next attempt still waits"

    await restarted.drain(until=lambda: len(receiver.requests) == 3)
    first, second, third = (request.at for request in receiver.requests)
    assert second - first >= 0.3 and third - second >= 0.6
    failed = await read(hooks, doctor, created["id"])
    assert failed["status"] == "error"
    assert "failed 3 times in a row" in failed["error"] and "HTTP 503" in failed["error"]
    await restarted.drain()
    assert len(receiver.requests) == 3, "the notification is given up"

    await case_of(hooks, "b", "tier-1", "Rossi-Six")
    await restarted.drain()
    assert len(receiver.requests) == 3, "a Subscription in error is not notified"
    reactivated = await hooks.http.put(f"/fhir/Subscription/{created['id']}", headers=doctor,
                                       json={**failed, "status": "requested"})
    assert reactivated.status_code == 200, reactivated.text
    resumed = await read(hooks, doctor, created["id"])
    assert resumed["status"] == "active"
    assert "error" not in resumed and extension(resumed, DELIVERY_URL) is None
    receiver.answer(then=200)
    await case_of(hooks, "b", "tier-1", "Rossi-Sept")
    await restarted.drain()
    assert [request.path for request in receiver.requests] == ["/failing"] * 4


async def test_a_channel_no_longer_acceptable_is_set_to_error_at_once(
        hooks: Bench, receiver: HookReceiver) -> None:
    doctor = hooks.doctor_1.headers
    created = await subscribe(hooks, doctor, subscription("Task?status=requested",
                                                          receiver.url("/plain-http")))
    await case_of(hooks, "b", "tier-1", "Rossi-Dix")
    await Outbox.of(hooks, DeliveryPolicy(https_only=True)).drain()

    assert receiver.requests == ()
    stopped = await read(hooks, doctor, created["id"])
    assert stopped["status"] == "error"
    assert "Subscription.channel.endpoint" in stopped["error"]


async def test_a_delivery_resets_the_count_of_failures(hooks: Bench,
                                                       receiver: HookReceiver) -> None:
    doctor = hooks.doctor_1.headers
    receiver.answer(500, 502, then=204)
    created = await subscribe(hooks, doctor, subscription(
        "Task?status=requested&tier=tier-1", receiver.url("/flaky")))
    await case_of(hooks, "b", "tier-1", "Rossi-Huit")
    await Outbox.of(hooks).drain()

    assert len(receiver.requests) == 3
    settled = await read(hooks, doctor, created["id"])
    assert settled["status"] == "active" and extension(settled, DELIVERY_URL) is None


async def test_an_expired_subscription_or_a_suspended_owner_hears_nothing(
        hooks: Bench, receiver: HookReceiver) -> None:
    accounts = hooks.runtime.accounts
    await subscribe(hooks, hooks.doctor_1.headers, subscription(
        "Task?status=requested", receiver.url("/expired"), end="2020-01-01T00:00:00Z"))
    other = await accounts.create_user(NewUser(
        email="paul@cabinet-sud.example", role="doctor", password=PASSWORD,
        family_name="Girard", given_names=("Paul",), rpps=OTHER_RPPS))
    await accounts.verify_doctor(other.account_id, "tier-1",
                                 by=Principal("medical-director", hooks.world.director.account_id))
    issued = await hooks.world.sign_in("paul@cabinet-sud.example")
    await subscribe(hooks, issued.bearer, subscription("Task?status=requested",
                                                       receiver.url("/suspended")))
    await accounts.suspend(other.account_id, datetime.now(UTC) + timedelta(days=7),
                           "Vérification en cours")
    await subscribe(hooks, hooks.doctor_1.headers, subscription("Task?status=requested",
                                                                receiver.url("/current")))
    await case_of(hooks, "b", "tier-1", "Rossi-Neuf")
    await Outbox.of(hooks).drain()
    assert [request.path for request in receiver.requests] == ["/current"]


async def test_subscriptions_belong_to_their_creator(hooks: Bench,
                                                     receiver: HookReceiver) -> None:
    world = hooks.world
    forged = subscription("Task?status=requested", receiver.url("/mine"), meta={"tag": [
        {"system": OWNER_TAG_SYSTEM, "code": f"account/{world.pharmacist_b.account_id}"}]},
        extension=[{"url": GRANT_URL, "extension": [{"url": "scope",
                                                      "valueString": "user/*.cruds"}]}])
    created = await subscribe(hooks, world.pharmacist_a.headers, forged)
    assert created["status"] == "requested"
    mine = await read(hooks, world.pharmacist_a.headers, created["id"])
    assert mine["status"] == "active"
    assert mine["meta"]["tag"] == [{"system": OWNER_TAG_SYSTEM,
                                    "code": f"account/{world.pharmacist_a.account_id}"}]
    assert extension(mine, GRANT_URL) == {"scope": world.pharmacist_a.issued.answer["scope"]}

    path = f"/fhir/Subscription/{created['id']}"
    for persona in (world.pharmacist_b, world.doctor, hooks.doctor_1):
        assert (await hooks.http.get(path, headers=persona.headers)).status_code == 404
        listed = await hooks.http.get("/fhir/Subscription", headers=persona.headers)
        assert listed.status_code == 200 and "entry" not in listed.json()
        changed = await hooks.http.put(path, headers=persona.headers, json=mine)
        assert changed.status_code in (403, 404)
        assert (await hooks.http.delete(path, headers=persona.headers)).status_code == 404
    assert (await hooks.http.get(path, headers=world.system_a)).status_code == 404
    assert (await hooks.http.get(path, headers=world.admin.headers)).status_code == 403
    listed = await hooks.http.get("/fhir/Subscription", headers=world.pharmacist_a.headers)
    assert [entry["resource"]["id"] for entry in listed.json()["entry"]] == [created["id"]]


async def test_a_client_acting_for_no_organization_cannot_own_one(
        hooks: Bench, receiver: HookReceiver) -> None:
    key = hooks.world.system_key
    await hooks.runtime.auth_store.add_client(Client(
        client_id="regional-hub", name="Plateforme régionale", kind="backend",
        scope="system/*.cruds", created=utc_now(),
        jwks={"keys": [dict(key.as_dict(private=False))]}))
    hub = {"Authorization": "Bearer " + await backend_token(hooks.http, key, "regional-hub",
                                                            scope="system/*.cruds")}
    refused = await hooks.http.post("/fhir/Subscription", headers=hub, json=subscription(
        "Task", receiver.url("/hub")))
    assert refused.status_code == 403
    theirs = await subscribe(hooks, hooks.doctor_1.headers,
                             subscription("Task", receiver.url("/doctor")))
    across = await hooks.http.get("/fhir", headers=hub, params={"_id": theirs["id"]})
    assert across.status_code == 200 and "entry" not in across.json()


ENDPOINT: Final = "http://127.0.0.1:9/hook"
INVALID: Final = [
    ("Subscription.channel.type", {"channel": {"type": "websocket", "endpoint": ENDPOINT}}),
    ("Subscription.criteria", {"criteria": "Patient?name=martin"}),
    ("Subscription.criteria", {"criteria": "Task?status=requested&_include=Task:focus"}),
    ("Subscription.criteria", {"criteria": "Task?colour=red"}),
    ("Subscription.channel.endpoint", {"channel": {"type": "rest-hook", "endpoint": "/hook"}}),
    ("Subscription.channel.endpoint", {"channel": {"type": "rest-hook",
                                                   "endpoint": "ftp://127.0.0.1/hook"}}),
    ("Subscription.channel.endpoint", {"channel": {
        "type": "rest-hook", "endpoint": "http://user:secret@127.0.0.1:9/hook"}}),
    ("Subscription.channel.payload", {"channel": {"type": "rest-hook", "endpoint": ENDPOINT,
                                                  "payload": "application/fhir+xml"}}),
    ("Subscription.channel.header", {"channel": {"type": "rest-hook", "endpoint": ENDPOINT,
                                                 "header": ["no colon here"]}}),
    ("Subscription.channel.header", {"channel": {"type": "rest-hook", "endpoint": ENDPOINT,
                                                 "header": ["Content-Type: text/plain"]}}),
    ("Subscription.status", {"status": "error"}),
]


@pytest.mark.parametrize(("element", "changes"), INVALID,
                         ids=[f"{element}-{index}" for index, (element, _) in enumerate(INVALID)])
async def test_an_invalid_subscription_is_refused(hooks: Bench, element: str,
                                                  changes: dict[str, Any]) -> None:
    body = {**subscription("Task?status=requested", ENDPOINT), **changes}
    response = await hooks.http.post("/fhir/Subscription", json=body,
                                     headers=hooks.world.pharmacist_a.headers)
    assert response.status_code == 422, response.text
    issue = response.json()["issue"][0]
    assert issue["expression"] == [element]
    assert issue["diagnostics"].startswith(element + ": ")
    listed = await hooks.http.get("/fhir/Subscription", headers=OPERATOR)
    assert "entry" not in listed.json()


async def test_production_endpoints_are_public_https_urls() -> None:
    def endpoint(url: str) -> dict[str, Any]:
        return subscription("Task", url)

    assert read_rest_hook(endpoint("https://ehr.example.fr/hook"), https_only=True).endpoint \
        == "https://ehr.example.fr/hook"
    for refused in ("http://ehr.example.fr/hook", "https://127.0.0.1/hook",
                    "https://10.1.2.3/hook", "https://localhost/hook", "https://[::1]/hook",
                    "https://169.254.169.254/latest"):
        with pytest.raises(FhirError) as error:
            read_rest_hook(endpoint(refused), https_only=True)
        assert error.value.status == 422
        assert error.value.expression == ("Subscription.channel.endpoint",)
