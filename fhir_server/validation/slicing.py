"""Slicing: which slice each repetition of a sliced element belongs to, by its discriminators.

Spec: https://hl7.org/fhir/R4/profiling.html#discriminator. A discriminator's ``path`` is read
both on the repetition (its values) and on each slice's definition (what the slice expects):

- ``value`` / ``pattern``: the slice's ``fixed[x]`` (equal) or ``pattern[x]`` (contained) at the
  path, or found inside a fixed/pattern value higher up (``type.coding`` in a
  ``patternCodeableConcept`` on ``type``), or a required binding there (a code of its ValueSet);
  for an extension slice, ``url`` is the extension definition of the slice's type profile;
- ``exists``: the slice's element at the path is required (min ≥ 1) or forbidden (max 0);
- ``type``: the repetition's type at the path is one of the slice's types there;
- ``profile``: the value at the path conforms to one of the slice's profiles (target profiles
  after ``resolve()``, where only the type of the referred resource can be told).

Paths take the FHIRPath subset discriminators use: names (a choice element by its stem,
``value``), ``$this``, ``extension('url')``, ``resolve()`` and ``ofType(T)``. A repetition goes
to the first slice all discriminators accept. What a slice expects is worked out once per
(slice, discriminator); one that cannot be (no fixed value at the path, an unsupported path) is
reported as a problem of the profile, and no repetition matches that slice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from fhir_server.validation.references import reference_target_type
from fhir_server.validation.snapshot import Discriminator, ElementDef
from fhir_server.validation.terminology import Terminology

Conforms = Callable[[Any, str, str], bool]
"""``conforms(value, type_code, profile_url)``: whether a value conforms to a profile."""

_STEP: Final = re.compile(
    r"\s*(?:(?P<this>\$this)|extension\(\s*'(?P<extension>[^']*)'\s*\)|(?P<resolve>resolve\(\))"
    r"|ofType\(\s*(?P<of_type>[A-Za-z]+)\s*\)|(?P<name>[A-Za-z][A-Za-z0-9_]*))\s*")
_PRIMITIVE_NAMES: Final = frozenset({
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id",
    "instant", "integer", "markdown", "oid", "positiveInt", "string", "time", "unsignedInt",
    "uri", "url", "uuid", "xhtml"})

Kind = Literal["fixed", "pattern", "binding", "exists", "absent", "types", "profiles"]


class PathError(ValueError):
    """A discriminator path outside the supported subset."""


StepKind = Literal["this", "extension", "resolve", "of_type", "name"]


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    argument: str = ""


@dataclass(frozen=True, slots=True)
class Expectation:
    """What one slice expects at one discriminator path."""

    kind: Kind
    value: Any


@dataclass(frozen=True, slots=True)
class Assignment:
    """The slice of each repetition (None: in no slice) and the profile's problems found."""

    slices: tuple[ElementDef | None, ...]
    problems: tuple[str, ...]


def parse_path(path: str) -> tuple[Step, ...]:
    """The steps of a discriminator path; ``PathError`` outside the supported subset."""
    steps: list[Step] = []
    for part in _split_dots(path):
        match = _STEP.fullmatch(part)
        if match is None:
            raise PathError(f"unsupported discriminator path {path!r}")
        kind = match.lastgroup
        assert kind is not None
        steps.append(Step(kind=cast(StepKind, kind), argument=match.group(kind)))
    return tuple(steps)


def _split_dots(path: str) -> list[str]:
    """``a.extension('http://x.org/y').b`` split at the dots outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in path:
        if char == "'":
            quoted = not quoted
        if char == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values, where ``true`` is not ``1``."""
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    return bool(left == right) and not isinstance(left, dict | list)


def matches_pattern(actual: Any, pattern: Any) -> bool:
    """Whether ``actual`` contains ``pattern``: every property of the pattern is present with a
    matching value, and every item of a pattern array matches some item of the value."""
    if isinstance(pattern, dict):
        return isinstance(actual, dict) and all(
            key in actual and matches_pattern(actual[key], value) for key, value in pattern.items())
    if isinstance(pattern, list):
        items = actual if isinstance(actual, list) else [actual]
        return all(any(matches_pattern(item, wanted) for item in items) for wanted in pattern)
    return json_equal(actual, pattern)


def values_at(value: Any, type_code: str, steps: Sequence[Step]) -> list[tuple[Any, str]]:
    """The values a discriminator path selects in a repetition, each with its FHIR type
    (``""`` when the path does not tell it)."""
    current: list[tuple[Any, str]] = [(value, type_code)]
    for step in steps:
        if step.kind == "this":
            continue
        following: list[tuple[Any, str]] = []
        for item, item_type in current:
            following.extend(_step_values(item, item_type, step))
        current = following
    return current


