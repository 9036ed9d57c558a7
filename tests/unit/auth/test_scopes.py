"""SMART scopes: grammar, v1/v2 forms, interaction letters, contexts, restrictions, narrowing."""

from __future__ import annotations

from itertools import pairwise, product
from typing import get_args
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_server.auth.scopes import (
    INTERACTION_LETTERS,
    PERMISSION_ORDER,
    AccessContext,
    ContextScope,
    ContextScopeName,
    Interaction,
    InvalidScope,
    ResourceScope,
    ScopeSet,
    UnknownScope,
    parse_scope,
    parse_scopes,
    permission_letter,
)

CONTEXTS: tuple[AccessContext, ...] = get_args(AccessContext)
INTERACTIONS: tuple[Interaction, ...] = get_args(Interaction)
LAB = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
LAB_ENCODED = "http://terminology.hl7.org/CodeSystem/observation-category%7Claboratory"


def invalid(scope: str) -> InvalidScope:
    with pytest.raises(InvalidScope) as caught:
        parse_scopes(scope)
    return caught.value


def resource(scope: str) -> ResourceScope:
    parsed = parse_scope(scope)
    assert isinstance(parsed, ResourceScope)
    return parsed


# --- grammar --------------------------------------------------------------------------------

def test_every_permission_string_up_to_five_letters_is_valid_exactly_when_in_cruds_order() -> None:
    for length in range(1, 6):
        for letters in map("".join, product(PERMISSION_ORDER, repeat=length)):
            positions = [PERMISSION_ORDER.index(letter) for letter in letters]
            in_order = all(a < b for a, b in pairwise(positions))
            if in_order:
                scope = resource(f"patient/Observation.{letters}")
                assert (scope.permissions, scope.form) == (letters, "v2")
            else:
                with pytest.raises(InvalidScope):
                    parse_scope(f"patient/Observation.{letters}")


def test_out_of_order_and_repeated_letters_are_named_in_the_message() -> None:
    out_of_order = invalid("patient/Observation.sr")
    assert "patient/Observation.sr" in str(out_of_order)
    assert "order c, r, u, d, s" in out_of_order.reason
    assert "'r' is given twice" in invalid("user/Patient.rrs").reason


@pytest.mark.parametrize(("scope", "reason"), [
    ("patient/Observation.", "no permissions"),
    ("patient/Observation", "expected '<resource type or *>.<permissions>'"),
    ("patient/Observation.rx", "'x' is not a permission"),
    ("patient/Observation.RS", "'R' is not a permission"),
    ("patient/Observation.read.write", "'e' is not a permission"),
    ("patient/Observation.r.s", "'.' is not a permission"),
    ("patient/Observation.Read", "'R' is not a permission"),
    ("patient/.rs", "must be a type name or '*'"),
    ("patient/Obs-ervation.rs", "must be a type name or '*'"),
    ("patient/**.rs", "must be a type name or '*'"),
])
def test_malformed_resource_scopes_are_refused_with_the_reason(scope: str, reason: str) -> None:
    error = invalid(f"openid {scope} launch")
    assert error.scope == scope
    assert reason in error.reason
    assert f"Invalid scope '{scope}'" in str(error)


def test_characters_outside_a_scope_token_are_refused() -> None:
    assert "printable ASCII" in invalid('patient/Observation.rs?code="x"').reason
    assert "printable ASCII" in invalid("patient/Observation.rs?code=caf\u00e9").reason
    assert "printable ASCII" in invalid("patient/Observation.rs\tuser/Patient.r").reason


def test_a_long_invalid_scope_is_shortened_in_the_message_but_kept_whole() -> None:
    scope = "patient/Observation.rs?code=" + "x" * 300 + "&_count=1"
    error = invalid(scope)
    assert error.scope == scope
    assert len(str(error)) < 250


def test_wildcard_type_and_v1_wildcard_permissions() -> None:
    assert resource("patient/*.rs") == ResourceScope("patient", "*", "rs")
    assert resource("system/*.*") == ResourceScope("system", "*", "cruds", "v1")
    assert resource("user/Observation.*") == ResourceScope("user", "Observation", "cruds", "v1")


def test_a_well_formed_scope_on_an_unknown_type_is_kept_aside_and_grants_nothing() -> None:
    scopes = parse_scopes("patient/Foo.rs patient/Observation.r user/observation.read")
    assert scopes.unknown == (
        UnknownScope("patient/Foo.rs", "'Foo' is not a FHIR R4 resource type"),
        UnknownScope("user/observation.read", "'observation' is not a FHIR R4 resource type"))
    assert scopes.render() == "patient/Observation.r"
    assert not scopes.allows("patient", "search-type", "Foo")


