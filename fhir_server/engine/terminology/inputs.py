"""The input parameters of the terminology operations, read and checked (400 when malformed).

A GET invocation carries every parameter as a string (``parameters_from_query``); a POST one
carries typed values (``valueUri``, ``valueBoolean``, ``valueInteger``, ``valueCoding``,
``valueCodeableConcept``) or a resource. Both are accepted wherever the type allows: a Coding
may also be written ``system|code`` in a URL. ``checked`` refuses a Parameters whose structure is
invalid before anything reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fhir_server.engine.operations import parameter_resource, parameter_values
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.types import ResourceDict
from fhir_server.validation.structure import validate_structure


@dataclass(frozen=True, slots=True)
class Coding:
    """A code to look up or check, with its system, version and display when given."""

    code: str
    system: str | None = None
    version: str | None = None
    display: str | None = None

    @property
    def label(self) -> str:
        return f"{self.system}|{self.code}" if self.system else self.code


def checked(parameters: ResourceDict) -> ResourceDict:
    """The Parameters, once their structure is valid (typed values of the right shape, a
    ``valueSet`` resource well formed); 400 naming the first problem otherwise."""
    if not parameters.get("parameter"):
        return parameters  # no input at all (a GET without query): nothing malformed
    issues = validate_structure(parameters)
    if issues:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        f"The operation's parameters are not valid: {issues[0].diagnostics}",
                        expression=issues[0].expression, issues=issues)
    return parameters


def bad(name: str, message: str) -> FhirError:
    """The 400 answer to a malformed input parameter."""
    return FhirError(ErrorCode.BAD_PARAMETER, f"{name}: {message}", expression=(name,))


def text(parameters: ResourceDict, name: str) -> str | None:
    """The one value of a primitive parameter; 400 when given twice."""
    values = parameter_values(parameters, name)
    if len(values) > 1:
        raise bad(name, "give it at most once")
    return values[0] if values else None


def flag(parameters: ResourceDict, name: str) -> bool:
    """A boolean parameter (absent: false)."""
    value = text(parameters, name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise bad(name, f"'{value[:20]}' is not a boolean (true or false)")
    return value == "true"


def whole_number(parameters: ResourceDict, name: str) -> int | None:
    """A non-negative integer parameter, or None when absent."""
    value = text(parameters, name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise bad(name, f"'{value[:20]}' is not a whole number (0 or more)")
    return int(value)


def resource(parameters: ResourceDict, name: str, resource_type: str) -> ResourceDict | None:
    """A resource parameter of the given type, or None."""
    found = parameter_resource(parameters, name)
    if found is None:
        return None
    if found.get("resourceType") != resource_type:
        raise bad(name, f"a {resource_type} is expected, not a "
                        f"{str(found.get('resourceType'))[:60]}")
    return found


def codings(parameters: ResourceDict, *, system_name: str = "system",
            version_name: str = "version") -> tuple[Coding, ...]:
    """The codes to work on: one of ``code`` (with ``system``, ``version`` and ``display``),
    ``coding`` or ``codeableConcept`` (every coding of it); 400 when none or several."""
    given = [name for name in ("code", "coding", "codeableConcept")
             if _named(parameters, name)]
    if len(given) != 1:
        raise bad("code", "give exactly one of code, coding and codeableConcept"
                  + (f" (got {', '.join(given)})" if given else ""))
    if given[0] == "code":
        code = text(parameters, "code")
        if not code:
            raise bad("code", "the code is empty")
        return (Coding(code=code, system=text(parameters, system_name),
                       version=text(parameters, version_name),
                       display=text(parameters, "display")),)
    if given[0] == "coding":
        return (_coding(_single(parameters, "coding"), "coding"),)
    return _concept_codings(_single(parameters, "codeableConcept"))


def _named(parameters: ResourceDict, name: str) -> list[dict[str, Any]]:
    return [p for p in parameters.get("parameter", [])
            if isinstance(p, dict) and p.get("name") == name]


def _single(parameters: ResourceDict, name: str) -> dict[str, Any]:
    found = _named(parameters, name)
    if len(found) > 1:
        raise bad(name, "give it at most once")
    return found[0]


def _coding(parameter: dict[str, Any], name: str) -> Coding:
    value = parameter.get("valueCoding")
    if isinstance(value, dict):
        return _from_json(value, name)
    written = next((v for k, v in parameter.items() if k.startswith("value")
                    and isinstance(v, str)), None)
    if written is None:
        raise bad(name, "a Coding (valueCoding), or system|code in a URL, is expected")
    system, bar, code = written.rpartition("|")
    if not code:
        raise bad(name, f"'{written[:100]}' has no code: write system|code")
    return Coding(code=code, system=system if bar and system else None)


def _concept_codings(parameter: dict[str, Any]) -> tuple[Coding, ...]:
    concept = parameter.get("valueCodeableConcept")
    if not isinstance(concept, dict):
        raise bad("codeableConcept", "a CodeableConcept (valueCodeableConcept) is expected")
    found = tuple(_from_json(item, "codeableConcept") for item in concept.get("coding") or ()
                  if isinstance(item, dict))
    if not found:
        raise bad("codeableConcept", "the CodeableConcept has no coding")
    return found


def _from_json(value: dict[str, Any], name: str) -> Coding:
    code = value.get("code")
    if not isinstance(code, str) or not code:
        raise bad(name, "a coding has no code")
    return Coding(code=code, system=_optional(value, "system"),
                  version=_optional(value, "version"), display=_optional(value, "display"))


def _optional(value: dict[str, Any], key: str) -> str | None:
    found = value.get(key)
    return found if isinstance(found, str) and found else None


def names(parameters: ResourceDict, name: str) -> Sequence[str]:
    """Every value of a repeating primitive parameter."""
    return parameter_values(parameters, name)
