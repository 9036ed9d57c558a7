"""Invariants: the FHIRPath ``constraint``s of a snapshot's elements, evaluated with fhirpathpy.

Spec: https://hl7.org/fhir/R4/conformance-rules.html#constraints. Each constraint is evaluated
on every value its element governs (a visit of the walk), with ``%resource`` the resource
holding the value and ``%rootResource`` the resource holding that one when it is contained.
It fails when the expression gives ``false``; an empty result (e.g. dates of different
precision compared) is not a failure. ``severity = error`` gives an error, ``warning`` a warning.
The constraints of a value's element, of its slice and of its type's own definition apply,
each key once.

Each expression is compiled once, and the constraints of each combination of definitions are
listed once. The core invariants evaluated most often (``ele-1`` on every element, ``ext-1``,
``ref-1``, ``dom-2``…``dom-6``, the Bundle ones…) and those comparing dates (``per-1``, Task
``inv-1``, ``mdd-1``, which fhirpathpy compares as text) are computed in Python when their text is
the published one (``fast_invariants.py``). fhirpathpy lacks ``hasValue()``: it is given one.

Core invariants left out (``SKIPPED``) or rewritten (``REWRITTEN``), each for the reason given;
``tests/unit/validation/test_invariants.py`` shows which fail in fhirpathpy and why.
An expression that raises, or does not parse (fhirpathpy would read past some syntax errors,
e.g. ``status == 'x'``, so each expression is first parsed strictly), is reported as an
information issue, never an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import fhirpathpy
from antlr4 import CommonTokenStream, InputStream
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from fhir_server.errors import Issue, IssueType
from fhir_server.validation.fast_invariants import (
    DOM_3,
    REF_1,
    FastCheck,
    fast_check,
    has_value_or_children,
)
from fhir_server.validation.messages import (
    INVARIANT_FAILED,
    INVARIANT_NOT_EVALUATED,
    located_issue,
    make_issue,
)
from fhir_server.validation.snapshot import Constraint, ElementDef
from fhir_server.validation.walk import Visit, Walk


@dataclass(frozen=True, slots=True)
class Deviation:
    """A core invariant handled otherwise than by its published expression, and why."""

    key: str
    expression: str
    reason: str
    replacement: str | None = None


SKIPPED: Final[Mapping[str, Deviation]] = {e.key: e for e in (
    Deviation("txt-1", "htmlChecks()",
              "htmlChecks() (the XHTML subset of narratives) is not a FHIRPath function "
              "fhirpathpy has; the structure layer checks that the div is XHTML"),
    Deviation("txt-2", "htmlChecks()",
              "htmlChecks() (non-whitespace narrative content) is not a FHIRPath function "
              "fhirpathpy has"),
    Deviation("ctm-1", "onBehalfOf.exists() implies (member.resolve().iif(empty(), true, "
              "ofType(Practitioner).exists()))",
              "resolve() needs the referenced resource, which a validator of one resource "
              "does not have (fhirpathpy has no resolve())"),
)}
"""Core invariants not evaluated, by key (only with the published expression)."""

REWRITTEN: Final[Mapping[str, Deviation]] = {e.key: e for e in (
    Deviation(
        "dom-3", DOM_3,
        "fhirpathpy raises on as() applied to a collection of several items (as FHIRPath "
        "later required), which the R4 expression does on descendants(); ofType() is the "
        "filtering it means",
        replacement="contained.where((('#'+id in (%resource.descendants().reference | "
        "%resource.descendants().ofType(canonical) | %resource.descendants().ofType(uri) | "
        "%resource.descendants().ofType(url))) or descendants().where(reference = '#').exists() "
        "or descendants().where(ofType(canonical) = '#').exists()).not()).empty()"),
    Deviation(
        "ref-1", REF_1,
        "the R4 text refuses the reference '#' to the container, which dom-3 allows a contained "
        "resource to make; R5 corrected it so",
        replacement="reference.exists() implies (reference.startsWith('#').not() or "
        "(reference.substring(1) in %rootResource.contained.id) or (reference = '#' and "
        "%rootResource != %resource))"),
    Deviation(
        "que-7", "operator = 'exists' implies (answer is Boolean)",
        "Boolean is the FHIRPath System type, which fhirpathpy does not match against a FHIR "
        "boolean (answerBoolean); the FHIR type name says what is meant",
        replacement="operator = 'exists' implies (answer is boolean)"),
    Deviation(
        "rng-2", "low.empty() or high.empty() or (low <= high)",
        "fhirpathpy raises on <= between two Quantity values; their values are compared when "
        "both have the same unit code (or none), and not otherwise",
        replacement="low.empty() or high.empty() or iif((low.code.empty() and "
        "high.code.empty()) or low.code = high.code, low.value <= high.value, true)"),
)}
"""Core invariants evaluated with an equivalent expression, by key."""

CORE_HUMAN_FR: Final[Mapping[str, str]] = {
    "All FHIR elements must have a @value or children":
        "tout élément FHIR doit avoir une valeur ou des éléments enfants",
    "Must have either extensions or value[x], not both":
        "une extension doit avoir soit des extensions, soit une valeur value[x], pas les deux",
    "If the resource is contained in another resource, it SHALL NOT contain nested Resources":
        "une ressource contenue dans une autre ne doit pas elle-même contenir de ressources",
    "If the resource is contained in another resource, it SHALL be referred to from elsewhere "
    "in the resource or SHALL refer to the containing resource":
        "une ressource contenue doit être référencée ailleurs dans la ressource qui la "
        "contient, ou faire référence à celle-ci",
    "If a resource is contained in another resource, it SHALL NOT have a meta.versionId or a "
    "meta.lastUpdated":
        "une ressource contenue ne doit avoir ni meta.versionId ni meta.lastUpdated",
    "If a resource is contained in another resource, it SHALL NOT have a security label":
        "une ressource contenue ne doit pas avoir d'étiquette de sécurité",
    "A resource should have narrative for robust management":
        "une ressource devrait avoir un narratif (text) pour une gestion robuste",
    "SHALL have a contained resource if a local reference is provided":
        "une référence locale (#id) doit désigner une ressource contenue",
    "If present, start SHALL have a lower value than end":
        "si elles sont présentes, la date de début doit précéder la date de fin",
    "If a code for the unit is present, the system SHALL also be present":
        "si un code d'unité est présent, son système doit l'être aussi",
    "A system is required if a value is provided.":
        "un système est obligatoire quand une valeur est fournie",
    "If the Attachment has data, it SHALL have a contentType":
        "une pièce jointe avec des données doit avoir un contentType",
    "Last modified date must be greater than or equal to authored-on date.":
        "la date de dernière modification doit être postérieure ou égale à la date de "
        "création",
}
"""French for the core invariants most often met, by their English text; the others are
quoted in English within the French message."""


def _has_value(items: list[Any]) -> bool:
    """FHIRPath ``hasValue()`` (which fhirpathpy lacks): a single primitive with a value."""
    return len(items) == 1 and items[0] is not None and not isinstance(items[0], dict | list)


_OPTIONS: Final[dict[str, Any]] = {
    "userInvocationTable": {"hasValue": {"fn": _has_value}},
    "traceFn": lambda label, value: None,
}
_MODEL: Final = models["r4"]
_BACKBONE_TYPES: Final = frozenset({"BackboneElement", "Element"})
_resource_node: Callable[..., Any] = ResourceNode
"""fhirpathpy's node constructor (untyped): data, type path, ``_name`` companion."""



