"""Passwords: argon2id hashes (argon2-cffi), their verification and rehashing, and the policy
a new password must meet, with its refusals in French and English.

Hashing is deliberately slow, so it runs in a worker thread, off the event loop. A password is
never logged, stored or echoed in a message: only its argon2id hash leaves this module.
"""

from __future__ import annotations

import asyncio
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from fhir_server.validation.messages import Text

MIN_LENGTH: Final = 12
MAX_LENGTH: Final = 256
"""Longer inputs are refused: hashing them would only cost us time."""

TOO_SHORT: Final = Text(
    en="The password must have at least {minimum} characters.",
    fr="Le mot de passe doit compter au moins {minimum} caractères.")
TOO_LONG: Final = Text(
    en="The password must have at most {maximum} characters.",
    fr="Le mot de passe doit compter au plus {maximum} caractères.")
IS_THE_EMAIL: Final = Text(
    en="The password cannot be your email address.",
    fr="Le mot de passe ne peut pas être votre adresse e-mail.")


def password_problem(password: str, *, email: str) -> tuple[Text, dict[str, int]] | None:
    """Why ``password`` may not be chosen by the owner of ``email`` (a message and its
    parameters), or None when it meets the policy."""
    if len(password) < MIN_LENGTH:
        return TOO_SHORT, {"minimum": MIN_LENGTH}
    if len(password) > MAX_LENGTH:
        return TOO_LONG, {"maximum": MAX_LENGTH}
    if password.strip().casefold() == email.strip().casefold():
        return IS_THE_EMAIL, {}
    return None


class Passwords:
    """argon2id hashing with ``hasher``'s parameters (argon2-cffi's defaults unless given)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._decoy: str | None = None

    async def hash(self, password: str) -> str:
        """The argon2id hash (``$argon2id$v=19$m=…``) of ``password``."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        """Whether ``password`` matches ``stored_hash``; False for a malformed hash."""
        return await asyncio.to_thread(self._matches, stored_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether ``stored_hash`` was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True

    async def spend_time(self, password: str) -> None:
        """Verify against a decoy hash: an unknown email costs what a known one does."""
        if self._decoy is None:
            self._decoy = await self.hash("decoy password of no account")
        await self.verify(self._decoy, password)

    def _matches(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