def test_a_malformed_scope_on_an_unknown_type_is_still_refused() -> None:
    assert "order" in invalid("patient/Foo.sr").reason


@pytest.mark.parametrize("name", get_args(ContextScopeName))
def test_context_scopes(name: ContextScopeName) -> None:
    scopes = parse_scopes(f"patient/Patient.r {name}")
    assert scopes.scopes == (ResourceScope("patient", "Patient", "r"), ContextScope(name))
    assert scopes.has(name)
    others = [other for other in get_args(ContextScopeName) if other != name]
    assert not any(scopes.has(other) for other in others)


@pytest.mark.parametrize("scope", [
    "profile", "email", "Patient/Observation.rs", "launch/practitioner", "openID",
    "urn:example:scope", "patient", "patient.rs", "group/Observation.rs", "fhirContext/Patient"])
def test_anything_else_is_unknown_ignored_and_reported(scope: str) -> None:
    scopes = parse_scopes(f"openid {scope}")
    assert scopes.scopes == (ContextScope("openid"),)
    assert [item.text for item in scopes.unknown] == [scope]
    assert scopes.render() == "openid"


def test_empty_and_blank_strings_give_an_empty_set() -> None:
    for text in ("", " ", "   "):
        scopes = parse_scopes(text)
        assert scopes == ScopeSet()
        assert scopes.render() == ""
        assert not scopes.allows("patient", "read", "Patient")


def test_duplicates_collapse_and_extra_spaces_are_tolerated() -> None:
    scopes = parse_scopes("  openid patient/*.rs  openid patient/*.rs foo foo ")
    assert scopes.render() == "openid patient/*.rs"
    assert scopes.unknown == (UnknownScope("foo", "not a scope this server knows"),)


def test_directly_built_resource_scopes_are_checked() -> None:
    with pytest.raises(ValueError, match="v1 scope"):
        ResourceScope("patient", "Observation", "r", "v1")
    with pytest.raises(ValueError, match="v1 scope"):
        ResourceScope("patient", "Observation", "rs", "v1", (("code", "x"),))
    with pytest.raises(ValueError, match="not a FHIR R4 resource type"):
        ResourceScope("patient", "Foo", "rs")
    with pytest.raises(ValueError, match="order"):
        ResourceScope("patient", "Observation", "sr")
    with pytest.raises(ValueError, match="no value"):
        ResourceScope("patient", "Observation", "rs", "v2", (("code", ""),))


# --- v1 and v2 ------------------------------------------------------------------------------

@pytest.mark.parametrize(("word", "letters"), [("read", "rs"), ("write", "cud"), ("*", "cruds")])
def test_v1_words_allow_exactly_what_their_v2_letters_allow(word: str, letters: str) -> None:
    v1 = parse_scopes(f"user/Observation.{word}")
    v2 = parse_scopes(f"user/Observation.{letters}")
    assert resource(f"user/Observation.{word}").permissions == letters
    for interaction in INTERACTIONS:
        assert (v1.allows("user", interaction, "Observation")
                == v2.allows("user", interaction, "Observation")
                == (permission_letter(interaction) in letters))


def test_each_scope_is_rendered_in_the_form_it_was_asked() -> None:
    asked = "patient/*.read patient/*.rs user/Observation.write user/Observation.cud system/*.*"
    scopes = parse_scopes(asked)
    assert scopes.render() == asked
    assert [scope.form for scope in scopes.resource_scopes] == ["v1", "v2", "v1", "v2", "v1"]


def test_v1_words_cannot_carry_restrictions() -> None:
    error = invalid("patient/Observation.read?category=laboratory")
    assert "SMART v2 permissions ('rs' for 'read')" in error.reason


# --- interactions and contexts --------------------------------------------------------------

@pytest.mark.parametrize(("interaction", "letter"), [
    ("read", "r"), ("vread", "r"), ("history-instance", "r"),
    ("search-type", "s"), ("search-system", "s"), ("history-type", "s"), ("history-system", "s"),
    ("create", "c"), ("update", "u"), ("patch", "u"), ("delete", "d")])
def test_each_interaction_needs_its_letter(interaction: Interaction, letter: str) -> None:
    assert permission_letter(interaction) == letter
    only = parse_scopes(f"patient/Observation.{letter}")
    all_but = parse_scopes(f"patient/Observation.{PERMISSION_ORDER.replace(letter, '')}")
    assert only.allows("patient", interaction, "Observation")
    assert not all_but.allows("patient", interaction, "Observation")


