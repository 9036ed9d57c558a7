"""Sign-in throttling: a temporary lock-out after repeated failures, per account and per client
address, counted in the account store so that it holds across processes.

A key (an email, an address) is locked for ``lockout`` once ``max_failures`` failures fall
within ``window`` of each other; failures made while locked are never counted, since a locked
attempt is refused before its password is checked. The lock-out is derived from the stored
failure times alone (``lock_end``), so there is no lock record to keep in step. Keys are stored
as SHA-256 digests: the failure table holds no email or IP address.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from fhir_server.accounts.store import AccountStore
from fhir_server.settings import Settings


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How many failures within which window lock a key, and for how long."""

    max_failures: int
    window: timedelta
    lockout: timedelta

    def __post_init__(self) -> None:
        if self.max_failures < 1:
            raise ValueError("login_max_failures must be at least 1")
        if self.window <= timedelta(0) or self.lockout <= timedelta(0):
            raise ValueError("the failure window and the lock-out must be positive")

    @classmethod
    def of(cls, settings: Settings) -> ThrottlePolicy:
        return cls(max_failures=settings.login_max_failures,
                   window=timedelta(seconds=settings.login_failure_window_seconds),
                   lockout=timedelta(seconds=settings.login_lockout_seconds))

    @property
    def memory(self) -> timedelta:
        """How far back failures can still matter: a lock-out in force began at most
        ``lockout`` ago, with failures at most ``window`` before that."""
        return self.window + self.lockout


def lock_end(failures: Sequence[datetime], policy: ThrottlePolicy) -> datetime | None:
    """When the last lock-out the failures (oldest first) caused ends; None when they caused
    none. A lock-out wipes the slate: the failures before it do not count toward the next."""
    end: datetime | None = None
    streak: list[datetime] = []
    for failure in failures:
        if end is not None and failure < end:
            continue
        streak = [earlier for earlier in streak if earlier > failure - policy.window]
        streak.append(failure)
        if len(streak) >= policy.max_failures:
            end = failure + policy.lockout
            streak = []
    return end


def throttle_key(kind: str, value: str) -> str:
    """The stored key counting the attempts of one ``kind`` (sign-in by account, reset
    requests by address…) for ``value``: the kind, and the SHA-256 of both."""
    return f"{kind}:" + hashlib.sha256(f"{kind}\x00{value}".encode()).hexdigest()


def account_key(email: str) -> str:
    """The sign-in throttling key of a (normalised) email, known to an account or not."""
    return throttle_key("account", email)


def address_key(address: str) -> str:
    """The sign-in throttling key of a client address."""
    return throttle_key("address", address)


class SignInThrottle:
    """Counts failures in the store and says until when a set of keys is locked."""

    def __init__(self, store: AccountStore, policy: ThrottlePolicy) -> None:
        self._store = store
        self._policy = policy

    async def locked_until(self, keys: Sequence[str], *, now: datetime) -> datetime | None:
        """The latest end of a lock-out in force at ``now`` on any of the keys, or None."""
        ends = [end for key in keys
                if (end := lock_end(await self._store.failures(
                    key, since=now - self._policy.memory), self._policy)) is not None
                and end > now]
        return max(ends, default=None)

    async def record_failure(self, keys: Sequence[str], *, now: datetime) -> None:
        """Count one failure (a failed sign-in, a reset request) under each key."""
        for key in keys:
            await self._store.record_failure(key, now, keep_until=now + self._policy.memory)

    async def clear(self, key: str) -> None:
        """Forget the failures of a key (an account that just signed in)."""
        await self._store.clear_failures(key)
