"""The FastAPI app in-process (httpx ASGITransport), once per storage backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from fhir_server.api.app import create_app
from fhir_server.settings import Settings
from fhir_server.storage.protocol import Store
from tests.support.backends import BACKENDS, make_store

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Api:
    """An authorized client on the app, and the store behind it (to check what was stored)."""

    client: httpx.AsyncClient
    store: Store
    anonymous: httpx.AsyncClient
    app: FastAPI


@pytest.fixture(params=BACKENDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    store = make_store(request.param, tmp_path)
    settings = Settings(data_dir=tmp_path / "data", api_token=SecretStr(TOKEN),
                        outbox_poll_seconds=0.05, change_events=True, max_body_bytes=256 * 1024)
    app = create_app(settings, store=store)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=transport, base_url="http://test/fhir",
                              headers=AUTH) as client, \
            httpx.AsyncClient(transport=transport, base_url="http://test/fhir") as anonymous:
        yield Api(client=client, store=store, anonymous=anonymous, app=app)
