"""Random bytes from the OS, fetched a page at a time: ids and nonces without a syscall each.

``os.urandom`` releases the GIL around its system call; on a busy server each release hands
the GIL to another thread (a search reader, once the SQLite writer) and costs the caller up
to a switch interval to get it back, so a create paid that twice (its id and its AES-GCM
nonces). The pool reads 4 KiB of OS
randomness at once and hands out slices, each byte once. A forked child (Celery's prefork
pool) starts with an empty pool, so parent and child never hand out the same bytes, which for
AES-GCM nonces would be fatal.
"""

from __future__ import annotations

import os
import threading
import time
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


_RANDOM_B_BITS = 62
_UUID7_VERSION_AND_VARIANT = (7 << 76) | (0b10 << _RANDOM_B_BITS)


def time_ordered_uuid(unix_ms: int | None = None) -> uuid.UUID:
    """A version 7 UUID (RFC 9562, section 5.7): 48 bits of Unix time in milliseconds, then
    74 random bits from the pool.

    Ids made one after another sort in time order, so a database index on them grows at its
    right edge: the creates of one commit share its last pages instead of each touching a
    page of its own somewhere in the index (which is what a version 4 id costs). They say
    when the resource was created, to the millisecond, as its ``meta.lastUpdated`` does.
    """
    millis = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    if not 0 <= millis < 1 << 48:
        raise ValueError(f"a version 7 UUID holds 48 bits of milliseconds, not {millis}")
    random_bits = int.from_bytes(POOL.take(10), "big")
    random_a = random_bits >> 68  # the top 12 of the 80 bits
    random_b = random_bits & ((1 << _RANDOM_B_BITS) - 1)
    return uuid.UUID(int=(millis << 80) | (random_a << 64) | _UUID7_VERSION_AND_VARIANT
                     | random_b)
