"""The before-commit hook that makes every change of a case Task a transition of the state
machine (``state_machine.py``), performed by the right actor, with its effects.

Whatever the form — a PUT or PATCH of the Task, a transaction, or a named operation that
writes it — a case Task changes only here:
- created as ``draft`` (a case being assembled) or ``requested`` (submitted: the intake rules
  run, ``intake.py``); the operator may also load Tasks in any status (imports);
- updated: the change must be one transition, from the Task's status, by one of its actors
  (the requesting pharmacy, the owner doctor, an eligible doctor of the tier, the platform —
  the operator and the server itself act as the platform and as anyone), and its business
  status must be the transition's; a claim names the claiming doctor as owner, a decline adds
  the declining doctor; a resubmission needs a real change of the case since the question;
- deleted: never by a limited caller (``$cancel`` ends a case).
Effects, committed with the Task: a Provenance per transition (who, what, when, and for a
clarification the versions of the case it was asked about), the ServiceRequest completed or
revoked with its Task, and the outbox events ``case-completed`` and ``task-transition``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

import orjson

from fhir_server.access.principal import Principal
from fhir_server.engine.context import EngineContext
from fhir_server.engine.hooks import HookOutput, PlannedWrite
from fhir_server.engine.instants import now_instant
from fhir_server.engine.writing import new_id, plan_put
from fhir_server.errors import ErrorCode, FhirError, IssueType
from fhir_server.storage.protocol import OutboxEvent
from fhir_server.types import ResourceDict
from fhir_server.validation.messages import Text, ValidationIssue, make_issue
from fhir_server.workflow.case_facts import CaseReader, case_facts, reference_key
from fhir_server.workflow.intake import intake_issues
from fhir_server.workflow.state_machine import (
    BUSINESS_STATUS_SYSTEM,
    FINAL_STATUSES,
    TRANSITIONS,
    Actor,
    IllegalTransition,
    Transition,
    check_transition,
    transition_of_change,
)

TASK_PROFILE: Final = "https://fhir.pictaderm.com/StructureDefinition/pictaderm-task"
DECLINED_BY: Final = "https://fhir.pictaderm.com/StructureDefinition/pictaderm-task-declined-by"
TIER_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/expertise-tier"
TRANSITION_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/task-transition"
CLARIFICATION_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/clarification-reason"
CASE_COMPLETED: Final = "case-completed"
TASK_TRANSITION: Final = "task-transition"
EVERY_ACTOR: Final[frozenset[Actor]] = frozenset(
    {"requester", "owner", "eligible-doctor", "platform"})
STARTING_STATUSES: Final = frozenset({"draft", "requested"})
DOCTOR_EDITABLE: Final = frozenset({"meta", "text", "note", "output", "description",
                                    "lastModified", "statusReason"})

WRONG_START = Text(
    en="a case Task is created as 'draft' (being assembled) or 'requested' (submitted), not "
       "'{status}'",
    fr="une tâche de téléexpertise est créée « draft » (en préparation) ou « requested » "
       "(soumise), pas « {status} »")
WRONG_BUSINESS_STATUS = Text(
    en="the transition '{transition}' sets businessStatus to '{expected}'",
    fr="la transition « {transition} » fixe businessStatus à « {expected} »")
CLAIM_FOR_ANOTHER = Text(
    en="a doctor claims a case for its own role: owner must be {role}",
    fr="un médecin prend un cas en charge pour son propre rôle : owner doit être {role}")
DECLINE_FOR_ANOTHER = Text(
    en="a doctor declines for its own role: the declined-by extension added must be {role}",
    fr="un médecin décline pour son propre rôle : l'extension declined-by ajoutée doit être "
       "{role}")
NO_CHANGE_SINCE_QUESTION = Text(
    en="nothing changed in the case since the doctor's question: change the request, the form "
       "or the photos before resending it",
    fr="rien n'a changé dans la demande depuis la question du médecin : modifiez la demande, "
       "le formulaire ou les photos avant de la renvoyer")
NEW_PHOTO_NEEDED = Text(
    en="the doctor asked for new photos: add at least one new photo before resending",
    fr="le médecin a demandé de nouvelles photos : ajoutez au moins une nouvelle photo avant "
       "de renvoyer la demande")
NO_FINAL_REPORT = Text(
    en="completing a case needs a final DiagnosticReport of this case in Task.output",
    fr="clore un cas nécessite un compte rendu (DiagnosticReport) final de ce cas dans "
       "Task.output")
CLOSED_CASE = Text(en="this case is closed ({status}): it can no longer change",
                   fr="ce cas est clos ({status}) : il ne peut plus être modifié")
DOCTOR_EDIT = Text(
    en="a doctor may change a case Task only through its transitions, or its notes and outputs "
       "(not: {elements})",
    fr="un médecin ne modifie une tâche que par ses transitions, ou ses notes et résultats "
       "(pas : {elements})")
DELETE_REFUSED = Text(en="a case Task is not deleted: end it with $cancel",
                      fr="une tâche de téléexpertise ne se supprime pas : utilisez $cancel")


def is_case_task(task: ResourceDict | None) -> bool:
    """Whether a Task is a tele-expertise case's (our profile, or a tier as performerType)."""
    if not task:
        return False
    profiles = (task.get("meta") or {}).get("profile") or ()
    return TASK_PROFILE in profiles or tier_of(task) is not None


