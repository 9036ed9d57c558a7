"""The ``smart`` group's app-launch part, run through ``python -m conformance`` against a loopback
stand-in that follows the app-launch contract: every check passes, and a stand-in breaking one
rule fails exactly the check for that rule, without printing the password or a token."""

from __future__ import annotations

import re

import pytest

from conformance.__main__ import EXIT_FAILED, EXIT_PASSED, main
from tests.unit.conformance.smart_stand_in import (
    CLIENT_ID,
    PASSWORD,
    PATIENT,
    REDIRECT_URI,
    USER,
    StandInState,
    running_stand_in,
)

PASSWORD_VARIABLE = "STAND_IN_PASSWORD"
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-]{32}")
"""The stand-in's codes and tokens are 32 base64url characters."""


def run_launch(state: StandInState, capsys: pytest.CaptureFixture[str],
               monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[str]]:
    monkeypatch.setenv(PASSWORD_VARIABLE, PASSWORD)
    code = main(["--base", state.base, "--only", "smart", "--timeout", "5",
                 "--smart-client-id", CLIENT_ID, "--smart-redirect-uri", REDIRECT_URI,
                 "--smart-user", USER, "--smart-password-env", PASSWORD_VARIABLE,
                 "--smart-patient", PATIENT])
    captured = capsys.readouterr()
    assert PASSWORD not in captured.out + captured.err
    return code, captured.out.strip().splitlines()


def failures(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAIL")]


def test_every_app_launch_check_passes_against_a_server_keeping_the_contract(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with running_stand_in() as state:
        code, lines = run_launch(state, capsys, monkeypatch)
        issued = [*state.codes, *state.access, *state.refresh]
    assert failures(lines) == [], "\n".join(lines)
    assert code == EXIT_PASSED
    launch = [line for line in lines if line.startswith("PASS smart: launch: ")]
    oidc = [line for line in lines if line.startswith("PASS smart: OIDC: ")]
    assert len(launch) == 23 and len(oidc) == 2
    assert not any(line.startswith("PASS smart: backend:") for line in lines)
    assert lines[-1] == f"{sum(line.startswith('PASS') for line in lines)} passed, 0 failed"
    assert len(state.codes) == 6, "one sign-in for the launch, one per refused exchange of a code"
    assert issued and not any(value in "\n".join(lines) for value in issued)


@pytest.mark.parametrize(("fault", "failed_check"), [
    ("accept-plain", "launch: a plain (equal to the challenge) code_verifier answers 400 "
                     "invalid_grant"),
    ("no-rotation", "launch: refresh gives a new access token and a new refresh token "
                    "(rotation), scopes within the first"),
    ("code-for-any-aud", "launch: an aud that is not the FHIR base gets no code"),
    ("no-scope-check", "launch: a search outside the token's scopes answers 403 OperationOutcome"),
    ("verbose-inactive", "launch: introspection of an unknown token answers exactly "
                         "{\"active\": false}"),
])
def test_a_server_breaking_one_rule_fails_that_check_only(
        fault: str, failed_check: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    with running_stand_in(fault) as state:
        code, lines = run_launch(state, capsys, monkeypatch)
    failed = failures(lines)
    assert code == EXIT_FAILED
    assert len(failed) == 1, "\n".join(failed)
    assert failed[0].startswith(f"FAIL smart: {failed_check}: ")
    assert not TOKEN_LIKE.search(failed[0].split(": ", 2)[2]), failed[0]
