"""Case notifications on the running server (both backends): real cases moved through the
workflow, the outbox delivering in-process, emails read back as the ``.eml`` files of the
development transport (or from the SMTP stand-in), SMS from the Twilio-compatible stand-in.

People are the guide's directory (pharmacist Claire, doctors Julien (tier 1), Nadia (tier 2),
Sophie (tier 3)) plus a few roles made here, each with an account in the account store."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any, Final

import orjson
import pytest
from aiosmtpd.controller import Controller
from PIL import Image
from pydantic import SecretStr

from fhir_server.access.principal import Principal, Role
from fhir_server.accounts.mail import MAIL_DIRECTORY, MAIL_TOPIC
from fhir_server.accounts.model import Account, AccountStatus
from fhir_server.api.app import create_app
from fhir_server.auth.model import utc_now
from fhir_server.engine.instants import now_instant
from fhir_server.notifications import texts
from fhir_server.notifications.recipients import Recipients
from fhir_server.notifications.texts import CaseRef
from fhir_server.notifications.wiring import notification_consumers
from fhir_server.outbox.delivery import run_consumers
from fhir_server.reports.events import DMP_EXPORT_SETTLED, REPORT_FILED
from fhir_server.runtime import Runtime
from fhir_server.settings import Settings
from fhir_server.storage.protocol import OutboxEvent
from tests.support.app_launch import runtime_of
from tests.support.backends import BACKENDS, make_store
from tests.support.server import free_port
from tests.support.sms_api import ACCOUNT_SID, AUTH_TOKEN, SENDER, SmsApi, running_sms_api
from tests.support.smtp_server import SmtpStandIn
from tests.support.workflow_case import (
    BASE,
    CLAIRE,
    DECLINED,
    JULIEN,
    OTHER_GP,
    Desk,
    example,
    skin_case,
    transaction,
)

APP: Final = "https://app.pictaderm.example"
LINK: Final = f"{APP}/cases/c-task"
QUESTION: Final = "Depuis quand la lésion saigne-t-elle ?"
NADIA = Principal("doctor", "nadia", practitioner_role="PractitionerRole/tier-2-nadia-haddad",
                  tier="tier-2")
SOPHIE = Principal("doctor", "sophie",
                   practitioner_role="PractitionerRole/tier-3-sophie-laurent", tier="tier-3")
HEALTH_DATA: Final = ("Martin", "Camille", "285037505612306", "+33600000001", "saign",
                      "eczéma", "Dermocorticoïde", "lésion")
"""The patient's name, NIR and phone, the question and the answer: never in a message."""


@dataclass(frozen=True, slots=True)
class Person:
    """Someone with an account acting through a role."""

    email: str
    role: Role
    practitioner: str
    practitioner_role: str
    organization: str | None = None
    tier: str | None = None


CLAIRE_P = Person("claire@pharmacie-du-centre.example", "pharmacist",
                  "Practitioner/claire-dubois", "PractitionerRole/pharmacist-claire-dubois",
                  "Organization/pharmacie-du-centre")
MARC_P = Person("marc@pharmacie-du-centre.example", "pharmacist", "Practitioner/marc-leroy",
                "PractitionerRole/pharmacist-marc-leroy", "Organization/pharmacie-du-centre")
JULIEN_P = Person("julien@cabinet.example", "doctor", "Practitioner/julien-moreau",
                  "PractitionerRole/tier-1-julien-moreau", tier="tier-1")
PAUL_P = Person("paul@cabinet.example", "doctor", "Practitioner/paul-petit",
                "PractitionerRole/tier-1-paul", tier="tier-1")
LEA_P = Person("lea@cabinet.example", "doctor", "Practitioner/lea-roux",
               "PractitionerRole/tier-1-lea", tier="tier-1")
NADIA_P = Person("nadia@cabinet.example", "doctor", "Practitioner/nadia-haddad",
                 "PractitionerRole/tier-2-nadia-haddad", tier="tier-2")
SOPHIE_P = Person("sophie@cabinet.example", "doctor", "Practitioner/sophie-laurent",
                  "PractitionerRole/tier-3-sophie-laurent", tier="tier-3")

