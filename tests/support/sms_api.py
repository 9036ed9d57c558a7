"""A Twilio-compatible SMS API stand-in: a real HTTP server on 127.0.0.1, in a thread.

It serves ``POST /2010-04-01/Accounts/{sid}/Messages.json`` (form fields ``To``, ``From``,
``Body``) for one account: HTTP Basic ``sid:token`` is checked (401 and Twilio's error 20003
otherwise), a message is accepted with 201 and a Twilio-like JSON message resource. Tests can
queue other answers (``answer(500)``, ``answer(400)``: Twilio's error 21211, invalid number) and
make it slow (``delay``: a client that gave up meanwhile is not an error here). Every request
is recorded; ``messages`` are the accepted ones.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Final
from urllib.parse import parse_qs

from tests.support.loopback import LoopbackServer

ACCOUNT_SID: Final = "AC" + "0" * 31 + "1"
AUTH_TOKEN: Final = "sms-auth-token-for-tests"
SENDER: Final = "Pictaderm"


@dataclass(frozen=True, slots=True)
class SmsRequest:
    """One request as received; ``form`` is the decoded body, header names lower-cased."""

    path: str
    headers: Mapping[str, str]
    form: Mapping[str, str]
    status: int


@dataclass
class SmsBehaviour:
    """The answers to give and what was received (guarded by ``lock``)."""

    sid: str
    token: str
    queued: list[int] = field(default_factory=list)
    delay_seconds: float = 0.0
    received: list[SmsRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            return self.queued.pop(0) if self.queued else 201


class SmsApi(LoopbackServer):
    """The running stand-in: ``url`` for ``FHIR_SERVER_SMS_URL``, ``messages`` accepted."""

    def __init__(self, sid: str = ACCOUNT_SID, token: str = AUTH_TOKEN) -> None:
        self.behaviour = SmsBehaviour(sid=sid, token=token)
        super().__init__(_handler_for(self.behaviour))

    @property
    def url(self) -> str:
        return self.root

    @property
    def requests(self) -> tuple[SmsRequest, ...]:
        with self.behaviour.lock:
            return tuple(self.behaviour.received)

    @property
    def messages(self) -> tuple[SmsRequest, ...]:
        """The requests answered 201: the messages the API took."""
        return tuple(request for request in self.requests if request.status == 201)

    def answer(self, *statuses: int) -> None:
        """Answer the next authorised requests with ``statuses`` in order, then 201 again."""
        with self.behaviour.lock:
            self.behaviour.queued = list(statuses)

    def delay(self, seconds: float) -> None:
        """Wait ``seconds`` before answering each request (0: answer at once)."""
        with self.behaviour.lock:
            self.behaviour.delay_seconds = seconds

    def wait_for(self, count: int, timeout: float = 10.0) -> tuple[SmsRequest, ...]:
        """The accepted messages once at least ``count`` arrived; AssertionError after
        ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.02)
        raise AssertionError(f"expected {count} SMS, the API took {len(self.messages)}")


def _authorised(behaviour: SmsBehaviour, header: str | None) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header.removeprefix("Basic "), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return False
    return decoded == f"{behaviour.sid}:{behaviour.token}"


def _error(code: int, message: str, status: int) -> dict[str, Any]:
    return {"code": code, "message": message, "status": status,
            "more_info": f"https://www.twilio.com/docs/errors/{code}"}


def _message(behaviour: SmsBehaviour, form: Mapping[str, str]) -> dict[str, Any]:
    return {"sid": "SM" + uuid.uuid4().hex, "account_sid": behaviour.sid,
            "to": form.get("To"), "from": form.get("From"), "body": form.get("Body"),
            "status": "queued", "num_segments": "1", "direction": "outbound-api",
            "api_version": "2010-04-01", "error_code": None, "error_message": None,
            "uri": f"/2010-04-01/Accounts/{behaviour.sid}/Messages.json"}


def _handler_for(behaviour: SmsBehaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            form = {name: values[0] for name, values in parse_qs(raw).items()}
            headers = {name.lower(): value for name, value in self.headers.items()}
            with behaviour.lock:
                delay = behaviour.delay_seconds
            if delay:
                time.sleep(delay)
            status, body = self._answer(headers, form)
            with behaviour.lock:
                behaviour.received.append(SmsRequest(path=self.path, headers=headers,
                                                     form=form, status=status))
            payload = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _answer(self, headers: Mapping[str, str],
                    form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
            if self.path != f"/2010-04-01/Accounts/{behaviour.sid}/Messages.json":
                return 404, _error(20404, "The requested resource was not found", 404)
            if not _authorised(behaviour, headers.get("authorization")):
                return 401, _error(20003, "Authenticate", 401)
            if not all(form.get(name) for name in ("To", "From", "Body")):
                return 400, _error(21604, "A 'To', 'From' and 'Body' are required", 400)
            status = behaviour.next_status()
            if status == 201:
                return 201, _message(behaviour, form)
            if status == 400:
                return 400, _error(21211, "The 'To' number is not a valid phone number.", 400)
            return status, _error(20500, "Internal Server Error", status)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read the recorded requests, not access logs."""

    return Handler


@contextmanager
def running_sms_api(sid: str = ACCOUNT_SID, token: str = AUTH_TOKEN) -> Iterator[SmsApi]:
    """A started stand-in accepting every message; stopped when the block ends."""
    api = SmsApi(sid, token)
    api.start()
    try:
        yield api
    finally:
        api.stop()
