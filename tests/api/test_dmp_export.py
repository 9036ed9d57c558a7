"""The DMP export of a filed report (``fhir_server/dmp/export.py``) on both backends, with the
real adapters against stand-ins of the recipients (an MHD Document Recipient, an XDS.b
repository): submitted, already there, skipped (patient opposed, no INS of their own), refused,
retried with backoff until it works or fails for good, and put back to pending by an operator.
The app's own dispatcher is off: the tests run the exporter and read the outbox themselves."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from fhir_server.api.app import create_app
from fhir_server.dmp.export import DmpExporter, ExportPolicy, RetryLater, request_retry
from fhir_server.dmp.mhd import MhdAdapter
from fhir_server.dmp.status import ExportStatus, export_state
from fhir_server.dmp.xds.adapter import xds_adapter
from fhir_server.engine.engine import Engine
from fhir_server.reports.events import DMP_EXPORT_REQUESTED, DMP_EXPORT_SETTLED
from fhir_server.reports.filing import FilingPolicy, file_report
from fhir_server.settings import Settings
from tests.support.backends import BACKENDS, make_store
from tests.support.mhd_recipient_standin import (
    MhdRecipientStandin,
    Reply,
    outcome,
    running_mhd_recipient,
)
from tests.support.workflow_case import Desk, completed_case, example
from tests.support.xds_repository import running_xds_repository, self_signed

TOKEN = "test-token-0123456789"
DOCUMENT = "report-c-task"
START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@dataclass
class Clock:
    """The exporter's clock, moved by the test."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Filed:
    """A completed, filed case on a quiet app, and the exporter's clock."""

    desk: Desk
    clock: Clock = field(default_factory=Clock)

    @property
    def engine(self) -> Engine:
        return self.desk.engine

    def exporter(self, adapter: Any, **policy: Any) -> DmpExporter:
        settings = Settings(**{"dmp_max_attempts": 3, "dmp_retry_base_seconds": 60.0,
                               "dmp_retry_max_seconds": 600.0, **policy})
        return DmpExporter(ctx=self.engine.ctx, adapter=adapter,
                           policy=ExportPolicy.from_settings(settings), clock=self.clock)

    async def document(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(
            (await self.engine.read("DocumentReference", DOCUMENT)).body or b"")
        return loaded

    async def events(self, topic: str) -> list[dict[str, Any]]:
        return [orjson.loads(record.event.payload)
                for record in await self.engine.ctx.store.outbox_pending(1000)
                if record.event.topic == topic]


@pytest.fixture(params=BACKENDS)
async def filed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Filed]:
    store = make_store(request.param, tmp_path)
    settings = Settings(data_dir=tmp_path / "data", api_token=SecretStr(TOKEN),
                        outbox_dispatch=False)
    app = create_app(settings, store=store)
    async with app.router.lifespan_context(app):
        desk = Desk(app.state.engine)
        await completed_case(desk)
        assert await file_report(desk.engine, "c-task", FilingPolicy.from_settings(settings))
        yield Filed(desk)


@pytest.fixture
def recipient() -> Iterator[MhdRecipientStandin]:
    with running_mhd_recipient() as standin:
        yield standin


async def test_an_accepted_submission_is_recorded_and_settles(
        filed: Filed, recipient: MhdRecipientStandin) -> None:
    adapter = MhdAdapter(recipient.base, "recipient-token", 5.0)
    try:
        assert await filed.exporter(adapter).export(DOCUMENT) is ExportStatus.SUBMITTED
    finally:
        await adapter.aclose()
    (received,) = recipient.requests
    bundle = received.json()
    documents = [entry["resource"] for entry in bundle["entry"]
                 if entry["resource"]["resourceType"] == "DocumentReference"]
    stored = await filed.document()
    assert [item["masterIdentifier"] for item in documents] == [stored["masterIdentifier"]]
    assert received.headers["authorization"] == "Bearer recipient-token"
    state = export_state(stored)
    assert state is not None and (state.status, state.route, state.attempts) == (
        ExportStatus.SUBMITTED, "mhd", 1)
    assert state.document == f"Binary/{DOCUMENT}-cda"
    cda = json.loads((await filed.engine.read("Binary", f"{DOCUMENT}-cda")).body or b"")
    assert cda["contentType"] == "text/xml"
    assert cda["securityContext"] == {"reference": f"DocumentReference/{DOCUMENT}"}
    sent = next(entry["resource"]["data"] for entry in bundle["entry"]
                if entry["resource"]["resourceType"] == "Binary")
    assert base64.b64decode(cda["data"]) == base64.b64decode(sent)
    unique_id = stored["masterIdentifier"]["value"].removeprefix("urn:oid:")
    assert f'root="{unique_id}"'.encode() in base64.b64decode(sent)
    assert await filed.events(DMP_EXPORT_SETTLED) == [{
        "task": "Task/c-task", "document_reference": f"DocumentReference/{DOCUMENT}",
        "status": "dmp-submitted"}]
    assert await filed.exporter(adapter).export(DOCUMENT) is ExportStatus.SUBMITTED
    assert len(recipient.requests) == 1


