"""``fhir-server dmp status`` and ``fhir-server dmp retry CASE`` on the embedded store of a data
dir: a case whose export failed (the MHD recipient stand-in refused it) is listed, put back to
pending by the retry, which leaves the ``dmp-export-requested`` event for the server to deliver;
an unknown case or status is a clear error."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from fhir_server.api.app import create_app
from fhir_server.cli import main
from fhir_server.dmp.export import DmpExporter, ExportPolicy
from fhir_server.dmp.mhd import MhdAdapter
from fhir_server.dmp.status import ExportStatus, export_state
from fhir_server.reports.events import DMP_EXPORT_REQUESTED
from fhir_server.reports.filing import FilingPolicy, file_report
from fhir_server.settings import Settings
from tests.support.mhd_recipient_standin import Reply, outcome, running_mhd_recipient
from tests.support.workflow_case import Desk, completed_case


def settings_of(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, api_token=SecretStr("cli-token-0123456789"),
                    outbox_dispatch=False)


async def failed_export(data_dir: Path, recipient: str) -> None:
    """A completed, filed case in ``data_dir`` whose MHD export was refused."""
    settings = settings_of(data_dir)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        desk = Desk(app.state.engine)
        await completed_case(desk)
        await file_report(desk.engine, "c-task", FilingPolicy.from_settings(settings))
        adapter = MhdAdapter(recipient, None, 5.0)
        try:
            exporter = DmpExporter(ctx=desk.engine.ctx, adapter=adapter,
                                   policy=ExportPolicy.from_settings(settings))
            assert await exporter.export("report-c-task") is ExportStatus.FAILED
        finally:
            await adapter.aclose()


async def stored_state(data_dir: Path) -> tuple[ExportStatus | None, list[dict[str, str]]]:
    app = create_app(settings_of(data_dir))
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        document = json.loads((await engine.read("DocumentReference", "report-c-task")).body)
        state = export_state(document)
        events = [orjson.loads(record.event.payload)
                  for record in await engine.ctx.store.outbox_pending(1000)
                  if record.event.topic == DMP_EXPORT_REQUESTED]
        return (state.status if state else None), events


def test_an_operator_lists_failed_exports_and_retries_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_mhd_recipient() as recipient:
        recipient.answer(Reply(422, outcome("business-rule", "unknown patient")))
        asyncio.run(failed_export(tmp_path / "data", recipient.base))
    data_dir = ["--data-dir", str(tmp_path / "data")]

    assert main(["dmp", "status", "--status", "dmp-failed", *data_dir]) == 0
    listed = capsys.readouterr().out
    assert "Task/c-task\tdmp-failed\tmhd\tattempts=1" in listed
    assert "422" in listed and "1 export(s)" in listed
    assert main(["dmp", "status", "--status", "dmp-submitted", *data_dir]) == 0
    assert "0 export(s)" in capsys.readouterr().out

    assert main(["dmp", "retry", "c-task", *data_dir]) == 0
    assert "was dmp-failed; it is queued again" in capsys.readouterr().out
    status, events = asyncio.run(stored_state(tmp_path / "data"))
    assert status is ExportStatus.PENDING
    assert events == [{"task": "Task/c-task",
                       "document_reference": "DocumentReference/report-c-task"}]

    assert main(["dmp", "retry", "Task/c-task", *data_dir]) == 0
    assert "still pending" in capsys.readouterr().out
    assert main(["dmp", "retry", "no-such-case", *data_dir]) == 1
    assert "no report document" in capsys.readouterr().err
    assert main(["dmp", "status", "--status", "sent", *data_dir]) == 2
    assert "unknown status 'sent'" in capsys.readouterr().err
