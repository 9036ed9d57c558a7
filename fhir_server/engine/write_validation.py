"""Validation of every write (issue #4 §2, "Where it runs"): what a resource is checked against
before it is stored, and what becomes of one with errors.

Every create, update, patch result and transaction or batch entry is validated by the engine's
one ``ProfileValidator`` (built once from the guide, ``guide_validator``): structure, the core
rules (required bindings, invariants, reference targets), each ``meta.profile`` the validator
knows, and the guide's profiles of a case resource (``validation/case_profiles.py``; in an
intake bundle, of every resource of a type the guide profiles).

Errors refuse the write (422, mode ``reject``), or (mode ``tag``) the resource is stored with the
``meta.tag`` ``validation-status#invalid`` and the issues are reported with the answer. Structure
errors are always refused: the later layers, the indexes and the readers need a well-formed
resource. Warnings and information never refuse. The tag is the server's: it is taken off a
resource written again without errors, and a client cannot set it on a valid one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

from fhir_server.errors import ErrorCode, FhirError, Issue, IssueType
from fhir_server.ig.package import Guide, load_guide
from fhir_server.types import ResourceDict
from fhir_server.validation.case_profiles import CaseProfiles
from fhir_server.validation.messages import Text, ValidationIssue, make_issue
from fhir_server.validation.terminology import Terminology
from fhir_server.validation.validator import ProfileValidator

ValidationMode: TypeAlias = Literal["reject", "tag"]

VALIDATION_STATUS_SYSTEM: Final = "https://fhir.pictaderm.com/CodeSystem/validation-status"
INVALID_TAG: Final = {"system": VALIDATION_STATUS_SYSTEM, "code": "invalid",
                      "display": "Stored with validation errors"}
ERROR_SEVERITIES: Final = frozenset({"error", "fatal"})
STRUCTURE_RULE: Final = "structure"

SUMMARY_RULE: Final = "refusal"
REFUSED_ONE = Text(en="the resource is refused: 1 error follows",
                   fr="la ressource est refusée : 1 erreur suit")
REFUSED = Text(en="the resource is refused: {count} errors follow",
               fr="la ressource est refusée : {count} erreurs suivent")
ENTRY_REFUSED = Text(
    en="the {resource_type} of this entry ({request}) is not valid: nothing of the transaction "
       "was written",
    fr="la ressource {resource_type} de cette entrée ({request}) n'est pas valide : rien de la "
       "transaction n'a été enregistré")


@dataclass(frozen=True, slots=True)
class Checked:
    """A resource ready to be stored (tagged when stored with errors), and the issues the
    validation found that did not refuse it, to report with the answer."""

    resource: ResourceDict
    issues: tuple[Issue, ...] = ()


@dataclass(frozen=True, slots=True)
class WriteValidation:
    """The validator, the guide's case profiles and the mode: what the engine checks writes
    with (one per engine, in ``EngineContext``)."""

    validator: ProfileValidator
    cases: CaseProfiles
    mode: ValidationMode = "reject"

    def issues(self, resource: ResourceDict, *, profiles: Sequence[str] = (),
               intake: bool = False) -> tuple[Issue, ...]:
        """Every issue of ``resource``: against the core rules, ``profiles``, its declared
        profiles the validator knows and, for a case resource (every resource when ``intake``),
        the guide's profiles."""
        guide = (self.cases.intake_profiles(resource) if intake
                 else self.cases.profiles(resource))
        return self.validator.validate(resource, [*profiles, *guide])

    def check(self, resource: ResourceDict, *, intake: bool = False) -> Checked:
        """The resource to store and the issues to report; ``FhirError`` 422 when refused."""
        issues = self.issues(resource, intake=intake)
        errors = [issue for issue in issues if is_error(issue)]
        if errors and (self.mode == "reject" or any(map(is_structural, errors))):
            raise refusal(str(resource.get("resourceType")), errors)
        return Checked(resource=with_validation_status(resource, invalid=bool(errors)),
                       issues=issues)

    def is_intake(self, resources: Iterable[Mapping[str, Any]]) -> bool:
        """Whether the resources a transaction writes make it an intake bundle."""
        return self.cases.is_intake(resources)


def is_error(issue: Issue) -> bool:
    return issue.severity in ERROR_SEVERITIES


def is_structural(issue: Issue) -> bool:
    """A structure error: the JSON is not a well-formed FHIR resource (plain issues of the
    structure layer count as such)."""
    return not isinstance(issue, ValidationIssue) or issue.rule == STRUCTURE_RULE


