"""``fhir-server clients add|list|revoke``: register, list and revoke SMART clients.

A client registered with ``--secret`` gets a random secret, printed once and stored only as a
scrypt hash. Registration kinds: ``--public`` (an app without credentials, redirect URIs
required); keys (``--jwks-url`` or ``--jwks-file``) without redirect URIs: a backend system
(client_credentials with a signed assertion); keys or ``--secret`` with redirect URIs: a
confidential app. Invalid input: a message on stderr and exit code 2. The heavier modules
(scopes, stores) are imported when a ``clients`` command runs, not when ``fhir-server`` starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from fhir_server.auth.model import AuthStore, Client, ClientKind

USAGE_ERROR: Final = 2
NOT_FOUND: Final = 1
STORE_FAILURE: Final = 1
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost"})
_FHIR_ID_RE: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class ClientInputError(ValueError):
    """An option of ``clients add`` that cannot be accepted; the message says why."""


@dataclass(frozen=True, slots=True)
class Registration:
    """A validated ``clients add``: the client to store, and its secret when one was made."""

    client: Client
    secret: str | None


def add_clients_parser(commands: Any) -> None:
    """Add the ``clients`` command to the ``fhir-server`` subcommands (``commands``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=None,
                        help="where the embedded store lives (FHIR_SERVER_DATA_DIR)")
    clients = commands.add_parser("clients", help="register, list and revoke SMART clients")
    actions = clients.add_subparsers(dest="clients_command", required=True)
    add = actions.add_parser("add", parents=[common], help="register a client")
    add.add_argument("--name", required=True, help="a name operators recognise")
    add.add_argument("--scope", required=True,
                     help="the most the client may be granted, space-separated SMART scopes")
    credentials = add.add_mutually_exclusive_group()
    credentials.add_argument("--jwks-url", help="where the client publishes its public keys")
    credentials.add_argument("--jwks-file", type=Path, help="a JSON file of its public keys")
    credentials.add_argument("--secret", action="store_true",
                             help="generate a client secret (printed once)")
    credentials.add_argument("--public", action="store_true",
                             help="a public app: no credentials, PKCE only")
    add.add_argument("--redirect-uri", action="append", default=[], dest="redirect_uris",
                     help="an exact redirect URI of an app (repeat for several)")
    add.add_argument("--organization", help="the Organization the client acts for (its id)")
    actions.add_parser("list", parents=[common], help="list the clients (no secrets)")
    revoke = actions.add_parser("revoke", parents=[common],
                                help="revoke a client and every token issued to it")
    revoke.add_argument("client_id")


