"""The named Task operations of the workflow: ``$submit``, ``$claim``, ``$decline``,
``$refer-up``, ``$request-clarification``, ``$resubmit``, ``$complete``, ``$cancel``
(OperationDefinitions in ``profiles/``).

Each builds the Task's next version and writes it through the ordinary engine, as the caller:
the access policy and the state machine (``task_rules.py``) decide, exactly as for a PUT. A
claim recomputes its version from the current one on a concurrent change, so of simultaneous
claims one wins and the others get 409. Writes that belong together (a question and its
Communication, an answer and its report) are one transaction.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

import orjson

from fhir_server.access.principal import Principal
from fhir_server.engine.context import EngineContext
from fhir_server.engine.instants import now_instant
from fhir_server.engine.interactions.read import read_current
from fhir_server.engine.interactions.transaction import process_bundle
from fhir_server.engine.interactions.update import write_next_version
from fhir_server.engine.operations import (
    Operation,
    OperationCall,
    OperationResult,
    parameter_resource,
    parameter_values,
)
from fhir_server.engine.write_validation import Checked
from fhir_server.engine.writing import check_resource, load
from fhir_server.errors import ErrorCode, FhirError
from fhir_server.storage.protocol import StoredVersion
from fhir_server.storage.query import ReferenceClause, ReferenceValue, SearchQuery
from fhir_server.types import ResourceDict
from fhir_server.workflow.case_facts import reference_key
from fhir_server.workflow.intake import form_of
from fhir_server.workflow.state_machine import (
    BUSINESS_STATUS_SYSTEM,
    TRANSITIONS,
    IllegalTransition,
    check_transition,
    next_tier,
)
from fhir_server.workflow.task_rules import (
    CLARIFICATION_SYSTEM,
    DECLINED_BY,
    EVERY_ACTOR,
    TIER_SYSTEM,
    tier_of,
)

BASE: Final = "https://fhir.pictaderm.com/OperationDefinition/Task-"
CASE_CATEGORY: Final = "https://fhir.pictaderm.com/CodeSystem/case-category"
CLARIFICATION_PROFILE: Final = (
    "https://fhir.pictaderm.com/StructureDefinition/pictaderm-clarification")
FIRST_TIER: Final = {"skin": "tier-1", "mole": "tier-2"}
"""Routing policy (domain-model.md): the tier a form is offered to first."""
REASONS: Final = frozenset({"additional-information", "modify-information", "new-photos"})

NextTask = Callable[[ResourceDict], ResourceDict]


async def submit(ctx: EngineContext, call: OperationCall) -> OperationResult:
    """``$submit``: draft → requested, offered to the first tier of its form."""
    task = await _current_task(ctx, call)
    tier = tier_of(task) or await _first_tier(ctx, task)
    return await _moved(ctx, call, "submit",
                        lambda t: {**_without(t, "performerType"),
                                   "performerType": [_tier_concept(tier)]})


async def claim(ctx: EngineContext, call: OperationCall) -> OperationResult:
    """``$claim``: the calling doctor (or the ``role`` given) owns the case. A doctor of the
    tier who comes after another's claim is told so (409), not that the case is unknown."""
    role = _role(ctx, call)
    try:
        await _stored_task(ctx, call)
    except FhirError as error:
        if error.status == 404:
            await _taken(ctx, call)
        raise
    return await _moved(ctx, call, "claim", lambda t: {**t, "owner": {"reference": role}})


async def _taken(ctx: EngineContext, call: OperationCall) -> None:
    """409 for a doctor of the Task's tier when the case left the offer (claimed, closed)."""
    principal = ctx.access.principal if ctx.access is not None else None
    task = await _read(replace(ctx, access=None), f"Task/{_task_id(call)}")
    if task is None or principal is None or principal.role != "doctor" \
            or principal.tier is None or tier_of(task) != principal.tier \
            or task.get("status") == "draft":
        return
    _check_possible(task, "claim")


async def decline(ctx: EngineContext, call: OperationCall) -> OperationResult:
    """``$decline``: never offered to this doctor again; the reason is kept."""
    role = _role(ctx, call)
    reason = _one(call, "reason")

    def declined(task: ResourceDict) -> ResourceDict:
        extensions = [*task.get("extension", []),
                      {"url": DECLINED_BY, "valueReference": {"reference": role}}]
        changed = {**task, "extension": extensions}
        return {**changed, "statusReason": {"text": reason}} if reason else changed

    return await _moved(ctx, call, "decline", declined)


