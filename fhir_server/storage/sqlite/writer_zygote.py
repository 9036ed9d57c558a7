"""The writers' fork server: forks a SQLite writer process for each store that starts.

A server process starts it once, as ``python -S -m fhir_server.storage.sqlite.writer_zygote
FD``, FD being its end of a ``SOCK_SEQPACKET`` socket pair. It imports the writer's modules
(the standard library and this package only), then for each packet (the database's path and
``synchronous`` mode, with the writer's end of a socket pair attached) it forks a child that
runs ``writer_child.serve`` on it, and answers the child's process id. Starting a writer then
costs a fork of this small, single-threaded process (milliseconds) instead of a new
interpreter (a tenth of a second or more), and the server itself is never forked (a fork would
copy its threads in an unknown state).

It ignores SIGINT (the server decides when its writers stop) and lets the kernel reap its
children (SIGCHLD ignored). It exits when the server's end of the socket closes; the writers
it forked carry on until their own socket closes.
"""

from __future__ import annotations

import marshal
import os
import signal
import socket
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from fhir_server.storage.sqlite import writer_child

PID: Final = struct.Struct(">i")
MAX_REQUEST_BYTES: Final = 64 * 1024


def fork_writers(control: socket.socket) -> None:
    """Fork a writer for each request until the server's end closes."""
    while True:
        try:
            message, descriptors, _, _ = socket.recv_fds(control, MAX_REQUEST_BYTES, 1)
        except OSError:
            return
        if not message or not descriptors:
            for descriptor in descriptors:
                os.close(descriptor)
            if not message:
                return
            control.sendall(PID.pack(-1))
            continue
        path, synchronous = marshal.loads(message)
        pid = os.fork()
        if pid == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            writer_child.run_forked(descriptors[0], Path(path), synchronous)
        os.close(descriptors[0])
        control.sendall(PID.pack(pid))


def main(argv: Sequence[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    fork_writers(socket.socket(fileno=int(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
