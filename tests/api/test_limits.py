"""Searches that would cost too much are refused with a 400 ``too-costly``, never a 500."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from fhir_server.api.app import create_app
from fhir_server.settings import Settings
from fhir_server.storage.mongo import MongoStore
from tests.api.conftest import AUTH, TOKEN, Api
from tests.support.factories import observation, patient
from tests.support.mongomock_sessions import session_capable_mongomock_client


async def test_too_many_or_values_is_400(api: Api) -> None:
    codes = ",".join(f"c{n}" for n in range(501))
    response = await api.client.get("/Observation", params={"code": codes})
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["code"] == "too-costly" and "500" in issue["diagnostics"]
    fine = await api.client.get("/Observation", params={"code": ",".join(codes.split(",")[:500])})
    assert fine.status_code == 200


@pytest.fixture
async def tight_mongo(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a MongoDB store that resolves at most 2 inner resources of a chain."""
    store = MongoStore(session_capable_mongomock_client(), f"t_{uuid.uuid4().hex[:8]}",
                       join_limit=2)
    app = create_app(Settings(data_dir=tmp_path, api_token=SecretStr(TOKEN),
                              outbox_dispatch=False), store=store)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test/fhir",
            headers=AUTH) as client:
        yield client


async def test_store_cost_limit_is_a_400(tight_mongo: httpx.AsyncClient) -> None:
    for _ in range(3):
        created = (await tight_mongo.post("/Patient", json=patient(gender="male"))).json()
        await tight_mongo.post("/Observation", json=observation(f"Patient/{created['id']}"))
    response = await tight_mongo.get("/Observation", params={"subject:Patient.gender": "male"})
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "too-costly"
