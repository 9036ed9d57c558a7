"""Group ``invalid``: each invalid example of the guide is refused for the reason its sidecar gives.

Each ``examples/invalid/*.json`` is created the way its type is (``POST /{type}``, without its
id). Expected: 422 and an OperationOutcome with an error issue whose ``expression`` lists the
sidecar's ``expression`` and whose ``code`` is the sidecar's ``code`` (each a FHIR IssueType;
the sidecar's ``code-invalid`` is the IssueType ``code-invalid``). An example the server
accepts is deleted at once, and reported as a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import PurePosixPath
from typing import Any

from conformance.client import CheckFailure, Reply, describe_issues
from conformance.fresh import as_new
from conformance.kit import Group, GroupRun, Kit
from fhir_server.ig import Example

VALIDATION_REFUSAL = 422
ERROR_SEVERITIES = frozenset({"error", "fatal"})
REASON_LIMIT = 160


@dataclass(frozen=True, slots=True)
class Expectation:
    """Why an invalid example must be refused (its ``.expected.json``)."""

    reason: str
    expression: str
    code: str

    @classmethod
    def of(cls, sidecar: Mapping[str, Any]) -> Expectation:
        return cls(reason=str(sidecar.get("reason", "")),
                   expression=str(sidecar["expression"]), code=str(sidecar["code"]))

    def describe(self) -> str:
        return f"{self.code} at {self.expression}"


def _wrong_code(expected: Expectation, got: object) -> str:
    if expected.code == "code-invalid":
        return (f"the issue at {expected.expression} has code {got!r}; expected the IssueType "
                "code-invalid (the sidecar's code-invalid: a code outside a required binding)")
    return f"the issue at {expected.expression} has code {got!r}; expected {expected.code!r}"


def refusal_problem(status: int, body: Any, expected: Expectation) -> str | None:
    """None when (status, body) is the expected refusal; otherwise what is wrong with it."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return f"answered {status} without an OperationOutcome; expected {VALIDATION_REFUSAL} " \
               f"with {expected.describe()}"
    issues = [issue for issue in body.get("issue", []) if isinstance(issue, dict)]
    located = [issue for issue in issues if expected.expression in issue.get("expression", [])]
    problems = []
    if status != VALIDATION_REFUSAL:
        problems.append(f"expected {VALIDATION_REFUSAL}, got {status}")
    if not located:
        problems.append(f"no issue at {expected.expression}; issues: {describe_issues(body)}")
    elif not any(issue.get("code") == expected.code for issue in located):
        problems.append(_wrong_code(expected, located[0].get("code")))
    else:
        severities = {issue.get("severity") for issue in located
                      if issue.get("code") == expected.code}
        if not severities & ERROR_SEVERITIES:
            problems.append(f"the {expected.describe()} issue has severity "
                            f"{', '.join(sorted(map(str, severities)))}, not error")
    return "; ".join(problems) or None


def _remove_accepted(kit: Kit, resource_type: str, reply: Reply) -> str:
    """Delete what the server wrongly stored; says what became of it."""
    body = reply.body if isinstance(reply.body, dict) else {}
    location = reply.header("location")
    if isinstance(body.get("id"), str):
        path = f"{resource_type}/{body['id']}"
    elif location:
        path = "/".join(location.split("/_history/")[0].rstrip("/").split("/")[-2:])
    else:
        return "stored where the answer does not say, so not deleted"
    try:
        kit.client.delete(path).expect(200, 204)
    except CheckFailure as failure:
        return f"stored as {path}, and deleting it failed: {failure}"
    return f"stored as {path}, now deleted"


def _refused(kit: Kit, example: Example, expected: Expectation) -> None:
    resource_type = str(example.resource["resourceType"])
    reply = kit.client.post(resource_type, as_new(example.resource))
    if 200 <= reply.status < 300:
        fate = _remove_accepted(kit, resource_type, reply)
        raise CheckFailure(f"accepted with {reply.status} ({fate}); expected "
                           f"{VALIDATION_REFUSAL} with {expected.describe()} — why: "
                           f"{expected.reason[:REASON_LIMIT]}")
    problem = refusal_problem(reply.status, reply.body, expected)
    if problem:
        raise CheckFailure(f"{problem} — why: {expected.reason[:REASON_LIMIT]}")


def _name(example: Example, expected: Expectation) -> str:
    stem = PurePosixPath(example.filename).stem
    return f"{stem} is refused with {VALIDATION_REFUSAL}, {expected.describe()}"


def run(kit: Kit, checks: GroupRun) -> None:
    invalid = [example for example in kit.guide.examples if not example.valid]
    if not invalid:
        checks.fail("the guide's invalid examples", "the guide has no examples/invalid/")
        return
    for example in invalid:
        try:
            expected = Expectation.of(example.expected or {})
        except KeyError as missing:
            checks.fail(PurePosixPath(example.filename).stem,
                        f"its .expected.json lacks {missing}")
            continue
        checks.check(_name(example, expected), partial(_refused, kit, example, expected))


GROUP = Group("invalid", "each invalid example of the guide refused with 422 and the expected "
              "issue", run)
