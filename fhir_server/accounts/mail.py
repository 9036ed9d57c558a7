"""Account emails: their texts (French first, English below), their passage through the outbox,
and the outbox consumer that sends them by SMTP or, without ``smtp_url``, as ``.eml`` files.

An email is committed as an outbox event of topic ``account-email`` on the FHIR store
(``Store.commit(changes=(), events=(…))``) and sent later by the consumer, at least once. The
event's payload is sealed with AES-256-GCM under a key derived from the data key: a message may
carry a verification or reset link, and the outbox table keeps delivered events, so the database
never holds a token or an address in clear. Nothing here logs a message's text, address or
link: only its kind and the event id. Sending is blocking (``smtplib``), so it runs in a
thread; the message id is the event's, so a copy re-sent after a crash is recognisable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import unquote, urlsplit

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fhir_server.crypto.keys import KeyMaterial, load_keys
from fhir_server.crypto.random_pool import random_bytes
from fhir_server.engine.instants import now_instant
from fhir_server.outbox.consumers import Consumer
from fhir_server.settings import Settings
from fhir_server.storage.protocol import Consumption, OutboxEvent, Store

logger = logging.getLogger(__name__)

MAIL_TOPIC: Final = "account-email"
CONSUMER_NAME: Final = "account-email-sender"
MAIL_DIRECTORY: Final = "mail"
SEAL_INFO: Final = b"pictaderm account mail v1"
SMTP_TIMEOUT_SECONDS: Final = 30.0
_NONCE_BYTES: Final = 12
_DEFAULT_PORTS: Final = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True, slots=True)
class AccountEmail:
    """One email to one person: ``kind`` names the message (``verify-email``…) for logs."""

    to: str
    kind: str
    subject: str
    text: str


# --- texts ---------------------------------------------------------------------------------

def letter(to: str, kind: str, *, subject: tuple[str, str], french: str,
           english: str) -> AccountEmail:
    """The bilingual email: the French text, then the English one below it (account emails
    and the case notifications of ``fhir_server.notifications`` alike)."""
    text = (f"Bonjour,\n\n{french}\n\nL'équipe Pictaderm\n\n"
            f"---------------- English ----------------\n\n"
            f"Hello,\n\n{english}\n\nThe Pictaderm team\n")
    return AccountEmail(to=to, kind=kind, subject=f"Pictaderm : {subject[0]} / {subject[1]}",
                        text=text)


def french_date(moment: datetime) -> str:
    return moment.strftime("%d/%m/%Y à %H:%M UTC")


def english_date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d at %H:%M UTC")


def verification_email(to: str, *, link: str, hours: int) -> AccountEmail:
    return letter(
        to, "verify-email", subject=("confirmez votre adresse e-mail", "confirm your email"),
        french=("Pour activer votre compte Pictaderm, confirmez votre adresse e-mail en ouvrant "
                f"ce lien (valable {hours} heures) :\n{link}\n\n"
                "Si vous n'avez pas créé de compte, ignorez ce message."),
        english=("To activate your Pictaderm account, confirm your email address by opening "
                 f"this link (valid for {hours} hours):\n{link}\n\n"
                 "If you did not create an account, ignore this message."))


def email_verified_email(to: str, *, awaiting_tier: bool) -> AccountEmail:
    french = "Votre adresse e-mail est confirmée : votre compte est actif."
    english = "Your email address is confirmed: your account is active."
    if awaiting_tier:
        french += (" Un directeur médical doit encore vérifier votre niveau d'expertise avant "
                   "que des demandes de téléexpertise vous soient proposées.")
        english += (" A medical director still has to verify your expertise tier before "
                    "tele-expertise requests are offered to you.")
    return letter(to, "email-verified", subject=("compte activé", "account activated"),
                  french=french, english=english)


def password_reset_email(to: str, *, link: str, minutes: int) -> AccountEmail:
    return letter(
        to, "reset-password",
        subject=("réinitialisation du mot de passe", "password reset"),
        french=("Une réinitialisation du mot de passe de votre compte a été demandée. Pour "
                f"choisir un nouveau mot de passe, ouvrez ce lien (valable {minutes} minutes, "
                f"utilisable une seule fois) :\n{link}\n\n"
                "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message : votre "
                "mot de passe reste inchangé."),
        english=("A password reset was requested for your account. To choose a new password, "
                 f"open this link (valid for {minutes} minutes, usable once):\n{link}\n\n"
                 "If you did not ask for it, ignore this message: your password is unchanged."))


def password_changed_email(to: str) -> AccountEmail:
    return letter(
        to, "password-changed", subject=("mot de passe modifié", "password changed"),
        french=("Le mot de passe de votre compte vient d'être modifié. Si vous n'êtes pas à "
                "l'origine de ce changement, contactez-nous sans attendre."),
        english=("The password of your account was just changed. If you did not change it, "
                 "contact us at once."))


def warning_email(to: str, *, reason: str, count: int) -> AccountEmail:
    return letter(
        to, "warning", subject=("avertissement", "warning"),
        french=(f"Votre compte reçoit un avertissement (le {count}e) pour la raison suivante :"
                f"\n\n{reason}\n\nDes manquements répétés peuvent entraîner la suspension du "
                "compte."),
        english=(f"Your account receives a warning (number {count}) for this reason:\n\n"
                 f"{reason}\n\nRepeated breaches may lead to the suspension of the account."))


def suspension_email(to: str, *, until: datetime, reason: str) -> AccountEmail:
    return letter(
        to, "suspended", subject=("compte suspendu", "account suspended"),
        french=(f"Votre compte est suspendu jusqu'au {french_date(until)}, pour la raison "
                f"suivante :\n\n{reason}\n\nVous ne pouvez pas vous connecter d'ici là."),
        english=(f"Your account is suspended until {english_date(until)}, for this reason:"
                 f"\n\n{reason}\n\nYou cannot sign in until then."))


def termination_email(to: str, *, reason: str) -> AccountEmail:
    return letter(
        to, "terminated", subject=("compte clôturé", "account closed"),
        french=f"Votre compte est clôturé définitivement, pour la raison suivante :\n\n{reason}",
        english=f"Your account is closed for good, for this reason:\n\n{reason}")


def deletion_requested_email(to: str) -> AccountEmail:
    return letter(
        to, "deletion-requested",
        subject=("demande de suppression reçue", "deletion request received"),
        french=("Nous avons bien reçu votre demande de suppression de compte. Votre compte est "
                "désactivé dès maintenant ; vos données seront effacées dans les délais légaux "
                "de conservation des données de santé."),
        english=("We received your request to delete your account. Your account is disabled "
                 "from now on; your data will be erased within the legal retention periods of "
                 "health data."))


def doctor_verified_email(to: str, *, tier_fr: str, tier_en: str) -> AccountEmail:
    return letter(
        to, "doctor-verified", subject=("profil vérifié", "profile verified"),
        french=("Un directeur médical a vérifié votre profil. Votre niveau d'expertise : "
                f"{tier_fr}. Les demandes de téléexpertise de ce niveau vous seront désormais "
                "proposées."),
        english=("A medical director verified your profile. Your expertise tier: "
                 f"{tier_en}. Tele-expertise requests of this tier will now be offered to you."))


def account_created_email(to: str, *, role: str) -> AccountEmail:
    return letter(
        to, "account-created", subject=("compte créé", "account created"),
        french=(f"Un compte Pictaderm ({role}) a été créé pour vous par un opérateur. Si vous "
                "ne connaissez pas son mot de passe, utilisez « mot de passe oublié »."),
        english=(f"A Pictaderm account ({role}) was created for you by an operator. If you do "
                 "not know its password, use \"forgot password\"."))


# --- sealing -------------------------------------------------------------------------------

class MailSealer:
    """Seals an email into an outbox payload and opens it again (AES-256-GCM, the event id as
    associated data, so a payload copied to another event does not open)."""

    def __init__(self, keys: KeyMaterial) -> None:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SEAL_INFO)
        self._aead = AESGCM(hkdf.derive(keys.data_key))

    def seal(self, email: AccountEmail, *, event_id: str) -> bytes:
        nonce = random_bytes(_NONCE_BYTES)
        plaintext = orjson.dumps({"to": email.to, "kind": email.kind, "subject": email.subject,
                                  "text": email.text})
        return nonce + self._aead.encrypt(nonce, plaintext, event_id.encode())

    def event(self, email: AccountEmail) -> OutboxEvent:
        """A new ``account-email`` outbox event carrying ``email`` sealed (not committed: the
        caller commits it, alone or with its own effects)."""
        event_id = str(uuid.uuid4())
        return OutboxEvent(id=event_id, topic=MAIL_TOPIC, created=now_instant(),
                           payload=self.seal(email, event_id=event_id))

    def open(self, event: OutboxEvent) -> AccountEmail:
        """The email of an event; raises ``cryptography.exceptions.InvalidTag`` for a payload
        not sealed with this key for this event."""
        nonce, sealed = event.payload[:_NONCE_BYTES], event.payload[_NONCE_BYTES:]
        data = orjson.loads(self._aead.decrypt(nonce, sealed, event.id.encode()))
        return AccountEmail(to=str(data["to"]), kind=str(data["kind"]),
                            subject=str(data["subject"]), text=str(data["text"]))


class AccountMailer:
    """Queues account emails as sealed outbox events on the FHIR store."""

    def __init__(self, store: Store, sealer: MailSealer) -> None:
        self._store = store
        self._sealer = sealer

    async def send(self, email: AccountEmail) -> str:
        """Commit the email's outbox event; returns the event id."""
        event = self._sealer.event(email)
        await self._store.commit((), (event,))
        return event.id


