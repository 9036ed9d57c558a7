"""A mongomock-motor client that accepts sessions and reports a replica set, so CI runs MongoStore.

What mongomock 4.3 / mongomock-motor 0.0.36 lack, and what this shim adds:
- ``start_session()`` raises ``NotImplementedError``: the shim returns an ``InlineSession``, an
  async context manager with ``start_transaction``, ``commit_transaction``,
  ``abort_transaction`` and ``in_transaction`` that follow pymongo's state rules (no nested
  start, no commit or abort without a transaction) but keep no state of their own.
- Operations given ``session=`` raise ``NotImplementedError`` unless mongomock's documented
  switch ``mongomock.ignore_feature("session")`` is on: the shim turns it on (process-wide).
- ``command("hello")`` is not implemented: the shim answers ``hello`` and ``isMaster`` with a
  ``setName`` (or without one, to stand in for a standalone server).

ATOMICITY IS NOT PROVIDED. A "transaction" here runs every operation directly against the
in-memory data as it is issued; aborting undoes nothing, and no snapshot isolates concurrent
work. Each single operation is still atomic (mongomock-motor runs it synchronously on the
event loop), so a compare-and-set on one document behaves as on a server. What needs a live
replica set (``MONGODB_URL``) is therefore: ``test_commit_is_all_or_nothing`` (rollback of
the earlier changes of a commit when a later one conflicts), and generally any test where
concurrent transactions interleave over several documents (write conflicts and their retry).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, cast

import mongomock
from mongomock_motor import AsyncMongoMockClient, AsyncMongoMockDatabase
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorClientSession
from pymongo.errors import InvalidOperation

REPLICA_SET = "rs-mongomock"


class InlineSession:
    """Stands in for ``AsyncIOMotorClientSession``; its transactions apply nothing atomically."""

    def __init__(self) -> None:
        self._in_transaction = False

    @property
    def in_transaction(self) -> bool:
        return self._in_transaction

    async def __aenter__(self) -> InlineSession:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        self._in_transaction = False

    def start_transaction(self, **_options: Any) -> None:
        if self._in_transaction:
            raise InvalidOperation("Transaction already in progress")
        self._in_transaction = True

    async def commit_transaction(self) -> None:
        self._end_transaction()

    async def abort_transaction(self) -> None:
        self._end_transaction()

    def _end_transaction(self) -> None:
        if not self._in_transaction:
            raise InvalidOperation("No transaction started")
        self._in_transaction = False


class _MockDatabase(AsyncMongoMockDatabase):  # type: ignore[type-arg]
    """A database whose ``command`` also answers the topology questions ``hello``/``isMaster``."""

    def __init__(self, client: _MockClient, delegate: Any, set_name: str | None) -> None:
        super().__init__(client, delegate)
        self._set_name = set_name

    # Narrower than motor's overloads, which the stub of mongomock-motor borrows: the adapter
    # only sends plain commands and reads plain replies.
    async def command(self, command: str | dict[str, Any], *args: Any,  # type: ignore[override]
                      **kwargs: Any) -> dict[str, Any]:
        name = command if isinstance(command, str) else next(iter(command), "")
        if name.lower() in ("hello", "ismaster"):
            reply: dict[str, Any] = {"isWritablePrimary": True, "ismaster": True, "ok": 1.0}
            if self._set_name is not None:
                reply["setName"] = self._set_name
            return reply
        return cast(dict[str, Any], await super().command(command, *args, **kwargs))


class _MockClient(AsyncMongoMockClient):  # type: ignore[type-arg]
    def __init__(self, set_name: str | None) -> None:
        super().__init__()
        self._set_name = set_name

    def get_database(self, *args: Any, **kwargs: Any) -> _MockDatabase:
        plain = super().get_database(*args, **kwargs)
        return _MockDatabase(self, plain.delegate, self._set_name)

    async def start_session(self, *_args: Any, **_kwargs: Any) -> AsyncIOMotorClientSession:
        return cast(AsyncIOMotorClientSession, InlineSession())


def session_capable_mongomock_client(
        *, set_name: str | None = REPLICA_SET) -> AsyncIOMotorClient[Any]:
    """A fresh in-memory client; ``set_name=None`` makes it answer like a standalone server."""
    mongomock.ignore_feature("session")
    return cast(AsyncIOMotorClient[Any], _MockClient(set_name))