async def refer_up(ctx: EngineContext, call: OperationCall) -> OperationResult:
    """``$refer-up``: back to requested at a higher tier, owner cleared."""
    task = await _current_task(ctx, call)
    current_tier = tier_of(task) or ""
    wanted = _one(call, "tier") or next_tier(current_tier)
    if wanted is None or wanted != next_tier(current_tier):
        raise FhirError(ErrorCode.BUSINESS_RULE,
                        f"$refer-up: the case is at {current_tier or 'no tier'}; it can be "
                        f"referred to {next_tier(current_tier) or 'no higher tier'} only",
                        expression=("tier",))
    reason = _required(call, "reason")
    return await _moved(ctx, call, "refer-up", lambda t: {
        **_without(t, "owner", "performerType"), "performerType": [_tier_concept(wanted)],
        "statusReason": {"text": reason}})


async def request_clarification(ctx: EngineContext, call: OperationCall) -> OperationResult:
    """``$request-clarification``: on hold, with the question as a Communication to the
    pharmacy, in one transaction."""
    reason = _required(call, "reason")
    if reason not in REASONS:
        raise FhirError(ErrorCode.BAD_PARAMETER, f"reason must be one of {sorted(REASONS)}",
                        expression=("reason",))
    text = _required(call, "text")
    stored = await _stored_task(ctx, call)
    task = load(ctx, stored)
    _check_possible(task, "request-clarification")
    reason_concept = {"coding": [{"system": CLARIFICATION_SYSTEM, "code": reason}]}
    question: ResourceDict = {
        "resourceType": "Communication", "meta": {"profile": [CLARIFICATION_PROFILE]},
        "basedOn": [task["focus"]], "partOf": [{"reference": f"Task/{stored.id}"}],
        "status": "completed",
        "category": [{"coding": [{"system": CASE_CATEGORY, "code": "clarification"}]}],
        "subject": task.get("for"), "reasonCode": [reason_concept], "sent": _now(),
        "recipient": [task["requester"]], "sender": task.get("owner"),
        "payload": [{"contentString": text}]}
    moved = _transitioned(task, "request-clarification")
    moved["statusReason"] = reason_concept
    return await _together(ctx, call, stored, moved, [question], answer_as="communication")


async def resubmit(ctx: EngineContext, call: OperationCall) -> OperationResult:
    """``$resubmit``: back in progress after the pharmacist changed the case; the answer, when
    given, is a Communication in response to the question."""
    stored = await _stored_task(ctx, call)
    task = load(ctx, stored)
    _check_possible(task, "resubmit")
    moved = _without(_transitioned(task, "resubmit"), "statusReason")
    extra: list[ResourceDict] = []
    answer = _one(call, "answer")
    if answer:
        answer_to = await _last_question(ctx, stored.id)
        communication: ResourceDict = {
            "resourceType": "Communication", "meta": {"profile": [CLARIFICATION_PROFILE]},
            "basedOn": [task["focus"]], "partOf": [{"reference": f"Task/{stored.id}"}],
            "status": "completed",
            "category": [{"coding": [{"system": CASE_CATEGORY, "code": "clarification"}]}],
            "subject": task.get("for"), "sent": _now(), "sender": task["requester"],
            "recipient": [task["owner"]] if task.get("owner") else [],
            "reasonCode": [task["statusReason"]] if task.get("statusReason") else [],
            "payload": [{"contentString": answer}]}
        if answer_to is not None:
            communication["inResponseTo"] = [{"reference": answer_to}]
        extra.append(communication)
    return await _together(ctx, call, stored, moved, extra)


async def complete(ctx: EngineContext, call: OperationCall) -> OperationResult:
    """``$complete``: the owner's final DiagnosticReport in Task.output; the documents that
    come with the answer (a prescription…) are attachments of the report (``presentedForm``),
    beside the PDF report the report issue adds."""
    report = parameter_resource(call.parameters, "report")
    if report is None or report.get("resourceType") != "DiagnosticReport":
        raise FhirError(ErrorCode.BAD_PARAMETER, "$complete needs the parameter 'report': the "
                        "final DiagnosticReport", expression=("report",))
    stored = await _stored_task(ctx, call)
    task = load(ctx, stored)
    _check_possible(task, "complete")
    report = {**copy.deepcopy(report), "status": "final", "basedOn": [task["focus"]],
              "subject": task.get("for")}
    report.pop("id", None)
    if task.get("owner") and not report.get("performer"):
        report["performer"] = [task["owner"]]
    documents = _attachments(call, "document")
    if documents:
        report["presentedForm"] = [*report.get("presentedForm", []), *documents]
    if not report.get("issued"):
        report["issued"] = _now()
    moved = _transitioned(task, "complete")
    moved["output"] = [*task.get("output", []), {
        "type": {"text": "Compte rendu de téléexpertise"},
        "valueReference": {"reference": "urn:uuid:report"}}]
    return await _together(ctx, call, stored, moved, [report], full_urls=["urn:uuid:report"])


