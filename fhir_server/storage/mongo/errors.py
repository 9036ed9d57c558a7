"""Turns pymongo's exceptions into the Store protocol's errors: the adapter's only such mapping.

Messages carry the error class and server code, never the server's text about a write, which may
quote stored values (a blind-indexed NIR, a name). A duplicate key at the two writes where it
means something (a resource's compare-and-set, a consumption) is decided there, in ``commit.py``;
anywhere else it is an unexpected failure like any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pymongo.errors import (
    ConfigurationError,
    ConnectionFailure,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)

from fhir_server.storage.protocol import StoreError, StoreUnavailable

NOT_A_REPLICA_SET = ("MongoDB must run as a replica set (transactions are required); "
                     "see docker-compose.yml")

_ILLEGAL_OPERATION = 20
"""Server code for "Transaction numbers are only allowed on a replica set member or mongos"."""

_UNREACHABLE = (ConnectionFailure, ExecutionTimeout, WTimeoutError, ConfigurationError)
"""Connection failures (server selection and network timeouts included) and time limits."""


def to_store_error(exc: PyMongoError) -> StoreError:
    """The protocol error that stands for ``exc``."""
    if isinstance(exc, OperationFailure) and exc.code == _ILLEGAL_OPERATION:
        return StoreUnavailable(NOT_A_REPLICA_SET)
    if isinstance(exc, _UNREACHABLE):
        return StoreUnavailable(f"MongoDB unavailable: {type(exc).__name__}: {exc}")
    if exc.has_error_label("TransientTransactionError"):
        return StoreUnavailable(
            f"MongoDB transaction kept failing transiently: {_describe(exc)}")
    return StoreError(f"MongoDB error: {_describe(exc)}")


def _describe(exc: PyMongoError) -> str:
    if isinstance(exc, OperationFailure):
        name = (exc.details or {}).get("codeName", "")
        return f"{type(exc).__name__} (code {exc.code} {name})".replace(" )", ")")
    return type(exc).__name__


@contextmanager
def driver_errors() -> Iterator[None]:
    """Re-raise any pymongo exception of the block as the protocol error it stands for."""
    try:
        yield
    except PyMongoError as exc:
        raise to_store_error(exc) from exc
