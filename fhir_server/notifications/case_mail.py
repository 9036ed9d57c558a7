"""The outbox consumers that turn a case's events into emails (and the patient's SMS request).

- ``task-transition`` submit, escalate, refer-up (and resubmit, were it to lead back to
  ``requested``): the doctors the case is offered to, "a case is offered to you";
- ``task-transition`` request-clarification: the pharmacy, "the doctor asks for more
  information";
- ``task-transition`` fail: the pharmacy, "no doctor took the case";
- ``task-transition`` cancel: the pharmacy, and the owner doctor if any, "the case is
  cancelled";
- ``report-filed``: the pharmacy, "the report is ready" (and the patient by SMS, when an SMS
  API is configured and the patient has a mobile number);
- ``dmp-export-settled`` with status ``dmp-skipped-no-ins`` or ``dmp-failed``: the pharmacy,
  "the report could not be sent to the patient's DMP: file it yourself".

"The pharmacy" is the requesting pharmacist, else the pharmacy's other pharmacists
(``recipients.py``). Each email is a sealed ``account-email`` outbox event, sent by the account
mail consumer (SMTP or ``.eml`` files, retried with the outbox's backoff): a consumer here
commits its emails, the ``patient-sms`` request if any, and its ``Consumption`` of the event in
one commit. So a transition never waits for SMTP, and an event delivered twice mails nothing
more (``AlreadyConsumed``). The Task is read at the version the transition made; an offer whose
case has moved on since (claimed, escalated, closed) is not sent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import orjson

from fhir_server.accounts.mail import AccountEmail, MailSealer
from fhir_server.engine.context import EngineContext
from fhir_server.engine.writing import load
from fhir_server.notifications import texts
from fhir_server.notifications.patient_sms import mobile_number, patient_of, patient_sms_event
from fhir_server.notifications.recipients import Recipients
from fhir_server.notifications.texts import CaseRef
from fhir_server.outbox.consumers import Consumer
from fhir_server.reports.events import DMP_EXPORT_SETTLED, REPORT_FILED
from fhir_server.settings import Settings
from fhir_server.storage.protocol import Consumption, OutboxEvent, Store
from fhir_server.types import ResourceDict
from fhir_server.workflow.task_rules import TASK_TRANSITION, tier_of

logger = logging.getLogger(__name__)

TRANSITION_NOTIFIER: Final = "notify-case-transition"
REPORT_NOTIFIER: Final = "notify-report-filed"
DMP_NOTIFIER: Final = "notify-dmp-export"
OFFERING: Final = frozenset({"submit", "escalate", "refer-up", "resubmit"})
"""Transitions after which a Task in ``requested`` is offered to its tier's doctors."""
DMP_NOT_SENT: Final = frozenset({"dmp-skipped-no-ins", "dmp-failed"})
"""Final DMP export statuses after which the pharmacist files the report itself."""


@dataclass(frozen=True, slots=True)
class Notifier:
    """What the consumers share: how to read recipients, seal emails and link to a case."""

    ctx: EngineContext
    recipients: Recipients
    sealer: MailSealer
    settings: Settings
    texting: bool = False
    """Whether the patient is texted when the report is ready (an SMS API is configured)."""

    def on(self, store: Store) -> Notifier:
        """The notifier reading through ``store`` (the one a consumer is given)."""
        ctx = replace(self.ctx, store=store)
        return replace(self, ctx=ctx, recipients=self.recipients.on(ctx))

    def case(self, task_id: str) -> CaseRef:
        return texts.case_ref(self.settings, task_id)

    async def commit(self, store: Store, event: OutboxEvent, name: str,
                     emails: Sequence[AccountEmail],
                     extra: Sequence[OutboxEvent] = ()) -> None:
        """Commit the sealed emails and ``extra`` events with the consumption of ``event``."""
        if not emails and not extra:
            return
        sealed = [self.sealer.event(email) for email in emails]
        await store.commit((), (*sealed, *extra), (Consumption(consumer=name, event_id=event.id),))
        logger.info("notifications of event %s (%s): %d email(s) [%s], %d SMS request(s)",
                    event.id, event.topic, len(emails),
                    ", ".join(email.kind for email in emails), len(extra))