def _step_values(item: Any, item_type: str, step: Step) -> list[tuple[Any, str]]:
    if step.kind == "of_type":
        return [(item, item_type)] if _type_is(item, item_type, step.argument) else []
    if step.kind == "resolve":
        target = reference_target_type(item) if isinstance(item, dict) else None
        return [({"resourceType": target}, target)] if target else []
    if not isinstance(item, dict):
        return []
    if step.kind == "extension":
        return [(e, "Extension") for e in item.get("extension") or ()
                if isinstance(e, dict) and e.get("url") == step.argument]
    name = step.argument
    if name in item:
        return [(v, _json_type(v)) for v in _as_list(item[name])]
    found: list[tuple[Any, str]] = []
    for key, child in item.items():
        if key.startswith(name) and key[len(name):][:1].isupper():
            found.extend((v, _choice_type(key[len(name):])) for v in _as_list(child))
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _json_type(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return str(value["resourceType"])
    return ""


def _choice_type(suffix: str) -> str:
    lowered = suffix[:1].lower() + suffix[1:]
    return lowered if lowered in _PRIMITIVE_NAMES else suffix


def _type_is(item: Any, item_type: str, wanted: str) -> bool:
    if item_type:
        return item_type == wanted
    return isinstance(item, dict) and item.get("resourceType") == wanted


class SliceMatcher:
    """Assigns repetitions to slices; what each slice expects is worked out once."""

    def __init__(self, terminology: Terminology, conforms: Conforms) -> None:
        self._terminology = terminology
        self._conforms = conforms
        self._expected: dict[tuple[ElementDef, Discriminator], Expectation | str] = {}
        self._steps: dict[str, tuple[Step, ...] | str] = {}

    def assign(self, element: ElementDef,
               items: Sequence[tuple[Any, str]]) -> Assignment:
        """The slice of each ``(value, type_code)`` repetition of ``element``."""
        discriminators = element.slicing.discriminators if element.slicing else ()
        problems: list[str] = []
        if element.slices and not discriminators:
            problems.append("the slicing names no discriminator")
        usable: list[ElementDef] = []
        for candidate in element.slices:
            reasons = [r for d in discriminators
                       if isinstance(r := self._expectation(candidate, d), str)]
            problems.extend(f"slice {candidate.slice_name}: {r}" for r in reasons)
            if discriminators and not reasons:
                usable.append(candidate)
        chosen = tuple(self._first_match(usable, discriminators, value, type_code)
                       for value, type_code in items)
        return Assignment(slices=chosen, problems=tuple(dict.fromkeys(problems)))

    def _first_match(self, candidates: Sequence[ElementDef],
                     discriminators: Sequence[Discriminator], value: Any,
                     type_code: str) -> ElementDef | None:
        for candidate in candidates:
            if all(self._accepts(candidate, d, value, type_code) for d in discriminators):
                return candidate
        return None

    def _accepts(self, candidate: ElementDef, discriminator: Discriminator, value: Any,
                 type_code: str) -> bool:
        expectation = self._expectation(candidate, discriminator)
        steps = self._parsed(discriminator.path)
        if isinstance(expectation, str) or isinstance(steps, str):
            return False
        found = values_at(value, type_code, steps)
        return self._satisfies(expectation, found)

    def _satisfies(self, expectation: Expectation, found: list[tuple[Any, str]]) -> bool:
        values = [v for v, _ in found]
        wanted = expectation.value
        kind = expectation.kind
        if kind == "exists":
            return bool(values)
        if kind == "absent":
            return not values
        if kind == "fixed":
            if isinstance(wanted, list):
                return json_equal(values, wanted)
            return any(json_equal(v, wanted) for v in values)
        if kind == "pattern":
            if isinstance(wanted, list):
                return all(any(matches_pattern(v, w) for v in values) for w in wanted)
            return any(matches_pattern(v, wanted) for v in values)
        if kind == "binding":
            return any(self._terminology.contains(wanted, system, code) is True
                       for v in values for system, code in codes_of(v))
        if kind == "types":
            return any(t in wanted for _, t in found)
        return any(self._conforms(v, t, url) for v, t in found for url in wanted)

    def _parsed(self, path: str) -> tuple[Step, ...] | str:
        steps = self._steps.get(path)
        if steps is None:
            try:
                steps = parse_path(path)
            except PathError as error:
                steps = str(error)
            self._steps[path] = steps
        return steps

    def _expectation(self, candidate: ElementDef,
                     discriminator: Discriminator) -> Expectation | str:
        key = (candidate, discriminator)
        found = self._expected.get(key)
        if found is None:
            found = self._work_out(candidate, discriminator)
            self._expected[key] = found
        return found

    def _work_out(self, candidate: ElementDef, discriminator: Discriminator) -> Expectation | str:
        steps = self._parsed(discriminator.path)
        if isinstance(steps, str):
            return steps
        element = candidate
        resolved = False
        for index, step in enumerate(steps):
            if step.kind in ("this", "of_type"):
                continue
            if step.kind == "resolve":
                resolved = True
                continue
            inner = _inside_value(element, steps[index:], discriminator.type)
            if inner is not None:
                return inner
            following = _child(element, step)
            if following is None:
                return _extension_url(element, step, discriminator) or (
                    f"no definition at {discriminator.path!r}")
            element = following
        return _expected_of(element, discriminator, resolved)


def _child(element: ElementDef, step: Step) -> ElementDef | None:
    if step.kind == "extension":
        holder = element.children.get("extension")
        for candidate in holder.slices if holder else ():
            if _extension_slice_url(candidate) == step.argument:
                return candidate
        return None
    return element.children.get(step.argument) or element.children.get(f"{step.argument}[x]")


def _extension_slice_url(candidate: ElementDef) -> str | None:
    url_element = candidate.children.get("url")
    if url_element is not None and isinstance(url_element.fixed, str):
        return url_element.fixed
    for type_ref in candidate.types:
        if type_ref.profiles:
            return type_ref.profiles[0]
    return None


def _extension_url(element: ElementDef, step: Step,
                   discriminator: Discriminator) -> Expectation | None:
    """``url`` of an extension slice defined by its type profile only."""
    if step.kind == "name" and step.argument == "url" and discriminator.type in (
            "value", "pattern"):
        url = _extension_slice_url(element)
        if url is not None:
            return Expectation(kind="fixed", value=url)
    return None


def _inside_value(element: ElementDef, rest: Sequence[Step],
                  discriminator_type: str) -> Expectation | None:
    """A value discriminator read inside a fixed/pattern value set on an element above it."""
    if discriminator_type not in ("value", "pattern") or not rest:
        return None
    if not (element.has_fixed or element.has_pattern) or any(s.kind != "name" for s in rest):
        return None
    source = element.fixed if element.has_fixed else element.pattern
    values: list[Any] = [source]
    for step in rest:
        values = [v for item in values if isinstance(item, dict) and step.argument in item
                  for v in _as_list(item[step.argument])]
    if not values:
        return None
    kind: Kind = "fixed" if element.has_fixed else "pattern"
    return Expectation(kind=kind, value=values if len(values) > 1 else values[0])


def _expected_of(element: ElementDef, discriminator: Discriminator,
                 resolved: bool) -> Expectation | str:
    kind = discriminator.type
    if kind in ("value", "pattern"):
        if element.has_fixed:
            return Expectation(kind="fixed", value=element.fixed)
        if element.has_pattern:
            return Expectation(kind="pattern", value=element.pattern)
        if element.binding is not None and element.binding.strength == "required":
            return Expectation(kind="binding", value=element.binding.value_set)
        return f"no fixed value, pattern or required binding at {discriminator.path!r}"
    if kind == "exists":
        if element.min >= 1:
            return Expectation(kind="exists", value=True)
        if element.max == 0:
            return Expectation(kind="absent", value=False)
        return f"{discriminator.path!r} is neither required nor forbidden"
    if kind == "type":
        return Expectation(kind="types", value=frozenset(element.type_codes))
    if kind == "profile":
        urls = tuple(url for t in element.types
                     for url in (t.target_profiles if resolved else t.profiles))
        if not urls:
            return f"no profile at {discriminator.path!r}"
        return Expectation(kind="profiles", value=urls)
    return f"unknown discriminator type {kind!r}"


def codes_of(value: Any) -> list[tuple[str | None, str]]:
    """The (system, code) pairs a coded value carries: a code, Coding, CodeableConcept or
    Quantity (system None for a plain code)."""
    if isinstance(value, str):
        return [(None, value)]
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("coding"), list):
        return [pair for coding in value["coding"] for pair in codes_of(coding)]
    code = value.get("code")
    if isinstance(code, str):
        system = value.get("system")
        return [(system if isinstance(system, str) else None, code)]
    return []
