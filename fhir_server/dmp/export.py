"""The DMP export of filed reports: decides whether a report document goes to the DMP, sends it
through the configured adapter, retries with backoff and records the outcome on the document.

Rules (issue #7 §3, ``interop-fr.md``):
- export disabled (``dmp_export = off``) → ``dmp-skipped-disabled``;
- the patient objected to feeding the DMP (an active ``Consent`` of category ``dmp-feeding``
  whose provision is ``deny``) → ``dmp-skipped-opposed``;
- no INS of the patient's own (a minor known by a parent's NIR) → ``dmp-skipped-no-ins``;
- otherwise the CDA R2 N1 document is made (``mappers.cda_n1``) and submitted: accepted (or
  already there: an earlier try got through, recognised by the document's uniqueId) →
  ``dmp-submitted``; refused → ``dmp-failed``; a transient failure → ``dmp-pending`` with one
  more attempt, and the event is given back to the outbox, which delivers it again; a delivery
  before ``backoff(attempts)`` has passed since the last attempt tries nothing. After
  ``dmp_max_attempts`` transient failures → ``dmp-failed``.
The status lives on the DocumentReference (``status.py``); the status hook turns its final
values into ``dmp-export-settled`` events. ``request_retry`` (``fhir-server dmp retry``) puts a
settled export back to pending, which the hook turns into a ``dmp-export-requested`` event.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

import orjson

from fhir_server.crypto.keys import ConfigurationError
from fhir_server.dmp.port import (
    DmpAdapter,
    DmpRejected,
    DmpTransientError,
    Submission,
    SubmissionOutcome,
)
from fhir_server.dmp.status import ExportState, ExportStatus, export_state, with_export_state
from fhir_server.engine.context import EngineContext
from fhir_server.engine.interactions.update import write_next_version
from fhir_server.engine.own_transactions import put_entry, put_together
from fhir_server.engine.write_validation import Checked
from fhir_server.engine.writing import check_resource, load
from fhir_server.outbox.consumers import Consumer
from fhir_server.outbox.dispatcher import backoff_seconds
from fhir_server.reports.events import DMP_EXPORT_REQUESTED, REPORT_FILED
from fhir_server.settings import Settings
from fhir_server.storage.protocol import OutboxEvent, Store, StoredVersion
from fhir_server.storage.query import (
    ReferenceClause,
    ReferenceValue,
    SearchQuery,
    TokenClause,
    TokenValue,
)
from fhir_server.types import ResourceDict
from fhir_server.workflow.case_facts import CaseReader, reference_key
from mappers.cda_n1 import render_cda
from mappers.report_document import (
    DocumentCodes,
    FiledCase,
    IncompleteDocument,
    NoOwnIns,
    report_class,
    report_document_of,
)
from mappers.report_filing import without_version_stamps

logger = logging.getLogger(__name__)

CONSUMER_NAME: Final = "dmp-export"
CDA_SUFFIX: Final = "-cda"
CDA_MEDIA_TYPE: Final = "text/xml"
CONSENT_CATEGORY_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/consent-category"
DMP_FEEDING: Final = "dmp-feeding"

Clock = Callable[[], datetime]


class RetryLater(Exception):
    """The export is pending: the outbox should deliver the event again later."""


@dataclass(frozen=True, slots=True)
class ExportPolicy:
    """What the export takes from the settings."""

    max_attempts: int
    retry_base_seconds: float
    retry_max_seconds: float
    platform: str
    platform_structure_id: str | None
    codes: DocumentCodes

    @classmethod
    def from_settings(cls, settings: Settings) -> ExportPolicy:
        return cls(max_attempts=max(1, settings.dmp_max_attempts),
                   retry_base_seconds=settings.dmp_retry_base_seconds,
                   retry_max_seconds=settings.dmp_retry_max_seconds,
                   platform=settings.platform_name,
                   platform_structure_id=settings.dmp_structure_id,
                   codes=DocumentCodes(class_=report_class(settings.document_class_code)))

    def next_attempt(self, state: ExportState) -> datetime | None:
        """When a pending export may be tried again (None: now)."""
        if state.attempts == 0 or state.last_attempt is None:
            return None
        wait = backoff_seconds(state.attempts, base=self.retry_base_seconds,
                               cap=self.retry_max_seconds)
        return state.last_attempt + timedelta(seconds=wait)


def adapter_for(settings: Settings) -> DmpAdapter | None:
    """The adapter of the configured route; None when the export is off. The adapters are
    imported here, so a server with the export off never loads the XDS signing stack."""
    if settings.dmp_export == "mhd":
        from fhir_server.dmp.mhd import MhdAdapter

        if not settings.dmp_mhd_url:
            raise ConfigurationError("FHIR_SERVER_DMP_EXPORT=mhd needs FHIR_SERVER_DMP_MHD_URL "
                                     "(the MHD Document Recipient's FHIR base URL)")
        token = settings.dmp_mhd_token.get_secret_value() if settings.dmp_mhd_token else None
        return MhdAdapter(settings.dmp_mhd_url, token, settings.dmp_timeout_seconds)
    if settings.dmp_export == "xds":
        from fhir_server.dmp.xds.adapter import xds_adapter

        return xds_adapter(settings)
    return None


@dataclass
class DmpExporter:
    """Exports report documents through one adapter (or none: export off)."""

    ctx: EngineContext
    adapter: DmpAdapter | None
    policy: ExportPolicy
    clock: Clock = lambda: datetime.now(UTC)

    async def export(self, document_id: str) -> ExportStatus | None:
        """Try the export of ``DocumentReference/document_id`` once, if due; returns the status
        recorded (None when the document is gone). Raises ``RetryLater`` while pending."""
        stored = await self.ctx.store.read("DocumentReference", document_id)
        if stored is None or stored.deleted:
            return None
        document = load(self.ctx, stored)
        state = export_state(document) or ExportState()
        if state.status.is_final:
            return state.status
        now = self.clock()
        due = self.policy.next_attempt(state)
        if due is not None and now < due:
            raise RetryLater(f"DocumentReference/{document_id}: next try at {due.isoformat()}")
        decided, cda = await self._attempt(document, state, now)
        await self._record(stored, decided, cda)
        if decided.status is ExportStatus.PENDING:
            raise RetryLater(f"DocumentReference/{document_id}: attempt {decided.attempts} "
                             f"failed ({decided.reason})")
        return decided.status

    async def _attempt(self, document: ResourceDict, state: ExportState,
                       now: datetime) -> tuple[ExportState, bytes | None]:
        """The state after this attempt, and the CDA document when one was made."""
        route = self.adapter.route if self.adapter is not None else None
        if self.adapter is None:
            return replace(state, status=ExportStatus.SKIPPED_DISABLED, reason=None), None
        reader = CaseReader(self.ctx, ())
        patient = await reader.get(document.get("subject"))
        if patient is None:
            return state.tried(ExportStatus.FAILED, route=route, at=now,
                               reason="the document's patient is missing"), None
        if await self._opposed(str(patient["id"])):
            return replace(state, status=ExportStatus.SKIPPED_OPPOSED, route=route), None
        try:
            filed = report_document_of(await self._filed_case(reader, document, patient),
                                       self.policy.codes)
        except NoOwnIns:
            return replace(state, status=ExportStatus.SKIPPED_NO_INS, route=route), None
        except IncompleteDocument as incomplete:
            return (state.tried(ExportStatus.FAILED, route=route, at=now,
                                reason=str(incomplete)), None)
        except ValueError:
            return (state.tried(ExportStatus.FAILED, route=route, at=now,
                                reason="a date of the report or the patient is malformed"), None)
        cda = render_cda(filed)
        submission = Submission(document=filed, cda=cda,
                                submission_set_id=f"{filed.unique_id}.1")
        try:
            outcome = await self.adapter.submit(submission)
        except DmpRejected as rejected:
            return state.tried(ExportStatus.FAILED, route=route, at=now,
                               reason=f"{rejected.code}: {rejected.reason}"), cda
        except DmpTransientError as transient:
            tried = state.tried(ExportStatus.PENDING, route=route, at=now,
                                reason=transient.reason)
            if tried.attempts >= self.policy.max_attempts:
                return replace(tried, status=ExportStatus.FAILED,
                               reason=f"{tried.attempts} attempts: {transient.reason}"), cda
            return tried, cda
        reason = "already in the DMP" if outcome is SubmissionOutcome.ALREADY_PRESENT else None
        return state.tried(ExportStatus.SUBMITTED, route=route, at=now, reason=reason), cda

    async def _opposed(self, patient_id: str) -> bool:
        page = await self.ctx.store.search(SearchQuery("Consent", (
            ReferenceClause("patient", (ReferenceValue("Patient", patient_id),)),
            TokenClause("category", (TokenValue(CONSENT_CATEGORY_SYSTEM, DMP_FEEDING),)),
            TokenClause("status", (TokenValue(None, "active"),))), count=50))
        for match in page.matches:
            if match.deleted or match.body is None:
                continue
            consent = load(self.ctx, match)
            if (consent.get("provision") or {}).get("type") == "deny":
                return True
        return False

    async def _filed_case(self, reader: CaseReader, document: ResourceDict,
                          patient: ResourceDict) -> FiledCase:
        role = await reader.get(next(iter(document.get("author") or ()), None)) or {}
        doctor = await reader.get(role.get("practitioner")) or {}
        request_key = next((key for key in (reference_key(item) for item in (
            document.get("context") or {}).get("related") or ())
            if key and key.startswith("ServiceRequest/")), None)
        request = await reader.get(request_key) if request_key else None
        requester = await reader.get((request or {}).get("requester")) or {}
        pharmacy = await reader.get(requester.get("organization")) or {}
        attachment = next((content.get("attachment") or {}
                           for content in document.get("content") or ()), {})
        binary = await reader.get(attachment.get("url")) or {}
        try:
            pdf = base64.b64decode(str(binary.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            pdf = b""
        if not pdf:
            raise IncompleteDocument("the report's PDF is missing")
        return FiledCase(document_reference=document, patient=patient, doctor=doctor,
                         doctor_role=role, pharmacy=pharmacy, pdf=pdf,
                         platform=self.policy.platform,
                         platform_structure_id=self.policy.platform_structure_id)

    async def _record(self, stored: StoredVersion, state: ExportState,
                      cda: bytes | None) -> None:
        """Write ``state`` on the document read as ``stored``, with the CDA made for the
        submission (``Binary/<document id>-cda``, its securityContext the document), in one
        transaction; the document by compare-and-set on its version (a concurrent change makes
        this record fail, and the event is tried again)."""
        current = load(self.ctx, stored)
        updated = with_export_state(without_version_stamps(current), state)
        entries: list[ResourceDict] = []
        if cda is not None:
            binary_id = f"{stored.id}{CDA_SUFFIX}"
            entries.append(put_entry({"resourceType": "Binary", "id": binary_id,
                                 "contentType": CDA_MEDIA_TYPE,
                                 "securityContext": {"reference":
                                                     f"DocumentReference/{stored.id}"},
                                 "data": base64.b64encode(cda).decode("ascii")}))
            updated = with_export_state(without_version_stamps(current),
                                        replace(state, document=f"Binary/{binary_id}"))
        entries.append(put_entry(updated, if_match=stored.version))
        await put_together(self.ctx, entries)


async def request_retry(ctx: EngineContext, document_id: str) -> ExportStatus | None:
    """Put a settled export of ``DocumentReference/document_id`` back to pending, attempts
    reset (the status hook then asks the exporter to try again); returns the status it had,
    None when the document does not exist or was never exported."""
    stored = await ctx.store.read("DocumentReference", document_id)
    if stored is None or stored.deleted:
        return None
    state = export_state(load(ctx, stored))
    if state is None or not state.status.is_final:
        return state.status if state is not None else None
    fresh = ExportState(status=ExportStatus.PENDING, route=state.route)

    def next_content(current: StoredVersion | None) -> Checked:
        assert current is not None and not current.deleted
        reset = with_export_state(without_version_stamps(load(ctx, current)), fresh)
        return check_resource(ctx, reset, "DocumentReference")

    await write_next_version(ctx, "DocumentReference", document_id, next_content,
                             if_match=stored.version, method="PUT")
    return state.status


def export_consumers(ctx: EngineContext, adapter: DmpAdapter | None,
                     policy: ExportPolicy) -> tuple[Consumer, ...]:
    """The outbox consumers of ``report-filed`` and ``dmp-export-requested`` that export the
    report document they name."""
    exporter = DmpExporter(ctx=ctx, adapter=adapter, policy=policy)

    async def handle(event: OutboxEvent, store: Store) -> None:
        payload = orjson.loads(event.payload)
        key = reference_key({"reference": payload.get("document_reference")})
        if key is None or not key.startswith("DocumentReference/"):
            return
        exporter.ctx = replace(ctx, store=store) if store is not ctx.store else ctx
        status = await exporter.export(key.removeprefix("DocumentReference/"))
        if status is not None:
            logger.info("DMP export of %s: %s", key, status.value)

    return (Consumer(name=CONSUMER_NAME, topic=REPORT_FILED, handler=handle),
            Consumer(name=f"{CONSUMER_NAME}-retry", topic=DMP_EXPORT_REQUESTED, handler=handle))


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One report document's export, as operators see it (no health data: ids and statuses)."""

    document_reference: str
    task: str | None
    state: ExportState