CASE = CaseRef("c-task", LINK)
OFFER = texts.case_offered_email("", CASE).subject
QUESTION_ASKED = texts.clarification_requested_email("", CASE).subject
READY = texts.report_ready_email("", CASE).subject
FAILED = texts.case_failed_email("", CASE).subject
CANCELLED = texts.case_cancelled_email("", CASE, doctor=False).subject
DMP = texts.file_in_dmp_yourself_email("", CASE).subject


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    text: str


def mail_of(message: EmailMessage) -> Mail:
    body = message.get_body(preferencelist=("plain",))
    return Mail(to=str(message["To"]), subject=str(message["Subject"]),
                text="" if body is None else str(body.get_content()))


@dataclass
class Notified:
    """A started server with the directory loaded, and what it sent."""

    runtime: Runtime
    settings: Settings
    desk: Desk
    sms: SmsApi

    def mails(self) -> list[Mail]:
        """Every email the development transport wrote so far."""
        parser = BytesParser(policy=default)
        found = []
        for path in sorted((self.settings.data_dir / MAIL_DIRECTORY).glob("*.eml")):
            message = parser.parsebytes(path.read_bytes())
            assert isinstance(message, EmailMessage)
            found.append(mail_of(message))
        return found

    def to(self, person: Person, subject: str | None = None) -> list[Mail]:
        return [mail for mail in self.mails() if mail.to == person.email
                and (subject is None or mail.subject == subject)]

    async def wait_for(self, person: Person, subject: str, count: int = 1) -> list[Mail]:
        """The emails of ``subject`` to ``person`` once ``count`` were written."""
        await until(lambda: len(self.to(person, subject)) >= count,
                    f"{count} × {subject!r} to {person.email}")
        return self.to(person, subject)

    async def accounts(self, *people: Person, status: AccountStatus = "active") -> None:
        for person in people:
            await self.runtime.account_store.add(Account(
                account_id=str(uuid.uuid4()), email=person.email, role=person.role,
                status=status, password_hash="-", created=utc_now(),
                practitioner=person.practitioner, practitioner_role=person.practitioner_role,
                organization=person.organization, tier=person.tier,
                email_verified_at=utc_now(),
                suspended_until=utc_now().replace(year=2100) if status == "suspended"
                else None))

    async def role(self, person: Person) -> None:
        """A PractitionerRole like the guide's (pharmacist or tier-1 doctor) for ``person``."""
        base = example("PractitionerRole-pharmacist-claire-dubois" if person.role == "pharmacist"
                       else "PractitionerRole-tier-1-julien-moreau")
        role = copy.deepcopy(base)
        role["id"] = person.practitioner_role.removeprefix("PractitionerRole/")
        role["practitioner"] = {"reference": person.practitioner}
        await self.desk.engine.update("PractitionerRole", role["id"], role)

    async def submit(self, *, telecom: bool = True) -> None:
        """Claire's skin case, sent submitted (offered to tier 1), its photo a real JPEG."""
        resources = skin_case()
        for resource in resources:
            if resource["resourceType"] == "Binary":
                resource["data"] = photo()
        if not telecom:
            resources[0].pop("telecom")
        await self.desk.acting(CLAIRE).process_bundle(transaction(resources), base_url=BASE)

    async def announce(self, topic: str, payload: dict[str, Any]) -> OutboxEvent:
        """Commit an event as its producer would (the report filing, the DMP export)."""
        event = OutboxEvent(id=str(uuid.uuid4()), topic=topic, created=now_instant(),
                            payload=orjson.dumps(payload))
        await self.runtime.store.commit((), (event,))
        return event

    def everything_sent(self) -> list[str]:
        return [f"{mail.subject}\n{mail.text}" for mail in self.mails()] + [
            request.form.get("Body", "") for request in self.sms.requests]


def photo() -> str:
    """A small JPEG image, base64-encoded."""
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 150, 120)).save(buffer, format="JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still waiting for {what}")
        await asyncio.sleep(0.05)


