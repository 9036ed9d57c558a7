"""OperationOutcome resources built from the server's errors and issues."""

from __future__ import annotations

from collections.abc import Sequence

from fhir_server.errors import FhirError, Issue, IssueType
from fhir_server.types import ResourceDict

ERROR_CODE_SYSTEM = "https://fhir.pictaderm.com/CodeSystem/error-code"


def issue_json(issue: Issue) -> ResourceDict:
    """One OperationOutcome.issue."""
    out: ResourceDict = {"severity": issue.severity, "code": issue.issue_type.value,
                         "diagnostics": issue.diagnostics}
    if issue.code:
        out["details"] = {"coding": [{"system": ERROR_CODE_SYSTEM, "code": issue.code}],
                          "text": issue.diagnostics}
    if issue.expression:
        out["expression"] = list(issue.expression)
    return out


def outcome_of_issues(issues: Sequence[Issue]) -> ResourceDict:
    """An OperationOutcome listing ``issues`` (at least one)."""
    return {"resourceType": "OperationOutcome", "issue": [issue_json(i) for i in issues]}


def outcome_of_error(error: FhirError) -> ResourceDict:
    """The OperationOutcome a refusal is answered with."""
    return outcome_of_issues(error.all_issues())


def information(message: str) -> ResourceDict:
    """An informational OperationOutcome, e.g. for ``Prefer: return=OperationOutcome``."""
    return outcome_of_issues([Issue(diagnostics=message, severity="information",
                                    issue_type=IssueType.INFORMATIONAL)])
