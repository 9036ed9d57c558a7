"""Which types a granted scope lets the kit search, and which one it must be refused."""

from __future__ import annotations

import pytest

from conformance.smart.scopes import covered_search_type, covers_search, uncovered_search_type


@pytest.mark.parametrize(("scope", "resource_type", "covered"), [
    ("system/Patient.rs", "Patient", True),
    ("system/Patient.r", "Patient", False),
    ("system/Patient.cruds", "Patient", True),
    ("system/Patient.sr", "Patient", False),
    ("patient/*.s", "Observation", True),
    ("user/Patient.read", "Patient", True),
    ("user/Patient.write", "Patient", False),
    ("system/*.*", "Task", True),
    ("system/Patient.rs", "Observation", False),
    ("openid", "Patient", False),
    ("launch/patient", "Patient", False),
])
def test_a_scope_covers_searching_a_type(scope: str, resource_type: str, covered: bool) -> None:
    assert covers_search(scope, resource_type) is covered


def test_a_restricted_scope_counts_only_when_looking_for_what_is_out_of_reach() -> None:
    restricted = "patient/Observation.rs?category=laboratory"
    assert covers_search(restricted, "Observation")
    assert not covers_search(restricted, "Observation", restricted=False)
    assert uncovered_search_type(restricted, ["Observation", "Task"]) == "Task"
    assert covered_search_type(restricted, ["Observation", "Task"]) is None


def test_the_first_type_out_of_reach_and_the_first_within() -> None:
    granted = "launch/patient openid fhirUser offline_access patient/Patient.rs"
    assert uncovered_search_type(granted) == "Observation"
    assert covered_search_type(granted) == "Patient"
    assert uncovered_search_type("system/*.rs") is None
    assert covered_search_type("system/Task.cud") is None
