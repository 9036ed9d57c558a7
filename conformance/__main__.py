"""``python -m conformance --base URL``: run the conformance kit against a FHIR server.

Prints one line per check, then ``N passed, M failed`` last. Exit status: 0 when every check
passed, 1 when one failed, 2 for a usage error, a guide that cannot be read, a server that does
not answer, or one that refuses the token. The ``smart`` group runs only with its options
(``--smart-…``); asked for with ``--only`` without them, it is skipped with a ``SKIP`` line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from conformance.checks import AUTHENTICATED, UnknownGroup, select_groups, skipped_groups
from conformance.checks.smart import smart_group
from conformance.client import DEFAULT_TIMEOUT, CheckFailure, FhirClient, ServerUnreachable
from conformance.kit import Group, Kit, new_run_id, run_groups
from conformance.report import Report
from conformance.smart.options import (
    DEFAULT_APP_SCOPE,
    DEFAULT_BACKEND_SCOPE,
    OptionsError,
    SmartArguments,
    SmartOptions,
    smart_options,
)
from fhir_server.ig import Guide, GuideError, load_guide

TOKEN_VARIABLE = "FHIR_SERVER_API_TOKEN"
EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """The kit cannot run as asked; the message says why."""


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m conformance",
        description="Black-box conformance checks of a running FHIR R4 server against the "
                    "Pictaderm implementation guide.")
    parser.add_argument("--base", required=True, help="the server's FHIR base URL, e.g. "
                        "http://127.0.0.1:8080/fhir")
    parser.add_argument("--token", help=f"bearer token (default: ${TOKEN_VARIABLE})")
    parser.add_argument("--profiles", type=Path, help="the guide directory (default: profiles/)")
    parser.add_argument("--only", help="comma-separated groups to run (default: all): "
                        "metadata, guide, crud, search, case, invalid, and smart when its "
                        "options are given")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds to wait for each answer")
    parser.add_argument("--verbose", action="store_true", help="also print every HTTP exchange")
    _smart_arguments(parser)
    return parser.parse_args(argv)


def _smart_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "SMART (group smart)", "Backend Services checks run with the three --smart-backend "
        "options; app-launch checks with --smart-client-id, --smart-redirect-uri, --smart-user, "
        "--smart-password-env and --smart-patient.")
    group.add_argument("--smart-client-id", metavar="ID",
                       help="a public app client registered with --smart-redirect-uri")
    group.add_argument("--smart-redirect-uri", metavar="URI",
                       help="the app's redirect URI, exactly as registered (the kit reads the "
                            "redirect, never follows it)")
    group.add_argument("--smart-user", metavar="EMAIL", help="a user able to read the patient")
    group.add_argument("--smart-password-env", metavar="VAR",
                       help="the environment variable holding that user's password")
    group.add_argument("--smart-patient", metavar="ID", help="the Patient id launched with")
    group.add_argument("--smart-scope", default=DEFAULT_APP_SCOPE, metavar="SCOPES",
                       help=f"the app's scopes (default: {DEFAULT_APP_SCOPE})")
    group.add_argument("--smart-backend-client-id", metavar="ID",
                       help="a backend client registered with the public key of "
                            "--smart-backend-key")
    group.add_argument("--smart-backend-key", type=Path, metavar="FILE",
                       help="its private key, PEM: RSA (RS384) or EC P-384 (ES384)")
    group.add_argument("--smart-backend-kid", metavar="KID",
                       help="the kid of that key in the client's JWKS")
    group.add_argument("--smart-backend-scope", default=DEFAULT_BACKEND_SCOPE, metavar="SCOPES",
                       help=f"the backend's scopes (default: {DEFAULT_BACKEND_SCOPE})")


def _smart_options(arguments: argparse.Namespace) -> SmartOptions | None:
    given = SmartArguments(
        client_id=arguments.smart_client_id, redirect_uri=arguments.smart_redirect_uri,
        user=arguments.smart_user, password_env=arguments.smart_password_env,
        patient=arguments.smart_patient, scope=arguments.smart_scope,
        backend_client_id=arguments.smart_backend_client_id,
        backend_key=arguments.smart_backend_key, backend_kid=arguments.smart_backend_kid,
        backend_scope=arguments.smart_backend_scope)
    try:
        return smart_options(given, environ=os.environ)
    except OptionsError as error:
        raise UsageError(str(error)) from error


def _names(only: str | None) -> list[str] | None:
    return None if only is None else [name.strip() for name in only.split(",") if name.strip()]


def _groups(names: list[str] | None, smart: Group | None) -> tuple[Group, ...]:
    try:
        return select_groups(names, smart_group=smart)
    except UnknownGroup as error:
        raise UsageError(str(error)) from error


def _guide(directory: Path | None) -> Guide:
    try:
        return load_guide(directory)
    except GuideError as error:
        raise UsageError(f"the guide cannot be read: {error}") from error


def _check_reachable(client: FhirClient, groups: Sequence[Group]) -> None:
    """UsageError when nothing answers, or when the token is refused and a group needs it."""
    try:
        client.probe()
        if AUTHENTICATED & {group.name for group in groups}:
            status = client.get("Patient", params={"_count": "1"}).status
            if status in (401, 403):
                raise UsageError(f"the server answered {status} to an authenticated search: "
                                 f"give a valid token (--token or ${TOKEN_VARIABLE})")
    except (ServerUnreachable, CheckFailure) as error:
        raise UsageError(str(error)) from error


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _arguments(argv)
    token = arguments.token or os.environ.get(TOKEN_VARIABLE) or None
    try:
        options = _smart_options(arguments)
    except UsageError as error:
        return _usage_error(error, token)
    secrets = [token or "", *(options.secrets if options else ())]
    report = Report(emit=lambda line: print(line, flush=True), secrets=secrets)
    trace = (lambda line: report.note(f"  {line}")) if arguments.verbose else None
    smart = smart_group(options, timeout=arguments.timeout, trace=trace) if options else None
    try:
        names = _names(arguments.only)
        groups = _groups(names, smart)
        guide = _guide(arguments.profiles)
        with FhirClient(arguments.base, token=token, timeout=arguments.timeout,
                        trace=trace) as client:
            report.note(f"conformance kit: {client.base}, guide {guide.package_id}, groups "
                        f"{', '.join(group.name for group in groups) or '(none)'}")
            _check_reachable(client, groups)
            for line in skipped_groups(names, smart_group=smart):
                report.note(line)
            run_groups(Kit(client=client, guide=guide, run_id=new_run_id()), groups, report)
    except UsageError as error:
        return _usage_error(error, token)
    report.finish()
    return EXIT_PASSED if report.succeeded else EXIT_FAILED


def _usage_error(error: UsageError, token: str | None) -> int:
    message = str(error).replace(token, "***") if token else str(error)
    print(f"python -m conformance: {message}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