REPORT_DOCUMENT_ID_PREFIX: Final = "report-"
PAGE: Final = 500


async def list_exports(ctx: EngineContext, *, status: ExportStatus | None = None
                       ) -> list[ExportRow]:
    """The report documents' DMP exports (those recorded), oldest id first, optionally of one
    status. A report document's id is ``report-<Task id>`` (``mappers.report_filing``)."""
    rows: list[ExportRow] = []
    after: tuple[object, ...] | None = None
    clause = TokenClause("type", (TokenValue("http://loinc.org", "85208-7"),))
    while True:
        page = await ctx.store.search(SearchQuery("DocumentReference", (clause,), count=PAGE,
                                                  after=after))
        for match in page.matches:
            if match.deleted or match.body is None:
                continue
            state = export_state(load(ctx, match))
            if state is None or (status is not None and state.status is not status):
                continue
            task = (f"Task/{match.id.removeprefix(REPORT_DOCUMENT_ID_PREFIX)}"
                    if match.id.startswith(REPORT_DOCUMENT_ID_PREFIX) else None)
            rows.append(ExportRow(document_reference=f"DocumentReference/{match.id}",
                                  task=task, state=state))
        if len(page.matches) < PAGE:
            return rows
        last = page.matches[-1]
        after = (last.resource_type, last.id)
