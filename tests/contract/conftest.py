"""The contract suite runs once per backend; tests marked ``replica_set`` need real transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fhir_server.storage.protocol import Store
from tests.support.backends import BACKENDS, make_store, mongo_is_live


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend = request.param
    if (backend == "mongo" and not mongo_is_live()
            and request.node.get_closest_marker("replica_set") is not None):
        pytest.skip("needs a live MongoDB replica set: set MONGODB_URL")
    instance = make_store(backend, tmp_path)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.close()
