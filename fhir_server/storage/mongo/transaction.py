"""Runs a unit of work in one MongoDB multi-document transaction, retrying as the server advises.

The whole transaction is retried (with jittered exponential back-off) when an error carries the
``TransientTransactionError`` label, e.g. a write conflict with a concurrent transaction; only
the commit is retried when it carries ``UnknownTransactionCommitResult``. Both are bounded. Any
other exception, the protocol's own errors included, aborts the transaction and propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorClientSession
from pymongo import ReadPreference
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

Work = Callable[[AsyncIOMotorClientSession], Awaitable[None]]

TRANSIENT = "TransientTransactionError"
UNKNOWN_COMMIT_RESULT = "UnknownTransactionCommitResult"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often to retry a transaction and its commit, and how long to wait between tries."""

    attempts: int = 8
    commit_attempts: int = 5
    first_backoff: float = 0.005
    max_backoff: float = 0.25

    def backoff(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` transient failures (full jitter)."""
        ceiling = min(self.max_backoff, self.first_backoff * 2 ** (failed_attempts - 1))
        return random.uniform(0, ceiling)


async def run_in_transaction(client: AsyncIOMotorClient[Any], work: Work, *,
                             policy: RetryPolicy = RetryPolicy()) -> None:
    """Run ``work(session)`` in a snapshot / majority transaction and commit it."""
    async with await client.start_session() as session:
        for attempt in range(1, policy.attempts + 1):
            try:
                await _run_once(session, work, policy)
                return
            except PyMongoError as exc:
                if not exc.has_error_label(TRANSIENT) or attempt == policy.attempts:
                    raise
            await asyncio.sleep(policy.backoff(attempt))


async def _run_once(session: AsyncIOMotorClientSession, work: Work, policy: RetryPolicy) -> None:
    session.start_transaction(read_concern=ReadConcern("snapshot"),
                              write_concern=WriteConcern("majority"),
                              read_preference=ReadPreference.PRIMARY)
    try:
        await work(session)
    except BaseException:
        with contextlib.suppress(PyMongoError):
            await session.abort_transaction()
        raise
    await _commit(session, policy)


async def _commit(session: AsyncIOMotorClientSession, policy: RetryPolicy) -> None:
    for attempt in range(1, policy.commit_attempts + 1):
        try:
            await session.commit_transaction()
            return
        except PyMongoError as exc:
            if not exc.has_error_label(UNKNOWN_COMMIT_RESULT) or attempt == policy.commit_attempts:
                raise
