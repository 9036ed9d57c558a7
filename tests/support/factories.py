"""Small factories for test data: valid French identifiers and resources in one call."""

from __future__ import annotations

import itertools
from typing import Any

NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
_serial = itertools.count(1)


def nir(first13: str | None = None) -> str:
    """A syntactically valid definitive NIR (key = 97 - n mod 97), never a real person's number."""
    body = first13 or f"1800175{next(_serial):06d}"
    digits = body.replace("2A", "19").replace("2B", "18")
    return f"{body}{97 - int(digits) % 97:02d}"


def patient(**overrides: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": NIR_SYSTEM, "value": nir()}],
        "name": [{"family": "Martin", "given": ["Léa"]}],
        "gender": "female",
        "birthDate": "1980-01-02",
        "telecom": [{"system": "phone", "value": "+33601020304"}],
    }
    resource.update(overrides)
    return resource


def observation(subject: str, value: float = 37.2, **overrides: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
        "subject": {"reference": subject},
        "valueQuantity": {"value": value, "unit": "Cel", "system": "http://unitsofmeasure.org",
                          "code": "Cel"},
    }
    resource.update(overrides)
    return resource
