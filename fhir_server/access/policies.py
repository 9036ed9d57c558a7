"""Role policies: what each role may reach of each resource type, as query clauses.

Requirements: issue #5 §2 and terms of use art. 4.2 (only the professionals who need it see a
case). Notes: ``docs/implementation/access-policies.md``.

- A case is anchored on its Task. Its other resources reach the Task through the references the
  guide's profiles make mandatory (``CASE_LINKS``): a ServiceRequest is the Task's ``focus``, a
  Patient its ``subject``, a photo or answer ``based-on`` the ServiceRequest, and so on.
- A pharmacist (or a pharmacy's system) reaches the cases requested from its pharmacy, and
  every resource its pharmacy wrote: writes by a pharmacy are stamped with the tag
  ``ORGANIZATION_TAG_SYSTEM|Organization/<id>``, so a case being assembled is visible before
  its Task exists. It writes only what carries its tag.
- A doctor reaches the cases offered to its tier (status ``requested``, not declined by it) and
  those it owns; it may write a case's Task, and the report, documents and messages of the
  cases it owns.
- A medical director reaches the directory (practitioners and their roles) to verify doctors;
  admin and support reach the directory and the conformance resources, no health data.
- Everyone signed in reads the conformance resources (profiles, value sets, questionnaires…)
  and the directory (organizations, practitioners, roles).
- A Subscription belongs to the principal that created it: the server stamps it with the tag
  ``OWNER_TAG_SYSTEM|account/<id>`` (a person) or ``client/<id>`` (a backend client), and
  pharmacists, doctors and systems reach only the Subscriptions carrying their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

from fhir_server.access.principal import Principal
from fhir_server.access.reach import EVERYTHING, Reach, Refused, Within, within_any
from fhir_server.storage.query import (
    AllClause,
    AnyClause,
    ChainClause,
    Clause,
    HasClause,
    IdClause,
    NotClause,
    ReferenceClause,
    ReferenceValue,
    TokenClause,
    TokenValue,
)

Letter = Literal["c", "r", "u", "d", "s"]

ORGANIZATION_TAG_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/access-organization"
"""The meta.tag system stamping what a pharmacy wrote; the code is ``Organization/<id>``."""
TIER_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/expertise-tier"
OFFERED_STATUS: Final = "requested"
OWNER_TAG_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/access-owner"
"""The meta.tag system stamping who owns a resource of ``OWNED_TYPES``; the code is
``account/<account id>`` or ``client/<client id>``."""
OWNED_TYPES: Final = frozenset({"Subscription"})
"""Resources that belong to the principal that created them, and to no one else."""
SUBSCRIBER_ROLES: Final = frozenset({"pharmacist", "doctor", "system"})
"""The roles that may own Subscriptions (notifications of the cases they may read)."""

CONFORMANCE_TYPES: Final = frozenset({
    "CapabilityStatement", "StructureDefinition", "ImplementationGuide", "SearchParameter",
    "OperationDefinition", "CompartmentDefinition", "CodeSystem", "ValueSet", "ConceptMap",
    "NamingSystem", "TerminologyCapabilities", "Questionnaire", "StructureMap",
    "GraphDefinition", "MessageDefinition"})
"""Definitions every signed-in caller may read; only the operator writes them."""
DIRECTORY_TYPES: Final = frozenset({"Organization", "Practitioner", "PractitionerRole",
                                    "Location", "HealthcareService", "Endpoint"})
"""Who is who: readable by every signed-in caller."""

_READ_LETTERS: Final = frozenset({"r", "s"})

TaskLink = Callable[[Clause], Clause]
"""Builds, from the clause selecting the visible Tasks, the clause selecting a case type."""


def _has_task(param: str) -> TaskLink:
    return lambda tasks: HasClause("Task", param, (tasks,))


def _via_request(param: str) -> TaskLink:
    return lambda tasks: ChainClause(param, "ServiceRequest",
                                     (HasClause("Task", "focus", (tasks,)),))


def _via_patient(param: str) -> TaskLink:
    return lambda tasks: ChainClause(param, "Patient", (HasClause("Task", "subject", (tasks,)),))


def _binary_link(tasks: Clause) -> Clause:
    """A Binary belongs to the case of the resource named by its ``securityContext``."""
    return AnyClause(tuple(ChainClause("security-context", owner, (CASE_LINKS[owner](tasks),))
                           for owner in ("DocumentReference", "DiagnosticReport", "Media")))


CASE_LINKS: Final[dict[str, TaskLink]] = {
    "Task": lambda tasks: tasks,
    "ServiceRequest": _has_task("focus"),
    "Patient": _has_task("subject"),
    "QuestionnaireResponse": _via_request("based-on"),
    "Media": _via_request("based-on"),
    "DiagnosticReport": _via_request("based-on"),
    "Communication": _via_request("based-on"),
    "DocumentReference": _via_request("related"),
    "Coverage": _via_patient("beneficiary"),
    "Consent": _via_patient("patient"),
    "RelatedPerson": _via_patient("patient"),
    "Binary": _binary_link,
}
"""How each resource type of a case reaches its Task."""
CASE_TYPES: Final = frozenset(CASE_LINKS)
DOCTOR_WRITES: Final = frozenset({"DiagnosticReport", "DocumentReference", "Communication",
                                  "Binary"})
"""What a doctor writes in the cases it owns (besides the Task, in the cases offered too)."""


def new_version_checked(principal: Principal, resource_type: str) -> bool:
    """Whether a write's new version must stay within the writer's reach. A doctor's change of
    a case Task is a transition of the workflow (decline, refer-up…), which may take the case
    out of its reach on purpose: the state machine (``workflow/task_rules.py``) governs that
    version; the version it replaces must still be within reach."""
    return not (principal.role == "doctor" and resource_type == "Task")


def organization_tag(organization: str) -> dict[str, str]:
    """The meta.tag Coding stamped on what a pharmacy writes."""
    return {"system": ORGANIZATION_TAG_SYSTEM, "code": organization}


def owner_code(principal: Principal) -> str:
    """Who owns what ``principal`` creates: ``client/<id>`` for a backend client,
    ``account/<id>`` for a person."""
    kind = "client" if principal.role == "system" else "account"
    return f"{kind}/{principal.subject}"


def owner_tag(principal: Principal) -> dict[str, str]:
    """The meta.tag Coding stamped on a resource of ``OWNED_TYPES`` that ``principal`` writes."""
    return {"system": OWNER_TAG_SYSTEM, "code": owner_code(principal)}


def stamped_tags(principal: Principal, resource_type: str) -> tuple[dict[str, str], ...]:
    """The tags the server adds to the ``resource_type`` resources ``principal`` writes: its
    owner tag on an owned type, its pharmacy's tag on the others."""
    if resource_type in OWNED_TYPES:
        return (owner_tag(principal),) if principal.role in SUBSCRIBER_ROLES else ()
    if _acts_for_pharmacy(principal) and principal.organization is not None:
        return (organization_tag(principal.organization),)
    return ()


