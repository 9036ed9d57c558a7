"""The ``smart`` group of ``python -m conformance`` against a real ``fhir-server serve``: discovery
and Backend Services pass for an RS384 and an ES384 client registered with
``fhir-server clients add --jwks-file`` before the server starts.

Only the backend options are given, so the group runs its discovery and Backend Services parts
(the app-launch part needs a public app, a user and a patient: ``--smart-client-id`` …).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, RSAKey

from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
COMMAND = str(Path(sys.executable).parent / "fhir-server")
OPERATOR_TOKEN = "smart-suite-operator-5b0e"
SECRET_LIKE = re.compile(r"(?=[\w\-]*[A-Z])(?=[\w\-]*[0-9])[\w\-]{40,}")
"""Random base64url of 40 characters or more, with capitals and digits (unlike field names):
an access token (43 characters) or a part of a signed assertion."""
BACKEND_CHECKS = 14


@dataclass(frozen=True)
class Backend:
    """A registered backend client and the private key of its JWKS."""

    client_id: str
    key_file: Path
    kid: str
    algorithm: str


def register(data_dir: Path, directory: Path, key: RSAKey | ECKey, *, kid: str,
             algorithm: str) -> Backend:
    key_file = directory / f"{kid}.pem"
    key_file.write_bytes(key.as_pem(private=True))
    jwks_file = directory / f"{kid}.jwks.json"
    jwks_file.write_text(json.dumps({"keys": [{**key.as_dict(private=False), "kid": kid}]}))
    added = subprocess.run(
        [COMMAND, "clients", "add", "--name", f"Conformance {algorithm}", "--scope",
         "system/Patient.rs", "--jwks-file", str(jwks_file), "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, check=True)
    [client_id] = [line.removeprefix("client_id: ") for line in added.stdout.splitlines()
                   if line.startswith("client_id: ")]
    return Backend(client_id=client_id, key_file=key_file, kid=kid, algorithm=algorithm)


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[ServerProcess, dict[str, Backend]]]:
    directory = tmp_path_factory.mktemp("smart-suite")
    data_dir = directory / "data"
    backends = {
        "RS384": register(data_dir, directory, RSAKey.generate_key(2048), kid="rsa-1",
                          algorithm="RS384"),
        "ES384": register(data_dir, directory, ECKey.generate_key("P-384"), kid="ec-1",
                          algorithm="ES384"),
    }
    process = ServerProcess(data_dir=data_dir, token=OPERATOR_TOKEN)
    process.start()
    try:
        yield process, backends
    finally:
        process.stop()


def run_smart(server: ServerProcess, backend: Backend, *, kid: str | None = None
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance", "--base", server.base, "--only", "smart",
         "--verbose", "--smart-backend-client-id", backend.client_id,
         "--smart-backend-key", str(backend.key_file), "--smart-backend-kid", kid or backend.kid],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def results(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("PASS ", "FAIL "))]


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_discovery_and_backend_services_pass(
        registered: tuple[ServerProcess, dict[str, Backend]], algorithm: str) -> None:
    server, backends = registered
    result = run_smart(server, backends[algorithm])
    lines = results(result.stdout)
    assert [line for line in lines if line.startswith("FAIL")] == [], result.stdout[-6000:]
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == f"{len(lines)} passed, 0 failed"
    backend = [line for line in lines if line.startswith("PASS smart: backend: ")]
    assert len(backend) == BACKEND_CHECKS
    assert any(f"with a {algorithm} assertion answers 200" in line for line in backend)
    assert sum(line.startswith("PASS smart: discovery: ") for line in lines) >= 10
    assert not any(": launch: " in line for line in lines)
    assert not SECRET_LIKE.search(result.stdout + result.stderr), "a token was printed"


def test_a_key_the_server_does_not_know_fails_the_token_check_and_stops_the_backend_part(
        registered: tuple[ServerProcess, dict[str, Backend]]) -> None:
    server, backends = registered
    result = run_smart(server, backends["RS384"], kid="not-registered")
    failed = [line for line in results(result.stdout) if line.startswith("FAIL")]
    assert result.returncode == 1
    assert len(failed) == 1, "\n".join(failed)
    assert failed[0].startswith("FAIL smart: backend: client_credentials with a RS384 assertion")
    assert "401 invalid_client" in failed[0]
    backend = [line.split(":")[0:3] for line in results(result.stdout) if ": backend: " in line]
    assert backend == [["PASS smart", " backend", " the token endpoint is advertised"],
                       ["FAIL smart", " backend", " client_credentials with a RS384 assertion "
                                                  "answers 200"]]
