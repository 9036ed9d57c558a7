"""A real ``fhir-server serve``: answered writes survive kill -9, outbox events a restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from fhir_server.storage.sqlite import SqliteStore
from tests.support.factories import patient
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e


def _pending_events(data_dir: Path) -> int:
    async def count() -> int:
        store = SqliteStore(data_dir / "fhir.sqlite3")
        await store.start()
        try:
            return len(await store.outbox_pending(1000))
        finally:
            await store.close()

    return asyncio.run(count())


def test_answered_writes_survive_kill_9(tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data", token="e2e-token")
    server.start()
    try:
        with server.client() as client:
            ids = []
            for _ in range(20):
                response = client.post("/Patient", json=patient())
                assert response.status_code == 201
                ids.append(response.json()["id"])
            bundle = client.post("", json={"resourceType": "Bundle", "type": "transaction",
                                           "entry": [{"resource": patient(),
                                                      "request": {"method": "POST",
                                                                  "url": "Patient"}}]})
            assert bundle.status_code == 200
        server.kill()
        server.start()
        with server.client() as client:
            for id in ids:
                assert client.get(f"/Patient/{id}").status_code == 200
            total = client.get("/Patient", params={"_summary": "count"}).json()["total"]
            assert total == 21
    finally:
        server.stop()


def test_outbox_events_are_delivered_after_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    quiet = ServerProcess(data_dir=data_dir, token="e2e-token",
                          env={"FHIR_SERVER_OUTBOX_DISPATCH": "false",
                               "FHIR_SERVER_CHANGE_EVENTS": "true"})
    quiet.start()
    try:
        with quiet.client() as client:
            for _ in range(5):
                assert client.post("/Patient", json=patient()).status_code == 201
    finally:
        quiet.kill()
    assert _pending_events(data_dir) == 5
    server = ServerProcess(data_dir=data_dir, token="e2e-token", port=quiet.port,
                           env={"FHIR_SERVER_CHANGE_EVENTS": "true"})
    server.start()
    try:
        deadline = time.monotonic() + 20
        while _pending_events(data_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _pending_events(data_dir) == 0
    finally:
        server.stop()


def test_development_serve_creates_token_and_key(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.support.server import free_port

    data_dir = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_SERVER_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "fhir_server", "serve", "--port", str(port),
         "--data-dir", str(data_dir)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (data_dir / "api-token").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        token = (data_dir / "api-token").read_text().strip()
        assert oct((data_dir / "api-token").stat().st_mode & 0o777) == "0o600"
        server = ServerProcess(data_dir=data_dir, token=token, port=port)
        with server.client() as client:
            while time.monotonic() < deadline:
                try:
                    response = client.post("/Patient", json=patient())
                    break
                except Exception:
                    time.sleep(0.1)
            assert response.status_code == 201
        assert any(p.name.endswith(".key") for p in (data_dir / "keys").iterdir())
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_production_mode_without_key_refuses_to_start(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_SERVER_")}
    env.update({"FHIR_SERVER_MODE": "production", "FHIR_SERVER_API_TOKEN": "x"})
    result = subprocess.run(
        [sys.executable, "-m", "fhir_server", "serve", "--data-dir", str(tmp_path)],
        env=env, capture_output=True, timeout=60)
    assert result.returncode != 0
    assert b"FHIR_SERVER_ENCRYPTION_KEY is required" in result.stderr
