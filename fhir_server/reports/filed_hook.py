"""The before-commit hook that announces a filed report: the commit that puts a report
DocumentReference (LOINC 85208-7) into a completed Task's ``output`` carries the outbox event
``report-filed``, so the DMP export and the notifications follow the filing at least once and
never precede it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from fhir_server.engine.context import EngineContext
from fhir_server.engine.hooks import HookOutput, PlannedWrite
from fhir_server.engine.instants import now_instant
from fhir_server.engine.writing import new_id
from fhir_server.reports.events import REPORT_FILED
from fhir_server.storage.protocol import OutboxEvent
from fhir_server.types import ResourceDict
from fhir_server.workflow.case_facts import reference_key
from mappers.report_document import REPORT_TYPE


async def announce_filed_reports(writes: Sequence[PlannedWrite], ctx: EngineContext
                                 ) -> list[HookOutput]:
    """One ``report-filed`` event per completed Task that gains a report document written in
    the same commit."""
    documents = {f"DocumentReference/{write.change.id}": write.resource for write in writes
                 if write.change.resource_type == "DocumentReference"
                 and write.resource is not None and is_report_document(write.resource)}
    if not documents:
        return []
    events: list[HookOutput] = []
    for write in writes:
        task = write.resource
        if write.change.resource_type != "Task" or task is None \
                or task.get("status") != "completed":
            continue
        before = set(_outputs(write.previous)) if write.previous is not None else set()
        for key in _outputs(task):
            if key in documents and key not in before:
                events.append(_filed_event(write.change.id, task, key, documents[key]))
    return events


def is_report_document(document: ResourceDict) -> bool:
    """Whether a DocumentReference is a tele-expertise report (LOINC 85208-7)."""
    return any(coding.get("system") == REPORT_TYPE.system and coding.get("code") == REPORT_TYPE.code
               for coding in (document.get("type") or {}).get("coding") or ()
               if isinstance(coding, dict))


def _outputs(task: ResourceDict | None) -> list[str]:
    keys = (reference_key((output or {}).get("valueReference"))
            for output in (task or {}).get("output") or ())
    return [key for key in keys if key is not None]


def _filed_event(task_id: str, task: ResourceDict, document_key: str,
                 document: ResourceDict) -> OutboxEvent:
    report = next((key for key in _outputs(task) if key.startswith("DiagnosticReport/")), None)
    attachment: dict[str, Any] = next(
        (content.get("attachment") or {} for content in document.get("content") or ()), {})
    payload = {"task": f"Task/{task_id}", "diagnostic_report": report,
               "document_reference": document_key,
               "binary": reference_key({"reference": attachment.get("url")})}
    return OutboxEvent(id=new_id(), topic=REPORT_FILED, payload=orjson.dumps(payload),
                       created=now_instant())
