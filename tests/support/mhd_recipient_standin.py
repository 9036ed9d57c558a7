"""A real HTTP server on 127.0.0.1 standing for an MHD Document Recipient (ITI-65), in a thread.

It records every request (path, headers, body) and answers each with the next reply of a queue
tests set (``answer``): a status, a FHIR JSON body, and a delay before answering (to make a
client time out). Without a queued reply it answers as a recipient that filed everything: a
``transaction-response`` with ``201 Created`` for each entry of the Bundle received.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback import LoopbackServer


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: status, JSON body (None: the default transaction-response when 2xx, else
    empty), seconds to wait first."""

    status: int
    body: Mapping[str, Any] | None = None
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class RecipientRequest:
    """One request as received; header names lower-cased."""

    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RecipientBehaviour:
    """The replies to give and what was received (guarded by ``lock``)."""

    queued: list[Reply] = field(default_factory=list)
    received: list[RecipientRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, request: RecipientRequest) -> Reply | None:
        with self.lock:
            self.received.append(request)
            return self.queued.pop(0) if self.queued else None


def created_response(bundle: Mapping[str, Any], *, statuses: Mapping[str, str] | None = None
                     ) -> dict[str, Any]:
    """The transaction-response filing every entry of ``bundle`` (``201 Created``, or the
    status ``statuses`` gives an entry's resource type)."""
    entries = []
    for number, entry in enumerate(bundle.get("entry", []), start=1):
        resource_type = entry["resource"]["resourceType"]
        status = (statuses or {}).get(resource_type, "201 Created")
        entries.append({"response": {"status": status,
                                     "location": f"{resource_type}/standin-{number}/_history/1"}})
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}


def outcome(code: str, diagnostics: str) -> dict[str, Any]:
    """An OperationOutcome with one error issue."""
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]}


class MhdRecipientStandin(LoopbackServer):
    """The running stand-in: ``base`` to file with, ``requests`` received so far."""

    def __init__(self) -> None:
        self.behaviour = RecipientBehaviour()
        super().__init__(_handler_for(self.behaviour))

    @property
    def base(self) -> str:
        return self.root + "/fhir"

    @property
    def requests(self) -> tuple[RecipientRequest, ...]:
        with self.behaviour.lock:
            return tuple(self.behaviour.received)

    def answer(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies`` in order, then as a filing recipient."""
        with self.behaviour.lock:
            self.behaviour.queued = list(replies)


def _handler_for(behaviour: RecipientBehaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            reply = behaviour.record(RecipientRequest(
                path=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body))
            if reply is None:
                reply = Reply(200, created_response(json.loads(body)))
            if reply.delay:
                time.sleep(reply.delay)
            payload = json.dumps(reply.body).encode() if reply.body is not None else b""
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read the recorded requests, not access logs."""

    return Handler


@contextmanager
def running_mhd_recipient() -> Iterator[MhdRecipientStandin]:
    """A started stand-in filing everything; stopped when the block ends."""
    standin = MhdRecipientStandin()
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()