def role_reach(principal: Principal, letter: Letter, resource_type: str) -> Reach:
    """What ``principal``'s role allows of ``resource_type`` for an interaction needing
    ``letter`` (read ``r``/``s``, or write ``c``/``u``/``d``)."""
    reading = letter in _READ_LETTERS
    if resource_type in OWNED_TYPES:
        return _owned_reach(principal, resource_type)
    if principal.role == "system" and principal.organization is None:
        return EVERYTHING
    if resource_type in CONFORMANCE_TYPES:
        return EVERYTHING if reading else _refused(principal, "change definitions")
    if _acts_for_pharmacy(principal):
        return _pharmacy_reach(principal, reading, resource_type)
    if principal.role == "doctor":
        return _doctor_reach(principal, reading, resource_type)
    if principal.role == "medical-director" and resource_type in DIRECTORY_TYPES:
        return EVERYTHING if reading or resource_type != "Organization" else _refused(
            principal, "change organizations")
    if resource_type in DIRECTORY_TYPES and reading:
        return EVERYTHING
    return _refused(principal, f"{'read' if reading else 'write'} {resource_type} resources")


def _owned_reach(principal: Principal, resource_type: str) -> Reach:
    """A subscriber reaches, for every interaction, the resources stamped with its own tag."""
    if principal.role not in SUBSCRIBER_ROLES:
        return _refused(principal, f"use {resource_type} resources")
    return Within(TokenClause("_tag", (TokenValue(OWNER_TAG_SYSTEM, owner_code(principal)),)))


