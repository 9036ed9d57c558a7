"""Secrets the ``smart`` group obtains while it runs (codes, access, refresh and ID tokens),
kept out of what it prints.

The report masks the secrets known at start (the operator token, the user's password); tokens
issued during the run are kept here, and every check of the group runs through ``guard``, which
masks them in the failure it reports (a server may echo a token in an error description).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from conformance.client import CheckFailure
from conformance.report import MASK

T = TypeVar("T")
MIN_SECRET_LENGTH = 8
"""Shorter values (a state, a status) are not worth masking and would garble sentences."""


class Vault:
    """The run's secrets, and masking of them in failure messages."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def keep(self, value: str) -> str:
        """Remember ``value`` as a secret and return it."""
        if len(value) >= MIN_SECRET_LENGTH:
            self._secrets.add(value)
        return value

    def scrub(self, text: str) -> str:
        """``text`` with every kept secret replaced by the mask, longest first."""
        if not self._secrets:
            return text
        words = sorted(self._secrets, key=len, reverse=True)
        return re.sub("|".join(map(re.escape, words)), MASK, text)

    def guard(self, step: Callable[[], T]) -> Callable[[], T]:
        """``step``, whose failure (of any type) becomes a CheckFailure without secrets."""
        def guarded() -> T:
            try:
                return step()
            except CheckFailure as failure:
                raise CheckFailure(self.scrub(str(failure))) from None
            except Exception as error:
                raise CheckFailure(self.scrub(f"unexpected {type(error).__name__}: "
                                              f"{error}")) from None
        return guarded