# --- delivery ------------------------------------------------------------------------------

class MailTransport(Protocol):
    """Sends one message (blocking: called in a worker thread)."""

    def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True, slots=True)
class SmtpTransport:
    """An SMTP server: ``smtp://`` (plain), ``smtp+starttls://`` or ``smtps://`` (TLS), with
    ``user:password@`` when it asks for a login."""

    host: str
    port: int
    security: str
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> SmtpTransport:
        """Raises ValueError for another scheme or a URL without a host."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError("FHIR_SERVER_SMTP_URL must be smtp://host[:port], "
                             "smtp+starttls://… or smtps://user:password@host[:port]")
        return cls(host=parts.hostname, port=parts.port or _DEFAULT_PORTS[parts.scheme],
                   security=parts.scheme,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None)

    def send(self, message: EmailMessage) -> None:
        client: smtplib.SMTP
        if self.security == "smtps":
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=SMTP_TIMEOUT_SECONDS,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT_SECONDS)
        with client:
            if self.security == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if self.username is not None:
                client.login(self.username, self.password or "")
            client.send_message(message)


@dataclass(frozen=True, slots=True)
class FileTransport:
    """Development: each message becomes ``<directory>/<message file>.eml`` (owner-only)."""

    directory: Path

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = str(message["X-Pictaderm-Event"])
        target = self.directory / f"{name}.eml"
        partial = target.with_suffix(".eml.partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(message.as_bytes())
        os.replace(partial, target)


def transport_for(settings: Settings) -> MailTransport:
    """SMTP when ``smtp_url`` is set, else ``.eml`` files under ``<data dir>/mail``."""
    if settings.smtp_url:
        return SmtpTransport.from_url(settings.smtp_url)
    return FileTransport(settings.data_dir / MAIL_DIRECTORY)


def message_of(email: AccountEmail, *, sender: str, event: OutboxEvent) -> EmailMessage:
    """The MIME message of an email, its Message-ID made from the event id."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = format_datetime(datetime.fromisoformat(event.created.replace("Z",
                                                                                    "+00:00")))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "pictaderm.localhost"
    message["Message-ID"] = f"<{event.id}@{domain}>"
    message["X-Pictaderm-Event"] = event.id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(email.text)
    return message


