"""A lean HTTP/1.1 load generator: N keep-alive clients on asyncio, run in a process of their own.

Why not httpx or aiohttp: on a 2-core machine the load generator and the server share the CPU,
and a full-featured client spends more CPU per request (connection pools, header models,
URL objects, decoders) than a small server spends answering it, so the benchmark would
mostly measure the client. Measured on the 2-core box against the ceiling app: about 45 µs of
CPU per request for this client, milliseconds for an httpx AsyncClient at 16 concurrent
requests. This module writes pre-encoded request bytes on an ``asyncio.open_connection``
stream and parses only what HTTP/1.1 needs to keep a connection alive: the status line, the
headers, and a body delimited by ``Content-Length``, chunked transfer coding, or the end of
the connection.

Why another process: the clients must not share an event loop (or the GIL) with the code
that sets up the benchmark or with a server started in-process, so :func:`run_load` runs
each plan in a freshly spawned interpreter, on uvloop when it is installed.

Measurement: every client sends its next request as soon as the previous answer arrives.
A request counts as an error when its status is not 2xx or the connection fails;
requests per second counts successful requests only, and the latency percentiles are
taken over successful requests (nearest-rank method, see :func:`percentile`). Given the
server's process id, the measured phase also records the CPU time of the server, of its
descendants and of the load generator itself (:mod:`tests.perf.cpu`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import multiprocessing
import ssl
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from tests.perf.cpu import CpuSample, CpuUsage, take_sample, usage_between

_MAX_HEAD_BYTES = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})
_RETRY_PAUSE_SECONDS = 0.01


class ProtocolError(Exception):
    """The peer broke HTTP/1.1 framing or closed the connection in the middle of a response."""


@dataclass(frozen=True)
class Target:
    """Where requests go: a host, a port, and whether to speak TLS."""

    host: str
    port: int
    tls: bool = False

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_base_url(url: str) -> tuple[Target, str]:
    """Splits ``http(s)://host:port/prefix`` into a target and a path prefix without a final '/'."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    return Target(host=parts.hostname, port=port, tls=tls), parts.path.rstrip("/")


