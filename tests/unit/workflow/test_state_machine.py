"""The Task state machine: every move of domain-model.md, its actor, and what a PUT/PATCH
change amounts to."""

from __future__ import annotations

import pytest

from fhir_server.workflow.state_machine import (
    FINAL_STATUSES,
    TRANSITIONS,
    IllegalTransition,
    Transition,
    check_transition,
    next_tier,
    transition_of_change,
    transitions_from,
)

EXPECTED = {
    "submit": ({"draft"}, "requested", "requester"),
    "claim": ({"requested"}, "accepted", "eligible-doctor"),
    "decline": ({"requested"}, "requested", "eligible-doctor"),
    "escalate": ({"requested"}, "requested", "platform"),
    "fail": ({"requested"}, "failed", "platform"),
    "start": ({"accepted"}, "in-progress", "owner"),
    "refer-up": ({"accepted", "in-progress"}, "requested", "owner"),
    "request-clarification": ({"accepted", "in-progress"}, "on-hold", "owner"),
    "resubmit": ({"on-hold"}, "in-progress", "requester"),
    "complete": ({"accepted", "in-progress"}, "completed", "owner"),
    "cancel": ({"draft", "requested", "accepted", "in-progress", "on-hold"}, "cancelled",
               "requester"),
}


def test_the_table_is_the_domain_models() -> None:
    assert {name: (set(t.sources), t.target, t.actor) for name, t in TRANSITIONS.items()} \
        == EXPECTED


def test_nothing_leaves_a_final_status() -> None:
    for status in FINAL_STATUSES:
        assert transitions_from(status) == ()
        with pytest.raises(IllegalTransition) as refused:
            check_transition("cancel", status, frozenset({"requester"}))
        assert refused.value.allowed == ()
        assert "none" in refused.value.message_en and "aucune" in refused.value.message_fr


def test_an_illegal_move_names_the_allowed_ones() -> None:
    with pytest.raises(IllegalTransition) as refused:
        check_transition("complete", "requested", frozenset({"owner"}))
    assert set(refused.value.allowed) == {"claim", "decline", "escalate", "fail", "cancel"}
    assert "$claim" in refused.value.message_en and "$claim" in refused.value.message_fr


def test_the_actor_must_be_the_transitions() -> None:
    with pytest.raises(IllegalTransition) as refused:
        check_transition("claim", "requested", frozenset({"requester"}))
    assert refused.value.allowed == ("cancel",)
    assert "verified doctor" in refused.value.message_en
    claim = check_transition("claim", "requested", frozenset({"eligible-doctor"}))
    assert (claim.target, claim.business_status) == ("accepted", "claimed")


def change(before: str, after: str, *, owner_before: str | None = None,
           owner_after: str | None = None, tier_after: str = "tier-1",
           declined_after: frozenset[str] = frozenset()) -> Transition | None:
    """What a Task update changing these elements (tier 1 before, no declines) amounts to."""
    return transition_of_change(before, after, owner_before=owner_before,
                                owner_after=owner_after, tier_before="tier-1",
                                tier_after=tier_after, declined_before=frozenset(),
                                declined_after=declined_after)


def test_a_put_that_claims_is_the_claim_transition() -> None:
    found = change("requested", "accepted", owner_after="PractitionerRole/d")
    assert found is not None and found.name == "claim"


def test_a_put_adding_one_decline_is_a_decline() -> None:
    found = change("requested", "requested", declined_after=frozenset({"PractitionerRole/d"}))
    assert found is not None and found.name == "decline"


def test_a_put_raising_the_tier_is_an_escalation_or_a_referral() -> None:
    found = change("requested", "requested", tier_after="tier-2")
    assert found is not None and found.name == "escalate"
    found = change("in-progress", "requested", tier_after="tier-2",
                   owner_before="PractitionerRole/d")
    assert found is not None and found.name == "refer-up"


def test_an_ordinary_edit_is_no_transition() -> None:
    assert change("accepted", "accepted") is None


@pytest.mark.parametrize(("before", "after", "tier_after", "declined_after"), [
    ("requested", "completed", "tier-1", frozenset()),
    ("requested", "accepted", "tier-1", frozenset()),
    ("requested", "requested", "tier-3", frozenset()),
    ("requested", "requested", "tier-1", frozenset({"a", "b"})),
    ("on-hold", "completed", "tier-1", frozenset()),
    ("completed", "in-progress", "tier-1", frozenset()),
])
def test_changes_no_transition_makes_are_refused(before: str, after: str, tier_after: str,
                                                 declined_after: frozenset[str]) -> None:
    with pytest.raises(IllegalTransition):
        change(before, after, tier_after=tier_after, declined_after=declined_after)


def test_tiers_climb_to_the_dermatologists_and_stop() -> None:
    assert next_tier("tier-1") == "tier-2"
    assert next_tier("tier-2") == "tier-3"
    assert next_tier("tier-3") is None
    assert next_tier("pharmacist") is None
