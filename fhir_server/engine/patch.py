"""The two patch formats of the PATCH interaction (https://hl7.org/fhir/R4/http.html#patch).

JSON Patch (RFC 6902) is applied with the ``jsonpatch`` library, FHIRPath Patch (a Parameters
resource, https://hl7.org/fhir/R4/fhirpatch.html) by ``engine.fhirpath_patch``. Both functions
are pure: they return a new resource and never change their arguments. A malformed patch
document is a 400; a well-formed patch that cannot be applied to this resource is a 422 whose
message names the operation (its index and path). A patch may change ``meta`` but not
``resourceType`` or ``id``; the engine then validates the result as it would an update.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import jsonpatch

from fhir_server.engine.fhirpath_patch import (
    apply_operation,
    read_operations,
    without_empty_elements,
)
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.types import ResourceDict

JSON_PATCH_MEMBERS: dict[str, tuple[str, ...]] = {
    "add": ("path", "value"),
    "remove": ("path",),
    "replace": ("path", "value"),
    "move": ("from", "path"),
    "copy": ("from", "path"),
    "test": ("path", "value"),
}
"""The RFC 6902 operations and the members each one requires."""

_JSON_POINTER = re.compile(r"(/([^~]|~[01])*)*")
_QUOTED_DOCUMENT = re.compile(r" in [\[{].*\Z", re.DOTALL)


def apply_json_patch(resource: ResourceDict, operations: object) -> ResourceDict:
    """``resource`` with the JSON Patch ``operations`` (the parsed request body) applied."""
    steps = _read_json_patch(operations)
    patched: Any = copy.deepcopy(resource)
    for step in steps:
        patched = _apply_json_step(patched, step)
        _ensure_identity_kept(resource, patched, step.label, expression=())
    result: ResourceDict = patched
    return result


def apply_fhirpath_patch(resource: ResourceDict, parameters: dict[str, Any]) -> ResourceDict:
    """``resource`` with the FHIRPath Patch ``parameters`` (a Parameters resource) applied."""
    operations = read_operations(parameters)
    patched = copy.deepcopy(resource)
    for operation in operations:
        apply_operation(patched, operation)
        _ensure_identity_kept(resource, patched, operation.label,
                              expression=(operation.expression,))
    return without_empty_elements(patched)


def _ensure_identity_kept(original: ResourceDict, patched: Any, label: str, *,
                          expression: tuple[str, ...]) -> None:
    if not isinstance(patched, dict):
        raise FhirError(ErrorCode.INVALID_RESOURCE,
                        f"{label}: the result is no longer a resource (a JSON object)",
                        expression=expression)
    for member in ("resourceType", "id"):
        if patched.get(member) != original.get(member):
            raise FhirError(ErrorCode.INVALID_RESOURCE,
                            f"{label}: a patch must not change the resource's {member} "
                            f"({original.get(member)!r} to {patched.get(member)!r})",
                            expression=expression)


@dataclass(frozen=True, slots=True)
class _JsonStep:
    """One operation of a JSON Patch, checked and ready to apply."""

    position: int
    op: str
    path: str
    patch: jsonpatch.JsonPatch

    @property
    def label(self) -> str:
        return (f"JSON Patch operation at index {self.position} "
                f"({self.op} {self.path or '(the whole document)'})")


def _read_json_patch(operations: object) -> tuple[_JsonStep, ...]:
    if not isinstance(operations, list):
        raise FhirError(ErrorCode.BAD_REQUEST,
                        "A JSON Patch document must be a JSON array of operations")
    return tuple(_read_json_operation(operation, position)
                 for position, operation in enumerate(operations))


def _malformed(position: int, message: str) -> FhirError:
    return FhirError(ErrorCode.BAD_REQUEST, f"JSON Patch operation at index {position}: {message}")


def _read_json_operation(operation: object, position: int) -> _JsonStep:
    if not isinstance(operation, dict):
        raise _malformed(position, "an operation must be a JSON object")
    op = operation.get("op")
    if not isinstance(op, str) or op not in JSON_PATCH_MEMBERS:
        raise _malformed(position, f"unknown op {op!r}; expected one of "
                                   f"{', '.join(JSON_PATCH_MEMBERS)}")
    required = JSON_PATCH_MEMBERS[op]
    if missing := [member for member in required if member not in operation]:
        raise _malformed(position, f"'{op}' needs the member(s) {', '.join(missing)}")
    for member in ("path", "from"):
        pointer = operation.get(member)
        if member in required and not (isinstance(pointer, str)
                                       and _JSON_POINTER.fullmatch(pointer)):
            raise _malformed(position, f"'{member}' must be a JSON Pointer such as /name/0, "
                                       f"not {pointer!r}")
    try:
        patch = jsonpatch.JsonPatch([copy.deepcopy(operation)])
    except (jsonpatch.InvalidJsonPatch, jsonpatch.JsonPointerException) as exc:
        raise _malformed(position, str(exc)) from None
    return _JsonStep(position=position, op=op, path=operation["path"], patch=patch)


def _apply_json_step(document: Any, step: _JsonStep) -> Any:
    """Apply one operation to ``document`` (a working copy) and return the result."""
    try:
        return step.patch.apply(document, in_place=True)
    except jsonpatch.JsonPatchTestFailed:
        raise FhirError(ErrorCode.INVALID_RESOURCE,
                        f"{step.label}: the test failed, the resource does not hold that "
                        "value there") from None
    except (jsonpatch.JsonPatchConflict, jsonpatch.JsonPointerException) as exc:
        raise FhirError(ErrorCode.INVALID_RESOURCE,
                        f"{step.label}: cannot be applied: {_without_document(str(exc))}"
                        ) from None
    except jsonpatch.InvalidJsonPatch as exc:
        raise _malformed(step.position, str(exc)) from None


def _without_document(message: str) -> str:
    """A jsonpointer message without the document it quotes (no patient data in diagnostics)."""
    return _QUOTED_DOCUMENT.sub("", message)
