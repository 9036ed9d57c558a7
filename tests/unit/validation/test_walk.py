"""Tests for fhir_server.validation.walk: the core walk's order of visits, and the sparse core
walk ``validate`` reads (the values no core rule reads left out, the same issues found)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fhir_server.errors import Issue
from fhir_server.validation.bindings import check_bindings
from fhir_server.validation.references import check_references
from fhir_server.validation.validator import ProfileValidator
from fhir_server.validation.walk import Walk
from tests.unit.validation import examples
from tests.unit.validation.factories import task_for_profile

Resource = dict[str, Any]


def locations(walk: Walk) -> list[str]:
    return [visit.location for visit in walk.visits]


def core_issues(validator: ProfileValidator, walk: Walk) -> list[Issue]:
    """What the core layers find on a walk, in the order ``validate`` lists them."""
    return [*check_bindings(walk, validator.terminology), *validator.invariants.check(walk),
            *check_references(walk, validator.definitions)]


# --- order of the core walk --------------------------------------------------------------------

def test_the_core_walk_visits_the_values_in_json_order(core_validator: ProfileValidator) -> None:
    patient = {"resourceType": "Patient", "_gender": {"id": "g"}, "active": True,
               "name": [{"given": ["A", "B"], "_given": [None, {"id": "b"}], "family": "F"}],
               "_birthDate": {"extension": [{"url": "http://e.org/y", "valueString": "s"}]}}
    assert locations(core_validator.walk(patient)) == [
        "Patient", "Patient.gender", "Patient.gender.id", "Patient.active", "Patient.name[0]",
        "Patient.name[0].given[0]", "Patient.name[0].given[1]", "Patient.name[0].given[1].id",
        "Patient.name[0].family", "Patient.birthDate", "Patient.birthDate.extension[0]",
        "Patient.birthDate.extension[0].url",
        "Patient.birthDate.extension[0].value.ofType(string)"]


def test_two_forms_of_a_choice_are_visited_together(core_validator: ProfileValidator) -> None:
    """Not well-formed (the structure layer refuses it), but the walk stays the grouped one:
    the forms of ``value[x]`` one after the other, where the first one is."""
    observation = {"resourceType": "Observation", "valueString": "a", "status": "final",
                   "code": {"text": "x"}, "valueInteger": 1}
    assert locations(core_validator.walk(observation)) == [
        "Observation", "Observation.value.ofType(string)", "Observation.value.ofType(integer)",
        "Observation.status", "Observation.code", "Observation.code.text"]


# --- the sparse core walk ----------------------------------------------------------------------

def test_a_sparse_walk_leaves_out_the_values_no_core_rule_reads(
        core_validator: ProfileValidator) -> None:
    patient = examples.patient()
    full = core_validator.walk(patient)
    sparse = core_validator.walk(patient, sparse=True)
    kept = locations(sparse)
    assert kept == [location for location in locations(full) if location in set(kept)]
    left_out = set(locations(full)) - set(kept)
    assert {"Patient.active", "Patient.name[0].family", "Patient.name[0].given[1]",
            "Patient.birthDate", "Patient.identifier[0].value"} <= left_out
    # a required binding, objects (ele-1, their own invariants) and the root stay
    assert {"Patient", "Patient.gender", "Patient.name[0].use", "Patient.telecom[0]",
            "Patient.meta", "Patient.text.status"} <= set(kept)


def test_a_sparse_walk_keeps_a_primitive_given_only_by_its_companion(
        core_validator: ProfileValidator) -> None:
    patient = {"resourceType": "Patient", "_active": {"id": "a"}, "active": None,
               "_birthDate": {"extension": [{"url": "http://e.org/y", "valueString": "s"}]},
               "birthDate": "1980-01-02"}
    kept = locations(core_validator.walk(patient, sparse=True))
    assert "Patient.active" in kept  # no value: ele-1 decides on its companion
    assert "Patient.birthDate" in kept and "Patient.birthDate.extension[0]" in kept


def _with(change: Callable[[Resource], object], make: Callable[[], Resource]) -> Resource:
    resource = make()
    change(resource)
    return resource


RESOURCES: dict[str, Callable[[], Resource]] = {
    **examples.VALID,
    "Task, status bogus": lambda: task_for_profile(status="bogus"),
    "Patient, gender x and a dangling local reference": lambda: _with(
        lambda p: p.update(gender="x", managingOrganization={"reference": "#nowhere"}),
        examples.patient),
    "Patient, a primitive with an id only": lambda: _with(
        lambda p: p.update(_birthDate={"id": "b"}, birthDate=None), examples.patient),
    "Patient, an object with an id only": lambda: _with(
        lambda p: p["name"].append({"id": "n"}), examples.patient),
    "Patient, a reference to a Task": lambda: _with(
        lambda p: p.update(generalPractitioner=[{"reference": "Task/1"}]), examples.patient),
    "Observation, a period in the wrong order": lambda: _with(
        lambda o: o.update(effectivePeriod={"start": "2024-05-02", "end": "2024-05-01"}),
        lambda: {key: value for key, value in examples.observation().items()
                 if key != "effectiveDateTime"}),
    "Bundle, an entry without content": lambda: _with(
        lambda b: b["entry"].append({"fullUrl": "urn:uuid:1"}), examples.bundle),
    "Basic, an extension with a value and extensions": lambda: _with(
        lambda b: b["extension"][0].update(extension=[{"url": "x", "valueCode": "y"}]),
        lambda: examples.basic_with_extension_value("valueCode", "z")),
}


@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_the_core_layers_find_the_same_on_a_sparse_walk(core_validator: ProfileValidator,
                                                        name: str) -> None:
    resource = RESOURCES[name]()
    full = core_validator.walk(resource)
    sparse = core_validator.walk(resource, sparse=True)
    assert len(sparse.visits) < len(full.visits)
    assert core_issues(core_validator, sparse) == core_issues(core_validator, full)
    assert [n.location for n in sparse.nested] == [n.location for n in full.nested]


def test_the_changed_resources_do_give_issues(core_validator: ProfileValidator) -> None:
    """The resources above do exercise the layers: each changed one has an issue."""
    for name, make in RESOURCES.items():
        if name not in examples.VALID:
            assert core_issues(core_validator, core_validator.walk(make())), name
