"""What one filing commits (``fhir_server/reports/filing.py``), with the app's dispatcher off so
the test sees the outbox: the ``report-filed`` event in the same commit as the documents, the
guide's profiles met by what is written, and a filing repeated or done before completion
writing nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from fhir_server.api.app import create_app
from fhir_server.engine.engine import Engine
from fhir_server.reports.events import REPORT_FILED
from fhir_server.reports.filing import FilingPolicy, file_report
from fhir_server.settings import Settings
from tests.support.backends import BACKENDS, make_store
from tests.support.workflow_case import CLAIRE, Desk, completed_case, drafted_case

TOKEN = "test-token-0123456789"


@pytest.fixture(params=BACKENDS)
async def desk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Desk]:
    store = make_store(request.param, tmp_path)
    settings = Settings(data_dir=tmp_path / "data", api_token=SecretStr(TOKEN),
                        outbox_dispatch=False)
    app = create_app(settings, store=store)
    async with app.router.lifespan_context(app):
        yield Desk(app.state.engine)


async def read(engine: Engine, resource_type: str, id: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((await engine.read(resource_type, id)).body or b"")
    return loaded


POLICY = FilingPolicy.from_settings(Settings())


async def test_the_filing_commits_its_documents_with_the_report_filed_event(desk: Desk) -> None:
    await completed_case(desk)
    assert await file_report(desk.engine, "c-task", POLICY)
    task = await read(desk.engine, "Task", "c-task")
    references = [output["valueReference"]["reference"] for output in task["output"]]
    assert references[-1] == "DocumentReference/report-c-task"
    document = await read(desk.engine, "DocumentReference", "report-c-task")
    assert document["author"] == [{"reference": "PractitionerRole/tier-1-julien-moreau"}]
    assert document["authenticator"] == document["author"][0]
    assert document["context"]["related"] == [{"reference": "ServiceRequest/c-request"}]
    binary = await read(desk.engine, "Binary", "report-c-task")
    assert binary["securityContext"] == {"reference": "DocumentReference/report-c-task"}
    events = [record.event for record in await desk.engine.ctx.store.outbox_pending(500)
              if record.event.topic == REPORT_FILED]
    assert [orjson.loads(event.payload) for event in events] == [{
        "task": "Task/c-task", "document_reference": "DocumentReference/report-c-task",
        "diagnostic_report": references[0], "binary": "Binary/report-c-task"}]
    assert document["meta"]["profile"] == [
        "https://fhir.pictaderm.com/StructureDefinition/pictaderm-report-document"]
    # Writes are validated against the profiles they claim (validation_mode "reject"), so the
    # stored document meets the guide's report-document profile.


async def test_filing_twice_writes_nothing_the_second_time(desk: Desk) -> None:
    await completed_case(desk)
    assert await file_report(desk.engine, "c-task", POLICY)
    versions = {key: (await desk.engine.read(*key.split("/"))).version
                for key in ("Task/c-task", "DocumentReference/report-c-task",
                            "Binary/report-c-task")}
    assert not await file_report(desk.engine, "c-task", POLICY)
    assert {key: (await desk.engine.read(*key.split("/"))).version
            for key in versions} == versions


async def test_a_case_not_completed_gets_no_report(desk: Desk) -> None:
    await drafted_case(desk)
    await desk.invoke(CLAIRE, "submit")
    assert not await file_report(desk.engine, "c-task", POLICY)
    assert not await desk.engine.ctx.store.read("DocumentReference", "report-c-task")
