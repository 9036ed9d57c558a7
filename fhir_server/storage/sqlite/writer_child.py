"""The SQLite writer process: owns the one write connection, commits requests in groups.

``WriterProcess`` (``writer_process.py``) has ``writer_zygote.py`` fork it (``run_forked``)
with its end of a socket pair, the file's path and its ``synchronous`` mode. It opens the
file (schema and migrations included), answers job 0, then loops: it waits for a request,
takes every request that arrived meanwhile (up to ``MAX_GROUP`` per group), commits them as
one group (``writer.commit_group``) and sends their answers in one write, each after the ``COMMIT``.
The WAL checkpoints run on a thread of this process (``checkpointer.py``).

Why a process: in the server's own process, sqlite3 released the GIL around each statement and
the writer then waited for the event loop to hand it back, once per statement; under load the
writer spent most of its time waiting, and its Python work took the GIL from the requests. Here
it has an interpreter to itself.

Stopping: a ``stop`` request ends the loop after the writes before it; the process then empties
the WAL into the file and exits. An end of the socket without it means the server died: the
process exits at once, without checkpoint or cleanup, as the server itself would have (what was
committed is in the WAL). It ignores SIGINT: Ctrl-C reaches the whole process group, and the
server decides when its writer stops.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from fhir_server.storage.protocol import StoreError
from fhir_server.storage.sqlite import wire, writes
from fhir_server.storage.sqlite.checkpointer import Checkpointer
from fhir_server.storage.sqlite.errors import store_error
from fhir_server.storage.sqlite.schema import open_connection, prepare_database
from fhir_server.storage.sqlite.writer import MAX_GROUP, Job, commit_group

_READ_BYTES = 1 << 20


class _Requests:
    """Reads request frames from the socket: at least one, then whatever else has arrived."""

    def __init__(self, connection: socket.socket) -> None:
        self._socket = connection
        self._buffer = bytearray()

    def next_batch(self) -> list[Any] | None:
        """The requests that have arrived (waiting for the first); None at the end of input."""
        while True:
            data = self._socket.recv(_READ_BYTES)
            if not data:
                return None
            self._buffer += data
            self._drain()
            requests = wire.split_frames(self._buffer)
            if requests:
                return requests

    def _drain(self) -> None:
        while True:
            try:
                data = self._socket.recv(_READ_BYTES, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if not data:
                return  # the end is seen again by the next blocking read
            self._buffer += data


def open_writer(path: Path, synchronous: str) -> sqlite3.Connection:
    """The write connection: the file (and its directory) created and its schema prepared."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = open_connection(path, synchronous=synchronous, read_only=False)
        try:
            prepare_database(connection)
            connection.execute("PRAGMA wal_autocheckpoint = 0")  # see checkpointer.py
        except BaseException:
            connection.close()
            raise
    except (sqlite3.Error, OSError) as error:
        raise store_error(error) from error
    return connection


def serve(channel: socket.socket, path: Path, synchronous: str) -> bool:
    """Answer requests until ``stop`` (True) or the end of the socket (False)."""
    try:
        connection = open_writer(path, synchronous)
        checkpointer = Checkpointer(
            lambda: open_connection(path, synchronous=synchronous, read_only=False))
        checkpointer.start()
    except (StoreError, sqlite3.Error, OSError) as error:
        failure = error if isinstance(error, StoreError) else store_error(error)
        channel.sendall(wire.frame((wire.OPENED_JOB, False, wire.encode_error(failure))))
        return True
    channel.sendall(wire.frame((wire.OPENED_JOB, True, None)))
    requests = _Requests(channel)
    while True:
        batch = requests.next_batch()
        if batch is None:
            return False
        stop_at = next((n for n, request in enumerate(batch) if request[1] == wire.STOP), None)
        writes_now = batch if stop_at is None else batch[:stop_at]
        for start in range(0, len(writes_now), MAX_GROUP):
            _commit(channel, connection, writes_now[start:start + MAX_GROUP])
            checkpointer.notify()
        if stop_at is not None:
            checkpointer.stop()  # the last checkpoint empties the WAL into the file
            connection.close()
            channel.sendall(wire.frame((batch[stop_at][0], True, None)))
            return True


def _commit(channel: socket.socket, connection: sqlite3.Connection,
            requests: Sequence[Any]) -> None:
    """Commit one group of requests and send every answer in one write."""
    jobs: list[tuple[int, Job]] = []
    for job_id, name, argument, together in requests:
        jobs.append((job_id, _job(name, argument, together)))
    try:
        commit_group(connection, [job for _, job in jobs], _commit_together)
    except Exception as error:  # a bug here must not leave callers waiting forever
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        for _, job in jobs:
            job.error = error
    answers = b"".join(
        wire.frame((job_id, False, wire.encode_error(job.error)) if job.error is not None
                   else (job_id, True, job.result))
        for job_id, job in jobs)
    channel.sendall(answers)


def _job(name: str, data: Any, together: bool) -> Job:
    """The job of one request; an unknown operation or a bad argument fails that job only."""
    operation = wire.OPERATIONS.get(name)
    if operation is None:
        return _failed(ValueError(f"unknown writer operation {name!r}"))
    try:
        argument = operation.decode(data)
    except (ValueError, TypeError) as error:
        return _failed(ValueError(f"bad argument for {name}: {error}"))
    write = operation.write
    return Job(work=lambda connection: write(connection, argument),
               part=argument if together else None)


def _failed(error: BaseException) -> Job:
    def refuse(connection: sqlite3.Connection) -> None:
        raise error
    return Job(work=refuse)


def _commit_together(connection: sqlite3.Connection, parts: list[Any]) -> None:
    writes.commit_together(connection, parts)


def run_forked(descriptor: int, path: Path, synchronous: str) -> NoReturn:
    """The body of a writer forked by ``writer_zygote``: serve, then leave the process (a
    fork must never return into the fork server's loop)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = socket.socket(fileno=descriptor)
    try:
        stopped = serve(channel, path, synchronous)
    except BaseException:  # the process ends here whatever happened, saying why
        traceback.print_exc()
        os._exit(2)
    if not stopped:
        os._exit(1)  # the server is gone: leave as it did, without cleanup
    channel.close()
    os._exit(0)