def assert_no_health_data(notified: Notified) -> None:
    for sent in notified.everything_sent():
        for data in HEALTH_DATA:
            assert data not in sent, f"{data!r} in a notification"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
def sms() -> Iterator[SmsApi]:
    with running_sms_api() as api:
        yield api


@asynccontextmanager
async def notified(backend: str, tmp_path: Path, sms: SmsApi, *, higher_tiers: bool = True,
                   **changes: Any) -> AsyncIterator[Notified]:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data", "api_token": SecretStr("test-token-0123456789"),
        "outbox_poll_seconds": 0.05, "app_base_url": APP, "sms_url": sms.url,
        "sms_account_sid": ACCOUNT_SID, "sms_auth_token": SecretStr(AUTH_TOKEN),
        "sms_from": SENDER, "notification_timeout_seconds": 2.0,
        "routing_sweep_seconds": 0}
    values.update(changes)
    settings = Settings(**values)
    app = create_app(settings, store=make_store(backend, tmp_path))
    async with app.router.lifespan_context(app):
        runtime = runtime_of(app)
        desk = Desk(runtime.engine)
        await desk.load_directory(higher_tiers=higher_tiers)
        yield Notified(runtime=runtime, settings=settings, desk=desk, sms=sms)


async def test_a_submitted_case_is_offered_to_the_verified_doctors_of_its_tier(
        backend: str, tmp_path: Path, sms: SmsApi) -> None:
    async with notified(backend, tmp_path, sms) as n:
        for person in (PAUL_P, LEA_P):
            await n.role(person)
        await n.accounts(CLAIRE_P, JULIEN_P, PAUL_P, NADIA_P, SOPHIE_P)
        await n.accounts(LEA_P, status="suspended")
        await n.submit()
        (offer,) = await n.wait_for(JULIEN_P, OFFER)
        await n.wait_for(PAUL_P, OFFER)
        assert offer.text.index("Bonjour") < offer.text.index("Hello")
        assert offer.text.count(LINK) == 2
        await n.desk.invoke(JULIEN, "claim")
        await n.desk.invoke(JULIEN, "refer-up", {"name": "reason", "valueString": "avis"})
        await n.wait_for(NADIA_P, OFFER)
        await asyncio.sleep(0.3)
        assert len(n.to(JULIEN_P)) == len(n.to(PAUL_P)) == len(n.to(NADIA_P)) == 1
        assert n.to(LEA_P) == n.to(SOPHIE_P) == n.to(CLAIRE_P) == []
        assert_no_health_data(n)


async def test_a_doctor_who_declined_is_not_offered_the_case(
        backend: str, tmp_path: Path, sms: SmsApi) -> None:
    async with notified(backend, tmp_path, sms) as n:
        await n.role(PAUL_P)
        await n.accounts(JULIEN_P, PAUL_P)
        await n.submit()
        await n.wait_for(PAUL_P, OFFER)
        await n.desk.invoke(OTHER_GP, "decline", {"name": "reason", "valueString": "absent"})
        task = await n.desk.task()
        assert task["extension"] == [{"url": DECLINED, "valueReference": {
            "reference": PAUL_P.practitioner_role}}]
        recipients = Recipients(n.runtime.engine.ctx, n.runtime.account_store)
        assert await recipients.offered_doctors(task) == (JULIEN_P.email,)


async def test_escalations_offer_each_tier_then_the_pharmacist_hears_of_the_failure(
        backend: str, tmp_path: Path, sms: SmsApi) -> None:
    async with notified(backend, tmp_path, sms) as n:
        await n.accounts(CLAIRE_P, JULIEN_P, NADIA_P, SOPHIE_P)
        await n.submit()
        await n.wait_for(JULIEN_P, OFFER)
        await n.desk.invoke(JULIEN, "decline")
        await n.wait_for(NADIA_P, OFFER)
        await n.desk.invoke(NADIA, "decline")
        await n.wait_for(SOPHIE_P, OFFER)
        await n.desk.invoke(SOPHIE, "decline")
        (failed,) = await n.wait_for(CLAIRE_P, FAILED)
        assert (await n.desk.task())["status"] == "failed"
        assert await n.desk.transitions() == ["submit", "decline", "escalate", "decline",
                                              "escalate", "decline", "fail"]
        assert LINK in failed.text
        await asyncio.sleep(0.3)
        assert [mail.subject for mail in n.to(CLAIRE_P)] == [FAILED]
        assert [len(n.to(p)) for p in (JULIEN_P, NADIA_P, SOPHIE_P)] == [1, 1, 1]
        assert_no_health_data(n)


