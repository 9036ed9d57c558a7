"""EHR launches: a signed-in user opens an app for a patient, and the app receives an opaque
``launch`` id that its authorization request carries back.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/app-launch.html#launch-app-ehr-launch. A
launch is bound to the user who created it (only they can authorize with it), to a patient they
may access, and optionally to an encounter and other resources (``fhirContext``). It is stored
by the hash of its id, lives a few minutes and is used once (``authorization_code.py`` consumes
it when it issues the code).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from fhir_server.access.principal import Principal
from fhir_server.auth.model import AuthStore, EhrLaunch, token_hash, utc_millis, utc_now
from fhir_server.engine.resource_types import valid_id

PatientAccess = Callable[[Principal, str], Awaitable[bool]]
"""``(principal, patient_id)`` → whether the principal may see that patient (False for a patient
that does not exist): the access policies' answer, injected by the runtime."""

LAUNCH_SECONDS: Final = 600
"""How long a launch id may wait for its authorization request."""
LAUNCH_BYTES: Final = 32
REFERENCE_RE: Final = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


class LaunchRefused(Exception):
    """The launch cannot be created; the message says why (safe to show to the caller)."""


@dataclass(frozen=True, slots=True)
class CreatedLaunch:
    """A new launch: the ``launch`` id to hand to the app, and its lifetime in seconds."""

    launch: str
    expires_in: int


async def create_launch(store: AuthStore, principal: Principal, *, patient: str,
                        patient_access: PatientAccess, encounter: str | None = None,
                        fhir_context: Sequence[str] = (), lifetime: int = LAUNCH_SECONDS,
                        now: datetime | None = None) -> CreatedLaunch:
    """Record a launch of ``principal`` (a signed-in user) for ``patient`` (an id), with an
    optional ``encounter`` id and ``fhir_context`` references (``Type/id``).

    Raises ``LaunchRefused`` for a malformed id or reference, a system principal, or a patient
    the principal may not access (an unknown patient is refused the same way).
    """
    if principal.role == "system":
        raise LaunchRefused("an EHR launch is made by a signed-in user, not a system client")
    _check_id("patient", patient)
    if encounter is not None:
        _check_id("encounter", encounter)
    for reference in fhir_context:
        if not REFERENCE_RE.fullmatch(reference):
            raise LaunchRefused(f"fhirContext entries are references 'Type/id': {reference!r:.80}")
    if not await patient_access(principal, patient):
        raise LaunchRefused("this patient is unknown or not accessible to you")
    launch = secrets.token_urlsafe(LAUNCH_BYTES)
    issued_at = utc_millis(now or utc_now())
    await store.save_launch(EhrLaunch(
        launch_hash=token_hash(launch), subject=principal.subject, patient=patient,
        encounter=encounter, fhir_context=tuple(fhir_context), issued_at=issued_at,
        expires_at=issued_at + timedelta(seconds=lifetime)))
    return CreatedLaunch(launch=launch, expires_in=lifetime)


def _check_id(name: str, value: str) -> None:
    if not valid_id(value):
        raise LaunchRefused(f"{name} must be a FHIR resource id (1 to 64 of A-Z a-z 0-9 - .)")