def mail_consumer(*, sealer: MailSealer, transport: MailTransport, sender: str) -> Consumer:
    """The consumer sending account emails: open, send (in a thread), then record it."""

    async def handle(event: OutboxEvent, store: Store) -> None:
        email = sealer.open(event)
        await asyncio.to_thread(transport.send, message_of(email, sender=sender, event=event))
        await store.commit((), (), (Consumption(consumer=CONSUMER_NAME, event_id=event.id),))
        logger.info("account email %s sent (event %s)", email.kind, event.id)

    return Consumer(name=CONSUMER_NAME, topic=MAIL_TOPIC, handler=handle)


def mail_consumers(settings: Settings, *, keys: KeyMaterial | None = None,
                   transport: MailTransport | None = None) -> tuple[Consumer, ...]:
    """The outbox consumers of account emails, bound to the settings (their keys, SMTP URL or
    data dir, and sender); register them where the dispatcher's deliverer finds them."""
    sealer = MailSealer(keys or load_keys(settings))
    return (mail_consumer(sealer=sealer, transport=transport or transport_for(settings),
                          sender=settings.mail_from),)


def mailer_for(store: Store, settings: Settings, *,
               keys: KeyMaterial | None = None) -> AccountMailer:
    """The mailer committing account emails on ``store`` with the settings' keys."""
    return AccountMailer(store, MailSealer(keys or load_keys(settings)))

