"""SMART App Launch 2.2 scopes: parsing, what a granted set allows, narrowing, rendering.

Spec: https://hl7.org/fhir/smart-app-launch/STU2.2/scopes-and-launch-context.html (notes and
choices: ``docs/implementation/smart-scopes.md``).

- Resource scopes: ``(patient|user|system)/(Type|*).(permissions)[?restrictions]``. SMART v2
  permissions are letters of ``cruds`` in that order, each at most once; SMART v1 words are
  ``read`` (= ``rs``), ``write`` (= ``cud``) and ``*`` (= ``cruds``). Each scope remembers the
  form it was asked in, so answers give it back that way.
- Restrictions (v2 only): ``?param=value&param=value``, percent-decoded, AND-ed; the same scope
  given again with other restrictions ORs. They are search parameters, so the engine ANDs them
  into the query it runs (and checks a read or a write against them).
- Context scopes: ``openid``, ``fhirUser``, ``launch``, ``launch/patient``, ``launch/encounter``,
  ``offline_access``, ``online_access``.
- Anything else is an unknown scope: kept aside, never granted, reported by the caller. A
  resource scope naming a type that is not an R4 resource type is unknown too; a malformed
  resource scope raises ``InvalidScope`` (OAuth ``invalid_scope``).

A scope only grants in its own context: ``user/Observation.rs`` does not allow ``patient/``
access, nor the reverse. A system-wide interaction with no type (``search-system`` or
``history-system`` without ``_type``) is asked with ``resource_type=None`` and only a ``*``
scope allows it; with ``_type``, the caller asks for each type named.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Final, Literal
from urllib.parse import unquote

from fhir_server.engine.resource_types import known_types
from fhir_server.engine.search_request import RESULT_PARAMETERS

AccessContext = Literal["patient", "user", "system"]
"""Whose data a resource scope reaches: the launch patient's, the user's, or a backend's."""
Interaction = Literal["read", "vread", "history-instance", "search-type", "search-system",
                      "history-type", "history-system", "create", "update", "patch", "delete"]
ContextScopeName = Literal["openid", "fhirUser", "launch", "launch/patient", "launch/encounter",
                           "offline_access", "online_access"]
Form = Literal["v1", "v2"]
Restriction = tuple[tuple[str, str], ...]
"""AND-ed (search parameter, value) pairs; empty: unrestricted."""

WILDCARD: Final = "*"
PERMISSION_ORDER: Final = "cruds"
V1_PERMISSIONS: Final[dict[str, str]] = {"read": "rs", "write": "cud", "*": "cruds"}
"""SMART v1 permission words and the v2 letters each stands for."""
INTERACTION_LETTERS: Final[dict[str, str]] = {
    "read": "r", "vread": "r", "history-instance": "r",
    "search-type": "s", "search-system": "s", "history-type": "s", "history-system": "s",
    "create": "c", "update": "u", "patch": "u", "delete": "d"}
"""The permission letter each interaction needs."""

_ACCESS_CONTEXTS: Final[dict[str, AccessContext]] = {
    "patient": "patient", "user": "user", "system": "system"}
_CONTEXT_SCOPES: Final[dict[str, ContextScopeName]] = {
    "openid": "openid", "fhirUser": "fhirUser", "launch": "launch",
    "launch/patient": "launch/patient", "launch/encounter": "launch/encounter",
    "offline_access": "offline_access", "online_access": "online_access"}
_V1_WORDS: Final = {letters: word for word, letters in V1_PERMISSIONS.items()}
_SCOPE_TOKEN_RE: Final = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")
_TYPE_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_PARAM_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.:]*")
_BAD_PERCENT_RE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_LITERAL_CHARACTERS: Final = frozenset(
    chr(code) for code in (0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F))) - frozenset("%&=")
_NOT_RESTRICTING: Final = frozenset({*RESULT_PARAMETERS, "_type"})
_SHOWN_LENGTH: Final = 80


class InvalidScope(ValueError):
    """A malformed scope (OAuth ``invalid_scope``); the message names it and says what is wrong."""

    def __init__(self, scope: str, reason: str) -> None:
        self.scope = scope
        self.reason = reason
        shown = scope if len(scope) <= _SHOWN_LENGTH else scope[:_SHOWN_LENGTH] + "…"
        super().__init__(f"Invalid scope '{shown}': {reason}")


