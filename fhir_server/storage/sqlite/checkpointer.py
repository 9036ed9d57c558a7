"""The checkpointer thread: copies the WAL back into the database file off the writer's path.

It runs in the writer process (``writer_child.py``). SQLite's automatic checkpoint runs inside
the ``COMMIT`` that crosses the WAL threshold, on the writer, and costs as much as the writes
themselves (every page written twice, plus the file syncs). The writer connection turns it
off (``wal_autocheckpoint = 0``) and wakes this thread after each commit; the thread runs a
``PASSIVE`` checkpoint (it never blocks the writer nor the readers) at most every ``interval``
seconds, on a connection of its own. SQLite's C code releases the GIL while it works, so the
checkpoint overlaps the next group's writes.

A passive checkpoint stops at the oldest frame a reader still needs; the WAL is then reused
from its start once a checkpoint has caught up. If writes outrun checkpoints so far that the
WAL holds more than ``max_wal_pages`` uncopied pages, the thread runs a ``RESTART`` checkpoint,
which waits for the writer and the readers, so the file cannot grow without bound.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_SECONDS = 0.05
MAX_WAL_PAGES = 50_000
"""About 200 MiB of 4 KiB pages: past this, the checkpoint waits for readers and the writer."""


class Checkpointer:
    """A daemon thread that checkpoints the WAL after commits; ``notify`` after each commit."""

    def __init__(self, open_connection: Callable[[], sqlite3.Connection], *,
                 interval: float = CHECKPOINT_INTERVAL_SECONDS,
                 max_wal_pages: int = MAX_WAL_PAGES) -> None:
        self._open_connection = open_connection
        self._interval = interval
        self._max_wal_pages = max_wal_pages
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0
        """Checkpoints run so far (for tests and diagnostics)."""

    def start(self) -> None:
        connection = self._open_connection()
        self._thread = threading.Thread(target=self._run, args=(connection,),
                                        name="sqlite-checkpointer", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Called by the writer after a commit: there are frames to copy."""
        self._wake.set()

    def stop(self) -> None:
        """Run a last checkpoint that empties the WAL, then end the thread."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join()
        self._thread = None

    def _run(self, connection: sqlite3.Connection) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.wait()
                if self._stopping.is_set():
                    break
                self._wake.clear()
                self._checkpoint(connection, "PASSIVE")
                self._stopping.wait(self._interval)
            self._checkpoint(connection, "TRUNCATE")
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection, mode: str) -> None:
        try:
            busy, wal_pages, copied = connection.execute(
                f"PRAGMA wal_checkpoint({mode})").fetchone()
            self.checkpoints += 1
            if mode == "PASSIVE" and wal_pages - copied > self._max_wal_pages:
                connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        except sqlite3.Error as error:
            # A checkpoint that fails leaves the WAL as it was: the data is safe, retry later.
            logger.warning("SQLite WAL checkpoint (%s) failed: %s", mode, error)
            return
        if busy or copied < wal_pages:
            self._wake.set()  # readers held it back: try again after the interval
