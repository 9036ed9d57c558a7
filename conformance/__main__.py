"""``python -m conformance --base URL``: run the conformance kit against a FHIR server.

Prints one line per check, then ``N passed, M failed`` last. Exit status: 0 when every check
passed, 1 when one failed, 2 for a usage error, a guide that cannot be read, a server that does
not answer, or one that refuses the token.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from conformance.checks import AUTHENTICATED, UnknownGroup, select_groups
from conformance.client import DEFAULT_TIMEOUT, CheckFailure, FhirClient, ServerUnreachable
from conformance.kit import Group, Kit, new_run_id, run_groups
from conformance.report import Report
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
                        "metadata, guide, crud, search, case, invalid")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds to wait for each answer")
    parser.add_argument("--verbose", action="store_true", help="also print every HTTP exchange")
    return parser.parse_args(argv)


def _groups(only: str | None) -> tuple[Group, ...]:
    names = None if only is None else [name.strip() for name in only.split(",") if name.strip()]
    try:
        return select_groups(names)
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
    report = Report(emit=lambda line: print(line, flush=True), secrets=[token or ""])
    try:
        groups = _groups(arguments.only)
        guide = _guide(arguments.profiles)
        with FhirClient(arguments.base, token=token, timeout=arguments.timeout,
                        trace=(lambda line: report.note(f"  {line}"))
                        if arguments.verbose else None) as client:
            report.note(f"conformance kit: {client.base}, guide {guide.package_id}, groups "
                        f"{', '.join(group.name for group in groups)}")
            _check_reachable(client, groups)
            run_groups(Kit(client=client, guide=guide, run_id=new_run_id()), groups, report)
    except UsageError as error:
        message = str(error).replace(token, "***") if token else str(error)
        print(f"python -m conformance: {message}", file=sys.stderr)
        return EXIT_USAGE
    report.finish()
    return EXIT_PASSED if report.succeeded else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