def tier_of(task: ResourceDict) -> str | None:
    for concept in task.get("performerType") or ():
        for coding in (concept or {}).get("coding") or ():
            if isinstance(coding, dict) and coding.get("system") == TIER_SYSTEM:
                code = coding.get("code")
                return code if isinstance(code, str) else None
    return None


def declined_by(task: ResourceDict) -> frozenset[str]:
    return frozenset(key for extension in task.get("extension") or ()
                     if isinstance(extension, dict) and extension.get("url") == DECLINED_BY
                     and (key := reference_key(extension.get("valueReference"))))


def business_status_of(task: ResourceDict) -> str | None:
    for coding in (task.get("businessStatus") or {}).get("coding") or ():
        if isinstance(coding, dict) and coding.get("system") == BUSINESS_STATUS_SYSTEM:
            code = coding.get("code")
            return code if isinstance(code, str) else None
    return None


async def check_task_writes(writes: Sequence[PlannedWrite], ctx: EngineContext
                            ) -> list[HookOutput]:
    """The before-commit hook (see the module doc)."""
    reader = CaseReader(ctx, writes)
    added: list[HookOutput] = []
    for write in writes:
        if write.change.resource_type != "Task":
            continue
        if not (is_case_task(write.resource) or is_case_task(write.previous)):
            continue
        added.extend(await _task_write(ctx, reader, write))
    return added


async def _task_write(ctx: EngineContext, reader: CaseReader, write: PlannedWrite
                      ) -> list[HookOutput]:
    before, after = write.previous, write.resource
    principal = ctx.access.principal if ctx.access is not None else None
    if after is None:
        if ctx.access is not None:
            raise _refusal(ErrorCode.VERSION_CONFLICT, DELETE_REFUSED, "Task")
        return []
    if before is None:
        status = str(after.get("status"))
        if status not in STARTING_STATUSES and ctx.access is not None:
            raise _refusal(ErrorCode.BUSINESS_RULE, WRONG_START, "Task.status", status=status)
        if status == "requested":
            await _check_intake(reader, after)
            return [*_effects(ctx, write, TRANSITIONS["submit"], principal, entities=()),
                    _transition_event(write, "submit")]
        return []
    before_status = str(before.get("status"))
    try:
        transition = transition_of_change(
            before_status, str(after.get("status")),
            owner_before=reference_key(before.get("owner")),
            owner_after=reference_key(after.get("owner")), tier_before=tier_of(before),
            tier_after=tier_of(after), declined_before=declined_by(before),
            declined_after=declined_by(after))
        if transition is None:
            if before_status in FINAL_STATUSES and ctx.access is not None:
                raise _refusal(ErrorCode.VERSION_CONFLICT, CLOSED_CASE, "Task.status",
                               status=before_status)
            _check_doctor_edit(principal, before, after)
            return []
        actors = (EVERY_ACTOR if principal is None
                  else await actors_of(reader, principal, before))
        check_transition(transition.name, before_status, actors)
    except IllegalTransition as illegal:
        raise FhirError(ErrorCode.VERSION_CONFLICT, illegal.message_en, expression=("Task",),
                        issues=(_bilingual(illegal),)) from None
    return await _checked_transition(ctx, reader, write, transition, principal)


