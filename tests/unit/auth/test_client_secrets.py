"""Client secret hashing: salted scrypt, verified in constant time, malformed hashes refused."""

from __future__ import annotations

import pytest

from fhir_server.auth.cli import new_client_id
from fhir_server.auth.client_secrets import hash_secret, new_client_secret, verify_secret


def test_the_right_secret_verifies_and_a_wrong_one_does_not() -> None:
    secret = new_client_secret()
    stored = hash_secret(secret)
    assert verify_secret(secret, stored)
    assert not verify_secret(secret + "x", stored)
    assert not verify_secret("", stored)


def test_the_stored_text_holds_no_secret_and_differs_per_salt() -> None:
    secret = new_client_secret()
    first, second = hash_secret(secret), hash_secret(secret)
    assert secret not in first
    assert first != second  # a random salt each time
    assert first.startswith("scrypt$16384$8$1$")
    assert verify_secret(secret, second)


def test_generated_secrets_are_long_and_distinct() -> None:
    secrets = {new_client_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(secret) >= 43 for secret in secrets)  # 256 bits in base64url


@pytest.mark.parametrize("stored", [
    "", "plain-text", "bcrypt$16384$8$1$c2FsdA$a2V5",
    "scrypt$16384$8$1$c2FsdA",  # a part missing
    "scrypt$1000$8$1$c2FsdA$" + "A" * 43,  # n not a power of two
    "scrypt$1073741824$8$1$c2FsdA$" + "A" * 43,  # would need far too much memory
    "scrypt$16384$8$1$c2FsdA$a2V5",  # key of the wrong length
    "scrypt$16384$8$1$!!!$" + "A" * 43,  # salt not base64url
])
def test_a_malformed_stored_hash_never_verifies(stored: str) -> None:
    assert verify_secret("anything", stored) is False


def test_the_cost_stored_with_a_hash_is_the_one_used() -> None:
    secret = "s3cret"
    stored = hash_secret(secret)
    parts = stored.split("$")
    cheaper = "$".join(["scrypt", "1024", *parts[2:]])
    assert not verify_secret(secret, cheaper)  # same salt and key, other cost: no match


def test_an_empty_secret_cannot_be_hashed() -> None:
    with pytest.raises(ValueError, match="empty"):
        hash_secret("")


def test_client_ids_are_hex_and_never_look_like_options() -> None:
    ids = {new_client_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(id) == 32 and set(id) <= set("0123456789abcdef") for id in ids)
