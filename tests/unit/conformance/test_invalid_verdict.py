"""Judging a refusal of an invalid example against its sidecar (status, expression, IssueType)."""

from __future__ import annotations

from typing import Any

from conformance.checks.invalid import Expectation, refusal_problem
from fhir_server.ig import load_guide

EXPECTED = Expectation(reason="why", expression="Task.status", code="code-invalid")


def outcome(*issues: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def issue(code: str, *expression: str, severity: str = "error") -> dict[str, Any]:
    return {"severity": severity, "code": code, "expression": list(expression),
            "diagnostics": f"{code} problem"}


def test_the_expected_refusal_passes() -> None:
    body = outcome(issue("invariant", "Task"), issue("code-invalid", "Task.status"))
    assert refusal_problem(422, body, EXPECTED) is None


def test_a_fatal_issue_counts_as_an_error() -> None:
    assert refusal_problem(422, outcome(issue("code-invalid", "Task.status", severity="fatal")),
                           EXPECTED) is None


def test_another_status_fails_even_with_the_right_issue() -> None:
    problem = refusal_problem(400, outcome(issue("code-invalid", "Task.status")), EXPECTED)
    assert problem == "expected 422, got 400"


def test_no_issue_at_the_expression_lists_what_came() -> None:
    problem = refusal_problem(422, outcome(issue("value", "Task.code")), EXPECTED)
    assert problem is not None
    assert problem.startswith("no issue at Task.status; issues: value at Task.code")


def test_the_expression_must_be_one_of_the_issue_expressions_not_a_substring() -> None:
    problem = refusal_problem(422, outcome(issue("code-invalid", "Task.statusReason")), EXPECTED)
    assert problem is not None and "no issue at Task.status" in problem


def test_another_code_than_code_invalid_is_named_as_the_issuetype() -> None:
    problem = refusal_problem(422, outcome(issue("value", "Task.status")), EXPECTED)
    assert problem is not None
    assert "has code 'value'" in problem
    assert "expected the IssueType code-invalid (the sidecar's code-invalid" in problem


def test_another_code_than_an_ordinary_one() -> None:
    expected = Expectation(reason="", expression="Patient.birthDate", code="required")
    problem = refusal_problem(422, outcome(issue("structure", "Patient.birthDate")), expected)
    assert problem == "the issue at Patient.birthDate has code 'structure'; expected 'required'"


def test_a_warning_is_not_a_refusal() -> None:
    problem = refusal_problem(422, outcome(issue("code-invalid", "Task.status",
                                                 severity="warning")), EXPECTED)
    assert problem is not None and "severity warning, not error" in problem


def test_an_answer_without_operation_outcome() -> None:
    problem = refusal_problem(500, "Internal Server Error", EXPECTED)
    assert problem == ("answered 500 without an OperationOutcome; expected 422 with "
                       "code-invalid at Task.status")


def test_every_sidecar_of_the_guide_reads_as_an_expectation() -> None:
    invalid = [e for e in load_guide().examples if not e.valid]
    assert len(invalid) >= 60
    codes = {Expectation.of(e.expected or {}).code for e in invalid}
    assert codes <= {"invariant", "value", "required", "structure", "code-invalid",
                     "business-rule"}
