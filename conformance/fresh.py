"""Fresh test data built from the guide's valid examples: unique names and NIRs with a valid key.

Whatever the kit writes starts as one of the guide's valid examples, so a server enforcing the
guide's profiles accepts it; only what must be unique to this run changes (the family name, the
NIR, the references to what this run created).
"""

from __future__ import annotations

import copy
import random
import re
import secrets

from conformance.client import CheckFailure, Resource
from fhir_server.ig import Guide

NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
"""INS-NIR: the national health identifier (and the parent's NIR in the NSS slice)."""
_NIR_HEAD = re.compile(r"^[12][0-9]{4}(2A|2B|[0-9]{2})")
_DEFAULT_HEAD = "1850375"
"""Man born in March 1985 in Paris: used when the example carries no NIR to start from."""


def valid_examples(guide: Guide, resource_type: str) -> tuple[Resource, ...]:
    """The guide's valid examples of one type, in file order."""
    return tuple(example.resource for example in guide.examples
                 if example.valid and example.resource.get("resourceType") == resource_type)


def first_example(guide: Guide, resource_type: str) -> Resource:
    """The first valid example of a type; CheckFailure when the guide has none."""
    found = valid_examples(guide, resource_type)
    if not found:
        raise CheckFailure(f"the guide has no valid {resource_type} example to start from")
    return found[0]


def as_new(resource: Resource) -> Resource:
    """A deep copy to create: no id, and of ``meta`` only the declared profiles."""
    fresh = copy.deepcopy(resource)
    fresh.pop("id", None)
    profiles = (fresh.pop("meta", None) or {}).get("profile")
    if profiles:
        fresh["meta"] = {"profile": profiles}
    return fresh


def nir_key(first_13: str) -> str:
    """The two-digit key of a NIR: 97 − (the first 13 characters mod 97), Corsica as 19/18."""
    number = int(first_13.replace("2A", "19").replace("2B", "18"))
    return f"{97 - number % 97:02d}"


def fresh_nir(template: str | None = None, rng: random.Random | None = None) -> str:
    """A definitive NIR with a valid key, keeping sex, birth year and month and department of
    ``template`` (so it still agrees with the example's gender and birth date)."""
    rng = rng or secrets.SystemRandom()
    match = _NIR_HEAD.match(template or "")
    head = match.group(0) if match else _DEFAULT_HEAD
    commune = rng.randint(1, 990)
    order = rng.randint(1, 999)
    first_13 = f"{head}{commune:03d}{order:03d}"
    return first_13 + nir_key(first_13)


def nir_of(patient: Resource) -> str | None:
    """The value of the patient's first NIR identifier."""
    for identifier in patient.get("identifier", []):
        if identifier.get("system") == NIR_SYSTEM and isinstance(identifier.get("value"), str):
            return str(identifier["value"])
    return None


def fresh_patient(example: Resource, *, family: str,
                  rng: random.Random | None = None) -> tuple[Resource, str]:
    """A new Patient from ``example``: family name ``family``, a fresh NIR in every NIR
    identifier. Returns the Patient and its NIR."""
    patient = as_new(example)
    nir = fresh_nir(nir_of(example), rng)
    identifiers = [identifier for identifier in patient.get("identifier", [])
                   if identifier.get("system") == NIR_SYSTEM]
    if not identifiers:
        patient.setdefault("identifier", []).append({"system": NIR_SYSTEM})
        identifiers = patient["identifier"][-1:]
    for identifier in identifiers:
        identifier["value"] = nir
    names = patient.setdefault("name", [{}])
    names[0]["family"] = family
    return patient, nir