def refusal(resource_type: str, errors: Sequence[Issue]) -> FhirError:
    """The 422 refusal of a resource with ``errors``: its OperationOutcome lists a summary
    issue on the resource (``structure`` when one of the errors is, else ``invalid``), then
    each error."""
    first = errors[0]
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    text = REFUSED_ONE if len(errors) == 1 else REFUSED
    summary = make_issue(text, resource_type, issue_type=_summary_type(errors),
                         rule=SUMMARY_RULE, count=len(errors))
    return FhirError(ErrorCode.INVALID_RESOURCE,
                     f"The {resource_type} is not valid: {first.diagnostics}{more}",
                     expression=first.expression, issues=(summary, *errors))


def _summary_type(errors: Iterable[Issue]) -> IssueType:
    return IssueType.STRUCTURE if any(map(is_structural, errors)) else IssueType.INVALID


def is_validation_refusal(error: FhirError) -> bool:
    """Whether a refusal is the validation's: every issue it details is a validation issue."""
    return bool(error.issues) and all(isinstance(i, ValidationIssue) for i in error.issues)


def with_validation_status(resource: ResourceDict, *, invalid: bool) -> ResourceDict:
    """The resource with the ``validation-status#invalid`` tag when ``invalid``, without it
    otherwise (the resource itself when that changes nothing). The resource is well-formed."""
    meta: dict[str, Any] = resource.get("meta") or {}
    tags: list[Any] = meta.get("tag") or []
    kept = [tag for tag in tags if not _is_status_tag(tag)]
    if invalid:
        kept.append(dict(INVALID_TAG))
    if kept == tags:
        return resource
    new_meta = {key: value for key, value in meta.items() if key != "tag"}
    if kept:
        new_meta["tag"] = kept
    out = {key: value for key, value in resource.items() if key != "meta"}
    if new_meta:
        out["meta"] = new_meta
    return out


def _is_status_tag(tag: Any) -> bool:
    return isinstance(tag, dict) and tag.get("system") == VALIDATION_STATUS_SYSTEM


def in_entry(error: FhirError, *, index: int, request: str, resource_type: str) -> FhirError:
    """A validation refusal of a transaction entry's resource, located in the Bundle: an issue
    naming the entry takes the summary's place, and each error moves under
    ``Bundle.entry[index].resource``. Any other error is returned as it is."""
    if not is_validation_refusal(error):
        return error
    entry = f"Bundle.entry[{index}]"
    errors = [issue for issue in error.issues if not _is_summary(issue)]
    named = make_issue(ENTRY_REFUSED, entry, issue_type=_summary_type(errors),
                       rule=SUMMARY_RULE, request=request, resource_type=resource_type)
    moved = tuple(relocated(issue, resource_type, f"{entry}.resource") for issue in errors)
    return replace(error, issues=(named, *moved))


def _is_summary(issue: Issue) -> bool:
    return isinstance(issue, ValidationIssue) and issue.rule == SUMMARY_RULE


def relocated(issue: Issue, old_root: str, new_root: str) -> Issue:
    """``issue`` with its expressions and messages moved from ``old_root`` (``Task.status``)
    to ``new_root`` (``Bundle.entry[2].resource.status``)."""
    changes: dict[str, Any] = {
        "diagnostics": _moved(issue.diagnostics, old_root, new_root),
        "expression": tuple(_moved(e, old_root, new_root) for e in issue.expression)}
    if isinstance(issue, ValidationIssue):
        changes["message_fr"] = _moved(issue.message_fr, old_root, new_root)
    return replace(issue, **changes)


def _moved(text: str, old_root: str, new_root: str) -> str:
    if text == old_root or text.startswith((f"{old_root}.", f"{old_root}:", f"{old_root} ")):
        return new_root + text[len(old_root):]
    return text


@cache
def guide_validator(directory: Path) -> ProfileValidator:
    """One process-wide validator over the core R4 definitions and the guide in ``directory``:
    its profiles with snapshots, and a terminology of the core
    plus the guide's CodeSystems and ValueSets. It keeps what it compiles, so it is built once."""
    guide = load_guide(directory)
    terminology = Terminology([*guide.code_systems.values(), *guide.value_sets.values()])
    return ProfileValidator(guide.structure_definitions.values(), terminology)


def write_validation(mode: ValidationMode = "reject", *,
                     guide: Guide | None = None) -> WriteValidation:
    """What an engine validates writes with: the guide's validator and case profiles."""
    guide = guide or load_guide()
    return WriteValidation(validator=guide_validator(guide.directory),
                           cases=CaseProfiles.of_guide(guide), mode=mode)
