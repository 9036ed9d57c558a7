"""``$validate`` at the type and instance levels
(https://hl7.org/fhir/R4/resource-operation-validate.html).

Input (a Parameters resource, a bare resource, or URL parameters): ``resource``, the resource to
check; ``mode``, one of ``create``, ``update``, ``delete``, ``profile``; ``profile``, a profile
url to check it against as well. At the instance level without ``resource``, the stored
resource is checked. The checks are those of a write (``WriteValidation.issues``): structure,
the core rules, the declared profiles the server knows, the guide's profiles of a case resource,
plus ``profile`` (unknown: the validator's ``not-supported`` issue). Mode ``update`` also needs
the resource's id, the instance's at the instance level; mode ``delete`` needs an instance that
exists, and the server has no rule that prevents a deletion, so it answers an information issue.

The answer is 200 with an OperationOutcome listing what was found, errors included, and an
"All OK" information issue first when there is no error; 400 for a malformed request (no
resource, one of another type, an unknown mode, ``delete`` without an instance, ``profile``
without a profile), 404 or 410 for an unknown or deleted instance.
"""

from __future__ import annotations

from typing import Final

from fhir_server.engine.context import EngineContext
from fhir_server.engine.interactions.read import read_current
from fhir_server.engine.operations import (
    Operation,
    OperationCall,
    OperationResult,
    parameter_resource,
    parameter_values,
)
from fhir_server.engine.write_validation import is_error
from fhir_server.engine.writing import load
from fhir_server.errors import ErrorCode, FhirError, Issue, IssueType
from fhir_server.outcome import outcome_of_issues
from fhir_server.types import ResourceDict
from fhir_server.validation.messages import Text, ValidationIssue, make_issue

DEFINITION: Final = "http://hl7.org/fhir/OperationDefinition/Resource-validate"
MODES: Final = ("create", "update", "delete", "profile")

ALL_OK = Text(en="All OK: the validation found no error",
              fr="Tout est correct : la validation n'a trouvé aucune erreur")
DELETE_OK = Text(en="{target} may be deleted: no rule of this server prevents it",
                 fr="{target} peut être supprimé : aucune règle de ce serveur ne l'empêche")
UPDATE_NEEDS_ID = Text(en="an update needs the resource's id",
                       fr="une mise à jour a besoin de l'id de la ressource")
UPDATE_OTHER_ID = Text(en="the resource's id '{actual}' is not the id of {target}",
                       fr="l'id de la ressource '{actual}' n'est pas celui de {target}")


async def validate(ctx: EngineContext, call: OperationCall) -> OperationResult:
    """Run ``$validate`` (see the module doc)."""
    resource_type = call.resource_type or ""
    mode = _mode(call)
    profiles = parameter_values(call.parameters, "profile")
    if mode == "delete":
        return _answer((), ok=await _deletion(ctx, call, resource_type))
    if mode == "profile" and not profiles:
        raise FhirError(ErrorCode.BAD_PARAMETER, "mode=profile needs a profile parameter",
                        expression=("profile",))
    resource = await _subject(ctx, call, resource_type)
    issues = ctx.validation.issues(resource, profiles=profiles)
    if mode == "update":
        issues = (*issues, *_update_issues(resource, call))
    return _answer(issues)


OPERATION: Final = Operation(
    name="validate", handler=validate, levels=frozenset({"type", "instance"}),
    definition=DEFINITION, affects_state=False)
"""``$validate`` on every resource type, by GET or POST."""


def _mode(call: OperationCall) -> str | None:
    modes = parameter_values(call.parameters, "mode")
    if len(modes) > 1:
        raise FhirError(ErrorCode.BAD_PARAMETER, "mode is given more than once",
                        expression=("mode",))
    if modes and modes[0] not in MODES:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        f"mode '{modes[0][:40]}' is not one of {', '.join(MODES)}",
                        expression=("mode",))
    return modes[0] if modes else None


async def _subject(ctx: EngineContext, call: OperationCall, resource_type: str) -> ResourceDict:
    """The resource to check: the ``resource`` parameter, else the stored instance."""
    resource = parameter_resource(call.parameters, "resource")
    if resource is None:
        if call.id is None:
            raise FhirError(ErrorCode.BAD_REQUEST,
                            f"$validate on {resource_type} needs the resource to check: the "
                            "body, or a Parameters with a 'resource' parameter",
                            expression=("resource",))
        return load(ctx, await read_current(ctx, resource_type, call.id))
    if resource.get("resourceType") != resource_type:
        raise FhirError(ErrorCode.TYPE_MISMATCH,
                        f"The resource to check is a {str(resource.get('resourceType'))[:60]} "
                        f"but $validate was invoked on {resource_type}",
                        expression=("resource",))
    return resource


async def _deletion(ctx: EngineContext, call: OperationCall, resource_type: str) -> Issue:
    """The answer to mode delete on an instance that exists."""
    if call.id is None:
        raise FhirError(ErrorCode.BAD_PARAMETER,
                        "mode=delete checks the deletion of an instance: invoke "
                        f"{resource_type}/[id]/$validate", expression=("mode",))
    await read_current(ctx, resource_type, call.id)
    return _information(DELETE_OK, target=f"{resource_type}/{call.id}")


def _update_issues(resource: ResourceDict, call: OperationCall) -> tuple[Issue, ...]:
    """Mode update: the resource carries an id, the instance's when invoked on one."""
    location = f"{resource.get('resourceType')}.id"
    body_id = resource.get("id")
    if not isinstance(body_id, str):
        return (make_issue(UPDATE_NEEDS_ID, location, issue_type=IssueType.REQUIRED,
                           rule="update"),)
    if call.id is not None and body_id != call.id:
        return (make_issue(UPDATE_OTHER_ID, location, issue_type=IssueType.INVALID, rule="update",
                           actual=body_id[:64], target=f"{call.resource_type}/{call.id}"),)
    return ()


def _answer(issues: tuple[Issue, ...], *, ok: Issue | None = None) -> OperationResult:
    """200 with the issues, after ``ok`` ("All OK" by default) when none is an error."""
    if not any(is_error(issue) for issue in issues):
        issues = (ok or _information(ALL_OK), *issues)
    return OperationResult(outcome_of_issues(issues))


def _information(text: Text, **params: str) -> Issue:
    english, french = text.render(**params)
    return ValidationIssue(diagnostics=english, severity="information",
                           issue_type=IssueType.INFORMATIONAL, message_fr=french)
