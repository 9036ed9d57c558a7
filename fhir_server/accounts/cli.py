"""``fhir-server admin create-user``: an operator creates an account (the first admin, staff,
or a practitioner), already verified, and the message a fresh ``serve`` prints while no admin
exists.

The password is read from standard input with ``--password-stdin`` (one line), else asked for
twice without echo (``getpass``); it is never printed. A pharmacist names the pharmacy's FINESS
(``--organization-finess``, with ``--organization-name`` when the pharmacy is new), a doctor an
RPPS, and both their name (``--family-name``, ``--given-name``): their FHIR records are created
like a registration's. Invalid input: a message on stderr and exit code 2; an email or RPPS
taken, or a store failure: exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fhir_server.access.principal import ROLES

if TYPE_CHECKING:
    from fhir_server.accounts.model import Account
    from fhir_server.accounts.service import NewUser
    from fhir_server.settings import Settings

USAGE_ERROR: Final = 2
FAILURE: Final = 1
PERSON_ROLES: Final = tuple(role for role in ROLES if role != "system")


class PasswordInputError(ValueError):
    """The password could not be read (empty, or the two entries differ)."""


def add_admin_commands(subparsers: Any) -> None:
    """Add ``admin create-user`` to the ``fhir-server`` subcommands (``subparsers``)."""
    admin = subparsers.add_parser("admin", help="manage user accounts")
    actions = admin.add_subparsers(dest="admin_command", required=True)
    create = actions.add_parser("create-user", help="create a verified account (e.g. the "
                                                    "first admin)")
    create.add_argument("--email", required=True)
    create.add_argument("--role", required=True, choices=PERSON_ROLES)
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input")
    create.add_argument("--rpps", help="the RPPS number of a doctor or medical director")
    create.add_argument("--organization-finess",
                        help="the FINESS number of a pharmacist's pharmacy")
    create.add_argument("--organization-name",
                        help="the pharmacy's name, when no pharmacy has that FINESS yet")
    create.add_argument("--family-name", help="a practitioner's family name")
    create.add_argument("--given-name", action="append", default=[], dest="given_names",
                        help="a practitioner's given name (repeat for several)")
    create.add_argument("--data-dir", type=Path, default=None,
                        help="where the embedded store lives (FHIR_SERVER_DATA_DIR)")


def run_admin(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``fhir-server admin …``; the exit code."""
    from fhir_server.accounts.model import AccountError
    from fhir_server.accounts.service import NewUser
    from fhir_server.crypto.keys import ConfigurationError
    from fhir_server.errors import FhirError
    from fhir_server.storage.protocol import StoreError

    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    command = f"fhir-server admin {args.admin_command}"
    try:
        password = read_password(from_stdin=args.password_stdin)
        user = NewUser(email=args.email, role=args.role, password=password,
                       family_name=args.family_name, given_names=tuple(args.given_names),
                       rpps=args.rpps, organization_finess=args.organization_finess,
                       pharmacy_name=args.organization_name)
        account = asyncio.run(create_user(settings, user))
    except (PasswordInputError, ConfigurationError) as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except AccountError as exc:
        print(f"{command}: error: {exc.message_en}", file=sys.stderr)
        return USAGE_ERROR if exc.status in (400, 422) else FAILURE
    except FhirError as exc:
        print(f"{command}: the FHIR records were refused: {exc.diagnostics}", file=sys.stderr)
        return FAILURE
    except (StoreError, ValueError) as exc:
        print(f"{command}: the store failed: {exc}", file=sys.stderr)
        return FAILURE
    print(f"Created the {account.role} account {account.account_id} for {account.email}.")
    return 0


def read_password(*, from_stdin: bool) -> str:
    """The new password: the first line of standard input, or typed twice without echo."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            raise PasswordInputError("the two passwords differ")
    if not password:
        raise PasswordInputError("no password given")
    return password


async def create_user(settings: Settings, user: NewUser) -> Account:
    """Create the account with the stores the settings name, then close them."""
    from fhir_server.accounts.directory import PractitionerDirectory
    from fhir_server.accounts.mail import mailer_for
    from fhir_server.accounts.service import AccountService
    from fhir_server.accounts.store import open_account_store
    from fhir_server.crypto.keys import load_keys
    from fhir_server.runtime import build_engine
    from fhir_server.storage.factory import open_store

    keys = load_keys(settings)
    accounts = open_account_store(settings)
    store = open_store(settings)
    await accounts.start()
    try:
        await store.start()
        try:
            engine = build_engine(store, keys, settings)
            await engine.start()
            service = AccountService(store=accounts, directory=PractitionerDirectory(engine),
                                     mailer=mailer_for(store, settings, keys=keys),
                                     settings=settings)
            return await service.create_user(user)
        finally:
            await store.close()
    finally:
        await accounts.close()


async def admin_exists(settings: Settings) -> bool:
    """Whether any admin account exists in the account store the settings name."""
    from fhir_server.accounts.store import open_account_store

    accounts = open_account_store(settings)
    await accounts.start()
    try:
        return await accounts.has_role("admin")
    finally:
        await accounts.close()


def first_admin_message() -> str:
    """What ``serve`` prints while no admin account exists: how to create the first one."""
    return ("No administrator account exists yet. Create the first one with:\n"
            "  fhir-server admin create-user --email you@example.org --role admin\n"
            "(the password is asked for; --password-stdin reads it from standard input).\n"
            "Aucun compte administrateur n'existe encore. Créez le premier avec la commande "
            "ci-dessus.")
