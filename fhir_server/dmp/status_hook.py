"""The before-commit hook that turns a report document's DMP export status changes into outbox
events, committed with the change: ``dmp-export-settled`` when the export reaches a final status,
``dmp-export-requested`` when an operator puts a settled export back to pending."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from fhir_server.dmp.status import ExportStatus, export_state
from fhir_server.engine.context import EngineContext
from fhir_server.engine.hooks import HookOutput, PlannedWrite
from fhir_server.engine.instants import now_instant
from fhir_server.engine.writing import new_id
from fhir_server.reports.events import DMP_EXPORT_REQUESTED, DMP_EXPORT_SETTLED
from fhir_server.storage.protocol import OutboxEvent
from fhir_server.types import ResourceDict
from fhir_server.workflow.case_facts import CaseReader, reference_key


async def announce_export_changes(writes: Sequence[PlannedWrite], ctx: EngineContext
                                  ) -> list[HookOutput]:
    """The events of the DMP export status changes among ``writes``."""
    events: list[HookOutput] = []
    reader: CaseReader | None = None
    for write in writes:
        if write.change.resource_type != "DocumentReference" or write.resource is None:
            continue
        after = export_state(write.resource)
        if after is None:
            continue
        before = export_state(write.previous) if write.previous is not None else None
        settled = after.status.is_final and (before is None or before.status != after.status)
        requested = (after.status is ExportStatus.PENDING and after.attempts == 0
                     and before is not None and before.status.is_final)
        if not (settled or requested):
            continue
        reader = reader or CaseReader(ctx, writes)
        payload = {"task": await _task_of(reader, write.resource),
                   "document_reference": f"DocumentReference/{write.change.id}"}
        if settled:
            events.append(_event(DMP_EXPORT_SETTLED, {**payload, "status": after.status.value}))
        else:
            events.append(_event(DMP_EXPORT_REQUESTED, payload))
    return events


async def _task_of(reader: CaseReader, document: ResourceDict) -> str | None:
    """The case Task of a report document (the Task whose focus is its ServiceRequest)."""
    for related in (document.get("context") or {}).get("related") or ():
        key = reference_key(related)
        if key is not None and key.startswith("ServiceRequest/"):
            tasks = await reader.referring("Task", "focus", key)
            if tasks:
                return f"Task/{tasks[0]['id']}"
    return None


def _event(topic: str, payload: dict[str, str | None]) -> OutboxEvent:
    return OutboxEvent(id=new_id(), topic=topic, payload=orjson.dumps(payload),
                       created=now_instant())