async def test_the_pharmacist_hears_of_the_question_and_both_of_the_cancellation(
        backend: str, tmp_path: Path, sms: SmsApi) -> None:
    async with notified(backend, tmp_path, sms) as n:
        await n.accounts(CLAIRE_P, JULIEN_P)
        await n.submit()
        await n.desk.invoke(JULIEN, "claim")
        await n.desk.invoke(JULIEN, "request-clarification",
                            {"name": "reason", "valueCode": "additional-information"},
                            {"name": "text", "valueString": QUESTION})
        (asked,) = await n.wait_for(CLAIRE_P, QUESTION_ASKED)
        assert LINK in asked.text
        await n.desk.invoke(CLAIRE, "cancel", {"name": "reason", "valueString": "parti"})
        (mine,) = await n.wait_for(CLAIRE_P, CANCELLED)
        (doctors,) = await n.wait_for(JULIEN_P, CANCELLED)
        assert "aviez pris en charge" in doctors.text and "aviez" not in mine.text
        assert_no_health_data(n)


async def test_without_the_requesters_account_the_pharmacys_other_pharmacists_are_told(
        backend: str, tmp_path: Path, sms: SmsApi) -> None:
    async with notified(backend, tmp_path, sms) as n:
        await n.role(MARC_P)
        await n.accounts(MARC_P, JULIEN_P)
        await n.submit()
        await n.desk.invoke(JULIEN, "claim")
        await n.desk.invoke(JULIEN, "request-clarification",
                            {"name": "reason", "valueCode": "new-photos"},
                            {"name": "text", "valueString": QUESTION})
        await n.wait_for(MARC_P, QUESTION_ASKED)
        assert n.to(CLAIRE_P) == []


