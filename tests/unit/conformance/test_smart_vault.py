"""Tokens obtained during a run never reach a failure line."""

from __future__ import annotations

import pytest

from conformance.client import CheckFailure
from conformance.report import MASK
from conformance.smart.vault import Vault


def test_a_failure_loses_the_secrets_kept() -> None:
    vault = Vault()
    token = vault.keep("access-token-0123456789")
    vault.keep("refresh-token-abcdefghij")

    def step() -> None:
        raise CheckFailure(f"server said: {token} is invalid, refresh-token-abcdefghij too")

    with pytest.raises(CheckFailure) as failure:
        vault.guard(step)()
    assert str(failure.value) == f"server said: {MASK} is invalid, {MASK} too"


def test_any_error_becomes_a_check_failure_without_secrets() -> None:
    vault = Vault()
    vault.keep("code-value-42424242")

    def step() -> None:
        raise KeyError("code-value-42424242")

    with pytest.raises(CheckFailure, match=r"unexpected KeyError: '\*\*\*'"):
        vault.guard(step)()


def test_a_passing_step_gives_its_value_and_short_values_are_not_masked() -> None:
    vault = Vault()
    vault.keep("abc")
    assert vault.guard(lambda: 7)() == 7
    assert vault.scrub("abc stays") == "abc stays"