def run_clients(args: argparse.Namespace) -> int:
    """Run ``fhir-server clients …``; the exit code."""
    from fhir_server.storage.protocol import StoreError

    if args.data_dir is not None:
        os.environ["FHIR_SERVER_DATA_DIR"] = str(args.data_dir)
    try:
        if args.clients_command == "add":
            return asyncio.run(_add(registration_from(args)))
        if args.clients_command == "list":
            return asyncio.run(_list())
        return asyncio.run(_revoke(args.client_id))
    except ClientInputError as exc:
        print(f"fhir-server clients {args.clients_command}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except (StoreError, ValueError) as exc:
        print(f"fhir-server clients {args.clients_command}: the auth store failed: {exc}",
              file=sys.stderr)
        return STORE_FAILURE


def new_client_id() -> str:
    """A fresh client id: 128 random bits in lower-case hex, so that it never starts with
    ``-`` (which command lines would read as an option) and survives any URL or form."""
    return secrets.token_hex(16)


def registration_from(args: argparse.Namespace) -> Registration:
    """The client ``clients add`` describes; raises ClientInputError for invalid options."""
    jwks = None if args.jwks_file is None else _jwks_from(args.jwks_file)
    return client_registration(name=args.name, scope=args.scope, public=args.public,
                               secret=args.secret, redirect_uris=tuple(args.redirect_uris),
                               jwks_url=args.jwks_url, jwks=jwks,
                               organization=args.organization)


def client_registration(*, name: str, scope: str, public: bool = False, secret: bool = False,
                        redirect_uris: tuple[str, ...] = (), jwks_url: str | None = None,
                        jwks: dict[str, Any] | None = None,
                        organization: str | None = None) -> Registration:
    """A new client from its description (the options of ``clients add``, or the JSON of
    ``POST /admin/clients``), with a fresh id and, when ``secret``, a fresh secret; raises
    ClientInputError for anything invalid (the message names the option)."""
    from fhir_server.auth.client_secrets import hash_secret, new_client_secret
    from fhir_server.auth.model import Client, utc_now

    checked_scope = _checked_scope(scope)
    uris = tuple(_checked_url(uri, "--redirect-uri") for uri in redirect_uris)
    if any(urlsplit(uri).fragment for uri in uris):
        raise ClientInputError("a redirect URI cannot have a #fragment")
    checked_jwks_url = None if jwks_url is None else _checked_url(jwks_url, "--jwks-url")
    if jwks_url is not None and jwks is not None:
        raise ClientInputError("give the client's keys once: --jwks-url or --jwks-file")
    keys = None if jwks is None else checked_jwks(jwks, "--jwks-file")
    kind = _kind(public=public, secret=secret, has_keys=bool(checked_jwks_url or keys),
                 redirect_uris=uris)
    if public and (secret or checked_jwks_url or keys):
        raise ClientInputError("a public client has no credentials: drop --secret and keys")
    new_secret = new_client_secret() if secret else None
    client = Client(client_id=new_client_id(), name=_checked_name(name),
                    kind=kind, scope=checked_scope, created=utc_now(), redirect_uris=uris,
                    jwks_url=checked_jwks_url, jwks=keys,
                    secret_hash=None if new_secret is None else hash_secret(new_secret),
                    organization=_organization(organization))
    return Registration(client, new_secret)


def _kind(*, public: bool, secret: bool, has_keys: bool,
          redirect_uris: tuple[str, ...]) -> ClientKind:
    if public:
        if not redirect_uris:
            raise ClientInputError("a public client needs at least one --redirect-uri")
        return "public"
    if not (secret or has_keys):
        raise ClientInputError("give the client credentials: --jwks-url, --jwks-file or "
                               "--secret (or --public for an app without any)")
    if redirect_uris:
        return "confidential"
    if secret:
        raise ClientInputError("a backend client (no --redirect-uri) authenticates with keys: "
                               "use --jwks-url or --jwks-file; --secret is for apps, with "
                               "--redirect-uri")
    return "backend"


def _checked_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned or not cleaned.isprintable():
        raise ClientInputError("--name must be a non-empty printable name")
    return cleaned


def _checked_scope(text: str) -> str:
    from fhir_server.auth.scopes import InvalidScope, parse_scopes

    try:
        parsed = parse_scopes(text)
    except InvalidScope as exc:
        raise ClientInputError(f"--scope: {exc}") from exc
    if parsed.unknown:
        names = ", ".join(repr(unknown.text) for unknown in parsed.unknown)
        raise ClientInputError(f"--scope: unknown scope {names}: use SMART scopes such as "
                               "system/Patient.rs or patient/*.rs")
    if not parsed.scopes:
        raise ClientInputError("--scope is empty: name at least one SMART scope")
    return parsed.render()


def _checked_url(url: str, option: str) -> str:
    """An https URL, or http on the loopback (127.0.0.1 or localhost) for development."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise ClientInputError(f"{option} {url!r} is not a valid URL") from exc
    if not host or any(character.isspace() for character in url):
        raise ClientInputError(f"{option} {url!r} is not an absolute URL with a host")
    if parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        return url
    raise ClientInputError(f"{option} {url!r} must use https (http only on 127.0.0.1 or "
                           "localhost)")


def _jwks_from(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ClientInputError(f"--jwks-file {path}: cannot read it ({exc.strerror})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ClientInputError(f"--jwks-file {path}: not JSON ({exc})") from exc
    return checked_jwks(document, f"--jwks-file {path}")


def checked_jwks(document: object, source: str) -> dict[str, Any]:
    """``document`` when it is a JWKS of public keys; ClientInputError (starting with
    ``source``) otherwise."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(document, dict) or not isinstance(keys, list) or not keys:
        raise ClientInputError(f"{source}: a JWKS is a JSON object whose \"keys\" "
                               "is a non-empty array")
    if not all(isinstance(key, dict) and isinstance(key.get("kty"), str) for key in keys):
        raise ClientInputError(f"{source}: every key must be an object with \"kty\"")
    if any("d" in key for key in keys):
        raise ClientInputError(f"{source}: holds a private key; register the public "
                               "keys only")
    jwks: dict[str, Any] = document
    return jwks


def _organization(value: str | None) -> str | None:
    if value is None:
        return None
    id = value.removeprefix("Organization/")
    if not _FHIR_ID_RE.fullmatch(id):
        raise ClientInputError(f"--organization {value!r} is not an Organization id")
    return f"Organization/{id}"


async def _add(registration: Registration) -> int:
    store = await _started_store()
    try:
        await store.add_client(registration.client)
    finally:
        await store.close()
    client = registration.client
    print(f"client_id: {client.client_id}")
    print(f"kind: {client.kind}")
    if registration.secret is not None:
        print(f"client_secret: {registration.secret}")
        print("This secret is shown once: only its hash is stored. Keep it now.")
    return 0


async def _list() -> int:
    store = await _started_store()
    try:
        clients = await store.list_clients()
    finally:
        await store.close()
    if not clients:
        print("no clients registered")
        return 0
    print("\t".join(("client_id", "status", "kind", "name", "organization", "created",
                     "scope")))
    for client in clients:
        print("\t".join((client.client_id, client.status, client.kind, client.name,
                         client.organization or "-", client.created.isoformat(),
                         client.scope)))
    return 0


async def _revoke(client_id: str) -> int:
    store = await _started_store()
    try:
        revoked = await store.revoke_client(client_id)
    finally:
        await store.close()
    if revoked is None:
        print(f"fhir-server clients revoke: no client {client_id!r}", file=sys.stderr)
        return NOT_FOUND
    print(f"revoked client {client_id} and {revoked} token(s) issued to it")
    return 0


async def _started_store() -> AuthStore:
    from fhir_server.auth.factory import open_auth_store
    from fhir_server.settings import Settings

    store = open_auth_store(Settings())
    await store.start()
    return store