async def _checked_transition(ctx: EngineContext, reader: CaseReader, write: PlannedWrite,
                              transition: Transition, principal: Principal | None
                              ) -> list[HookOutput]:
    before, after = write.previous or {}, write.resource or {}
    if business_status_of(after) != transition.business_status:
        raise _refusal(ErrorCode.BUSINESS_RULE, WRONG_BUSINESS_STATUS, "Task.businessStatus",
                       transition=transition.name, expected=transition.business_status)
    role = principal.practitioner_role if principal is not None else None
    if transition.name == "claim" and role is not None and principal is not None \
            and principal.role == "doctor" and reference_key(after.get("owner")) != role:
        raise _refusal(ErrorCode.BUSINESS_RULE, CLAIM_FOR_ANOTHER, "Task.owner", role=role)
    if transition.name == "decline" and role is not None and principal is not None \
            and principal.role == "doctor" and declined_by(after) - declined_by(before) != {role}:
        raise _refusal(ErrorCode.BUSINESS_RULE, DECLINE_FOR_ANOTHER, "Task.extension",
                       role=role)
    entities: tuple[str, ...] = ()
    if transition.name == "submit":
        await _check_intake(reader, after)
    elif transition.name == "request-clarification":
        entities = await _case_versions(reader, after)
    elif transition.name == "resubmit":
        await _check_real_change(ctx, reader, write)
    elif transition.name == "complete":
        await _check_final_report(reader, after)
    outputs: list[HookOutput] = [*_effects(ctx, write, transition, principal,
                                          entities=entities),
                                 _transition_event(write, transition.name)]
    outputs.extend(await _request_closed(ctx, reader, after, transition))
    if transition.name == "complete":
        outputs.append(_event(CASE_COMPLETED, {"task": f"Task/{write.change.id}",
                                               "version": write.change.version}))
    return outputs


def _check_doctor_edit(principal: Principal | None, before: ResourceDict,
                      after: ResourceDict) -> None:
    """A doctor's change of a Task that is no transition may only touch its notes and
    outputs: the request, the patient, the requester are the pharmacy's."""
    if principal is None or principal.role != "doctor":
        return
    changed = sorted(key for key in {*before, *after} - DOCTOR_EDITABLE
                     if before.get(key) != after.get(key))
    if changed:
        raise _refusal(ErrorCode.FORBIDDEN, DOCTOR_EDIT, f"Task.{changed[0]}",
                       elements=", ".join(changed))


async def actors_of(reader: CaseReader, principal: Principal, task: ResourceDict
                    ) -> frozenset[Actor]:
    """What ``principal`` is for ``task``: its requester, owner, an eligible doctor."""
    actors: set[Actor] = set()
    requester = await reader.get(task.get("requester"))
    pharmacy = (reference_key(task.get("requester"))
                if (requester or {}).get("resourceType") == "Organization"
                else reference_key((requester or {}).get("organization")))
    acts_for_pharmacy = principal.role == "pharmacist" or (
        principal.role == "system" and principal.organization is not None)
    if acts_for_pharmacy and pharmacy is not None and principal.organization == pharmacy:
        actors.add("requester")
    if principal.role == "system" and principal.organization is None:
        actors.update(EVERY_ACTOR)
    role = principal.practitioner_role
    if principal.role == "doctor" and role is not None:
        if reference_key(task.get("owner")) == role:
            actors.add("owner")
        if principal.tier is not None and principal.tier == tier_of(task) \
                and role not in declined_by(task):
            actors.add("eligible-doctor")
    return frozenset(actors)