async def test_transient_failures_are_retried_with_backoff_until_accepted(
        filed: Filed, recipient: MhdRecipientStandin) -> None:
    recipient.answer(Reply(503), Reply(429))
    adapter = MhdAdapter(recipient.base, None, 5.0)
    exporter = filed.exporter(adapter)
    try:
        with pytest.raises(RetryLater):
            await exporter.export(DOCUMENT)
        state = export_state(await filed.document())
        assert state is not None and (state.status, state.attempts) == (ExportStatus.PENDING, 1)
        assert state.reason is not None and "503" in state.reason
        filed.clock.now = START + timedelta(seconds=59)
        with pytest.raises(RetryLater):
            await exporter.export(DOCUMENT)
        assert len(recipient.requests) == 1, "tried again before the backoff ran out"
        filed.clock.now = START + timedelta(seconds=60)
        with pytest.raises(RetryLater):
            await exporter.export(DOCUMENT)
        assert len(recipient.requests) == 2
        filed.clock.now = START + timedelta(seconds=60 + 120)
        assert await exporter.export(DOCUMENT) is ExportStatus.SUBMITTED
    finally:
        await adapter.aclose()
    state = export_state(await filed.document())
    assert state is not None and (state.status, state.attempts) == (ExportStatus.SUBMITTED, 3)
    assert await filed.events(DMP_EXPORT_SETTLED) == [{
        "task": "Task/c-task", "document_reference": f"DocumentReference/{DOCUMENT}",
        "status": "dmp-submitted"}]


async def test_after_the_last_attempt_the_export_fails_and_an_operator_can_retry(
        filed: Filed, recipient: MhdRecipientStandin) -> None:
    recipient.answer(Reply(503), Reply(503), Reply(503))
    adapter = MhdAdapter(recipient.base, None, 5.0)
    exporter = filed.exporter(adapter)
    try:
        for wait in (0, 60, 120):
            filed.clock.now += timedelta(seconds=wait)
            try:
                status = await exporter.export(DOCUMENT)
            except RetryLater:
                status = ExportStatus.PENDING
        assert status is ExportStatus.FAILED
        state = export_state(await filed.document())
        assert state is not None and state.attempts == 3
        assert state.reason is not None and state.reason.startswith("3 attempts")
        assert [event["status"] for event in await filed.events(DMP_EXPORT_SETTLED)] == [
            "dmp-failed"]
        assert await request_retry(filed.engine.ctx, DOCUMENT) is ExportStatus.FAILED
        reset = export_state(await filed.document())
        assert reset is not None and (reset.status, reset.attempts) == (ExportStatus.PENDING, 0)
        assert await filed.events(DMP_EXPORT_REQUESTED) == [{
            "task": "Task/c-task", "document_reference": f"DocumentReference/{DOCUMENT}"}]
        assert await exporter.export(DOCUMENT) is ExportStatus.SUBMITTED
    finally:
        await adapter.aclose()
    assert len(recipient.requests) == 4


async def test_a_refusal_fails_at_once_with_its_code(filed: Filed,
                                                     recipient: MhdRecipientStandin) -> None:
    recipient.answer(Reply(400, outcome("invariant", "sourcePatientInfo is missing")))
    adapter = MhdAdapter(recipient.base, None, 5.0)
    try:
        assert await filed.exporter(adapter).export(DOCUMENT) is ExportStatus.FAILED
    finally:
        await adapter.aclose()
    state = export_state(await filed.document())
    assert state is not None and state.reason is not None
    assert "400" in state.reason and "invariant" in state.reason


async def test_a_patient_who_objected_is_skipped(filed: Filed,
                                                 recipient: MhdRecipientStandin) -> None:
    opposition = example("Consent-dmp-opposition-jeanne-santoni")
    opposition.update({"id": "c-dmp-opposition", "patient": {"reference": "Patient/c-patient"}})
    await filed.engine.update("Consent", "c-dmp-opposition", opposition)
    adapter = MhdAdapter(recipient.base, None, 5.0)
    try:
        assert await filed.exporter(adapter).export(DOCUMENT) is ExportStatus.SKIPPED_OPPOSED
    finally:
        await adapter.aclose()
    assert recipient.requests == ()


async def test_a_patient_without_an_own_ins_is_skipped(filed: Filed,
                                                       recipient: MhdRecipientStandin) -> None:
    patient = json.loads((await filed.engine.read("Patient", "c-patient")).body or b"")
    parent_nir = example("Patient-lucas-bernard")["identifier"]
    await filed.engine.update("Patient", "c-patient", {
        **{key: value for key, value in patient.items() if key != "meta"},
        "identifier": parent_nir})
    adapter = MhdAdapter(recipient.base, None, 5.0)
    try:
        assert await filed.exporter(adapter).export(DOCUMENT) is ExportStatus.SKIPPED_NO_INS
    finally:
        await adapter.aclose()
    assert recipient.requests == ()
    assert [event["status"] for event in await filed.events(DMP_EXPORT_SETTLED)] == [
        "dmp-skipped-no-ins"]


async def test_the_xds_route_submits_once_and_recognises_its_own_document(filed: Filed) -> None:
    key_pem, certificate_pem = self_signed()
    with running_xds_repository(certificate_pem) as repository:
        settings = Settings(dmp_export="xds", dmp_xds_url=repository.url,
                            dmp_signing_key=SecretStr(key_pem),
                            dmp_signing_certificate=certificate_pem,
                            dmp_structure_id="1950012351")
        adapter = xds_adapter(settings)
        exporter = filed.exporter(adapter)
        try:
            assert await exporter.export(DOCUMENT) is ExportStatus.SUBMITTED, \
                repository.refusals
            first = dict(repository.documents)
            assert await request_retry(filed.engine.ctx, DOCUMENT) is ExportStatus.SUBMITTED
            assert await exporter.export(DOCUMENT) is ExportStatus.SUBMITTED
        finally:
            await adapter.aclose()
        stored = await filed.document()
        unique_id = stored["masterIdentifier"]["value"].removeprefix("urn:oid:")
        assert unique_id in first
        assert repository.documents == first, "the retry filed a second document"
        state = export_state(stored)
        assert state is not None and (state.route, state.reason) == ("xds",
                                                                     "already in the DMP")
