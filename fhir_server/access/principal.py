"""The principal behind a request: the role it acts in and the FHIR records that anchor it.

A principal comes from an account (a person who signed in) or from a registered client (a
backend system). Role policies (``access/policies.py``) turn it into search constraints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Role = Literal["pharmacist", "doctor", "medical-director", "admin", "support", "system"]
"""pharmacist: acts for a pharmacy (``organization``); doctor: a practitioner in a tier;
medical-director: verifies doctors; admin/support: run the platform, no health data;
system: a backend client (a pharmacy's software when ``organization`` is set)."""

ROLES: Final[tuple[Role, ...]] = ("pharmacist", "doctor", "medical-director", "admin",
                                  "support", "system")
TIERS: Final = ("tier-1", "tier-2", "tier-3")
"""The expertise tiers of the tier CodeSystem, lowest first."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who acts. References are relative FHIR references (``PractitionerRole/12``).

    ``subject``: the account id (people) or client id (systems); ``practitioner_role``: the
    role a pharmacist or doctor acts in; ``organization``: the pharmacy of a pharmacist or of a
    pharmacy system; ``tier``: a verified doctor's tier code, None while unverified.
    """

    role: Role
    subject: str
    practitioner: str | None = None
    practitioner_role: str | None = None
    organization: str | None = None
    tier: str | None = None

    @property
    def fhir_user(self) -> str | None:
        """The SMART ``fhirUser``: the practitioner role when there is one, else the
        practitioner."""
        return self.practitioner_role or self.practitioner
