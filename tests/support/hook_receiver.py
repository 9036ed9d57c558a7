"""A real HTTP server on 127.0.0.1 standing for a subscriber's rest-hook endpoint, in a thread.

It records every request it gets (method, path, headers, body) and answers each with the next
status of a queue tests set (``answer``), then with a default status (200 unless changed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback import LoopbackServer


@dataclass(frozen=True, slots=True)
class HookRequest:
    """One request as received (``at``: ``time.monotonic()`` then); header names are
    lower-cased."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    at: float


@dataclass
class HookBehaviour:
    """The statuses to answer and what was received (guarded by ``lock``)."""

    queued: list[int] = field(default_factory=list)
    default: int = 200
    received: list[HookRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, request: HookRequest) -> int:
        """Keep the request; the status to answer it with."""
        with self.lock:
            self.received.append(request)
            return self.queued.pop(0) if self.queued else self.default


class HookReceiver(LoopbackServer):
    """The running receiver: ``url(path)`` to subscribe with, ``requests`` received so far."""

    def __init__(self) -> None:
        self.behaviour = HookBehaviour()
        super().__init__(_handler_for(self.behaviour))

    def url(self, path: str = "/hook") -> str:
        return self.root + path

    @property
    def requests(self) -> tuple[HookRequest, ...]:
        with self.behaviour.lock:
            return tuple(self.behaviour.received)

    def to(self, path: str) -> tuple[HookRequest, ...]:
        """The requests received on ``path``."""
        return tuple(request for request in self.requests if request.path == path)

    def answer(self, *statuses: int, then: int = 200) -> None:
        """Answer the next requests with ``statuses`` in order, the later ones with ``then``."""
        with self.behaviour.lock:
            self.behaviour.queued = list(statuses)
            self.behaviour.default = then



def _handler_for(behaviour: HookBehaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status = behaviour.record(HookRequest(
                method="POST", path=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body, at=time.monotonic()))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read the recorded requests, not access logs."""

    return Handler


@contextmanager
def running_hook_receiver() -> Iterator[HookReceiver]:
    """A started receiver answering 200; stopped when the block ends."""
    receiver = HookReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
