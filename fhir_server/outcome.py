"""OperationOutcome resources built from the server's errors and issues.

A validation issue (``ValidationIssue``) is rendered in both languages: ``details.text`` in
French with its English translation, ``diagnostics`` in English (``validation/messages.py``).
A validation refusal (a ``FhirError`` whose detailed issues are all validation issues) lists
those issues only, each carrying the refusal's error code; any other refusal lists its main
issue first, then the detailed ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from fhir_server.errors import FhirError, Issue, IssueType
from fhir_server.types import ResourceDict
from fhir_server.validation.messages import ValidationIssue
from fhir_server.validation.messages import issue_json as bilingual_issue_json

ERROR_CODE_SYSTEM = "https://fhir.pictaderm.com/CodeSystem/error-code"


def issue_json(issue: Issue) -> ResourceDict:
    """One OperationOutcome.issue."""
    coding = ([{"system": ERROR_CODE_SYSTEM, "code": issue.code}] if issue.code else None)
    if isinstance(issue, ValidationIssue) and issue.message_fr:
        out = bilingual_issue_json(issue)
        if coding:
            out["details"] = {"coding": coding, **out["details"]}
        return out
    out = {"severity": issue.severity, "code": issue.issue_type.value,
           "diagnostics": issue.diagnostics}
    if coding:
        out["details"] = {"coding": coding, "text": issue.diagnostics}
    if issue.expression:
        out["expression"] = list(issue.expression)
    return out


def outcome_of_issues(issues: Sequence[Issue]) -> ResourceDict:
    """An OperationOutcome listing ``issues`` (at least one)."""
    return {"resourceType": "OperationOutcome", "issue": [issue_json(i) for i in issues]}


def reported_issues(error: FhirError) -> tuple[Issue, ...]:
    """The issues a refusal is answered with (see the module doc)."""
    if error.issues and all(isinstance(issue, ValidationIssue) for issue in error.issues):
        return tuple(replace(issue, code=issue.code or error.error.code)
                     for issue in error.issues)
    return error.all_issues()


def outcome_of_error(error: FhirError) -> ResourceDict:
    """The OperationOutcome a refusal is answered with."""
    return outcome_of_issues(reported_issues(error))


def information(message: str, *, issues: Sequence[Issue] = ()) -> ResourceDict:
    """An informational OperationOutcome, e.g. for ``Prefer: return=OperationOutcome``; the
    ``issues`` found on the way (validation warnings…) follow the message."""
    return outcome_of_issues([Issue(diagnostics=message, severity="information",
                                    issue_type=IssueType.INFORMATIONAL), *issues])
