"""The ``smart`` group of ``python -m conformance`` against a real ``fhir-server serve``: discovery,
Backend Services and a standalone app launch pass.

Before the server starts: an RS384 and an ES384 backend client are registered with
``fhir-server clients add --jwks-file``, a public app with ``clients add --public``, and a
pharmacist with ``fhir-server admin create-user`` (password on stdin). Once it runs, the operator
creates a patient of the pharmacist's pharmacy (the pharmacy's access tag), the patient the app
launch opens.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, RSAKey
from stdnum import luhn

from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
COMMAND = str(Path(sys.executable).parent / "fhir-server")
OPERATOR_TOKEN = "smart-suite-operator-5b0e"
SECRET_LIKE = re.compile(r"(?=[\w\-]*[A-Z])(?=[\w\-]*[0-9])[\w\-]{40,}")
"""Random base64url of 40 characters or more, with capitals and digits (unlike field names):
an access token (43 characters) or a part of a signed assertion."""
BACKEND_CHECKS = 14
LAUNCH_CHECKS = 23
PASSWORD = "smart suite passphrase 7c1d"
PASSWORD_ENV = "SMART_SUITE_PASSWORD"
PHARMACIST = "pharmacien@pharmacie-des-tests.example"
FINESS = "34000012" + luhn.calc_check_digit("34000012")
FINESS_SYSTEM = "https://finess.esante.gouv.fr"
ACCESS_TAG_SYSTEM = "https://fhir.pictaderm.com/CodeSystem/access-organization"
REDIRECT_URI = "https://app.example/callback"
APP_SCOPE = "launch/patient openid fhirUser offline_access patient/Patient.rs"


@dataclass(frozen=True)
class Backend:
    """A registered backend client and the private key of its JWKS."""

    client_id: str
    key_file: Path
    kid: str
    algorithm: str


@dataclass(frozen=True)
class Suite:
    """The running server, its backend clients, its public app and the patient to open."""

    server: ServerProcess
    backends: dict[str, Backend]
    app_client_id: str
    patient: str


def client_id_of(output: str) -> str:
    [client_id] = [line.removeprefix("client_id: ") for line in output.splitlines()
                   if line.startswith("client_id: ")]
    return client_id


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
    return Backend(client_id=client_id_of(added.stdout), key_file=key_file, kid=kid,
                   algorithm=algorithm)


def register_public_app(data_dir: Path) -> str:
    added = subprocess.run(
        [COMMAND, "clients", "add", "--name", "Conformance app", "--public", "--redirect-uri",
         REDIRECT_URI, "--scope", APP_SCOPE, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, check=True)
    return client_id_of(added.stdout)


def create_pharmacist(data_dir: Path) -> None:
    """The pharmacist the app launch signs in as, and its pharmacy (new to the server)."""
    created = subprocess.run(
        [COMMAND, "admin", "create-user", "--email", PHARMACIST, "--role", "pharmacist",
         "--organization-finess", FINESS, "--organization-name", "Pharmacie des Tests",
         "--family-name", "Roux", "--given-name", "Alice", "--password-stdin",
         "--data-dir", str(data_dir)],
        input=f"{PASSWORD}\n", capture_output=True, text=True, timeout=120, check=False)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("Created the pharmacist account ")
    assert PASSWORD not in created.stdout + created.stderr


def pharmacy_patient(server: ServerProcess) -> str:
    """A patient of the pharmacist's pharmacy: created by the operator with the pharmacy's
    access tag (the pharmacy found by its FINESS)."""
    with server.client() as client:
        found = client.get("/Organization", params={"identifier": f"{FINESS_SYSTEM}|{FINESS}"})
        assert found.status_code == 200, found.text
        [pharmacy] = [entry["resource"]["id"] for entry in found.json().get("entry", ())]
        created = client.post("/Patient", json={
            "resourceType": "Patient",
            "meta": {"tag": [{"system": ACCESS_TAG_SYSTEM,
                              "code": f"Organization/{pharmacy}"}]},
            "name": [{"family": "Conformance", "given": ["Lina"]}], "gender": "female",
            "birthDate": "1990-05-17"})
        assert created.status_code == 201, created.text
        patient: str = created.json()["id"]
        return patient


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    directory = tmp_path_factory.mktemp("smart-suite")
    data_dir = directory / "data"
    backends = {
        "RS384": register(data_dir, directory, RSAKey.generate_key(2048), kid="rsa-1",
                          algorithm="RS384"),
        "ES384": register(data_dir, directory, ECKey.generate_key("P-384"), kid="ec-1",
                          algorithm="ES384"),
    }
    app_client_id = register_public_app(data_dir)
    create_pharmacist(data_dir)
    process = ServerProcess(data_dir=data_dir, token=OPERATOR_TOKEN)
    process.start()
    try:
        yield Suite(server=process, backends=backends, app_client_id=app_client_id,
                    patient=pharmacy_patient(process))
    finally:
        process.stop()


def run_smart(suite: Suite, backend: Backend, *, kid: str | None = None
              ) -> subprocess.CompletedProcess[str]:
    """The smart group with both parts. Values go as ``--option=value``: a generated client id
    may start with ``-``, which argparse would take for an option."""
    options = {"--smart-backend-client-id": backend.client_id,
               "--smart-backend-key": str(backend.key_file),
               "--smart-backend-kid": kid or backend.kid,
               "--smart-client-id": suite.app_client_id, "--smart-redirect-uri": REDIRECT_URI,
               "--smart-user": PHARMACIST, "--smart-password-env": PASSWORD_ENV,
               "--smart-patient": suite.patient}
    return subprocess.run(
        [sys.executable, "-m", "conformance", "--base", suite.server.base, "--only", "smart",
         "--verbose", *(f"{option}={value}" for option, value in options.items())],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, PASSWORD_ENV: PASSWORD})


def results(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("PASS ", "FAIL "))]


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_the_whole_smart_group_passes(suite: Suite, algorithm: str) -> None:
    result = run_smart(suite, suite.backends[algorithm])
    lines = results(result.stdout)
    assert [line for line in lines if line.startswith("FAIL")] == [], result.stdout[-6000:]
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == f"{len(lines)} passed, 0 failed"
    backend = [line for line in lines if line.startswith("PASS smart: backend: ")]
    assert len(backend) == BACKEND_CHECKS
    assert any(f"with a {algorithm} assertion answers 200" in line for line in backend)
    assert sum(line.startswith("PASS smart: discovery: ") for line in lines) >= 10
    launch = [line for line in lines if line.startswith("PASS smart: launch: ")]
    assert len(launch) == LAUNCH_CHECKS, "\n".join(launch)
    assert any(f"reads Patient/{suite.patient}" in line for line in launch)
    printed = result.stdout + result.stderr
    assert PASSWORD not in printed
    assert not SECRET_LIKE.search(printed), "a token was printed"


def test_a_key_the_server_does_not_know_fails_the_token_check_and_stops_the_backend_part(
        suite: Suite) -> None:
    result = run_smart(suite, suite.backends["RS384"], kid="not-registered")
    failed = [line for line in results(result.stdout) if line.startswith("FAIL")]
    assert result.returncode == 1
    assert len(failed) == 1, "\n".join(failed)
    assert failed[0].startswith("FAIL smart: backend: client_credentials with a RS384 assertion")
    assert "401 invalid_client" in failed[0]
    backend = [line.split(":")[0:3] for line in results(result.stdout) if ": backend: " in line]
    assert backend == [["PASS smart", " backend", " the token endpoint is advertised"],
                       ["FAIL smart", " backend", " client_credentials with a RS384 assertion "
                                                  "answers 200"]]
    launch = [line for line in results(result.stdout) if ": launch: " in line]
    assert len(launch) == LAUNCH_CHECKS and all(line.startswith("PASS") for line in launch)
