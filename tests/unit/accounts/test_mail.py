"""Account emails: bilingual texts, sealed outbox payloads, and their delivery by the outbox
consumer, as .eml files and through a real SMTP conversation with a loopback stand-in."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from fhir_server.accounts import mail
from fhir_server.accounts.mail import (
    CONSUMER_NAME,
    MAIL_TOPIC,
    FileTransport,
    MailSealer,
    SmtpTransport,
    mail_consumers,
    transport_for,
)
from fhir_server.outbox.consumers import ConsumerRegistry
from fhir_server.outbox.delivery import InProcessDeliverer
from fhir_server.outbox.dispatcher import OutboxDispatcher
from fhir_server.settings import Settings
from fhir_server.storage.protocol import AlreadyConsumed, Consumption, OutboxEvent, Store
from tests.support.smtp_server import smtp_server
from tests.unit.accounts.conftest import (
    KEYS,
    Harness,
    HarnessFactory,
    pharmacist,
    token_in,
)

UNTIL = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
EVERY_EMAIL = [
    mail.verification_email("a@b.fr", link="https://x/accounts/verify-email?token=t", hours=48),
    mail.email_verified_email("a@b.fr", awaiting_tier=True),
    mail.password_reset_email("a@b.fr", link="https://x/r?token=t", minutes=60),
    mail.password_changed_email("a@b.fr"),
    mail.warning_email("a@b.fr", reason="r", count=1),
    mail.suspension_email("a@b.fr", until=UNTIL, reason="r"),
    mail.termination_email("a@b.fr", reason="r"),
    mail.deletion_requested_email("a@b.fr"),
    mail.doctor_verified_email("a@b.fr", tier_fr="Dermatologue", tier_en="Dermatologist"),
    mail.account_created_email("a@b.fr", role="admin"),
]


@pytest.mark.parametrize("email", EVERY_EMAIL, ids=[e.kind for e in EVERY_EMAIL])
def test_every_email_is_french_first_then_english(email: mail.AccountEmail) -> None:
    assert email.text.index("Bonjour") < email.text.index("English") < email.text.index("Hello")
    assert email.subject.startswith("Pictaderm : ") and " / " in email.subject


def test_a_suspension_email_gives_the_end_in_both_languages() -> None:
    email = mail.suspension_email("a@b.fr", until=UNTIL, reason="Photos hors sujet")
    assert "01/12/2026 à 08:30 UTC" in email.text
    assert "2026-12-01 at 08:30 UTC" in email.text
    assert email.text.count("Photos hors sujet") == 2


def test_a_sealed_payload_hides_the_email_and_opens_only_for_its_event() -> None:
    sealer = MailSealer(KEYS)
    email = mail.verification_email("claire@pharmacie.example",
                                    link="https://x/v?token=SECRET-TOKEN-1234", hours=48)
    payload = sealer.seal(email, event_id="event-1")
    assert b"SECRET-TOKEN-1234" not in payload and b"claire" not in payload
    event = OutboxEvent(id="event-1", topic=MAIL_TOPIC, payload=payload, created="x")
    assert sealer.open(event) == email
    with pytest.raises(InvalidTag):
        sealer.open(OutboxEvent(id="event-2", topic=MAIL_TOPIC, payload=payload, created="x"))


def test_smtp_urls() -> None:
    assert SmtpTransport.from_url("smtp://mail.local") == SmtpTransport(
        host="mail.local", port=25, security="smtp")
    assert SmtpTransport.from_url("smtps://no%40reply:p%40ss@mail.example:2465") == (
        SmtpTransport(host="mail.example", port=2465, security="smtps", username="no@reply",
                      password="p@ss"))
    assert SmtpTransport.from_url("smtp+starttls://mail.example").port == 587
    with pytest.raises(ValueError):
        SmtpTransport.from_url("http://mail.example")


def test_without_smtp_url_emails_become_files_in_the_data_dir(tmp_path: Path) -> None:
    transport = transport_for(Settings(data_dir=tmp_path))
    assert transport == FileTransport(tmp_path / "mail")
    assert isinstance(transport_for(Settings(data_dir=tmp_path, smtp_url="smtp://h:2525")),
                      SmtpTransport)


async def dispatch(store: Store, settings: Settings) -> int:
    """One dispatcher round delivering account emails through the settings' transport."""
    registry = ConsumerRegistry()
    for consumer in mail_consumers(settings, keys=KEYS):
        registry.register(consumer.name, consumer.topic, consumer.handler)
    dispatcher = OutboxDispatcher(store, InProcessDeliverer(store, registry), poll_seconds=0.01)
    return await dispatcher.run_once()


async def test_an_email_goes_through_smtp_to_the_stand_in(
        make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with smtp_server() as server:
        harness = await make_harness(smtp_url=server.url,
                                     mail_from="Pictaderm <no-reply@pictaderm.example>")
        await harness.service.register(pharmacist())
        token = token_in(await harness.last_email())
        assert await dispatch(harness.store, harness.settings) == 1
        (received,) = server.wait_for(1)
    assert received.recipients == ("claire@pharmacie.example",)
    assert received.mail_from == "no-reply@pictaderm.example"
    assert received.message["To"] == "claire@pharmacie.example"
    assert "confirmez votre adresse e-mail" in received.message["Subject"]
    assert f"https://pictaderm.example/accounts/verify-email?token={token}" in received.text
    assert received.message["Message-ID"].endswith("@pictaderm.example>")
    assert await harness.store.outbox_pending(10) == ()
    ours = "\n".join(record.getMessage() for record in caplog.records
                     if record.name.startswith("fhir_server"))
    assert "verify-email" in ours
    assert token not in ours and "claire@pharmacie.example" not in ours


async def test_an_email_without_smtp_is_an_eml_file(harness: Harness) -> None:
    await harness.service.register(pharmacist())
    token = token_in(await harness.last_email())
    assert await dispatch(harness.store, harness.settings) == 1
    (file,) = (harness.settings.data_dir / "mail").glob("*.eml")
    assert file.stat().st_mode & 0o077 == 0
    message = message_from_bytes(file.read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    assert message["To"] == "claire@pharmacie.example"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and token in str(body.get_content())


async def test_a_sent_email_is_recorded_as_consumed(harness: Harness) -> None:
    await harness.service.register(pharmacist())
    (record,) = await harness.store.outbox_pending(10)
    (consumer,) = mail_consumers(harness.settings, keys=KEYS)
    await consumer.handler(record.event, harness.store)
    assert consumer.name == CONSUMER_NAME
    with pytest.raises(AlreadyConsumed):
        await harness.store.commit((), (), (Consumption(CONSUMER_NAME, record.event.id),))


async def test_a_failing_smtp_server_leaves_the_email_pending(make_harness: HarnessFactory,
                                                              tmp_path: Path) -> None:
    with smtp_server() as server:
        closed_port = server.port
    harness = await make_harness(smtp_url=f"smtp://127.0.0.1:{closed_port}")
    await harness.service.register(pharmacist())
    assert await dispatch(harness.store, harness.settings) == 0
    (record,) = await harness.store.outbox_pending(10)
    assert record.attempts == 1
