"""``fhir-server admin create-user`` and the first-admin message."""

from __future__ import annotations

import argparse
import asyncio
import io
from pathlib import Path

import pytest

from fhir_server.accounts.cli import (
    USAGE_ERROR,
    add_admin_commands,
    admin_exists,
    first_admin_message,
    run_admin,
)
from fhir_server.accounts.directory import RPPS_SYSTEM
from fhir_server.accounts.model import Account
from fhir_server.accounts.store import open_account_store
from fhir_server.settings import Settings
from fhir_server.storage.factory import open_store
from fhir_server.storage.query import SearchQuery
from tests.unit.accounts.conftest import PASSWORD, RPPS


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fhir-server")
    add_admin_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def create(settings: Settings, monkeypatch: pytest.MonkeyPatch, *argv: str,
           password: str = PASSWORD) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return run_admin(parse("admin", "create-user", "--password-stdin", *argv), settings)


async def stored_account(settings: Settings, email: str) -> Account | None:
    accounts = open_account_store(settings)
    await accounts.start()
    try:
        return await accounts.by_email(email)
    finally:
        await accounts.close()


async def stored_practitioners(settings: Settings) -> list[bytes]:
    store = open_store(settings)
    await store.start()
    try:
        page = await store.search(SearchQuery(resource_type="Practitioner", count=10))
    finally:
        await store.close()
    return [match.body or b"" for match in page.matches]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", change_events=False)


def test_the_first_admin_is_created_from_the_command_line(
        settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert asyncio.run(admin_exists(settings)) is False
    assert "fhir-server admin create-user" in first_admin_message()
    assert "--role admin" in first_admin_message()
    code = create(settings, monkeypatch, "--email", "Ops@Pictaderm.example", "--role", "admin")
    assert code == 0
    output = capsys.readouterr()
    assert "admin account" in output.out and "ops@pictaderm.example" in output.out
    assert PASSWORD not in output.out + output.err
    assert asyncio.run(admin_exists(settings)) is True
    account = asyncio.run(stored_account(settings, "ops@pictaderm.example"))
    assert account is not None and account.status == "active" and account.role == "admin"


def test_a_doctor_created_by_an_operator_has_a_practitioner(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    code = create(settings, monkeypatch, "--email", "julien@cabinet.example", "--role",
                  "doctor", "--rpps", RPPS, "--family-name", "Moreau", "--given-name", "Julien")
    assert code == 0
    (practitioner,) = asyncio.run(stored_practitioners(settings))
    assert RPPS_SYSTEM.encode() in practitioner


@pytest.mark.parametrize(("argv", "password"), [
    (("--email", "ops@pictaderm.example", "--role", "admin"), "too short"),
    (("--email", "ops@pictaderm.example", "--role", "admin"), ""),
    (("--email", "not-an-email", "--role", "admin"), PASSWORD),
    (("--email", "j@cabinet.example", "--role", "doctor", "--family-name", "M"), PASSWORD),
    (("--email", "j@cabinet.example", "--role", "doctor", "--rpps", "12345678901",
      "--family-name", "M"), PASSWORD),
])
def test_invalid_input_exits_2(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str],
                                     argv: tuple[str, ...], password: str) -> None:
    assert create(settings, monkeypatch, *argv, password=password) == USAGE_ERROR
    assert "error" in capsys.readouterr().err
    assert asyncio.run(admin_exists(settings)) is False


def test_a_taken_email_exits_1(settings: Settings,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ("--email", "ops@pictaderm.example", "--role", "support")
    assert create(settings, monkeypatch, *argv) == 0
    assert create(settings, monkeypatch, *argv) == 1


def test_system_is_not_a_role_of_a_person() -> None:
    with pytest.raises(SystemExit):
        parse("admin", "create-user", "--email", "a@b.fr", "--role", "system")

