"""``fhir-server demo`` against a real ``fhir-server serve``: it seeds its people, runs the case
through the public API, prints the timeline and the ``$stats`` figures and exits 0 — twice on
the same server (each run's people and numbers are new)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "demo-e2e-token-5b2e"
TIMELINE = (
    ("pharmacist", "sends the case (transaction)", "HTTP 200", "requested/awaiting-claim"),
    ("tier-1 doctor A", "$decline", "HTTP 200", "requested/awaiting-claim"),
    ("tier-1 doctor B", "$claim", "HTTP 200", "accepted/claimed"),
    ("tier-1 doctor B", "$request-clarification", "HTTP 200", "on-hold/awaiting-clarification"),
    ("pharmacist", "$resubmit unchanged (refused)", "HTTP 422",
     "on-hold/awaiting-clarification"),
    ("pharmacist", "adds a photo (transaction)", "HTTP 200", "on-hold/awaiting-clarification"),
    ("pharmacist", "$resubmit", "HTTP 200", "in-progress/resubmitted"),
    ("tier-1 doctor B", "$complete", "HTTP 200", "completed/report-available"),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(data_dir=tmp_path_factory.mktemp("demo") / "data", token=TOKEN)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def run_demo(server: ServerProcess, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fhir_server", "demo", *arguments],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def timeline(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = lines.index("Timeline:") + 1
    return lines[start:start + len(TIMELINE)]


def test_the_demo_runs_the_case_and_prints_its_timeline(server: ServerProcess) -> None:
    result = run_demo(server, "--base", server.base, "--token", TOKEN)
    assert result.returncode == 0, result.stdout + result.stderr
    for line, (actor, action, status, state) in zip(timeline(result.stdout), TIMELINE,
                                                    strict=True):
        assert line[len("00:00:00.000  "):].startswith(actor), line
        assert action in line and f"{status}  Task {state}  ok" in line, line
    assert "refused" in timeline(result.stdout)[4] and "new photo" in timeline(result.stdout)[4]
    assert "downloaded by the pharmacist (size and SHA-1 as stated)" in result.stdout
    assert "DMP export: dmp-skipped-disabled" in result.stdout
    assert "$stats (overall):" in result.stdout
    assert "  declines: 1" in result.stdout and "  clarifications: 1" in result.stdout
    assert result.stdout.rstrip().endswith("8 of 8 steps as expected")
    assert TOKEN not in result.stdout + result.stderr


def test_the_demo_runs_again_on_the_same_server(server: ServerProcess) -> None:
    first = run_demo(server, "--base", server.base, "--token", TOKEN)
    again = run_demo(server, "--base", server.base, "--token", TOKEN)
    assert (first.returncode, again.returncode) == (0, 0), again.stdout + again.stderr
    seeded = [next(line for line in run.stdout.splitlines() if line.startswith("Seeded:"))
              for run in (first, again)]
    assert seeded[0] != seeded[1]
    assert completed(again.stdout) == completed(first.stdout) + 1


def completed(stdout: str) -> int:
    """The number of completed cases the ``$stats`` lines report."""
    (line,) = (line for line in stdout.splitlines() if line.startswith("  status: "))
    return int(line.split("completed=")[1].split()[0])


def test_a_wrong_token_ends_with_exit_code_1(server: ServerProcess) -> None:
    result = run_demo(server, "--base", server.base, "--token", "not-the-token")
    assert result.returncode == 1
    assert "create the account of pharmacist: expected HTTP 201, got 401" in result.stdout


def test_without_a_token_the_demo_is_a_usage_error(server: ServerProcess) -> None:
    result = subprocess.run([sys.executable, "-m", "fhir_server", "demo", "--base", server.base],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "operator token" in result.stderr
