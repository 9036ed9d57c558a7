"""Passwords: argon2id hashes, verification, rehashing, and the policy with its FR/EN messages."""

from __future__ import annotations

from argon2 import PasswordHasher

from fhir_server.accounts.passwords import (
    IS_THE_EMAIL,
    MIN_LENGTH,
    TOO_LONG,
    TOO_SHORT,
    Passwords,
    password_problem,
)
from tests.unit.accounts.conftest import fast_passwords


async def test_a_hash_is_argon2id_and_verifies_only_its_password() -> None:
    passwords = fast_passwords()
    stored = await passwords.hash("a long enough secret")
    assert stored.startswith("$argon2id$")
    assert "a long enough secret" not in stored
    assert await passwords.verify(stored, "a long enough secret") is True
    assert await passwords.verify(stored, "a long enough secreT") is False


async def test_two_hashes_of_one_password_differ_by_their_salt() -> None:
    passwords = fast_passwords()
    assert await passwords.hash("same password here") != await passwords.hash(
        "same password here")


async def test_a_malformed_hash_never_verifies_and_needs_rehash() -> None:
    passwords = fast_passwords()
    assert await passwords.verify("not a hash", "anything at all") is False
    assert passwords.needs_rehash("not a hash") is True


async def test_a_hash_made_with_other_costs_needs_rehash() -> None:
    cheap = fast_passwords()
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    stored = await cheap.hash("a long enough secret")
    assert cheap.needs_rehash(stored) is False
    assert stronger.needs_rehash(stored) is True
    assert await stronger.verify(stored, "a long enough secret") is True


async def test_spending_time_on_an_unknown_account_verifies_nothing() -> None:
    passwords = fast_passwords()
    await passwords.spend_time("whatever was typed")
    await passwords.spend_time("whatever was typed")


def test_the_policy_wants_twelve_characters() -> None:
    assert MIN_LENGTH == 12
    assert password_problem("short pass", email="a@b.fr") == (TOO_SHORT, {"minimum": 12})
    assert password_problem("twelve chars", email="a@b.fr") is None


def test_the_policy_refuses_the_email_itself() -> None:
    email = "claire.dubois@pharmacie.example"
    assert password_problem("Claire.Dubois@Pharmacie.example", email=email) == (IS_THE_EMAIL, {})
    assert password_problem("claire.dubois@pharmacie.example!", email=email) is None


def test_the_policy_refuses_absurd_lengths() -> None:
    problem = password_problem("x" * 1000, email="a@b.fr")
    assert problem is not None and problem[0] is TOO_LONG


def test_policy_messages_exist_in_french_and_english() -> None:
    english, french = TOO_SHORT.render(minimum=12)
    assert "12" in english and "characters" in english
    assert "12" in french and "caractères" in french
    assert "adresse e-mail" in IS_THE_EMAIL.fr and "email" in IS_THE_EMAIL.en
