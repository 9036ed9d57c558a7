"""Sign-in throttling: lock-outs derived from stored failures, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fhir_server.accounts.store import AccountStore
from fhir_server.accounts.throttle import (
    SignInThrottle,
    ThrottlePolicy,
    account_key,
    address_key,
    lock_end,
)

T0 = datetime.now(UTC).replace(microsecond=0)
"""Near the real clock: MongoDB's TTL index (and mongomock's) deletes by the real clock."""
POLICY = ThrottlePolicy(max_failures=3, window=timedelta(minutes=10),
                        lockout=timedelta(minutes=5))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_fewer_failures_than_the_maximum_lock_nothing() -> None:
    assert lock_end([at(0), at(1)], POLICY) is None


def test_the_maximum_within_the_window_locks_from_the_last_one() -> None:
    assert lock_end([at(0), at(1), at(2)], POLICY) == at(7)


def test_failures_further_apart_than_the_window_do_not_add_up() -> None:
    assert lock_end([at(0), at(6), at(12)], POLICY) is None
    assert lock_end([at(0), at(6), at(9)], POLICY) == at(14)


def test_a_lock_out_wipes_the_slate() -> None:
    failures = [at(0), at(1), at(2), at(8), at(9)]
    assert lock_end(failures, POLICY) == at(7)
    assert lock_end([*failures, at(10)], POLICY) == at(15)


def test_failures_recorded_during_a_lock_out_do_not_extend_it() -> None:
    assert lock_end([at(0), at(1), at(2), at(3), at(4), at(5)], POLICY) == at(7)


def test_a_policy_needs_positive_values() -> None:
    with pytest.raises(ValueError):
        ThrottlePolicy(max_failures=0, window=timedelta(minutes=1), lockout=timedelta(minutes=1))
    with pytest.raises(ValueError):
        ThrottlePolicy(max_failures=1, window=timedelta(0), lockout=timedelta(minutes=1))


def test_keys_hide_the_email_and_the_address() -> None:
    key = account_key("claire@pharmacie.example")
    assert "claire" not in key and key.startswith("account:")
    assert address_key("203.0.113.9") != address_key("203.0.113.10")
    assert "203.0.113.9" not in address_key("203.0.113.9")
    assert account_key("x") != address_key("x")


async def test_the_store_keeps_the_lock_out_across_throttles(
        account_store: AccountStore) -> None:
    keys = (account_key("claire@pharmacie.example"), address_key("203.0.113.9"))
    first = SignInThrottle(account_store, POLICY)
    for minute in (0, 1, 2):
        assert await first.locked_until(keys, now=at(minute)) is None
        await first.record_failure(keys, now=at(minute))
    second = SignInThrottle(account_store, POLICY)
    assert await second.locked_until(keys, now=at(3)) == at(7)
    assert await second.locked_until([address_key("203.0.113.9")], now=at(3)) == at(7)
    assert await second.locked_until([address_key("198.51.100.1")], now=at(3)) is None
    assert await second.locked_until(keys, now=at(7)) is None


async def test_clearing_a_key_lifts_its_lock_out_only(account_store: AccountStore) -> None:
    account, address = account_key("claire@pharmacie.example"), address_key("203.0.113.9")
    throttle = SignInThrottle(account_store, POLICY)
    for minute in (0, 1, 2):
        await throttle.record_failure((account, address), now=at(minute))
    await throttle.clear(account)
    assert await throttle.locked_until([account], now=at(3)) is None
    assert await throttle.locked_until([address], now=at(3)) == at(7)
