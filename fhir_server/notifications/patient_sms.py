"""The SMS to the patient when the report is ready: the patient's mobile number, the
``patient-sms`` outbox event that asks for it, and the consumer that sends it.

The event is committed by the ``report-filed`` notifier (``case_mail.py``) with its own
``Consumption``, so a report filed once asks for one SMS however often ``report-filed`` is
delivered; its payload holds the Task reference only (``{"task": "Task/<id>"}``). The sender is
the only consumer of ``patient-sms``: it reads the Patient when it sends (the number is sealed at
rest by the store's field cipher: ``telecom`` values), sends "your answer is available" naming
the pharmacy at most, and records its ``Consumption``. A refusal for good is logged (status and
API error code, never the number) and recorded as handled; an unavailable API raises, and the
outbox tries again with its backoff.

The number is the Patient's first ``telecom`` of system ``sms``, else of system ``phone`` with
use ``mobile``, that reads as an international number: ``+`` and 8 to 15 digits, ``00`` taken
for ``+``, and a French national mobile or phone number (``0`` and 9 digits) taken as ``+33``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Final

import orjson

from fhir_server.engine.context import EngineContext
from fhir_server.engine.instants import now_instant
from fhir_server.engine.writing import load, new_id
from fhir_server.notifications.recipients import Recipients
from fhir_server.notifications.sms import SmsClient, SmsRefused
from fhir_server.notifications.texts import report_ready_sms
from fhir_server.outbox.consumers import Consumer
from fhir_server.storage.protocol import Consumption, OutboxEvent, Store
from fhir_server.types import ResourceDict
from fhir_server.workflow.case_facts import reference_key

logger = logging.getLogger(__name__)

PATIENT_SMS: Final = "patient-sms"
"""Topic of the request to text the patient that the answer is ready."""
SENDER: Final = "notify-patient-sms"
"""The sender's consumer name (its ``Consumption`` records)."""
_SEPARATORS: Final = re.compile(r"[\s.\-()/]")
_INTERNATIONAL: Final = re.compile(r"\+[1-9][0-9]{7,14}")
_FRENCH_NATIONAL: Final = re.compile(r"0[1-9][0-9]{8}")


def e164(raw: str) -> str | None:
    """``raw`` as an E.164 number (``+33612345678``), or None when it does not read as one."""
    number = _SEPARATORS.sub("", raw)
    if number.startswith("00"):
        number = "+" + number[2:]
    elif _FRENCH_NATIONAL.fullmatch(number):
        number = "+33" + number[1:]
    return number if _INTERNATIONAL.fullmatch(number) else None


def mobile_number(patient: ResourceDict) -> str | None:
    """The number to text the patient at (see the module doc), or None."""
    telecoms = [t for t in patient.get("telecom") or () if isinstance(t, dict)]
    candidates = [t for t in telecoms if t.get("system") == "sms"] + [
        t for t in telecoms if t.get("system") == "phone" and t.get("use") == "mobile"]
    for telecom in candidates:
        value = telecom.get("value")
        number = e164(value) if isinstance(value, str) else None
        if number is not None:
            return number
    return None


def patient_sms_event(task: str) -> OutboxEvent:
    """The request to text the patient of ``Task/<id>`` (not committed)."""
    return OutboxEvent(id=new_id(), topic=PATIENT_SMS, created=now_instant(),
                       payload=orjson.dumps({"task": task}))


async def patient_of(ctx: EngineContext, task: ResourceDict) -> ResourceDict | None:
    """The Task's Patient (``Task.for``) as it stands, its sealed values opened; or None."""
    key = reference_key(task.get("for"))
    if key is None or not key.startswith("Patient/"):
        return None
    stored = await ctx.store.read("Patient", key.removeprefix("Patient/"))
    if stored is None or stored.deleted:
        return None
    return load(ctx, stored)


def patient_sms_consumer(ctx: EngineContext, recipients: Recipients,
                         client: SmsClient) -> Consumer:
    """The consumer of ``patient-sms`` events: text the patient, once."""

    async def handle(event: OutboxEvent, store: Store) -> None:
        here = replace(ctx, store=store)
        done = Consumption(consumer=SENDER, event_id=event.id)
        task = await _task(here, event)
        patient = await patient_of(here, task) if task is not None else None
        number = mobile_number(patient) if patient is not None else None
        if task is None or number is None:
            logger.info("patient SMS of event %s: no case or no mobile number; nothing sent",
                        event.id)
            await store.commit((), (), (done,))
            return
        body = report_ready_sms(await recipients.on(here).pharmacy_name(task))
        try:
            sid = await client.send(number, body)
        except SmsRefused as refused:
            logger.warning("patient SMS of event %s refused for good (HTTP %d, error %s); "
                           "not sent again", event.id, refused.status, refused.code or "-")
            await store.commit((), (), (done,))
            return
        await store.commit((), (), (done,))
        logger.info("patient SMS of event %s sent (message %s)", event.id, sid or "-")

    return Consumer(name=SENDER, topic=PATIENT_SMS, handler=handle)


async def _task(ctx: EngineContext, event: OutboxEvent) -> ResourceDict | None:
    key = str(orjson.loads(event.payload).get("task") or "")
    if not key.startswith("Task/"):
        return None
    stored = await ctx.store.read("Task", key.removeprefix("Task/"))
    if stored is None or stored.deleted:
        return None
    return load(ctx, stored)
