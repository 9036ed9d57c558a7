"""``Access``: everything that limits one caller — its SMART scopes (with their ``?param=value``
restrictions and launch patient) and its role policy — as one ``Reach`` per interaction and
resource type, which the engine ANDs into its queries and checks writes against.

Notes: ``docs/implementation/access-policies.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fhir_server.access.policies import (
    OWNED_TYPES,
    Letter,
    new_version_checked,
    role_reach,
    stamped_tags,
)
from fhir_server.access.principal import Principal
from fhir_server.access.reach import EVERYTHING, Reach, Refused, Within, both, either
from fhir_server.auth.scopes import (
    AccessContext,
    Interaction,
    Restriction,
    ScopeSet,
    permission_letter,
)
from fhir_server.engine.indexing import Indexer
from fhir_server.engine.interactions.compartment import membership, patient_compartment
from fhir_server.engine.search_request import parse_search
from fhir_server.storage.query import AllClause, AnyClause, Clause, NotClause, TypeClause

LETTER_INTERACTIONS: Final[dict[str, Interaction]] = {
    "r": "read", "s": "search-type", "c": "create", "u": "update", "d": "delete"}


@dataclass(frozen=True, slots=True)
class Access:
    """What limits a caller. ``scopes`` None: no scope check (a principal acting through the
    server itself); ``principal`` None: scopes alone decide (a backend client without a
    pharmacy); ``contexts``: the scope contexts its token may use (``system`` for backends,
    ``user`` and ``patient`` for people); ``patient``: the launch patient of ``patient/``
    scopes."""

    principal: Principal | None
    scopes: ScopeSet | None
    contexts: tuple[AccessContext, ...] = ("system",)
    patient: str | None = None

    def reach(self, indexer: Indexer, letter: Letter, resource_type: str | None) -> Reach:
        """What the caller may reach of ``resource_type`` (None: every type at once) for an
        interaction needing ``letter``."""
        scoped = (EVERYTHING if self.scopes is None
                  else self._scope_reach(indexer, letter, resource_type))
        if self.principal is None:
            return scoped if self.scopes is None else _without_owned(scoped, resource_type)
        if isinstance(scoped, Refused):
            return scoped
        if resource_type is None:
            return Refused("Name the resource types to search with _type: an account's "
                           "access depends on the type")
        return both(scoped, role_reach(self.principal, letter, resource_type))

    def limits_every_type(self) -> bool:
        """Whether some type may be partly hidden from this caller (not a bare scope check)."""
        return self.principal is not None or self.patient is not None or (
            self.scopes is not None and any(scope.restriction
                                            for scope in self.scopes.resource_scopes))

    def checks_new_version(self, resource_type: str) -> bool:
        """Whether a write's new version must stay within reach (see ``policies``)."""
        return self.principal is None or new_version_checked(self.principal, resource_type)

    def tags(self, resource_type: str) -> tuple[dict[str, str], ...]:
        """The meta.tag Codings stamped on the ``resource_type`` resources the caller writes."""
        return (stamped_tags(self.principal, resource_type) if self.principal is not None
                else ())

    def _scope_reach(self, indexer: Indexer, letter: Letter, resource_type: str | None
                     ) -> Reach:
        assert self.scopes is not None
        interaction = LETTER_INTERACTIONS[letter]
        reached: Reach = Refused(_needs_scope(self.contexts, letter, resource_type))
        for context in self.contexts:
            if not self.scopes.allows(context, interaction, resource_type):
                continue
            restrictions = self.scopes.restrictions(context, interaction, resource_type)
            granted: Reach = (EVERYTHING if restrictions is None
                              else _restricted(indexer, resource_type, restrictions))
            if context == "patient":
                granted = both(granted, self._patient_reach(resource_type))
            reached = either(reached, granted)
        return reached

    def _patient_reach(self, resource_type: str | None) -> Reach:
        """``patient/`` scopes reach the launch patient's compartment (types outside the
        compartment, such as Practitioner, are not limited by it)."""
        if self.patient is None:
            return Refused("patient/ scopes need a patient in the launch context")
        if resource_type is not None and resource_type not in patient_compartment() \
                and resource_type != "Patient":
            return EVERYTHING
        (clause,) = membership(resource_type, self.patient)
        return Within(clause)


def _without_owned(scoped: Reach, resource_type: str | None) -> Reach:
    """A backend client acting for no organization has no owner identity: it reaches no
    resource of ``OWNED_TYPES`` (each belongs to the account or client that created it)."""
    if isinstance(scoped, Refused):
        return scoped
    if resource_type is None:
        return both(scoped, Within(NotClause(TypeClause(tuple(sorted(OWNED_TYPES))))))
    if resource_type in OWNED_TYPES:
        return Refused(f"A {resource_type} belongs to the account or client that creates it: "
                       "this backend client acts for no organization, so it cannot own one")
    return scoped


def _restricted(indexer: Indexer, resource_type: str | None,
                restrictions: tuple[Restriction, ...]) -> Reach:
    """The OR of the scopes' ``?param=value`` restrictions, each parsed as a search."""
    alternatives: list[Clause] = []
    for restriction in restrictions:
        parsed = parse_search(resource_type, list(restriction), indexer)
        if parsed.unknown:
            return Refused("A scope restriction uses a parameter this server cannot search by: "
                           + ", ".join(parsed.unknown))
        alternatives.append(AllClause(parsed.clauses))
    return Within(alternatives[0] if len(alternatives) == 1 else AnyClause(tuple(alternatives)))


def _needs_scope(contexts: tuple[AccessContext, ...], letter: str,
                 resource_type: str | None) -> str:
    context = contexts[0] if contexts else "system"
    return (f"This interaction needs the scope '{context}/{resource_type or '*'}.{letter}' "
            "(or one covering it)")


def letter_of(interaction: Interaction) -> Letter:
    """The permission letter of an interaction, typed for ``Access.reach``."""
    letter = permission_letter(interaction)
    assert letter in ("c", "r", "u", "d", "s")
    return letter  # type: ignore[return-value]
