"""Group ``smart``: SMART App Launch 2.2 and Backend Services, black box
(https://hl7.org/fhir/smart-app-launch/STU2.2/).

Discovery always; then Backend Services when a backend client and its key are given
(``conformance.smart.backend``) and a standalone app launch when a public app and its user are
given (``conformance.smart.launch``). The group needs its options, so it is not among the
default groups unless they are given (``conformance.smart.options``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from functools import partial

from conformance.client import DEFAULT_TIMEOUT
from conformance.kit import Group, GroupRun, GroupStopped, Kit
from conformance.smart.auth_client import AuthClient
from conformance.smart.backend import run_backend
from conformance.smart.context import SmartRun
from conformance.smart.discovery import run_discovery
from conformance.smart.launch import run_launch
from conformance.smart.options import APP_FLAGS, BACKEND_FLAGS, SmartOptions
from conformance.smart.vault import Vault

NAME = "smart"
SUMMARY = "SMART discovery, Backend Services, standalone app launch with PKCE, introspection"
MISSING_OPTIONS = (f"it needs {', '.join(BACKEND_FLAGS)} (Backend Services) and/or "
                   f"{', '.join(APP_FLAGS)} (app launch)")


def smart_group(options: SmartOptions, *, timeout: float = DEFAULT_TIMEOUT,
                trace: Callable[[str], None] | None = None) -> Group:
    """The ``smart`` group for ``options``; its HTTP answers wait ``timeout`` seconds and its
    exchanges go to ``trace`` when given."""
    return Group(NAME, SUMMARY, partial(_run, options, timeout, trace))


def _run(options: SmartOptions, timeout: float, trace: Callable[[str], None] | None,
         kit: Kit, checks: GroupRun) -> None:
    with AuthClient(kit.client.base, timeout=timeout, trace=trace) as auth:
        run = SmartRun(kit=kit, auth=auth, vault=Vault(), checks=checks)
        discovery = run_discovery(run, backend=options.backend is not None,
                                  app=options.app is not None)
        if options.backend is not None:
            with suppress(GroupStopped):  # a stopped backend part lets the app launch run
                run_backend(run, discovery, options.backend)
        if options.app is not None:
            run_launch(run, discovery, options.app)