@dataclass(frozen=True, slots=True)
class _Step:
    """One constraint to evaluate on a value: its Python equivalent, or its FHIRPath."""

    constraint: Constraint
    fast: FastCheck | None
    expression: str
    failure: tuple[str, str]
    """The message of a failure, in English and in French, rendered once (``_failure``)."""


class _Plan(NamedTuple):
    """The constraints to evaluate on the values of one combination of definitions."""

    steps: tuple[_Step, ...]
    values_hold: bool
    """Whether every step is ele-1, which holds on any value present that is not an object:
    such values need no evaluation."""


_PlanKey = tuple[ElementDef, ElementDef | None, ElementDef | None]


class InvariantChecker:
    """Evaluates constraints; each distinct expression is compiled once and kept, and the
    constraints of each combination of definitions are listed once."""

    def __init__(self) -> None:
        self._compiled: dict[str, Callable[..., list[Any]]] = {}
        self._plans: dict[frozenset[tuple[str, str]], dict[_PlanKey, _Plan]] = {}
        self._element_plans: dict[frozenset[tuple[str, str]], dict[ElementDef, _Plan]] = {}
        """The plans of elements alone (no slice, no type root), the most frequent."""

    @property
    def compiled_expressions(self) -> int:
        """How many distinct expressions were compiled (each once)."""
        return len(self._compiled)

    def check(self, walk: Walk, *,
              already_checked: frozenset[tuple[str, str]] = frozenset()) -> list[Issue]:
        """The failed constraints of the walk's visits; ``already_checked`` (key, expression)
        pairs are left out (the core ones, when walking a profile)."""
        issues: list[Issue] = []
        plans = self._plans.setdefault(already_checked, {})
        element_plans = self._element_plans.setdefault(already_checked, {})
        for visit in walk.visits:
            value, _, _, _, element, chosen, type_root, _ = visit
            if chosen is None and type_root is None:
                plan = element_plans.get(element)
                if plan is None:
                    plan = element_plans[element] = self._plan(visit, already_checked)
            else:
                key = (element, chosen, type_root)
                plan = plans.get(key)
                if plan is None:
                    plan = plans[key] = self._plan(visit, already_checked)
            if plan.values_hold and value is not None and not isinstance(value, dict):
                continue
            for step in plan.steps:
                # The common cases inline: a Python check that gives its verdict.
                fast = step.fast
                if fast is not None:
                    try:
                        verdict = fast(visit)
                    except Exception:  # _evaluate runs it again and reports the failure
                        verdict = None
                    if verdict is True:
                        continue
                    if verdict is False:
                        issues.append(_failed(step, visit))
                        continue
                issue = self._evaluate(step, visit)
                if issue is not None:
                    issues.append(issue)
        return issues

    def evaluate_fhirpath(self, constraint: Constraint, visit: Visit) -> bool | None:
        """The verdict of fhirpathpy alone (no Python equivalent), for comparisons."""
        return self._verdict(self._function(_expression_of(constraint))(
            _node(visit), {"resource": visit.frame.resource, "rootResource": visit.frame.root}))

    @staticmethod
    def _plan(visit: Visit, done: frozenset[tuple[str, str]]) -> _Plan:
        """The steps of the visit's definitions, each constraint key once."""
        seen: set[str] = set()
        steps: list[_Step] = []
        for definition in visit.definitions:
            for constraint in definition.constraints:
                if constraint.key in seen:
                    continue
                seen.add(constraint.key)
                if (constraint.key, constraint.expression) not in done and not _is_skipped(
                        constraint):
                    steps.append(_step_of(constraint))
        return _Plan(tuple(steps), all(step.fast is has_value_or_children for step in steps))

    def _holds(self, step: _Step, visit: Visit) -> bool | None:
        if step.fast is not None:
            verdict = step.fast(visit)
            if verdict is not None:
                return verdict
        return self._verdict(self._function(step.expression)(
            _node(visit), {"resource": visit.frame.resource, "rootResource": visit.frame.root}))

    @staticmethod
    def _verdict(result: list[Any]) -> bool | None:
        if len(result) == 1 and isinstance(result[0], bool):
            return bool(result[0])
        return None if not result else True

    def _evaluate(self, step: _Step, visit: Visit) -> Issue | None:
        try:
            held = self._holds(step, visit)
        except Exception as error:  # fhirpathpy raises bare exceptions for evaluation errors
            key = step.constraint.key
            return make_issue(INVARIANT_NOT_EVALUATED, visit.location, severity="information",
                              issue_type=IssueType.INFORMATIONAL, rule=key, key=key,
                              reason=_reason(error))
        return _failed(step, visit) if held is False else None

    def _function(self, expression: str) -> Callable[..., list[Any]]:
        function = self._compiled.get(expression)
        if function is None:
            problem = syntax_error(expression)
            if problem is None:
                function = fhirpathpy.compile(expression, _MODEL, _OPTIONS)
            else:
                function = _raising(SyntaxError(problem))
            self._compiled[expression] = function
        return function