@dataclass(frozen=True, slots=True)
class ResourceScope:
    """``context/resource_type.permissions[?restriction]``: access to one type or all (``*``).

    ``permissions`` are always v2 letters (``cruds`` order); ``form`` says how they were asked.
    """

    context: AccessContext
    resource_type: str
    permissions: str
    form: Form = "v2"
    restriction: Restriction = ()

    def __post_init__(self) -> None:
        problem = _resource_scope_problem(self)
        if problem is not None:
            raise ValueError(problem)

    @property
    def text(self) -> str:
        """The scope as written in the form it was asked (restrictions minimally encoded)."""
        permissions = _V1_WORDS[self.permissions] if self.form == "v1" else self.permissions
        written = f"{self.context}/{self.resource_type}.{permissions}"
        if not self.restriction:
            return written
        return written + "?" + "&".join(
            f"{_encoded(name)}={_encoded(value)}" for name, value in self.restriction)

    def applies_to(self, resource_type: str | None) -> bool:
        """Whether this scope reaches ``resource_type`` (None: every type, as ``*`` does)."""
        return self.resource_type == WILDCARD or self.resource_type == resource_type

    def grants(self, context: AccessContext, letter: str, resource_type: str | None) -> bool:
        """Whether this scope gives ``letter`` on ``resource_type`` in ``context``."""
        return (self.context == context and letter in self.permissions
                and self.applies_to(resource_type))


