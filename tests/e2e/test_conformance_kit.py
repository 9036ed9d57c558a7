"""``python -m conformance`` against a real ``fhir-server serve``: it runs, cleans up, and passes
every check, the guide's eight Task workflow operations (``$submit``, ``$claim``…) included.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fhir_server.ig import load_guide
from tests.support.guide import guide_count
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "conformance-e2e-token-7c1d"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(data_dir=tmp_path_factory.mktemp("conformance") / "data", token=TOKEN)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def run_kit(server: ServerProcess, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance", "--base", server.base, "--token", server.token,
         *arguments],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def stored_counts(server: ServerProcess) -> dict[str, int]:
    """How many resources of each type the guide's examples use the server holds, beyond the
    guide's own conformance resources (installed at start: its Questionnaires)."""
    types = {str(e.resource["resourceType"]) for e in load_guide().examples} | {"Binary"}
    with server.client() as client:
        return {t: client.get(f"/{t}", params={"_summary": "count"}).json()["total"]
                - guide_count(t) for t in sorted(types)}


def counts(last_line: str) -> tuple[int, int]:
    passed, failed = last_line.split(", ")
    return int(passed.removesuffix(" passed")), int(failed.removesuffix(" failed"))


def test_the_groups_the_server_satisfies_today_pass(server: ServerProcess) -> None:
    result = run_kit(server, "--only", "metadata,crud,search")
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert lines[-1].endswith(" 0 failed")
    passed, _ = counts(lines[-1])
    assert passed == sum(line.startswith("PASS ") for line in lines) >= 30
    assert {line.split(":")[0] for line in lines if line.startswith("PASS")} == {
        "PASS metadata", "PASS crud", "PASS search"}
    assert TOKEN not in result.stdout + result.stderr
    assert set(stored_counts(server).values()) == {0}


WORKFLOW_OPERATIONS = frozenset({"submit", "claim", "decline", "refer-up",
                                 "request-clarification", "resubmit", "complete", "cancel"})
"""The guide's Task operations (issue #6), each listed on Task in the CapabilityStatement."""


def test_the_whole_kit_passes(server: ServerProcess) -> None:
    result = run_kit(server)
    lines = result.stdout.strip().splitlines()
    passed, failed = counts(lines[-1])
    assert TOKEN not in result.stdout + result.stderr
    assert any(line.startswith("PASS case: case camille-martin") for line in lines)
    assert sum(line.startswith("PASS invalid:") for line in lines) == sum(
        1 for e in load_guide().examples if not e.valid)
    assert set(stored_counts(server).values()) == {0}, "the kit left resources behind"
    failures = [line for line in lines if line.startswith("FAIL")]
    assert failures == [] and failed == 0, "\n".join(failures)[:6000]
    listed = {line.split("operation $", 1)[1].split(" ", 1)[0] for line in lines
              if line.startswith("PASS guide: operation $")}
    assert listed >= WORKFLOW_OPERATIONS
    assert passed >= 138 and result.returncode == 0


def test_a_wrong_token_is_refused_before_any_check(server: ServerProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "--base", server.base, "--token", "wrong-token",
         "--only", "crud"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "answered 401" in result.stderr
    assert not any(line.startswith(("PASS", "FAIL")) or line.endswith(" failed")
                   for line in result.stdout.splitlines())
    with httpx.Client() as client:
        assert client.get(f"{server.base}/metadata").status_code == 200