def _raising(error: Exception) -> Callable[..., list[Any]]:
    def evaluate(*args: Any) -> list[Any]:
        raise error
    return evaluate


class _Refusal(Exception):
    """Raised by the strict parse at the first syntax error."""


class _RaisingListener:
    """An ANTLR error listener that stops at the first syntax error."""

    def syntaxError(self, recognizer: Any, offending: Any, line: int, column: int,
                    message: str, error: Any) -> None:
        raise _Refusal(f"syntax error at column {column + 1}: {message.split(' expecting ')[0]}")

    def reportAmbiguity(self, *args: Any) -> None:
        """Ambiguities are resolved by the parser: nothing to report."""

    def reportAttemptingFullContext(self, *args: Any) -> None:
        """Full-context prediction is ordinary parser work: nothing to report."""

    def reportContextSensitivity(self, *args: Any) -> None:
        """Context sensitivity is ordinary parser work: nothing to report."""


def syntax_error(expression: str) -> str | None:
    """Why ``expression`` is not FHIRPath, or None when it parses."""
    listener = _RaisingListener()
    lexer: Any = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    parser: Any = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    try:
        parser.entireExpression()
    except _Refusal as refusal:
        return str(refusal)
    return None


def _step_of(constraint: Constraint) -> _Step:
    return _Step(constraint=constraint, fast=fast_check(constraint.expression),
                 expression=_expression_of(constraint), failure=_failure(constraint))


