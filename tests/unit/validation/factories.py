"""Test data for the rule layers: identifiers computed with valid keys, and small resources.

NIRs, RPPS and FINESS numbers are computed from made-up bodies (never real people's numbers).
"""

from __future__ import annotations

from typing import Any

from stdnum import luhn
from stdnum.fr import nir

from tests.unit.validation.conftest import TEST_BASE

PROFILE = f"{TEST_BASE}/StructureDefinition/"
INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
INS_NIA = "urn:oid:1.2.250.1.213.1.4.9"
RPPS_SYSTEM = "https://rpps.esante.gouv.fr"
FINESS_SYSTEM = "https://finess.esante.gouv.fr"
STATUS_SYSTEM = f"{TEST_BASE}/CodeSystem/test-business-status"
STATUS_VALUE_SET = f"{TEST_BASE}/ValueSet/test-business-status"

Resource = dict[str, Any]


def a_nir(body: str = "1800175000012") -> str:
    """A NIR with its valid key: 13 characters (``2A``/``2B`` allowed in positions 6-7)."""
    return body + nir.calc_check_digits(body + "00")


def wrong_key(number: str) -> str:
    """The same NIR with a key off by one."""
    key = (int(number[13:]) % 97) + 1
    return f"{number[:13]}{key:02d}"


def an_rpps(body: str = "1098765432") -> str:
    return body + luhn.calc_check_digit(body)


def a_finess(body: str = "75001234") -> str:
    return body + luhn.calc_check_digit(body)


def luhn_broken(number: str) -> str:
    """The number with its last digit changed, so its Luhn key no longer holds."""
    return number[:-1] + str((int(number[-1]) + 1) % 10)


def patient_for_profile(**changes: Any) -> Resource:
    """A Patient valid against the core definitions and the ``test-patient`` profile."""
    patient: Resource = {
        "resourceType": "Patient",
        "text": {"status": "generated",
                 "div": '<div xmlns="http://www.w3.org/1999/xhtml">Léa Martin</div>'},
        "extension": [{"url": f"{PROFILE}test-consent-extension", "valueBoolean": True}],
        "identifier": [{"system": INS_NIR, "value": a_nir()}],
        "active": True,
        "name": [{"family": "Martin", "given": ["Léa"]}],
        "gender": "female",
        "birthDate": "1980-01-02",
        "maritalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]},
        "generalPractitioner": [{"reference": "PractitionerRole/gp-1"}],
    }
    patient.update(changes)
    return patient


def observation_for_profile(**changes: Any) -> Resource:
    """An Observation valid against the core definitions and the ``test-observation`` profile."""
    observation: Resource = {
        "resourceType": "Observation",
        "text": {"status": "generated",
                 "div": '<div xmlns="http://www.w3.org/1999/xhtml">Tension</div>'},
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "valueQuantity": {"value": 1, "system": "http://unitsofmeasure.org", "code": "1"},
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org",
                               "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 80, "system": "http://unitsofmeasure.org",
                               "code": "mm[Hg]"}},
        ],
    }
    observation.update(changes)
    return observation


def task_for_profile(**changes: Any) -> Resource:
    """A Task valid against the core definitions and the ``test-task`` profile."""
    task: Resource = {
        "resourceType": "Task",
        "text": {"status": "generated",
                 "div": '<div xmlns="http://www.w3.org/1999/xhtml">Tâche</div>'},
        "status": "requested",
        "intent": "order",
        "businessStatus": {"coding": [{"system": STATUS_SYSTEM, "code": "awaiting-claim"}]},
        "authoredOn": "2024-05-01T10:00:00+02:00",
        "lastModified": "2024-05-01T11:00:00+02:00",
    }
    task.update(changes)
    return task


def coding(code: str, system: str = STATUS_SYSTEM) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}
