"""The app in-process for the photo and DICOM tests: small photo limits, the operator's client,
and the store (to count what was stored)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import httpx
from pydantic import SecretStr

from fhir_server.api.app import create_app
from fhir_server.demo import Server
from fhir_server.settings import Settings
from fhir_server.storage.protocol import Store
from fhir_server.storage.query import HistoryQuery
from tests.api.conftest import AUTH, TOKEN, Api
from tests.support.backends import make_store

MAX_IMAGE_BYTES: Final = 60_000
MAX_IMAGE_PIXELS: Final = 40_000
SERVER: Final = Server(fhir_base="http://test/fhir", operator_token=TOKEN)


@asynccontextmanager
async def photo_api(backend: str, tmp_path: Path) -> AsyncIterator[Api]:
    """The app on ``backend`` with photos limited to 60 kB and 40,000 pixels."""
    store = make_store(backend, tmp_path)
    settings = Settings(data_dir=tmp_path / "data", api_token=SecretStr(TOKEN),
                        outbox_poll_seconds=0.05, max_body_bytes=1024 * 1024,
                        max_image_bytes=MAX_IMAGE_BYTES, max_image_pixels=MAX_IMAGE_PIXELS)
    app = create_app(settings, store=store)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=transport, base_url="http://test/fhir",
                              headers=AUTH) as client, \
            httpx.AsyncClient(transport=transport, base_url="http://test/fhir") as anonymous:
        yield Api(client=client, store=store, anonymous=anonymous, app=app)


PHOTO_TYPES: Final = ("Binary", "Media")


async def stored_versions(store: Store, kinds: Sequence[str] = PHOTO_TYPES) -> int:
    """How many versions of ``kinds`` (Binaries and Media) the store holds (the workflow's own
    background writes, such as the routing of a new case, touch neither)."""
    return sum([len(await store.history(HistoryQuery(resource_type=kind, count=10_000)))
                for kind in kinds])
