"""The whole chain of issue #7 with real parts: the demo's case completed over HTTP with each
person's own token, its report filed by the outbox, its CDA sent through MHD ITI-65 to a second
Pictaderm server (``fhir-server serve``, acting as the Document Recipient), the export recorded
on the DocumentReference and listed to administrators by ``GET /admin/dmp-exports``."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from fhir_server.api.app import create_app
from fhir_server.demo import Scenario, Server, seed
from fhir_server.settings import Settings
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

TOKEN = "sender-token-0123456789"
RECIPIENT_TOKEN = "recipient-token-0123456789"
SERVER = Server(fhir_base="http://test/fhir", operator_token=TOKEN)


@pytest.fixture
def recipient(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir=tmp_path / "recipient", token=RECIPIENT_TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def sender(tmp_path: Path, recipient: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path / "sender", api_token=SecretStr(TOKEN),
                        outbox_poll_seconds=0.05, dmp_export="mhd", dmp_mhd_url=recipient.base,
                        dmp_mhd_token=SecretStr(RECIPIENT_TOKEN))
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test/fhir") as http:
        yield http


async def export_of(http: httpx.AsyncClient, document: str) -> dict[str, Any]:
    for _ in range(400):
        found = (await http.get(f"/{document}", headers=SERVER.operator)).json()
        export = next((item for item in found.get("extension", [])
                       if item["url"].endswith("/pictaderm-dmp-export")), None)
        if export is not None:
            return {part["url"]: part for part in export["extension"]}
        await asyncio.sleep(0.05)
    raise AssertionError("the report was not exported")


async def test_a_completed_case_reaches_the_mhd_recipient_once(
        sender: httpx.AsyncClient, recipient: ServerProcess) -> None:
    cast = await seed(sender, SERVER, {"tier-1": 2, "tier-2": 1, "tier-3": 1})
    steps = await Scenario(sender, SERVER, cast).run()
    assert all(step.ok for step in steps), [step.line() for step in steps]
    task = (await sender.get("/Task", params={"status": "completed"},
                             headers=SERVER.operator)).json()["entry"][0]["resource"]
    export = await export_of(sender, f"DocumentReference/report-{task['id']}")
    assert export["status"]["valueCoding"]["code"] == "dmp-submitted", export
    assert export["route"]["valueCode"] == "mhd"

    ours = (await sender.get(f"/DocumentReference/report-{task['id']}",
                             headers=SERVER.operator)).json()
    with recipient.client() as theirs:
        found = theirs.get("/DocumentReference", params={
            "identifier": f"urn:ietf:rfc:3986|{ours['masterIdentifier']['value']}"}).json()
        (entry,) = found["entry"]
        attachment = entry["resource"]["content"][0]["attachment"]
        assert attachment["contentType"] == "text/xml"
        binary = theirs.get(f"/{attachment['url']}",
                            headers={"Accept": "application/fhir+json"}).json()
        cda = base64.b64decode(binary["data"])
        assert cda.startswith(b"<?xml") and b"urn:hl7-org:v3" in cda
        lists = theirs.get("/List").json()
        assert len(lists["entry"]) == 1

    listed = await sender.get("http://test/admin/dmp-exports", headers=SERVER.operator)
    assert listed.status_code == 200, listed.text
    assert [(row["task"], row["status"]) for row in listed.json()["exports"]] == [
        (f"Task/{task['id']}", "dmp-submitted")]
    failed = await sender.get("http://test/admin/dmp-exports",
                              params={"status": "dmp-failed"}, headers=SERVER.operator)
    assert failed.json()["total"] == 0
    bogus = await sender.get("http://test/admin/dmp-exports", params={"status": "sent"},
                             headers=SERVER.operator)
    assert bogus.status_code == 400
    refused = await sender.get("http://test/admin/dmp-exports",
                               headers=cast.pharmacist.headers)
    assert refused.status_code == 403
