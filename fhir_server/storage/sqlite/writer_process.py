"""The store's side of its writer process: start it, send it writes, await their answers.

``WriterProcess(path, synchronous)``, then ``await start()``: it starts
``writer_child.py`` on one end of a socket pair and reads its answers on the event loop (an
asyncio protocol on the other end: no thread of ours waits on the socket, and a write costs
the loop the encoding of its argument and one buffered send). ``run(operation, argument,
together=…)`` resolves once the child has committed the write's group, with its result or
its error. Every write must come from the event loop that started the writer.

The child is forked by ``writer_zygote.py``, a small interpreter this process starts once
(``_Zygote``): a store starts its writer in milliseconds, and the server itself, whose threads
a fork would copy in an unknown state, is never forked.

If the child dies, the writes waiting for it fail with ``StoreUnavailable`` (they may or may
not have been committed, as with any crash) and the next write starts a new child: SQLite's
WAL makes the file consistent again on opening.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import marshal
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Final

import fhir_server
from fhir_server.storage.protocol import StoreUnavailable
from fhir_server.storage.sqlite import wire
from fhir_server.storage.sqlite.writer_zygote import PID

START_TIMEOUT_SECONDS: Final = 60.0
"""Opening may migrate the schema of a large file; past this the writer is given up."""
STOP_TIMEOUT_SECONDS: Final = 60.0
ZYGOTE_MODULE: Final = "fhir_server.storage.sqlite.writer_zygote"
_PACKAGE_ROOT = str(Path(fhir_server.__file__).resolve().parent.parent)


class _Zygote:
    """This process's writer fork server (``writer_zygote.py``), started on first use and
    again if it died; one request at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None

    def fork_writer(self, child_end: socket.socket, path: Path, synchronous: str) -> int:
        """Fork a writer serving ``child_end``; its process id."""
        request = marshal.dumps((str(path), synchronous))
        with self._lock:
            for _ in range(2):  # a fork server that died is started again, once
                control = self._running()
                try:
                    socket.send_fds(control, [request], [child_end.fileno()])
                    reply = control.recv(PID.size)
                except OSError:
                    reply = b""
                if len(reply) == PID.size:
                    (pid,) = PID.unpack(reply)
                    if pid > 0:
                        return int(pid)
                self._discard()
        raise OSError("the SQLite writers' fork server does not answer")

    def forget(self) -> None:
        """In a forked child (Celery's prefork pool): the fork server is the parent's; this
        process starts its own when it first needs one."""
        self._lock = threading.Lock()
        self._process = None
        self._control = None

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None or process.poll() is not None else process.pid

    def _running(self) -> socket.socket:
        if self._control is not None and self._process is not None \
                and self._process.poll() is None:
            return self._control
        self._discard()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        paths = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": (_PACKAGE_ROOT if not paths
                                            else f"{_PACKAGE_ROOT}{os.pathsep}{paths}")}
        try:
            # -S: it imports only the standard library and this package (found through
            # PYTHONPATH), and starts faster without site-packages
            self._process = subprocess.Popen(
                [sys.executable, "-S", "-m", ZYGOTE_MODULE, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)
        finally:
            theirs.close()
        self._control = ours
        return ours

    def _discard(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            self._process = None


_ZYGOTE = _Zygote()
os.register_at_fork(after_in_child=_ZYGOTE.forget)


def fork_server_pid() -> int | None:
    """The process id of this process's writer fork server, if it runs (for tests and
    diagnostics)."""
    return _ZYGOTE.pid


class _Answers(asyncio.Protocol):
    """Reads the child's answers and settles the waiting futures."""

    def __init__(self, pending: dict[int, asyncio.Future[Any]]) -> None:
        self._pending = pending
        self._buffer = bytearray()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        for job_id, succeeded, value in wire.split_frames(self._buffer):
            future = self._pending.pop(job_id, None)
            if future is None or future.done():
                continue
            if succeeded:
                future.set_result(value)
            else:
                kind, arguments = value
                future.set_exception(wire.decode_error(kind, arguments))

    def connection_lost(self, exc: Exception | None) -> None:
        pending = list(self._pending.items())
        self._pending.clear()
        for job_id, future in pending:
            if not future.done():
                future.set_exception(StoreUnavailable(
                    "the SQLite writer process ended before opening the database"
                    if job_id == wire.OPENED_JOB else
                    "the SQLite writer process stopped; the write may or may not have been "
                    "committed"))
        if not self.closed.done():
            self.closed.set_result(None)


class WriterProcess:
    """The writer process of one SQLite file."""

    def __init__(self, path: Path, *, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._pid: int | None = None
        self._transport: asyncio.Transport | None = None
        self._answers: _Answers | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._job_ids = itertools.count(1)
        self._starting: asyncio.Lock | None = None
        self._outgoing: list[bytes] = []

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (for tests and diagnostics)."""
        return self._pid

    async def start(self) -> None:
        """Start the child and wait until it has opened the database; raises what opening
        raised (``StoreUnavailable`` for a file that cannot be used)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._starting = asyncio.Lock()
        await self._spawn(loop)

    async def run(self, operation: str, argument: Any, *, together: bool = False) -> Any:
        """Have the child run ``operation`` on ``argument`` in its next group; its result."""
        loop = asyncio.get_running_loop()
        if self._loop is None or self._starting is None:
            raise StoreUnavailable("the SQLite store is not started or is closed")
        if loop is not self._loop:
            raise StoreUnavailable("the SQLite store is used from another event loop than the "
                                   "one that started it")
        if self._transport is None or self._transport.is_closing():
            async with self._starting:
                if self._transport is None or self._transport.is_closing():
                    await self._respawn(loop)
        assert self._transport is not None
        job_id = next(self._job_ids)
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[job_id] = future
        encoded = wire.OPERATIONS[operation].encode(argument)
        if not self._outgoing:
            loop.call_soon(self._send)
        self._outgoing.append(wire.frame((job_id, operation, encoded, together)))
        return await future

    def _send(self) -> None:
        """Send the requests made during this turn of the event loop in one write: one system
        call for a burst of requests, which the child then reads and commits as one group."""
        outgoing, self._outgoing = self._outgoing, []
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(b"".join(outgoing))

    async def drain(self) -> None:
        """Wait until every write sent so far is answered (whatever its outcome)."""
        waiting = [future for job_id, future in self._pending.items()
                   if job_id != wire.OPENED_JOB]
        if waiting:
            await asyncio.wait(waiting)

    async def stop(self) -> None:
        """Let the writes sent so far finish, have the child empty the WAL into the file, and
        wait for it to exit."""
        loop = self._loop
        self._loop = None
        self._send()  # requests of this turn first: the child stops after what came before
        transport, answers, pid = self._transport, self._answers, self._pid
        self._transport = self._answers = self._pid = None
        if loop is None or pid is None:
            return
        if transport is not None and answers is not None and not transport.is_closing():
            job_id = next(self._job_ids)
            stopped: asyncio.Future[Any] = loop.create_future()
            self._pending[job_id] = stopped
            transport.write(wire.frame((job_id, wire.STOP, None, False)))
            with contextlib.suppress(StoreUnavailable, TimeoutError):
                await asyncio.wait_for(asyncio.shield(stopped), STOP_TIMEOUT_SECONDS)
            transport.close()
        await self._reap(loop, pid)

    async def _spawn(self, loop: asyncio.AbstractEventLoop) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid = await loop.run_in_executor(None, _ZYGOTE.fork_writer, child_end, self._path,
                                             self._synchronous)
        except OSError as error:
            parent_end.close()
            raise StoreUnavailable(f"cannot start the SQLite writer process: {error}") from error
        finally:
            child_end.close()
        self._pid = pid
        opened: asyncio.Future[Any] = loop.create_future()
        self._pending[wire.OPENED_JOB] = opened
        transport, answers = await loop.create_unix_connection(
            lambda: _Answers(self._pending), sock=parent_end)
        self._transport, self._answers = transport, answers
        try:
            await asyncio.wait_for(opened, START_TIMEOUT_SECONDS)
        except BaseException:
            self._transport = self._answers = self._pid = None
            transport.close()
            await self._reap(loop, pid)
            raise

    async def _respawn(self, loop: asyncio.AbstractEventLoop) -> None:
        """A new child after the last one died."""
        pid = self._pid
        if pid is not None:
            await self._reap(loop, pid)
        await self._spawn(loop)

    @staticmethod
    async def _reap(loop: asyncio.AbstractEventLoop, pid: int) -> None:
        """Wait for the child to exit, killing it if it has not within the stop timeout (the
        fork server, its parent, has the kernel reap it)."""
        await loop.run_in_executor(None, _wait_for_exit, pid)


def _wait_for_exit(pid: int) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        time.sleep(0.002)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