async def _check_intake(reader: CaseReader, task: ResourceDict) -> None:
    service_request = await reader.get(task.get("focus"))
    if service_request is None or service_request.get("resourceType") != "ServiceRequest":
        raise FhirError(ErrorCode.BUSINESS_RULE,
                        "Task.focus: a submitted case needs its ServiceRequest",
                        expression=("Task.focus",), issues=(make_issue(
                            Text(en="a submitted case needs its ServiceRequest",
                                 fr="une demande soumise nécessite sa ServiceRequest"),
                            "Task.focus", issue_type=IssueType.BUSINESS_RULE,
                            rule="intake"),))
    issues = intake_issues(await case_facts(reader, service_request))
    if issues:
        raise FhirError(ErrorCode.BUSINESS_RULE,
                        "The case cannot be submitted: " + "; ".join(
                            issue.diagnostics for issue in issues),
                        expression=issues[0].expression, issues=issues)


async def _case_versions(reader: CaseReader, task: ResourceDict) -> tuple[str, ...]:
    """Versioned references of the case's request, form and photos, as the commit leaves them."""
    request_key = reference_key(task.get("focus"))
    if request_key is None:
        return ()
    keys = [request_key]
    request = await reader.get(request_key) or {}
    keys.extend(key for item in request.get("supportingInfo") or ()
                if (key := reference_key(item)) is not None)
    keys.extend(f"Media/{media['id']}" for media in
                await reader.referring("Media", "based-on", request_key) if "id" in media)
    versioned: list[str] = []
    for key in dict.fromkeys(keys):
        version = await reader.version_of(key)
        if version is not None:
            versioned.append(f"{key}/_history/{version}")
    return tuple(versioned)


async def _check_real_change(ctx: EngineContext, reader: CaseReader,
                             write: PlannedWrite) -> None:
    """A resubmission needs the request, form or photo set changed since the question (and a
    new photo when new photos were asked for)."""
    task = write.resource or {}
    question = await _last_clarification(reader, write.change.id)
    if question is None:
        return
    asked = {what.rsplit("/_history/", 1)[0]: what
             for entity in question.get("entity") or ()
             if isinstance(what := (entity.get("what") or {}).get("reference"), str)}
    now = {versioned.rsplit("/_history/", 1)[0]: versioned
           for versioned in await _case_versions(reader, task)}
    if _asked_for_new_photos(question):
        if not any(key.startswith("Media/") and key not in asked for key in now):
            raise _refusal(ErrorCode.BUSINESS_RULE, NEW_PHOTO_NEEDED, "Media")
        return
    if asked == now:
        raise _refusal(ErrorCode.BUSINESS_RULE, NO_CHANGE_SINCE_QUESTION, "ServiceRequest")


async def _last_clarification(reader: CaseReader, task_id: str) -> ResourceDict | None:
    provenances = await reader.referring("Provenance", "target", f"Task/{task_id}")
    asked = [provenance for provenance in provenances
             if _activity(provenance) == "request-clarification"]
    return max(asked, key=lambda p: str(p.get("recorded") or ""), default=None)


def _activity(provenance: ResourceDict) -> str | None:
    for coding in (provenance.get("activity") or {}).get("coding") or ():
        if isinstance(coding, dict) and coding.get("system") == TRANSITION_SYSTEM:
            code = coding.get("code")
            return code if isinstance(code, str) else None
    return None


def _asked_for_new_photos(provenance: ResourceDict) -> bool:
    return any(coding.get("system") == CLARIFICATION_SYSTEM and coding.get("code") == "new-photos"
               for reason in provenance.get("reason") or ()
               for coding in (reason or {}).get("coding") or () if isinstance(coding, dict))