def _acts_for_pharmacy(principal: Principal) -> bool:
    return principal.role == "pharmacist" or (principal.role == "system"
                                              and principal.organization is not None)


def _pharmacy_reach(principal: Principal, reading: bool, resource_type: str) -> Reach:
    organization = principal.organization
    if organization is None:
        return _refused(principal, "act without a pharmacy")
    tagged = _tagged(organization)
    if resource_type in DIRECTORY_TYPES:
        if reading:
            return EVERYTHING
        own = _own_directory_record(principal, resource_type)
        return within_any((tagged, *own))
    link = CASE_LINKS.get(resource_type)
    if link is None:
        return _refused(principal, f"{'read' if reading else 'write'} {resource_type} "
                                   "resources")
    if not reading:
        return Within(tagged)
    return within_any((tagged, link(_pharmacy_tasks(organization))))


def _pharmacy_tasks(organization: str) -> Clause:
    """The Tasks requested by the pharmacy: by one of its roles, or by the pharmacy itself."""
    pharmacy = _reference_value(organization)
    return AnyClause((
        ChainClause("requester", "PractitionerRole",
                    (ReferenceClause("organization", (pharmacy,)),)),
        ReferenceClause("requester", (pharmacy,))))


def _own_directory_record(principal: Principal, resource_type: str) -> tuple[Clause, ...]:
    """The caller's own Organization, Practitioner or PractitionerRole, by id."""
    for reference in (principal.organization, principal.practitioner,
                      principal.practitioner_role):
        if reference is not None and reference.startswith(resource_type + "/"):
            return (IdClause((reference.split("/", 1)[1],)),)
    return ()


def _doctor_reach(principal: Principal, reading: bool, resource_type: str) -> Reach:
    if resource_type in DIRECTORY_TYPES:
        if reading:
            return EVERYTHING
        if resource_type == "Practitioner":
            return within_any(_own_directory_record(principal, resource_type))
        return _refused(principal, f"change {resource_type} resources")
    link = CASE_LINKS.get(resource_type)
    if link is None:
        return _refused(principal, f"{'read' if reading else 'write'} {resource_type} "
                                   "resources")
    offered, owned = _offered_tasks(principal), _owned_tasks(principal)
    if reading or resource_type == "Task":
        return Within(link(AnyClause((offered, owned))))
    if resource_type in DOCTOR_WRITES:
        return Within(link(owned))
    return _refused(principal, f"change {resource_type} resources")


def _offered_tasks(principal: Principal) -> Clause:
    """Tasks offered to the doctor's tier and not declined by it (none while unverified)."""
    role = principal.practitioner_role
    if principal.tier is None or role is None:
        return AnyClause(())
    return AllClause((
        TokenClause("tier", (TokenValue(TIER_SYSTEM, principal.tier),)),
        TokenClause("status", (TokenValue(None, OFFERED_STATUS),)),
        NotClause(ReferenceClause("declined-by", (_reference_value(role),)))))


def _owned_tasks(principal: Principal) -> Clause:
    role = principal.practitioner_role
    if role is None:
        return AnyClause(())
    return ReferenceClause("owner", (_reference_value(role),))


def _tagged(organization: str) -> Clause:
    return TokenClause("_tag", (TokenValue(ORGANIZATION_TAG_SYSTEM, organization),))


def _reference_value(reference: str) -> ReferenceValue:
    resource_type, _, id = reference.partition("/")
    return ReferenceValue(resource_type, id)


def _refused(principal: Principal, what: str) -> Refused:
    return Refused(f"A {principal.role} account may not {what}")