def _is_skipped(constraint: Constraint) -> bool:
    skipped = SKIPPED.get(constraint.key)
    return skipped is not None and skipped.expression == constraint.expression


def _expression_of(constraint: Constraint) -> str:
    rewritten = REWRITTEN.get(constraint.key)
    if rewritten is not None and rewritten.expression == constraint.expression:
        assert rewritten.replacement is not None
        return rewritten.replacement
    return constraint.expression


def _node(visit: Visit) -> Any:
    """The value as a fhirpathpy node typed for the R4 model."""
    if isinstance(visit.value, dict) and "resourceType" in visit.value:
        return visit.value
    type_path = visit.type_code
    if visit.type_root is None and set(visit.element.type_codes) & _BACKBONE_TYPES:
        type_path = visit.element.definition_path
    return _resource_node(visit.value, type_path, visit.companion)


def _failed(step: _Step, visit: Visit) -> Issue:
    """The issue of a constraint the visit's value does not meet."""
    english, french = step.failure
    constraint = step.constraint
    return located_issue(visit.location, english, french,
                         severity="warning" if constraint.severity == "warning" else "error",
                         issue_type=IssueType.INVARIANT, rule=constraint.key)


def _failure(constraint: Constraint) -> tuple[str, str]:
    """The message of a failed constraint, in English and in French (its French text, or its
    English one quoted in the French sentence)."""
    human_fr = constraint.human_fr or CORE_HUMAN_FR.get(constraint.human) or constraint.human
    return (INVARIANT_FAILED.en.format(key=constraint.key, human=constraint.human),
            INVARIANT_FAILED.fr.format(key=constraint.key, human=human_fr))


def _reason(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]
