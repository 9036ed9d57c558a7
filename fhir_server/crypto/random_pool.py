"""Random bytes from the OS, fetched a page at a time: ids and nonces without a syscall each.

``os.urandom`` releases the GIL around its system call; on a busy server each release hands
the GIL to the SQLite writer thread and costs the caller up to a switch interval to get it
back, so a create paid that twice (its id and its AES-GCM nonces). The pool reads 4 KiB of OS
randomness at once and hands out slices, each byte once. A forked child (Celery's prefork
pool) starts with an empty pool, so parent and child never hand out the same bytes, which for
AES-GCM nonces would be fatal.
"""

from __future__ import annotations

import os
import threading
import uuid

_PAGE_BYTES = 4096


class RandomPool:
    """Hands out bytes read from ``os.urandom``, never the same byte twice."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def take(self, size: int) -> bytes:
        """``size`` fresh random bytes (at most a page)."""
        if not 0 < size <= _PAGE_BYTES:
            raise ValueError(f"take between 1 and {_PAGE_BYTES} bytes, not {size}")
        with self._lock:
            end = self._offset + size
            if end > len(self._buffer):
                self._buffer, self._offset, end = os.urandom(_PAGE_BYTES), 0, size
            chunk = self._buffer[self._offset:end]
            self._offset = end
            return chunk

    def forget(self) -> None:
        """Drop what is buffered (in a forked child: those bytes are the parent's)."""
        self._lock = threading.Lock()
        self._buffer, self._offset = b"", 0


POOL = RandomPool()
os.register_at_fork(after_in_child=POOL.forget)


def random_bytes(size: int) -> bytes:
    """``size`` cryptographically strong random bytes."""
    return POOL.take(size)


def random_uuid() -> uuid.UUID:
    """A version 4 UUID from the pool."""
    return uuid.UUID(bytes=POOL.take(16), version=4)
