"""``ValueSet/$validate-code`` and ``CodeSystem/$validate-code``, no external terminology server.

Specs: https://hl7.org/fhir/R4/valueset-operation-validate-code.html and
codesystem-operation-validate-code.html. The code comes as ``code`` (with ``system`` and
``systemVersion`` for a ValueSet, ``version`` for a CodeSystem), a ``coding`` or a
``codeableConcept`` (valid when one of its codings is), optionally with the ``display`` to
check. The ValueSet is ``ValueSet/[id]``, its ``url`` (``valueSetVersion``) or a ``valueSet``
resource; the CodeSystem is ``CodeSystem/[id]`` or its ``url`` (else the coding's system).

Answers a Parameters: ``result``; ``message`` when false, and as a warning when true with a
display that is neither the code's display nor one of its designations (the code is valid, its
display is not: as the spec asks, the result stays true); ``display``, the code's display (in
``displayLanguage`` when given). A code whose membership cannot be told here (a system not held,
a fragment) is not valid, with a message saying why. An unknown ValueSet or CodeSystem: 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from fhir_server.engine.context import EngineContext
from fhir_server.engine.operations import (
    Operation,
    OperationCall,
    OperationLevel,
    OperationResult,
)
from fhir_server.engine.terminology import inputs
from fhir_server.engine.terminology.inputs import Coding
from fhir_server.engine.terminology.sources import (
    ResolvedValueSet,
    TerminologySources,
    split_canonical,
)
from fhir_server.types import ResourceDict
from fhir_server.validation.terminology import (
    CannotExpand,
    CodeSystemIndex,
    ExpandedCode,
    ExpansionTooLarge,
    Membership,
)

VALUE_SET_DEFINITION: Final = "http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code"
CODE_SYSTEM_DEFINITION: Final = "http://hl7.org/fhir/OperationDefinition/CodeSystem-validate-code"
_LEVELS: Final[frozenset[OperationLevel]] = frozenset({"type", "instance"})


@dataclass(frozen=True, slots=True)
class Check:
    """The verdict on one coding."""

    result: bool
    message: str | None = None
    display: str | None = None


def value_set_validate_code_operation(sources: TerminologySources) -> Operation:
    """``$validate-code`` on ValueSet, at the type and instance levels."""

    async def handle(ctx: EngineContext, call: OperationCall) -> OperationResult:
        parameters = inputs.checked(call.parameters)
        codings = inputs.codings(parameters, version_name="systemVersion")
        resolved = await sources.value_set(
            ctx, url=inputs.text(parameters, "url"),
            version=inputs.text(parameters, "valueSetVersion"), id=call.id,
            inline=inputs.resource(parameters, "valueSet", "ValueSet"))
        language = inputs.text(parameters, "displayLanguage") or None
        checks = [check_in_value_set(resolved, coding, language) for coding in codings]
        return OperationResult(answer(checks))

    return Operation(name="validate-code", handler=handle, levels=_LEVELS,
                     definition=VALUE_SET_DEFINITION, types=frozenset({"ValueSet"}),
                     affects_state=False)


def code_system_validate_code_operation(sources: TerminologySources) -> Operation:
    """``$validate-code`` on CodeSystem, at the type and instance levels."""

    async def handle(ctx: EngineContext, call: OperationCall) -> OperationResult:
        parameters = inputs.checked(call.parameters)
        codings = inputs.codings(parameters)
        url = inputs.text(parameters, "url") or codings[0].system
        system, version = split_canonical(url, codings[0].version) if url else (None, None)
        index = await sources.code_system(ctx, url=system, version=version, id=call.id)
        language = inputs.text(parameters, "displayLanguage") or None
        checks = [check_in_code_system(index, coding, language) for coding in codings]
        return OperationResult(answer(checks))

    return Operation(name="validate-code", handler=handle, levels=_LEVELS,
                     definition=CODE_SYSTEM_DEFINITION, types=frozenset({"CodeSystem"}),
                     affects_state=False)


def check_in_value_set(resolved: ResolvedValueSet, coding: Coding,
                       language: str | None) -> Check:
    """Whether ``coding`` is in the ValueSet, and whether its display is right."""
    verdict = _membership(resolved, coding)
    known = resolved.terminology.describe(coding.system, coding.code, resolved.resource)
    if verdict is True:
        return _with_display(coding, known, language)
    if verdict is False:
        return Check(False, f"The code '{coding.label}' is not in the ValueSet {resolved.url}"
                     + _undefined(resolved, coding))
    return Check(False, f"Whether the code '{coding.label}' is in the ValueSet {resolved.url} "
                 "cannot be told here: it draws on a code system this server does not hold "
                 "(no external terminology server is used)")


def check_in_code_system(index: CodeSystemIndex, coding: Coding,
                         language: str | None) -> Check:
    """Whether the CodeSystem defines ``coding``, and whether its display is right."""
    if coding.system is not None and coding.system.partition("|")[0] != index.url:
        return Check(False, f"The coding's system {coding.system} is not the CodeSystem "
                     f"{index.url}")
    verdict = index.defines(coding.code)
    if verdict is None:
        return Check(False, f"Whether the CodeSystem {index.url} defines the code "
                     f"'{coding.code}' cannot be told here: this server holds only part of it")
    details = index.concepts.get(coding.code)
    if not verdict or details is None:
        return Check(False, f"The code '{coding.code}' is not defined by the CodeSystem "
                     f"{index.url}")
    known = ExpandedCode(system=index.url, code=coding.code, display=details.display,
                         version=index.version, language=index.language,
                         designations=details.designations)
    return _with_display(coding, known, language)


def answer(checks: Sequence[Check]) -> ResourceDict:
    """The Parameters of a validation: valid when one of the codings is."""
    valid = [check for check in checks if check.result]
    chosen = valid or list(checks)
    messages = [check.message for check in chosen if check.message]
    parameters: list[dict[str, Any]] = [{"name": "result", "valueBoolean": bool(valid)}]
    if messages:
        parameters.append({"name": "message", "valueString": "; ".join(messages)})
    display = next((check.display for check in chosen if check.display), None)
    if display:
        parameters.append({"name": "display", "valueString": display})
    return {"resourceType": "Parameters", "parameter": parameters}


def _membership(resolved: ResolvedValueSet, coding: Coding) -> Membership:
    if isinstance(resolved.resource.get("compose"), dict):
        return resolved.terminology.contains(resolved.url, coding.system, coding.code)
    try:
        codes = resolved.terminology.expand(resolved.resource)
    except (CannotExpand, ExpansionTooLarge):
        return None
    return any(code.code == coding.code and coding.system in (None, code.system)
               for code in codes)


def _undefined(resolved: ResolvedValueSet, coding: Coding) -> str:
    index = (resolved.terminology.code_system(coding.system) if coding.system is not None
             else None)
    if index is not None and index.defines(coding.code) is False:
        return f" (the CodeSystem {index.url} does not define it)"
    return ""


def _with_display(coding: Coding, known: ExpandedCode | None, language: str | None) -> Check:
    """A valid code: its display, and a warning when the display given is not one of it."""
    display = known.display_in(language) if known is not None else None
    if coding.display is None or known is None:
        return Check(True, display=display)
    accepted = [text for text in (known.display, *(d.value for d in known.designations)) if text]
    if not accepted or _plain(coding.display) in {_plain(text) for text in accepted}:
        return Check(True, display=display)
    expected = " or ".join(f"'{text}'" for text in accepted)
    return Check(True, f"Warning: the display '{coding.display}' is not a display of the code "
                       f"'{coding.label}' (expected {expected})", display=display)


def _plain(text: str) -> str:
    return " ".join(text.split()).casefold()