async def cancel(ctx: EngineContext, call: OperationCall) -> OperationResult:
    """``$cancel``: the requesting pharmacy ends the case (its ServiceRequest is revoked)."""
    reason = _one(call, "reason")
    return await _moved(ctx, call, "cancel", lambda t: {**t, "statusReason": {"text": reason}}
                        if reason else t)


def _check_possible(task: ResourceDict, name: str) -> None:
    """409 naming the allowed moves when the Task's status does not allow ``name`` (before
    anything else is checked); who may make it is the state machine's check at commit."""
    try:
        check_transition(name, str(task.get("status")), EVERY_ACTOR)
    except IllegalTransition as illegal:
        raise FhirError(ErrorCode.VERSION_CONFLICT, illegal.message_en,
                        expression=("Task.status",)) from None


async def _last_question(ctx: EngineContext, task_id: str) -> str | None:
    """The latest clarification question of the case (a Communication part of the Task
    sent by a doctor), as a reference."""
    page = await replace(ctx, access=None).store.search(SearchQuery(
        "Communication", (ReferenceClause("part-of", (ReferenceValue("Task", task_id),)),),
        count=100))
    questions = [(str(resource.get("sent") or ""), stored.id)
                 for stored in page.matches
                 if not (resource := load(ctx, stored)).get("inResponseTo")]
    return f"Communication/{max(questions)[1]}" if questions else None


def _transitioned(task: ResourceDict, name: str) -> ResourceDict:
    """The Task with the transition's status and business status."""
    transition = TRANSITIONS[name]
    moved = {key: value for key, value in task.items() if key != "meta"}
    profile = (task.get("meta") or {}).get("profile")
    if profile:
        moved["meta"] = {"profile": profile}
    moved["status"] = transition.target
    moved["businessStatus"] = {"coding": [{"system": BUSINESS_STATUS_SYSTEM,
                                           "code": transition.business_status}]}
    return moved


async def _moved(ctx: EngineContext, call: OperationCall, name: str,
                 change: NextTask) -> OperationResult:
    """Write ``change`` of the current Task with the transition ``name``, recomputed from the
    current version if another write came first."""
    id = _task_id(call)
    await _stored_task(ctx, call)

    def next_content(current: StoredVersion | None) -> Checked:
        if current is None or current.deleted:
            raise FhirError(ErrorCode.NOT_FOUND, f"Task/{id} is not known")
        task = load(ctx, current)
        _check_possible(task, name)
        return check_resource(ctx, change(_transitioned(task, name)), "Task")

    result = await write_next_version(ctx, "Task", id, next_content, if_match=None,
                                      method="PUT")
    assert result.body is not None
    return OperationResult(_loaded(result.body))


async def _together(ctx: EngineContext, call: OperationCall, stored: StoredVersion,
                    task: ResourceDict, resources: list[ResourceDict], *,
                    full_urls: list[str] | None = None,
                    answer_as: str | None = None) -> OperationResult:
    """The Task's next version and new resources as one transaction (``If-Match`` the
    version read)."""
    urls = full_urls or [f"urn:uuid:new-{index}" for index in range(len(resources))]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        *[{"fullUrl": url, "resource": resource,
           "request": {"method": "POST", "url": resource["resourceType"]}}
          for url, resource in zip(urls, resources, strict=True)],
        {"resource": {**task, "id": stored.id},
         "request": {"method": "PUT", "url": f"Task/{stored.id}",
                     "ifMatch": f'W/"{stored.version}"'}}]}
    answer = await process_bundle(ctx, bundle, base_url=call.base_url, with_resources=True)
    entries = answer.get("entry", [])
    task_after = entries[-1].get("resource", {})
    if answer_as is None:
        return OperationResult(task_after)
    created = entries[0].get("resource", {}) if resources else {}
    return OperationResult({"resourceType": "Parameters", "parameter": [
        {"name": "return", "resource": task_after}, {"name": answer_as, "resource": created}]})


