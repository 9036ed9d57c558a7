"""The Task state machine of a tele-expertise case: the only way a case moves.

Source: ``domain-model.md`` ("Task state machine") and terms of use R2-R3. Each transition has
a name (the operation that performs it: ``$claim``…), the statuses it leaves from, the status
and business status it leads to, and the actor who may perform it. Whether a PUT or PATCH of a
Task is one of these transitions is decided here too (``transition_of_change``), so both forms
obey one table. Pure: no I/O; the operations and hooks that apply it live beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

TaskStatus = Literal["draft", "requested", "accepted", "in-progress", "on-hold", "completed",
                     "cancelled", "failed"]
Actor = Literal["requester", "owner", "eligible-doctor", "platform"]
"""requester: a pharmacist (or system) of the requesting pharmacy; owner: the doctor whose
role owns the Task; eligible-doctor: a verified doctor of the offered tier who has not declined;
platform: the server itself (deadlines, escalation)."""

FINAL_STATUSES: Final = frozenset({"completed", "cancelled", "failed"})
BUSINESS_STATUS_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/task-business-status"


@dataclass(frozen=True, slots=True)
class Transition:
    """One move of the machine."""

    name: str
    sources: frozenset[TaskStatus]
    target: TaskStatus
    business_status: str
    actor: Actor
    keeps_status: bool = False
    """True for moves that stay in ``requested`` (decline, escalate, refer-up from requested)."""


def _transition(name: str, sources: tuple[TaskStatus, ...], target: TaskStatus,
                business_status: str, actor: Actor) -> Transition:
    return Transition(name, frozenset(sources), target, business_status, actor,
                      keeps_status=target in sources)


TRANSITIONS: Final[dict[str, Transition]] = {t.name: t for t in (
    _transition("submit", ("draft",), "requested", "awaiting-claim", "requester"),
    _transition("claim", ("requested",), "accepted", "claimed", "eligible-doctor"),
    _transition("decline", ("requested",), "requested", "awaiting-claim", "eligible-doctor"),
    _transition("escalate", ("requested",), "requested", "escalated", "platform"),
    _transition("fail", ("requested",), "failed", "no-expert-available", "platform"),
    _transition("start", ("accepted",), "in-progress", "in-review", "owner"),
    _transition("refer-up", ("accepted", "in-progress"), "requested", "referred-up", "owner"),
    _transition("request-clarification", ("accepted", "in-progress"), "on-hold",
                "awaiting-clarification", "owner"),
    _transition("resubmit", ("on-hold",), "in-progress", "resubmitted", "requester"),
    _transition("complete", ("accepted", "in-progress"), "completed", "report-available",
                "owner"),
    _transition("cancel", ("draft", "requested", "accepted", "in-progress", "on-hold"),
                "cancelled", "cancelled-by-requester", "requester"),
)}
"""Every transition, by name (the named operations are ``$<name>``)."""


class IllegalTransition(ValueError):
    """A move the machine does not allow from the Task's status, or not to this actor; the
    message (French and English) names what is allowed."""

    def __init__(self, message_fr: str, message_en: str, *,
                 allowed: tuple[str, ...]) -> None:
        super().__init__(message_en)
        self.message_fr = message_fr
        self.message_en = message_en
        self.allowed = allowed


def transitions_from(status: str) -> tuple[Transition, ...]:
    """The transitions that may leave ``status`` (none from a final one)."""
    return tuple(t for t in TRANSITIONS.values() if status in t.sources)


def check_transition(name: str, status: str, actors: frozenset[Actor]) -> Transition:
    """The transition ``name`` from ``status`` performed by someone who is ``actors``; raises
    ``IllegalTransition`` naming the allowed moves when the machine refuses it."""
    transition = TRANSITIONS.get(name)
    allowed = tuple(t.name for t in transitions_from(status))
    if transition is None or status not in transition.sources:
        raise IllegalTransition(
            f"Transition « {name} » impossible depuis le statut « {status} » ; possibles : "
            f"{_listed(allowed, 'fr')}.",
            f"The transition '{name}' is not possible from the status '{status}'; allowed: "
            f"{_listed(allowed, 'en')}.", allowed=allowed)
    if transition.actor not in actors:
        yours = tuple(t.name for t in transitions_from(status) if t.actor in actors)
        raise IllegalTransition(
            f"« {name} » est réservé à : {_ACTOR_FR[transition.actor]} ; possibles pour vous : "
            f"{_listed(yours, 'fr')}.",
            f"'{name}' is for {_ACTOR_EN[transition.actor]}; allowed to you: "
            f"{_listed(yours, 'en')}.", allowed=yours)
    return transition


def transition_of_change(before_status: str, after_status: str, *, owner_before: str | None,
                         owner_after: str | None, tier_before: str | None,
                         tier_after: str | None, declined_before: frozenset[str],
                         declined_after: frozenset[str]) -> Transition | None:
    """The transition a Task update (PUT or PATCH) makes, from the elements it changes; None
    when it changes none of status, owner, tier or declines (an ordinary edit). Raises
    ``IllegalTransition`` for a change no transition makes."""
    if (before_status == after_status and owner_before == owner_after
            and tier_before == tier_after and declined_before == declined_after):
        return None
    for transition in _candidates(before_status, after_status):
        if _shape_matches(transition, owner_before, owner_after, tier_before, tier_after,
                          declined_before, declined_after):
            return transition
    allowed = tuple(t.name for t in transitions_from(before_status))
    raise IllegalTransition(
        f"Ce changement de la tâche ({before_status} → {after_status}) ne correspond à aucune "
        f"transition permise ; possibles : {_listed(allowed, 'fr')}.",
        f"This change of the Task ({before_status} → {after_status}) is no allowed transition; "
        f"allowed: {_listed(allowed, 'en')}.", allowed=allowed)


def _candidates(before: str, after: str) -> tuple[Transition, ...]:
    return tuple(t for t in TRANSITIONS.values() if before in t.sources and t.target == after)


def _shape_matches(transition: Transition, owner_before: str | None, owner_after: str | None,
                   tier_before: str | None, tier_after: str | None,
                   declined_before: frozenset[str], declined_after: frozenset[str]) -> bool:
    """Whether the changed elements are exactly what ``transition`` changes."""
    owner_same, tier_same = owner_before == owner_after, tier_before == tier_after
    declines_same = declined_before == declined_after
    added = declined_after - declined_before
    match transition.name:
        case "claim":
            return owner_after is not None and owner_before is None and tier_same \
                and declines_same
        case "decline":
            return owner_same and tier_same and len(added) == 1 \
                and declined_before <= declined_after
        case "escalate" | "refer-up":
            raised = _tier_rank(tier_after) == _tier_rank(tier_before) + 1
            return raised and owner_after is None and declines_same
        case _:
            return owner_same and tier_same and declines_same


_TIERS: Final = ("tier-1", "tier-2", "tier-3")


def _tier_rank(tier: str | None) -> int:
    return _TIERS.index(tier) if tier in _TIERS else -10


def next_tier(tier: str) -> str | None:
    """The tier above ``tier``; None above the dermatologists (tier 3)."""
    rank = _tier_rank(tier)
    return _TIERS[rank + 1] if 0 <= rank < len(_TIERS) - 1 else None


_ACTOR_FR: Final[dict[Actor, str]] = {
    "requester": "la pharmacie demandeuse", "owner": "le médecin qui a pris en charge le cas",
    "eligible-doctor": "un médecin vérifié du niveau sollicité", "platform": "la plateforme"}
_ACTOR_EN: Final[dict[Actor, str]] = {
    "requester": "the requesting pharmacy", "owner": "the doctor who owns the case",
    "eligible-doctor": "a verified doctor of the tier the case is offered to",
    "platform": "the platform"}


def _listed(names: tuple[str, ...], language: Literal["fr", "en"]) -> str:
    if not names:
        return "aucune" if language == "fr" else "none"
    return ", ".join(f"${name}" for name in names)