@dataclass(frozen=True, slots=True)
class ContextScope:
    """A launch-context, identity or refresh scope (``openid``, ``launch/patient``, …)."""

    name: ContextScopeName

    @property
    def text(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class UnknownScope:
    """A scope this server does not know: ignored (never granted) and reported."""

    text: str
    reason: str


Scope = ResourceScope | ContextScope


@dataclass(frozen=True, slots=True)
class ScopeSet:
    """A set of scopes (asked or granted), in the order first asked, without duplicates.

    ``unknown``: the scopes that were ignored; they are not part of the set and never rendered.
    """

    scopes: tuple[Scope, ...] = ()
    unknown: tuple[UnknownScope, ...] = ()

    @property
    def resource_scopes(self) -> tuple[ResourceScope, ...]:
        return tuple(scope for scope in self.scopes if isinstance(scope, ResourceScope))

    def has(self, name: ContextScopeName) -> bool:
        """Whether the context scope ``name`` (``openid``, ``offline_access``, …) is in the set."""
        return ContextScope(name) in self.scopes

    def allows(self, context: AccessContext, interaction: Interaction,
               resource_type: str | None) -> bool:
        """Whether some scope of ``context`` gives the interaction's letter on the type (None:
        a system-wide interaction over every type, which needs a ``*`` scope).

        Restrictions are not looked at: ask ``restrictions`` for what they impose."""
        return bool(self._matching(context, interaction, resource_type))

    def restrictions(self, context: AccessContext, interaction: Interaction,
                     resource_type: str | None) -> tuple[Restriction, ...] | None:
        """What the interaction is limited to: None when a matching scope is unrestricted,
        else OR-ed alternatives of AND-ed (param, value) pairs to add to the search (or to check
        a resource against). An alternative implied by a looser one is left out; ``()``: no
        scope matches (nothing is allowed)."""
        matching = self._matching(context, interaction, resource_type)
        if any(not scope.restriction for scope in matching):
            return None
        return _loosest(scope.restriction for scope in matching)

    def covers(self, scope: Scope) -> bool:
        """Whether this set grants everything ``scope`` asks for.

        A context scope is covered by itself. A resource scope is covered when each of its
        letters is given by a scope of the same context, on the same type or ``*`` (a ``*``
        scope only by ``*``), whose restriction pairs are all among the asked scope's own (so
        it reaches at least what is asked: an unrestricted grant covers any restriction, a
        restricted grant never covers an unrestricted scope). The form (v1, v2) is irrelevant.
        """
        if isinstance(scope, ContextScope):
            return scope in self.scopes
        asked = frozenset(scope.restriction)
        return all(
            any(granted.context == scope.context and letter in granted.permissions
                and granted.resource_type in (WILDCARD, scope.resource_type)
                and frozenset(granted.restriction) <= asked
                for granted in self.resource_scopes)
            for letter in scope.permissions)

    def narrowed(self, requested: str) -> ScopeSet:
        """The requested scopes this set covers, in the form and order asked (a refresh, or a
        request clipped to what a client may have). Raises InvalidScope for a malformed one."""
        asked = parse_scopes(requested)
        return ScopeSet(tuple(scope for scope in asked.scopes if self.covers(scope)),
                        asked.unknown)

    def render(self) -> str:
        """The scopes, space-separated, as asked and in the order asked (for token responses)."""
        return " ".join(scope.text for scope in self.scopes)

    def _matching(self, context: AccessContext, interaction: Interaction,
                  resource_type: str | None) -> tuple[ResourceScope, ...]:
        letter = permission_letter(interaction)
        return tuple(scope for scope in self.resource_scopes
                     if scope.grants(context, letter, resource_type))


def permission_letter(interaction: Interaction) -> str:
    """The SMART v2 letter an interaction needs (read → ``r``, search-type → ``s``, …)."""
    letter = INTERACTION_LETTERS.get(interaction)
    if letter is None:
        raise ValueError(f"'{interaction}' is not an interaction scopes know of")
    return letter


def parse_scopes(text: str) -> ScopeSet:
    """Parse a space-separated scope string; raises InvalidScope for a malformed scope."""
    scopes: list[Scope] = []
    unknown: list[UnknownScope] = []
    for token in text.split(" "):
        if not token:
            continue
        parsed = parse_scope(token)
        if isinstance(parsed, UnknownScope):
            if parsed not in unknown:
                unknown.append(parsed)
        elif parsed not in scopes:
            scopes.append(parsed)
    return ScopeSet(tuple(scopes), tuple(unknown))


def parse_scope(token: str) -> Scope | UnknownScope:
    """Parse one scope; raises InvalidScope for a malformed one."""
    if not _SCOPE_TOKEN_RE.fullmatch(token):
        raise InvalidScope(token, "a scope is printable ASCII without spaces, '\"' or '\\' "
                                  "(RFC 6749 section 3.3): percent-encode other characters")
    name = _CONTEXT_SCOPES.get(token)
    if name is not None:
        return ContextScope(name)
    prefix, slash, rest = token.partition("/")
    context = _ACCESS_CONTEXTS.get(prefix) if slash else None
    if context is None:
        return UnknownScope(token, "not a scope this server knows")
    return _parse_resource_scope(token, context, rest)


def _parse_resource_scope(token: str, context: AccessContext, rest: str
                          ) -> ResourceScope | UnknownScope:
    """``Type.permissions[?query]`` after ``context/``."""
    body, question, query = rest.partition("?")
    resource_type, dot, permissions = body.partition(".")
    if not dot:
        raise InvalidScope(token, "expected '<resource type or *>.<permissions>' after the '/'")
    if resource_type != WILDCARD and not _TYPE_RE.fullmatch(resource_type):
        raise InvalidScope(token, "the resource type must be a type name or '*'")
    form, letters = _parsed_permissions(token, permissions)
    if question and form == "v1":
        raise InvalidScope(token, "'?param=value' restrictions need SMART v2 permissions "
                                  f"('{V1_PERMISSIONS[permissions]}' for '{permissions}')")
    restriction = _parsed_restriction(token, query) if question else ()
    if resource_type != WILDCARD and resource_type not in known_types():
        return UnknownScope(token, f"'{resource_type}' is not a FHIR R4 resource type")
    return ResourceScope(context, resource_type, letters, form, restriction)


def _parsed_permissions(token: str, permissions: str) -> tuple[Form, str]:
    """The form and v2 letters of ``read``, ``write``, ``*`` or ``cruds`` letters."""
    letters = V1_PERMISSIONS.get(permissions)
    if letters is not None:
        return "v1", letters
    problem = _permissions_problem(permissions)
    if problem is not None:
        raise InvalidScope(token, problem)
    return "v2", permissions


def _permissions_problem(letters: str) -> str | None:
    """What is wrong with v2 permission letters, or None."""
    if not letters:
        return "no permissions: give letters of c, r, u, d, s (or read, write, *)"
    for letter in letters:
        if letter not in PERMISSION_ORDER:
            return f"'{letter}' is not a permission (c, r, u, d, s; or read, write, *)"
    positions = [PERMISSION_ORDER.index(letter) for letter in letters]
    for before, after in pairwise(positions):
        if after == before:
            return f"the permission '{PERMISSION_ORDER[after]}' is given twice"
        if after < before:
            return "permissions must be given in the order c, r, u, d, s"
    return None


def _parsed_restriction(token: str, query: str) -> Restriction:
    """The (param, value) pairs of ``param=value&param=value``, percent-decoded."""
    if not query:
        raise InvalidScope(token, "'?' must be followed by param=value restrictions")
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        name_text, equals, value_text = part.partition("=")
        if not equals:
            raise InvalidScope(token, f"the restriction '{part}' is not param=value")
        pair = (_decoded(token, name_text), _decoded(token, value_text))
        problem = _restriction_problem(*pair)
        if problem is not None:
            raise InvalidScope(token, problem)
        pairs.append(pair)
    return tuple(pairs)


def _decoded(token: str, text: str) -> str:
    """Percent-decode (UTF-8); ``+`` stays a plus sign, as in a date's time-zone offset."""
    if _BAD_PERCENT_RE.search(text):
        raise InvalidScope(token, f"'{text}' has a '%' not followed by two hexadecimal digits")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidScope(token, f"'{text}' does not decode as UTF-8") from None


def _restriction_problem(name: str, value: str) -> str | None:
    """What makes (name, value) unable to restrict a search, or None."""
    if not _PARAM_NAME_RE.fullmatch(name):
        return f"'{name}' is not a search parameter name"
    code = re.split(r"[:.]", name, maxsplit=1)[0]
    if code in _NOT_RESTRICTING:
        return f"'{code}' does not select resources, so it cannot restrict a scope"
    if not value:
        return f"the restriction '{name}' has no value"
    if not _is_utf8(value):
        return f"the value of '{name}' is not valid text"
    return None


def _resource_scope_problem(scope: ResourceScope) -> str | None:
    """What makes a directly built ResourceScope inconsistent, or None."""
    if scope.context not in _ACCESS_CONTEXTS:
        return f"'{scope.context}' is not patient, user or system"
    if scope.resource_type != WILDCARD and scope.resource_type not in known_types():
        return f"'{scope.resource_type}' is not a FHIR R4 resource type"
    problem = _permissions_problem(scope.permissions)
    if problem is not None:
        return problem
    if scope.form == "v1" and (scope.permissions not in _V1_WORDS or scope.restriction):
        return "a v1 scope has rs, cud or cruds permissions and no restriction"
    for name, value in scope.restriction:
        problem = _restriction_problem(name, value)
        if problem is not None:
            return problem
    return None


def _loosest(alternatives: Iterable[Restriction]) -> tuple[Restriction, ...]:
    """The alternatives without those implied by another (a superset of its pairs)."""
    kept: list[tuple[frozenset[tuple[str, str]], Restriction]] = []
    for alternative in alternatives:
        pairs = frozenset(alternative)
        if any(other <= pairs for other, _ in kept):
            continue
        kept = [(other, kept_one) for other, kept_one in kept if not pairs <= other]
        kept.append((pairs, alternative))
    return tuple(alternative for _, alternative in kept)


def _encoded(text: str) -> str:
    """Percent-encode what cannot stand literally in a restriction: ``%``, ``&``, ``=``, and
    characters outside a scope token; ``|``, ``:``, ``/``, ``,`` and the like stay as written."""
    return "".join(character if character in _LITERAL_CHARACTERS
                   else "".join(f"%{byte:02X}" for byte in character.encode())
                   for character in text)


def _is_utf8(text: str) -> bool:
    """False for text holding lone surrogates, which have no UTF-8 encoding."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