def transition_consumer(notifier: Notifier) -> Consumer:
    """Emails after a Task transition: offers, question, failure, cancellation."""

    async def handle(event: OutboxEvent, store: Store) -> None:
        payload = orjson.loads(event.payload)
        name = payload.get("transition")
        if name not in OFFERING | {"request-clarification", "fail", "cancel"}:
            return
        here = notifier.on(store)
        task_id, task = await _task_at(here.ctx, payload)
        if task is None:
            return
        case = here.case(task_id)
        emails: list[AccountEmail] = []
        if name in OFFERING:
            current = await _still_offered(here.ctx, task_id, task)
            if current is not None:
                emails = [texts.case_offered_email(to, case)
                          for to in await here.recipients.offered_doctors(current)]
        elif name == "request-clarification":
            emails = [texts.clarification_requested_email(to, case)
                      for to in await here.recipients.pharmacy(task)]
        elif name == "fail":
            emails = [texts.case_failed_email(to, case)
                      for to in await here.recipients.pharmacy(task)]
        else:
            emails = [texts.case_cancelled_email(to, case, doctor=False)
                      for to in await here.recipients.pharmacy(task)]
            emails += [texts.case_cancelled_email(to, case, doctor=True)
                       for to in await here.recipients.owner(task)]
        await here.commit(store, event, TRANSITION_NOTIFIER, emails)

    return Consumer(name=TRANSITION_NOTIFIER, topic=TASK_TRANSITION, handler=handle)


def report_consumer(notifier: Notifier) -> Consumer:
    """The report is filed: the pharmacy is told, and the patient texted when possible."""

    async def handle(event: OutboxEvent, store: Store) -> None:
        here = notifier.on(store)
        task_id, task = await _task_at(here.ctx, orjson.loads(event.payload))
        if task is None:
            return
        case = here.case(task_id)
        emails = [texts.report_ready_email(to, case)
                  for to in await here.recipients.pharmacy(task)]
        extra: list[OutboxEvent] = []
        if here.texting:
            patient = await patient_of(here.ctx, task)
            if patient is not None and mobile_number(patient) is not None:
                extra.append(patient_sms_event(f"Task/{task_id}"))
        await here.commit(store, event, REPORT_NOTIFIER, emails, extra)

    return Consumer(name=REPORT_NOTIFIER, topic=REPORT_FILED, handler=handle)


def dmp_consumer(notifier: Notifier) -> Consumer:
    """The DMP export was skipped for want of the patient's INS, or failed: the pharmacy files
    the report itself."""

    async def handle(event: OutboxEvent, store: Store) -> None:
        payload = orjson.loads(event.payload)
        if payload.get("status") not in DMP_NOT_SENT:
            return
        here = notifier.on(store)
        task_id, task = await _task_at(here.ctx, payload)
        if task is None:
            return
        case = here.case(task_id)
        emails = [texts.file_in_dmp_yourself_email(to, case)
                  for to in await here.recipients.pharmacy(task)]
        await here.commit(store, event, DMP_NOTIFIER, emails)

    return Consumer(name=DMP_NOTIFIER, topic=DMP_EXPORT_SETTLED, handler=handle)


async def _task_at(ctx: EngineContext, payload: object) -> tuple[str, ResourceDict | None]:
    """The Task an event names (``task``), at its ``version`` when given, else as it stands."""
    if not isinstance(payload, dict):
        return "", None
    key = str(payload.get("task") or "")
    if not key.startswith("Task/") or len(key) <= len("Task/"):
        return "", None
    task_id = key.removeprefix("Task/")
    version = str(payload.get("version") or "")
    stored = (await ctx.store.read_version("Task", task_id, int(version)) if version.isdigit()
              else await ctx.store.read("Task", task_id))
    if stored is None or stored.deleted:
        logger.info("notification: Task/%s (version %s) cannot be read", task_id,
                    version or "current")
        return task_id, None
    return task_id, load(ctx, stored)


async def _still_offered(ctx: EngineContext, task_id: str,
                         offered: ResourceDict) -> ResourceDict | None:
    """The Task as it stands when it still waits for a claim in the tier the transition
    offered it to (its declines up to now count), else None."""
    if offered.get("status") != "requested":
        return None
    stored = await ctx.store.read("Task", task_id)
    if stored is None or stored.deleted:
        return None
    current = load(ctx, stored)
    if current.get("status") != "requested" or tier_of(current) != tier_of(offered):
        return None
    return current