async def _check_final_report(reader: CaseReader, task: ResourceDict) -> None:
    request_key = reference_key(task.get("focus"))
    for output in task.get("output") or ():
        reference = (output or {}).get("valueReference")
        key = reference_key(reference)
        if key is None or not key.startswith("DiagnosticReport/"):
            continue
        report = await reader.get(key)
        based_on = {reference_key(item) for item in (report or {}).get("basedOn") or ()}
        if report is not None and report.get("status") == "final" and request_key in based_on:
            return
    raise _refusal(ErrorCode.BUSINESS_RULE, NO_FINAL_REPORT, "Task.output")


async def _request_closed(ctx: EngineContext, reader: CaseReader, task: ResourceDict,
                          transition: Transition) -> list[HookOutput]:
    """The ServiceRequest completed with its Task, or revoked when the case is cancelled."""
    status = {"complete": "completed", "cancel": "revoked"}.get(transition.name)
    request_key = reference_key(task.get("focus"))
    if status is None or request_key is None:
        return []
    resource_type, _, id = request_key.partition("/")
    current = await ctx.store.read(resource_type, id)
    request = await reader.get(request_key)
    if request is None or current is None or request.get("status") == status:
        return []
    return [plan_put(_unlimited(ctx), resource={**request, "status": status},
                     resource_type=resource_type, id=id, current=current, method="PUT")]


def _effects(ctx: EngineContext, write: PlannedWrite, transition: Transition,
             principal: Principal | None, *, entities: tuple[str, ...]) -> list[HookOutput]:
    """The Provenance of a transition: the Task version it made, who, when, what."""
    task = write.resource or {}
    provenance: ResourceDict = {
        "resourceType": "Provenance",
        "target": [{"reference": f"Task/{write.change.id}"},
                   {"reference": f"Task/{write.change.id}/_history/{write.change.version}"}],
        "recorded": write.change.last_updated.replace("Z", "+00:00")
        if write.change.last_updated else now_instant(),
        "activity": {"coding": [{"system": TRANSITION_SYSTEM, "code": transition.name}],
                     "text": transition.name},
        "agent": [{"who": _who(principal)}],
    }
    if entities:
        provenance["entity"] = [{"role": "source", "what": {"reference": what}}
                                for what in entities]
    if task.get("statusReason"):
        provenance["reason"] = [task["statusReason"]]
    return [plan_put(_unlimited(ctx), resource=provenance, resource_type="Provenance",
                     id=new_id(), current=None, method="POST")]


def _unlimited(ctx: EngineContext) -> EngineContext:
    """The context of the server's own writes (no caller's access tags stamped on them)."""
    return replace(ctx, access=None) if ctx.access is not None else ctx


def _who(principal: Principal | None) -> dict[str, Any]:
    if principal is None:
        return {"display": "Pictaderm (platform)"}
    if principal.fhir_user is not None:
        return {"reference": principal.fhir_user}
    if principal.organization is not None:
        return {"reference": principal.organization}
    return {"display": f"{principal.role} {principal.subject}"}


def _transition_event(write: PlannedWrite, name: str) -> OutboxEvent:
    return _event(TASK_TRANSITION, {"task": f"Task/{write.change.id}",
                                    "version": write.change.version, "transition": name})


def _event(topic: str, payload: dict[str, Any]) -> OutboxEvent:
    return OutboxEvent(id=new_id(), topic=topic, payload=orjson.dumps(payload),
                       created=now_instant())


def _bilingual(illegal: IllegalTransition) -> ValidationIssue:
    return ValidationIssue(diagnostics=illegal.message_en, issue_type=IssueType.CONFLICT,
                           expression=("Task",), message_fr=illegal.message_fr,
                           rule="state-machine")


def _refusal(error: ErrorCode, text: Text, location: str, **params: Any) -> FhirError:
    issue = make_issue(text, location, issue_type=error.issue_type, rule="workflow", **params)
    return FhirError(error, issue.diagnostics, expression=(location,), issues=(issue,))