def test_every_interaction_has_a_letter() -> None:
    assert set(INTERACTION_LETTERS) == set(INTERACTIONS)


def test_an_unknown_interaction_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="'operation'"):
        permission_letter("operation")  # type: ignore[arg-type]


@pytest.mark.parametrize(("granted", "asked"), [
    (granted, asked) for granted in CONTEXTS for asked in CONTEXTS])
def test_a_scope_grants_only_in_its_own_context(granted: AccessContext,
                                                asked: AccessContext) -> None:
    scopes = parse_scopes(f"{granted}/*.cruds")
    assert scopes.allows(asked, "read", "Observation") == (granted == asked)
    assert (scopes.restrictions(asked, "read", "Observation") is None) == (granted == asked)


def test_a_typed_scope_grants_only_its_type_and_a_wildcard_every_type() -> None:
    typed = parse_scopes("user/Observation.rs")
    assert typed.allows("user", "read", "Observation")
    assert not typed.allows("user", "read", "Patient")
    wildcard = parse_scopes("user/*.rs")
    assert wildcard.allows("user", "read", "Patient")
    assert wildcard.allows("user", "search-type", "Communication")


def test_a_system_wide_search_over_every_type_needs_a_wildcard_scope() -> None:
    typed = parse_scopes("system/Observation.s system/Patient.s")
    assert not typed.allows("system", "search-system", None)
    assert not typed.allows("system", "history-system", None)
    assert typed.allows("system", "search-system", "Observation")
    assert parse_scopes("system/*.s").allows("system", "search-system", None)
    assert not parse_scopes("system/*.r").allows("system", "search-system", None)


# --- restrictions ---------------------------------------------------------------------------

def test_restriction_values_are_percent_decoded() -> None:
    assert resource(f"patient/Observation.rs?category={LAB_ENCODED}").restriction == (
        ("category", LAB),)
    assert resource(f"patient/Observation.rs?category={LAB}").restriction == (("category", LAB),)
    assert resource("patient/Observation.rs?code%3Atext=caf%C3%A9%20cr%C3%A8me").restriction == (
        ("code:text", "caf\u00e9 cr\u00e8me"),)
    assert resource("patient/Observation.rs?value=a%26b%3Dc%25").restriction == (
        ("value", "a&b=c%"),)


def test_a_plus_sign_stays_a_plus_sign() -> None:
    scope = resource("patient/Observation.rs?date=ge2024-01-01T00:00:00+01:00")
    assert scope.restriction == (("date", "ge2024-01-01T00:00:00+01:00"),)


def test_several_parameters_in_one_scope_are_anded() -> None:
    scopes = parse_scopes(f"patient/Observation.rs?category={LAB_ENCODED}&status=final")
    assert scopes.restrictions("patient", "search-type", "Observation") == (
        (("category", LAB), ("status", "final")),)


def test_the_same_scope_with_other_restrictions_ors() -> None:
    scopes = parse_scopes("patient/Observation.rs?category=laboratory "
                          "patient/Observation.rs?category=vital-signs&status=final")
    assert scopes.restrictions("patient", "search-type", "Observation") == (
        (("category", "laboratory"),), (("category", "vital-signs"), ("status", "final")))
    assert scopes.restrictions("patient", "read", "Observation") == (
        (("category", "laboratory"),), (("category", "vital-signs"), ("status", "final")))


def test_an_unrestricted_matching_scope_wins() -> None:
    scopes = parse_scopes("patient/Observation.rs?category=laboratory patient/*.rs")
    assert scopes.restrictions("patient", "search-type", "Observation") is None


def test_restrictions_follow_the_letter_and_the_type() -> None:
    scopes = parse_scopes("patient/Observation.r?category=laboratory patient/Observation.s "
                          "patient/*.s?_id=1")
    assert scopes.restrictions("patient", "read", "Observation") == (
        (("category", "laboratory"),),)
    assert scopes.restrictions("patient", "search-type", "Observation") is None
    assert scopes.restrictions("patient", "search-type", "Patient") == ((("_id", "1"),),)
    assert scopes.restrictions("patient", "search-system", None) == ((("_id", "1"),),)


def test_no_matching_scope_gives_no_alternative() -> None:
    scopes = parse_scopes("patient/Observation.rs?category=laboratory")
    assert scopes.restrictions("patient", "create", "Observation") == ()
    assert scopes.restrictions("user", "read", "Observation") == ()
    assert scopes.restrictions("patient", "read", "Patient") == ()