async def test_with_no_pharmacist_account_nobody_is_told_and_a_line_is_logged(
        backend: str, tmp_path: Path, sms: SmsApi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fhir_server.notifications")
    async with notified(backend, tmp_path, sms) as n:
        await n.accounts(JULIEN_P)
        await n.submit()
        await n.wait_for(JULIEN_P, OFFER)
        await n.desk.invoke(JULIEN, "claim")
        await n.desk.invoke(JULIEN, "request-clarification",
                            {"name": "reason", "valueCode": "additional-information"},
                            {"name": "text", "valueString": QUESTION})
        await until(lambda: "no pharmacist account to tell" in caplog.text, "the log line")
        assert [mail.subject for mail in n.mails()] == [OFFER]
    for data in HEALTH_DATA:
        assert data not in caplog.text


async def test_report_filed_tells_the_pharmacist_and_texts_the_patient_once(
        backend: str, tmp_path: Path, sms: SmsApi) -> None:
    async with notified(backend, tmp_path, sms) as n:
        await n.accounts(CLAIRE_P, JULIEN_P)
        await n.submit()
        sms.answer(500)
        filed = await n.announce(REPORT_FILED, {
            "task": "Task/c-task", "diagnostic_report": "DiagnosticReport/r1",
            "document_reference": "DocumentReference/d1", "binary": "Binary/b1"})
        (ready,) = await n.wait_for(CLAIRE_P, READY)
        assert LINK in ready.text
        await until(lambda: len(sms.messages) >= 1, "the SMS")
        (message,) = sms.messages
        assert [request.status for request in sms.requests] == [500, 201]
        assert message.form["To"] == "+33600000001" and message.form["From"] == SENDER
        assert message.form["Body"] == texts.report_ready_sms("Pharmacie du Centre")
        consumers = notification_consumers(n.runtime.engine.ctx, n.runtime.account_store,
                                           n.settings)
        await run_consumers(filed, n.runtime.store,
                            [c for c in consumers if c.topic == filed.topic])
        await asyncio.sleep(0.5)
        assert len(sms.requests) == 2 and len(n.to(CLAIRE_P, READY)) == 1
        assert_no_health_data(n)


@pytest.mark.parametrize(("texting", "telecom"), [(True, False), (False, True)],
                         ids=["no-phone-recorded", "no-sms-api"])
async def test_no_sms_without_a_phone_or_an_sms_api(
        backend: str, tmp_path: Path, sms: SmsApi, texting: bool, telecom: bool) -> None:
    changes: dict[str, Any] = {} if texting else {"sms_url": None}
    async with notified(backend, tmp_path, sms, **changes) as n:
        await n.accounts(CLAIRE_P)
        await n.submit(telecom=telecom)
        await n.announce(REPORT_FILED, {"task": "Task/c-task"})
        await n.wait_for(CLAIRE_P, READY)
        await asyncio.sleep(0.5)
        assert sms.requests == ()


async def test_the_pharmacist_files_the_report_when_the_dmp_export_did_not(
        backend: str, tmp_path: Path, sms: SmsApi) -> None:
    async with notified(backend, tmp_path, sms) as n:
        await n.accounts(CLAIRE_P)
        await n.submit()
        for status in ("dmp-submitted", "dmp-skipped-opposed", "dmp-skipped-disabled",
                       "dmp-failed", "dmp-skipped-no-ins"):
            await n.announce(DMP_EXPORT_SETTLED, {
                "task": "Task/c-task", "document_reference": "DocumentReference/d1",
                "status": status})
        mails = await n.wait_for(CLAIRE_P, DMP, count=2)
        await asyncio.sleep(0.3)
        assert len(n.to(CLAIRE_P, DMP)) == 2
        assert "Déposez-le vous-même" in mails[0].text and LINK in mails[0].text
        assert_no_health_data(n)


async def test_an_smtp_outage_does_not_block_the_transition_and_the_email_follows(
        backend: str, tmp_path: Path, sms: SmsApi) -> None:
    port = free_port()
    async with notified(backend, tmp_path, sms, smtp_url=f"smtp://127.0.0.1:{port}") as n:
        await n.accounts(JULIEN_P)
        await n.submit()
        assert (await n.desk.task())["status"] == "requested"

        async def failed_once() -> bool:
            pending = await n.runtime.store.outbox_pending(100)
            return any(r.event.topic == MAIL_TOPIC and r.attempts >= 1 for r in pending)

        for _ in range(400):
            if await failed_once():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the email was never tried")
        await n.desk.invoke(JULIEN, "claim")
        stand_in = SmtpStandIn(host="127.0.0.1", port=port)
        controller = Controller(stand_in, hostname=stand_in.host, port=port)
        controller.start()
        try:
            (received,) = await asyncio.to_thread(stand_in.wait_for, 1, 20.0)
            await asyncio.sleep(0.5)
            assert len(stand_in.messages()) == 1
        finally:
            controller.stop()
        assert received.recipients == (JULIEN_P.email,)
        assert received.message["Subject"] == OFFER
        assert (await n.desk.task())["status"] == "accepted"


async def test_an_sms_refused_for_good_is_not_tried_again(
        backend: str, tmp_path: Path, sms: SmsApi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fhir_server.notifications")
    async with notified(backend, tmp_path, sms) as n:
        await n.accounts(CLAIRE_P)
        await n.submit()
        sms.answer(400)
        await n.announce(REPORT_FILED, {"task": "Task/c-task"})
        await until(lambda: "refused for good" in caplog.text, "the refusal")
        await asyncio.sleep(1.5)
        assert [request.status for request in sms.requests] == [400]
        assert not [r for r in await n.runtime.store.outbox_pending(100)
                    if r.event.topic == "patient-sms"]
    assert "+33600000001" not in caplog.text and "21211" in caplog.text
