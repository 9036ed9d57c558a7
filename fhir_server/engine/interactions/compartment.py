"""Patient compartment search, ``GET Patient/{id}/{type}`` and ``Patient/{id}/*``
(https://hl7.org/fhir/R4/compartmentdefinition.html), over the official CompartmentDefinition.

A resource is in the compartment of Patient ``id`` when one of the search parameters that the
definition lists for its type refers to ``Patient/id``; the Patient itself (``_id``) and the
patients whose ``link`` refers to it are in it too. The search of the type then runs with that
membership as one more clause, so every other search parameter combines with it as usual.

The compartment is defined by references, not by the patient's existence: an unknown (or
deleted) patient id is not an error, its compartment is whatever still refers to it, usually
nothing — a 200 with an empty searchset, as HAPI answers, which also does not tell a caller
whether the patient exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from types import MappingProxyType

from fhir_server.definitions import load_bundle
from fhir_server.engine.context import EngineContext
from fhir_server.engine.interactions.search import search
from fhir_server.engine.resource_types import require_id, require_type
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.storage.query import (
    AllClause,
    AnyClause,
    Clause,
    IdClause,
    ReferenceClause,
    ReferenceValue,
    TypeClause,
)
from fhir_server.types import ResourceDict

COMPARTMENT = "Patient"
EVERY_TYPE = "*"


@cache
def patient_compartment() -> Mapping[str, tuple[str, ...]]:
    """Resource type → the search parameter codes that put it in a Patient's compartment."""
    (definition,) = load_bundle("compartmentdefinition-patient")
    return MappingProxyType({entry["code"]: tuple(entry["param"])
                             for entry in definition.get("resource", ()) if entry.get("param")})


def compartment_params(resource_type: str) -> tuple[str, ...]:
    """The parameters linking ``resource_type`` to a patient; 404 for a type outside the
    compartment (an unknown type gets the usual unknown-type 404)."""
    require_type(resource_type)
    params = patient_compartment().get(resource_type)
    if params is None:
        raise FhirError(ErrorCode.NOT_FOUND,
                        f"{resource_type} is not in the Patient compartment "
                        "(http://hl7.org/fhir/CompartmentDefinition/patient)")
    return params


def membership(resource_type: str | None, patient_id: str) -> tuple[Clause, ...]:
    """The clauses selecting the resources of ``resource_type`` (None: of every type of the
    compartment) that are in the compartment of Patient ``patient_id``.

    Every type at once is one alternative per type of the compartment: that type, AND one of
    the parameters the definition lists for it designating the patient (the patient itself
    included, through its own ``_id``).
    """
    if resource_type is None:
        compartment = patient_compartment()
        return (AnyClause(tuple(
            AllClause((TypeClause((member,)),
                       _refers_to_patient(codes, patient_id, itself=member == COMPARTMENT)))
            for member, codes in compartment.items())),)
    return (_refers_to_patient(compartment_params(resource_type), patient_id,
                               itself=resource_type == COMPARTMENT),)


def _refers_to_patient(params: Sequence[str], patient_id: str, *, itself: bool) -> AnyClause:
    """One of ``params`` refers to the patient (or, when ``itself``, it is the patient)."""
    patient = (ReferenceValue(COMPARTMENT, patient_id),)
    alternatives: list[Clause] = [ReferenceClause(param, patient) for param in params]
    if itself:
        alternatives.insert(0, IdClause((patient_id,)))
    return AnyClause(tuple(alternatives))


async def compartment_search(ctx: EngineContext, *, base_url: str,
                             params: Sequence[tuple[str, str]], patient_id: str,
                             resource_type: str, strict: bool = False,
                             may_explain: bool = False) -> ResourceDict:
    """The searchset of ``resource_type`` (``*``: every type of the compartment) within the
    compartment of Patient ``patient_id``; paging links stay on the compartment's URL."""
    require_id(patient_id)
    searched = None if resource_type == EVERY_TYPE else resource_type
    scope = membership(searched, patient_id)
    return await search(ctx, base_url=base_url, params=params, resource_type=searched,
                        strict=strict, scope=scope, may_explain=may_explain,
                        link_path=f"{COMPARTMENT}/{patient_id}/{resource_type}")