def test_an_alternative_implied_by_a_looser_one_is_left_out() -> None:
    scopes = parse_scopes("patient/Observation.rs?category=laboratory&status=final "
                          "patient/Observation.rs?status=final "
                          "patient/Observation.rs?status=final&code=x")
    assert scopes.restrictions("patient", "search-type", "Observation") == (
        (("status", "final"),),)


@pytest.mark.parametrize(("scope", "reason"), [
    ("patient/Observation.rs?", "must be followed by param=value"),
    ("patient/Observation.rs?category", "'category' is not param=value"),
    ("patient/Observation.rs?=laboratory", "'' is not a search parameter name"),
    ("patient/Observation.rs?category=", "'category' has no value"),
    ("patient/Observation.rs?category=a&&status=final", "'' is not param=value"),
    ("patient/Observation.rs?category=a&", "'' is not param=value"),
    ("patient/Observation.rs?ca%20t=a", "'ca t' is not a search parameter name"),
    ("patient/Observation.rs?_count=5", "'_count' does not select resources"),
    ("patient/Observation.rs?_include=Observation:subject", "'_include' does not select"),
    ("patient/Observation.rs?_sort:desc=date", "'_sort' does not select"),
    ("patient/*.rs?_type=Patient", "'_type' does not select"),
    ("patient/Observation.rs?category=%zz", "'%' not followed by two hexadecimal digits"),
    ("patient/Observation.rs?category=%FF", "does not decode as UTF-8"),
])
def test_malformed_restrictions_are_refused(scope: str, reason: str) -> None:
    error = invalid(scope)
    assert error.scope == scope
    assert reason in error.reason


def test_restriction_names_may_carry_modifiers_and_chains() -> None:
    assert resource("patient/Observation.rs?subject:Patient.name=Durand&code:text=x"
                    ).restriction == (("subject:Patient.name", "Durand"), ("code:text", "x"))


# --- covers and narrowed --------------------------------------------------------------------

@pytest.mark.parametrize(("granted", "requested"), [
    ("patient/*.cruds", "patient/Observation.rs"),
    ("patient/*.cruds", "patient/*.read"),
    ("patient/*.rs", "patient/*.read"),
    ("patient/*.read", "patient/*.rs"),
    ("patient/*.read", "patient/Observation.s"),
    ("patient/Observation.read", "patient/Observation.r"),
    ("patient/*.*", "patient/Observation.write"),
    ("patient/Observation.r patient/Observation.s", "patient/Observation.rs"),
    ("patient/Observation.rs", f"patient/Observation.rs?category={LAB_ENCODED}"),
    ("patient/Observation.rs?category=laboratory",
     "patient/Observation.rs?category=laboratory&status=final"),
    ("patient/Observation.rs?category=laboratory",
     "patient/Observation.r?status=final&category=laboratory"),
    ("patient/*.rs?category=laboratory", "patient/Observation.s?category=laboratory"),
    ("offline_access openid", "offline_access"),
])
def test_covered(granted: str, requested: str) -> None:
    assert parse_scopes(granted).narrowed(requested) == parse_scopes(requested)


@pytest.mark.parametrize(("granted", "requested"), [
    ("patient/Observation.rs", "patient/*.rs"),
    ("patient/Observation.rs", "patient/Observation.cruds"),
    ("patient/Observation.rs", "patient/Observation.write"),
    ("patient/*.read", "patient/*.*"),
    ("user/*.cruds", "patient/Observation.r"),
    ("patient/*.cruds", "system/Observation.r"),
    ("patient/Observation.rs?category=laboratory", "patient/Observation.rs"),
    ("patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=vital-signs"),
    ("patient/Observation.rs?category=laboratory&status=final",
     "patient/Observation.rs?category=laboratory"),
    ("patient/Observation.r?category=laboratory patient/Observation.s",
     "patient/Observation.rs?status=final"),
    ("openid", "offline_access"),
    ("launch", "launch/patient"),
])
def test_not_covered(granted: str, requested: str) -> None:
    narrowed = parse_scopes(granted).narrowed(requested)
    assert narrowed == ScopeSet()
    assert not parse_scopes(granted).covers(parse_scopes(requested).scopes[0])