async def _current_task(ctx: EngineContext, call: OperationCall) -> ResourceDict:
    return load(ctx, await _stored_task(ctx, call))


async def _stored_task(ctx: EngineContext, call: OperationCall) -> StoredVersion:
    """The Task the operation is invoked on, read as the caller (404 when hidden)."""
    return await read_current(ctx, "Task", _task_id(call))


def _task_id(call: OperationCall) -> str:
    if call.id is None:
        raise FhirError(ErrorCode.BAD_REQUEST, f"${call.name} is invoked on a Task: "
                                               f"POST Task/<id>/${call.name}")
    return call.id


async def _first_tier(ctx: EngineContext, task: ResourceDict) -> str:
    """The tier the case's form is offered to first (skin: tier 1, mole: tier 2)."""
    unlimited = replace(ctx, access=None)
    request_key = reference_key(task.get("focus"))
    request = await _read(unlimited, request_key)
    for item in (request or {}).get("supportingInfo") or ():
        resource = await _read(unlimited, reference_key(item))
        if resource is not None and resource.get("resourceType") == "QuestionnaireResponse":
            form = form_of(resource)
            if form is not None:
                return FIRST_TIER[form]
    raise FhirError(ErrorCode.BUSINESS_RULE, "$submit: the case's form (QuestionnaireResponse "
                    "skin or mole in ServiceRequest.supportingInfo) decides the tier; none "
                    "found", expression=("ServiceRequest.supportingInfo",))


async def _read(ctx: EngineContext, key: str | None) -> ResourceDict | None:
    if key is None:
        return None
    resource_type, _, id = key.partition("/")
    stored = await ctx.store.read(resource_type, id)
    return None if stored is None or stored.deleted else load(ctx, stored)


def _role(ctx: EngineContext, call: OperationCall) -> str:
    """The doctor's role acting: the caller's own, or the ``role`` parameter (which a doctor
    may only set to its own)."""
    given = _one(call, "role") or _reference_parameter(call, "role")
    principal: Principal | None = ctx.access.principal if ctx.access is not None else None
    own = principal.practitioner_role if principal is not None else None
    if given and own and given != own:
        raise FhirError(ErrorCode.FORBIDDEN, f"${call.name}: you act as {own}, not {given}",
                        expression=("role",))
    role = given or own
    if not role:
        raise FhirError(ErrorCode.BAD_PARAMETER, f"${call.name} needs the doctor's "
                        "PractitionerRole (parameter 'role')", expression=("role",))
    return role


def _reference_parameter(call: OperationCall, name: str) -> str | None:
    for parameter in call.parameters.get("parameter", []):
        if isinstance(parameter, dict) and parameter.get("name") == name:
            reference = (parameter.get("valueReference") or {}).get("reference")
            if isinstance(reference, str):
                return reference
    return None


def _one(call: OperationCall, name: str) -> str | None:
    values = parameter_values(call.parameters, name)
    return values[0].strip() if values and values[0].strip() else None


def _required(call: OperationCall, name: str) -> str:
    value = _one(call, name)
    if value is None:
        raise FhirError(ErrorCode.BAD_PARAMETER, f"${call.name} needs the parameter '{name}'",
                        expression=(name,))
    return value


def _attachments(call: OperationCall, name: str) -> list[dict[str, Any]]:
    return [parameter["valueAttachment"] for parameter in call.parameters.get("parameter", [])
            if isinstance(parameter, dict) and parameter.get("name") == name
            and isinstance(parameter.get("valueAttachment"), dict)]


def _tier_concept(tier: str) -> dict[str, Any]:
    return {"coding": [{"system": TIER_SYSTEM, "code": tier}]}


def _without(resource: ResourceDict, *keys: str) -> ResourceDict:
    return {key: value for key, value in resource.items() if key not in keys}


def _loaded(body: bytes) -> ResourceDict:
    loaded: ResourceDict = orjson.loads(body)
    return loaded


def _now() -> str:
    return now_instant().replace("Z", "+00:00")


def task_operations() -> tuple[Operation, ...]:
    """The eight operations, at instance level on Task, POST only."""
    handlers = {"submit": submit, "claim": claim, "decline": decline, "refer-up": refer_up,
                "request-clarification": request_clarification, "resubmit": resubmit,
                "complete": complete, "cancel": cancel}
    return tuple(Operation(name=name, handler=handler, levels=frozenset({"instance"}),
                           definition=BASE + name, types=frozenset({"Task"}),
                           affects_state=True)
                 for name, handler in handlers.items())
