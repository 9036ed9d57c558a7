"""The notification consumers bound to a process's engine, accounts and settings: what the
composition root (``runtime.py``) registers for in-process delivery, and what a worker builds
for its own store."""

from __future__ import annotations

from typing import Final

from fhir_server.accounts.mail import MailSealer
from fhir_server.crypto.keys import KeyMaterial, load_keys
from fhir_server.engine.context import EngineContext
from fhir_server.notifications.case_mail import (
    Notifier,
    dmp_consumer,
    report_consumer,
    transition_consumer,
)
from fhir_server.notifications.patient_sms import PATIENT_SMS, patient_sms_consumer
from fhir_server.notifications.recipients import AccountLookup, Recipients
from fhir_server.notifications.sms import SmsClient
from fhir_server.outbox.consumers import Consumer
from fhir_server.reports.events import DMP_EXPORT_SETTLED, REPORT_FILED
from fhir_server.settings import Settings
from fhir_server.workflow.task_rules import TASK_TRANSITION

NOTIFICATION_TOPICS: Final = frozenset({TASK_TRANSITION, REPORT_FILED, DMP_EXPORT_SETTLED,
                                        PATIENT_SMS})
"""The outbox topics the notification consumers read (a worker builds them on the first)."""


def notification_consumers(ctx: EngineContext, accounts: AccountLookup, settings: Settings, *,
                           keys: KeyMaterial | None = None) -> tuple[Consumer, ...]:
    """The consumers of case events (emails through the account mail outbox) and, when an SMS
    API is configured (``sms_url``), the sender of the patient's SMS. ``ctx``: the engine's
    context (read as the server itself); ``accounts``: the account store.

    Raises ConfigurationError for an SMS API configured without its credentials."""
    client = SmsClient.from_settings(settings)
    recipients = Recipients(ctx, accounts)
    notifier = Notifier(ctx=ctx, recipients=recipients,
                        sealer=MailSealer(keys or load_keys(settings)), settings=settings,
                        texting=client is not None)
    consumers = [transition_consumer(notifier), report_consumer(notifier),
                 dmp_consumer(notifier)]
    if client is not None:
        consumers.append(patient_sms_consumer(ctx, recipients, client))
    return tuple(consumers)
