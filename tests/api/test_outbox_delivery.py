"""Each accepted write leaves a resource-changed event in its commit; the dispatcher delivers it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import SecretStr

from fhir_server.api.app import create_app
from fhir_server.outbox.consumers import ConsumerRegistry
from fhir_server.outbox.delivery import InProcessDeliverer
from fhir_server.outbox.dispatcher import OutboxDispatcher
from fhir_server.settings import Settings
from fhir_server.storage.protocol import OutboxEvent, Store
from tests.api.conftest import AUTH, TOKEN
from tests.support.backends import BACKENDS, make_store
from tests.support.factories import patient


@pytest.fixture(params=BACKENDS)
async def quiet_api(request: pytest.FixtureRequest,
                    tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Store]]:
    """The app with its own dispatcher switched off, so the test drives delivery."""
    store = make_store(request.param, tmp_path)
    settings = Settings(data_dir=tmp_path / "data", api_token=SecretStr(TOKEN),
                        outbox_dispatch=False, change_events=True)
    app = create_app(settings, store=store)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test/fhir",
            headers=AUTH) as client:
        yield client, store


async def test_events_are_committed_with_writes_and_delivered_once(
        quiet_api: tuple[httpx.AsyncClient, Store]) -> None:
    client, store = quiet_api
    refused = await client.post("/Patient", json={"resourceType": "Patient", "gender": 1})
    assert refused.status_code == 422
    assert await store.outbox_pending(10) == ()

    created = (await client.post("/Patient", json=patient())).json()
    await client.delete(f"/Patient/{created['id']}")
    pending = await store.outbox_pending(10)
    assert [orjson.loads(r.event.payload)["action"] for r in pending] == ["create", "delete"]

    seen: list[dict[str, str]] = []

    async def record(event: OutboxEvent, _: Store) -> None:
        seen.append(orjson.loads(event.payload))

    registry = ConsumerRegistry()
    registry.register("test-recorder", "resource-changed", record)
    dispatcher = OutboxDispatcher(store, InProcessDeliverer(store, registry), poll_seconds=0.01)
    assert await dispatcher.run_once() == 2
    assert seen == [
        {"resourceType": "Patient", "id": created["id"], "versionId": "1", "action": "create"},
        {"resourceType": "Patient", "id": created["id"], "versionId": "2", "action": "delete"}]
    assert await store.outbox_pending(10) == ()
    assert await dispatcher.run_once() == 0