def test_narrowed_keeps_what_is_covered_in_the_form_and_order_asked() -> None:
    granted = parse_scopes("openid fhirUser offline_access patient/*.cruds")
    narrowed = granted.narrowed("patient/Observation.read user/Patient.rs offline_access "
                                "patient/Patient.rs launch/patient profile openid")
    assert narrowed.render() == "patient/Observation.read offline_access patient/Patient.rs openid"
    assert narrowed.unknown == (UnknownScope("profile", "not a scope this server knows"),)


def test_narrowed_refuses_a_malformed_request() -> None:
    with pytest.raises(InvalidScope, match=r"patient/Observation\.rsr"):
        parse_scopes("patient/*.cruds").narrowed("openid patient/Observation.rsr")


def test_narrowed_to_nothing_asked_is_empty() -> None:
    assert parse_scopes("patient/*.cruds openid").narrowed("") == ScopeSet()


# --- render ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "openid fhirUser launch/patient patient/*.rs offline_access",
    f"patient/Observation.rs?category={LAB}",
    "user/Observation.rs?code:text=caf%C3%A9%20cr%C3%A8me&status=final",
    "user/Observation.rs?value=a%26b%3Dc%25 system/*.*",
    "patient/Observation.rs?date=ge2024-01-01T00:00:00+01:00",
])
def test_render_gives_back_canonically_written_scopes(text: str) -> None:
    assert parse_scopes(text).render() == text


def test_render_encodes_only_what_it_must() -> None:
    scopes = parse_scopes(f"patient/Observation.rs?category={LAB_ENCODED}&code=%41%2C%42")
    assert scopes.render() == f"patient/Observation.rs?category={LAB}&code=A,B"
    assert parse_scopes(scopes.render()) == scopes


# --- properties -----------------------------------------------------------------------------

TYPES = ("Observation", "Patient", "*")
PARAMS = ("category", "status", "code:text")
V1_WORDS = {"rs": "read", "cud": "write", "cruds": "*"}
text_values = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)


@st.composite
def resource_scope_texts(draw: st.DrawFn, values: st.SearchStrategy[str]) -> str:
    context = draw(st.sampled_from(CONTEXTS))
    resource_type = draw(st.sampled_from(TYPES))
    letters = "".join(draw(st.lists(st.sampled_from(PERMISSION_ORDER), min_size=1,
                                    unique=True)))
    letters = "".join(sorted(letters, key=PERMISSION_ORDER.index))
    if draw(st.booleans()) and letters in V1_WORDS:
        return f"{context}/{resource_type}.{V1_WORDS[letters]}"
    pairs = draw(st.lists(st.tuples(st.sampled_from(PARAMS), values), max_size=2))
    query = "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)
    return f"{context}/{resource_type}.{letters}" + (f"?{query}" if query else "")


def scope_strings(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    one = st.one_of(resource_scope_texts(values), st.sampled_from(get_args(ContextScopeName)))
    return st.lists(one, max_size=6).map(" ".join)


def restriction_is_at_least_as_strict(narrowed: tuple[tuple[tuple[str, str], ...], ...] | None,
                                      granted: tuple[tuple[tuple[str, str], ...], ...] | None
                                      ) -> bool:
    if granted is None:
        return True
    if narrowed is None:
        return False
    return all(any(set(loose) <= set(strict) for loose in granted) for strict in narrowed)


@given(scope_strings(text_values))
def test_parse_of_render_is_the_identity(text: str) -> None:
    scopes = parse_scopes(text)
    assert parse_scopes(scopes.render()) == scopes
    assert parse_scopes(scopes.render()).render() == scopes.render()


@given(scope_strings(st.sampled_from(("a", "b"))), scope_strings(st.sampled_from(("a", "b"))))
def test_narrowed_is_within_the_granted_set(granted_text: str, requested_text: str) -> None:
    granted = parse_scopes(granted_text)
    narrowed = granted.narrowed(requested_text)
    assert all(granted.covers(scope) for scope in narrowed.scopes)
    assert set(narrowed.scopes) <= set(parse_scopes(requested_text).scopes)
    for context, interaction, resource_type in product(
            CONTEXTS, INTERACTIONS, ("Observation", "Patient", "Condition", None)):
        if narrowed.allows(context, interaction, resource_type):
            assert granted.allows(context, interaction, resource_type)
            assert restriction_is_at_least_as_strict(
                narrowed.restrictions(context, interaction, resource_type),
                granted.restrictions(context, interaction, resource_type))


@given(scope_strings(st.sampled_from(("a", "b"))))
def test_a_granted_set_covers_itself(text: str) -> None:
    granted = parse_scopes(text)
    assert granted.narrowed(granted.render()) == granted