@dataclass(frozen=True)
class Request:
    """One HTTP request; ``target`` is the path and query, e.g. ``/fhir/Patient/1``."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


def encode_request(request: Request, host_header: str) -> bytes:
    """The bytes of ``request`` on the wire, with Host and (when there is a body) Content-Length."""
    lines = [f"{request.method} {request.target} HTTP/1.1", f"Host: {host_header}"]
    lines.extend(f"{name}: {value}" for name, value in request.headers)
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(request.body)}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1") + request.body


@dataclass(frozen=True)
class Response:
    """A parsed response; header names are lower-case."""

    status: int
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


class HttpConnection:
    """One persistent HTTP/1.1 connection; requests on it are sent one after the other."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, target: Target) -> HttpConnection:
        context = ssl.create_default_context() if target.tls else None
        reader, writer = await asyncio.open_connection(
            target.host, target.port, ssl=context, limit=_MAX_HEAD_BYTES)
        return cls(reader, writer)

    async def request(self, request: Request, target: Target) -> Response:
        """Sends one request and reads its response."""
        wire = encode_request(request, target.host_header)
        return await self.exchange(wire, head_request=request.method == "HEAD")

    async def exchange(self, wire: bytes, *, head_request: bool = False) -> Response:
        """Writes already-encoded request bytes and reads the response to them."""
        self._writer.write(wire)
        try:
            status, version, headers = await self._read_head()
            body, delimited = await self._read_body(status, headers, head_request=head_request)
        except asyncio.IncompleteReadError as exc:
            raise ProtocolError("connection closed before the response was complete") from exc
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError("response head or chunk line too long") from exc
        keep_alive = delimited and _wants_keep_alive(version, headers)
        return Response(status=status, headers=headers, body=body, keep_alive=keep_alive)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def _read_head(self) -> tuple[int, str, dict[str, str]]:
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ProtocolError(f"bad status line {status_line!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, colon, value = line.partition(":")
            if not colon:
                raise ProtocolError(f"bad header line {line!r}")
            headers[name.strip().lower()] = value.strip()
        return int(code), version, headers

    async def _read_body(self, status: int, headers: dict[str, str], *,
                         head_request: bool) -> tuple[bytes, bool]:
        """The body and whether its end was delimited (False: it ran to the end of the stream)."""
        if head_request or status < 200 or status in _NO_BODY_STATUSES:
            return b"", True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await self._read_chunked(), True
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise ProtocolError(f"bad Content-Length {length!r}")
            return await self._reader.readexactly(int(length)), True
        return await self._reader.read(), False

    async def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = await self._reader.readuntil(b"\r\n")
            size_text = size_line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as exc:
                raise ProtocolError(f"bad chunk size {size_text!r}") from exc
            if size == 0:
                await self._skip_trailers()
                return b"".join(parts)
            chunk = await self._reader.readexactly(size + 2)
            if chunk[-2:] != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            parts.append(chunk[:-2])

    async def _skip_trailers(self) -> None:
        while await self._reader.readuntil(b"\r\n") != b"\r\n":
            pass


def _wants_keep_alive(version: str, headers: dict[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection


class RequestSource(Protocol):
    """Builds the request a client sends; ``seq`` counts that client's requests from 0.

    Implementations cross a process boundary, so they must be picklable: a frozen dataclass
    defined at module level is the usual shape.
    """

    def build(self, client: int, seq: int) -> Request: ...


@dataclass(frozen=True)
class FixedRequest:
    """A source sending the same request every time."""

    request: Request

    def build(self, client: int, seq: int) -> Request:
        return self.request


@dataclass(frozen=True)
class LoadPlan:
    """What to run: ``clients`` connections sending requests for ``duration_seconds``.

    A warm-up of ``warmup_seconds`` on the same connections comes first and is not measured.
    ``watch_pid``: the server's process, whose CPU time (and its descendants') is measured over
    the measured phase, with the load generator's own (Linux only).
    """

    target: Target
    source: RequestSource
    clients: int
    duration_seconds: float
    warmup_seconds: float = 0.0
    watch_pid: int | None = None


@dataclass(frozen=True)
class LoadStats:
    """The measured phase of one plan. Percentiles are None when no request succeeded."""

    requests: int
    errors: int
    elapsed_seconds: float
    requests_per_second: float
    p50_ms: float | None
    p99_ms: float | None
    first_error: str | None
    cpu: CpuUsage | None = None


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``fraction`` of values <= it."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rank = math.ceil(fraction * len(sorted_values))
    return sorted_values[rank - 1]


def summarize(latencies_ns: list[int], *, requests: int, errors: int, elapsed_seconds: float,
              first_error: str | None) -> LoadStats:
    """Turns raw per-request measurements into req/s and p50/p99 in milliseconds."""
    ordered = sorted(latencies_ns)
    successes = requests - errors
    return LoadStats(
        requests=requests,
        errors=errors,
        elapsed_seconds=elapsed_seconds,
        requests_per_second=successes / elapsed_seconds if elapsed_seconds > 0 else 0.0,
        p50_ms=percentile(ordered, 0.50) / 1e6 if ordered else None,
        p99_ms=percentile(ordered, 0.99) / 1e6 if ordered else None,
        first_error=first_error,
    )


@dataclass
class _Tally:
    """What the clients of one plan have recorded so far (mutable, lives in the load process)."""

    recording: bool = False
    requests: int = 0
    errors: int = 0
    first_error: str | None = None
    latencies_ns: list[int] = field(default_factory=list)

    def success(self, latency_ns: int) -> None:
        if self.recording:
            self.requests += 1
            self.latencies_ns.append(latency_ns)

    def failure(self, description: str) -> None:
        if self.recording:
            self.requests += 1
            self.errors += 1
            if self.first_error is None:
                self.first_error = description


class _Client:
    """One simulated client: a connection, its request counter, and its encoding cache."""

    def __init__(self, plan: LoadPlan, index: int, tally: _Tally) -> None:
        self._plan = plan
        self._index = index
        self._tally = tally
        self._seq = 0
        self._connection: HttpConnection | None = None
        self._last_request: Request | None = None
        self._last_wire = b""

    async def connect(self) -> None:
        self._connection = await HttpConnection.open(self._plan.target)

    async def run_until(self, deadline: float) -> None:
        while time.perf_counter() < deadline:
            await self._send_one()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def _send_one(self) -> None:
        request = self._plan.source.build(self._index, self._seq)
        self._seq += 1
        wire = self._encode(request)
        started = time.perf_counter_ns()
        try:
            connection = self._connection
            if connection is None:
                connection = self._connection = await HttpConnection.open(self._plan.target)
            response = await connection.exchange(wire, head_request=request.method == "HEAD")
        except (OSError, ProtocolError) as exc:
            await self.close()
            self._tally.failure(f"{request.method} {request.target}: {exc!r}")
            await asyncio.sleep(_RETRY_PAUSE_SECONDS)
            return
        latency = time.perf_counter_ns() - started
        if not response.keep_alive:
            await self.close()
        if 200 <= response.status < 300:
            self._tally.success(latency)
        else:
            snippet = response.body[:300].decode("utf-8", "replace")
            self._tally.failure(f"{request.method} {request.target}: {response.status} {snippet}")

    def _encode(self, request: Request) -> bytes:
        if request is not self._last_request:
            self._last_request = request
            self._last_wire = encode_request(request, self._plan.target.host_header)
        return self._last_wire


async def drive(plan: LoadPlan) -> LoadStats:
    """Runs a plan on the current event loop: connect, warm up, then measure."""
    if plan.clients < 1:
        raise ValueError("a plan needs at least one client")
    tally = _Tally()
    clients = [_Client(plan, index, tally) for index in range(plan.clients)]
    before: CpuSample | None = None
    after: CpuSample | None = None
    try:
        await asyncio.gather(*(client.connect() for client in clients))
        if plan.warmup_seconds > 0:
            warmup_end = time.perf_counter() + plan.warmup_seconds
            await asyncio.gather(*(client.run_until(warmup_end) for client in clients))
        tally.recording = True
        if plan.watch_pid is not None:
            before = take_sample(plan.watch_pid)
        started = time.perf_counter()
        deadline = started + plan.duration_seconds
        await asyncio.gather(*(client.run_until(deadline) for client in clients))
        elapsed = time.perf_counter() - started
        if plan.watch_pid is not None:
            after = take_sample(plan.watch_pid)
    finally:
        await asyncio.gather(*(client.close() for client in clients))
    stats = summarize(tally.latencies_ns, requests=tally.requests, errors=tally.errors,
                      elapsed_seconds=elapsed, first_error=tally.first_error)
    if before is None or after is None:
        return stats
    return dataclasses.replace(stats, cpu=usage_between(before, after))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run_load_here(plan: LoadPlan) -> LoadStats:
    """Runs a plan on a new event loop in this process (uvloop when available)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(drive(plan))


def run_load(plan: LoadPlan) -> LoadStats:
    """Runs a plan in a freshly spawned process, so it shares its event loop with nothing."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(run_load_here, plan).result()
