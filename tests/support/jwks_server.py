"""A real HTTP server on 127.0.0.1 publishing a client's JWKS, for tests of JWKS retrieval.

It serves ``GET /jwks.json`` from a thread, with a configurable ``Cache-Control`` header, counts
the requests it answers, and can rotate keys, publish a raw body (with or without a
Content-Length: HTTP/1.0 then ends the body by closing), answer an error status or answer
slowly, all while it runs.
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

from joserfc.jwk import ECKey, RSAKey

from tests.support.loopback import LoopbackServer

JWKS_PATH = "/jwks.json"


@dataclass
class JwksBehaviour:
    """What the server answers; tests change it while the server runs (guarded by ``lock``)."""

    keys: list[Mapping[str, Any]] = field(default_factory=list)
    cache_control: str | None = None
    raw_body: bytes | None = None
    status: int = 200
    delay: float = 0.0
    declare_length: bool = True
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def body(self) -> bytes:
        if self.raw_body is not None:
            return self.raw_body
        return json.dumps({"keys": list(self.keys)}).encode()


class JwksServer(LoopbackServer):
    """The running server: ``url`` to fetch, ``requests`` answered so far, ``publish`` to rotate."""

    def __init__(self, behaviour: JwksBehaviour) -> None:
        self.behaviour = behaviour
        super().__init__(_handler_for(behaviour))

    @property
    def url(self) -> str:
        return self.root + JWKS_PATH

    @property
    def requests(self) -> int:
        with self.behaviour.lock:
            return self.behaviour.requests

    def publish(self, *keys: Mapping[str, Any], cache_control: str | None = None) -> None:
        """Replace the published keys (a key rotation) and the Cache-Control header."""
        with self.behaviour.lock:
            self.behaviour.keys = list(keys)
            self.behaviour.cache_control = cache_control



def _handler_for(behaviour: JwksBehaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with behaviour.lock:
                behaviour.requests += 1
                status, body = behaviour.status, behaviour.body()
                cache_control, delay = behaviour.cache_control, behaviour.delay
                declare_length = behaviour.declare_length
            if delay:
                time.sleep(delay)
            if self.path != JWKS_PATH:
                status, body = 404, b"{}"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if declare_length:
                self.send_header("Content-Length", str(len(body)))
            if cache_control is not None:
                self.send_header("Cache-Control", cache_control)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read counters, not access logs."""

    return Handler


@contextmanager
def running_jwks_server(*keys: Mapping[str, Any],
                        cache_control: str | None = None) -> Iterator[JwksServer]:
    """A started server publishing ``keys``; stopped when the block ends."""
    server = JwksServer(JwksBehaviour(keys=list(keys), cache_control=cache_control))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def signing_key(algorithm: str, kid: str) -> RSAKey | ECKey:
    """A fresh private key for ``algorithm`` (RS384: RSA 2048, ES384: EC P-384) named ``kid``."""
    if algorithm == "RS384":
        return RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS384"})
    if algorithm == "ES384":
        return ECKey.generate_key("P-384", parameters={"kid": kid})
    raise ValueError(f"no test key for {algorithm}")


def public_jwk(key: RSAKey | ECKey) -> dict[str, Any]:
    """The JWKS entry a client registers for ``key``: its public half only."""
    return dict(key.as_dict(private=False))
