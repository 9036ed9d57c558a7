"""An SMTP server stand-in on loopback (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.server import free_port


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One message as the server received it: the envelope and the parsed message."""

    mail_from: str
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def text(self) -> str:
        """The plain-text body."""
        body = self.message.get_body(preferencelist=("plain",))
        return "" if body is None else str(body.get_content())


@dataclass
class SmtpStandIn:
    """The running stand-in: where it listens, and what it received (thread-safe)."""

    host: str
    port: int
    received: list[ReceivedMail] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.received.append(ReceivedMail(mail_from=str(envelope.mail_from),
                                              recipients=tuple(envelope.rcpt_tos),
                                              message=parsed))
        return "250 Message accepted for delivery"

    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """The messages once at least ``count`` arrived; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages()
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} message(s), received {len(self.messages())}")


@contextmanager
def smtp_server() -> Iterator[SmtpStandIn]:
    """An SMTP stand-in listening on a free loopback port for the block's duration."""
    stand_in = SmtpStandIn(host="127.0.0.1", port=free_port())
    controller = Controller(stand_in, hostname=stand_in.host, port=stand_in.port)
    controller.start()
    try:
        yield stand_in
    finally:
        controller.stop()
