"""``fhir-server ig build`` end to end, as a subprocess."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from fhir_server.ig import default_guide_directory
from tests.unit.ig.conftest import make_guide

FHIR_SERVER = Path(sys.executable).parent / "fhir-server"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FHIR_SERVER), "ig", "build", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_ig_build_writes_the_package_and_says_what_it_wrote(tmp_path: Path) -> None:
    out = tmp_path / "dist" / "guide.tgz"
    result = run("--out", str(out), "--profiles", str(make_guide(tmp_path / "guide")))
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert result.stdout.strip() == (
        f"wrote {out} (example.fhir.test#1.0.0): 12 files, {out.stat().st_size} bytes, "
        f"sha256 {digest}")
    with tarfile.open(out, "r:gz") as archive:
        assert "package/package.json" in archive.getnames()


def test_ig_build_reports_a_broken_guide_and_fails(tmp_path: Path) -> None:
    directory = make_guide(tmp_path / "guide")
    (directory / "ValueSet-consent-level.json").write_text("{", encoding="utf-8")
    result = run("--out", str(tmp_path / "p.tgz"), "--profiles", str(directory))
    assert result.returncode == 2
    assert "ValueSet-consent-level.json: invalid JSON" in result.stderr
    assert not (tmp_path / "p.tgz").exists()


def test_ig_build_of_the_repository_guide(tmp_path: Path) -> None:
    directory = default_guide_directory()
    if not any(directory.glob("StructureDefinition-*.json")) or not (
            directory / "package.json").is_file():
        pytest.skip("profiles/ holds no StructureDefinition or package.json yet")
    result = run("--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "package.tgz").is_file()
    assert "files" in result.stdout and "sha256" in result.stdout
