"""``CodeSystem/$lookup`` (https://hl7.org/fhir/R4/codesystem-operation-lookup.html), over the
CodeSystems held here (core R4, the guide's) and stored ones.

``GET|POST [base]/CodeSystem/$lookup?system=…&code=…[&version=…]`` or with a ``coding``.
Answers a Parameters: ``name`` (the CodeSystem's name, else its url), ``version`` when known,
``display`` (in ``displayLanguage`` when the code system has a designation in it; the vendored
core R4 code systems carry codes and hierarchy only, so their codes have no display here),
``designation`` (language, use, value) and ``property`` entries: ``parent`` and ``child`` codes,
and the properties the CodeSystem declares. ``property`` inputs restrict the properties (and
designations) returned to those named. A code system not held, or a code it does not define:
404 OperationOutcome.
"""

from __future__ import annotations

from typing import Any, Final

from fhir_server.engine.context import EngineContext
from fhir_server.engine.operations import Operation, OperationCall, OperationResult
from fhir_server.engine.terminology import inputs
from fhir_server.engine.terminology.sources import TerminologySources, split_canonical
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.types import ResourceDict
from fhir_server.validation.terminology import (
    CodeSystemIndex,
    ConceptDetails,
    ExpandedCode,
)

DEFINITION: Final = "http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup"
DESIGNATION: Final = "designation"


def lookup_operation(sources: TerminologySources) -> Operation:
    """``$lookup`` on CodeSystem, at the type level."""

    async def handle(ctx: EngineContext, call: OperationCall) -> OperationResult:
        parameters = inputs.checked(call.parameters)
        (coding,) = _one_coding(parameters)
        if coding.system is None:
            raise inputs.bad("system", "give the code system of the code")
        system, version = split_canonical(coding.system, coding.version)
        index = await sources.code_system(ctx, url=system, version=version)
        details = index.concepts.get(coding.code)
        if details is None:
            raise FhirError(ErrorCode.NOT_FOUND,
                            f"The code '{coding.code[:100]}' is not defined by the CodeSystem "
                            f"{index.url[:200]}", expression=("code",))
        wanted = frozenset(inputs.names(parameters, "property"))
        language = inputs.text(parameters, "displayLanguage") or None
        return OperationResult(looked_up(index, details, language=language, wanted=wanted))

    return Operation(name="lookup", handler=handle, levels=frozenset({"type"}),
                     definition=DEFINITION, types=frozenset({"CodeSystem"}),
                     affects_state=False)


def _one_coding(parameters: ResourceDict) -> tuple[inputs.Coding]:
    found = inputs.codings(parameters)
    if len(found) != 1:
        raise inputs.bad("codeableConcept", "$lookup takes one code: give code or coding")
    return (found[0],)


def looked_up(index: CodeSystemIndex, details: ConceptDetails, *, language: str | None,
              wanted: frozenset[str]) -> ResourceDict:
    """The Parameters answering a lookup of ``details`` in ``index``."""
    code = ExpandedCode(system=index.url, code=details.code, display=details.display,
                        version=index.version, language=index.language,
                        designations=details.designations)
    parameters: list[dict[str, Any]] = [{"name": "name", "valueString": index.name or index.url}]
    if index.version:
        parameters.append({"name": "version", "valueString": index.version})
    display = code.display_in(language)
    if display:
        parameters.append({"name": "display", "valueString": display})
    if not wanted or DESIGNATION in wanted:
        parameters.extend(_designation(d.json()) for d in details.designations)
    parameters.extend(_property(name, key, value)
                      for name, key, value in _properties(index, details)
                      if not wanted or name in wanted)
    return {"resourceType": "Parameters", "parameter": parameters}


def _properties(index: CodeSystemIndex,
                details: ConceptDetails) -> list[tuple[str, str, Any]]:
    found: list[tuple[str, str, Any]] = [("parent", "valueCode", parent)
                                         for parent in index.parents(details.code)]
    found.extend(("child", "valueCode", child) for child in index.children.get(details.code, ()))
    found.extend(details.properties)
    return found


def _designation(designation: dict[str, Any]) -> dict[str, Any]:
    part: list[dict[str, Any]] = []
    if "language" in designation:
        part.append({"name": "language", "valueCode": designation["language"]})
    if "use" in designation:
        part.append({"name": "use", "valueCoding": designation["use"]})
    part.append({"name": "value", "valueString": designation["value"]})
    return {"name": DESIGNATION, "part": part}


def _property(name: str, key: str, value: Any) -> dict[str, Any]:
    return {"name": "property", "part": [{"name": "code", "valueCode": name},
                                         {"name": "value", key: value}]}
