"""The FHIR NPM package: layout, .index.json, and byte-identical output for the same guide."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

from fhir_server.ig import build_package, load_guide, summarize_package
from fhir_server.ig.build import MEMBER_MTIME
from tests.unit.ig.conftest import CANONICAL, make_guide


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as archive:
        found: dict[str, bytes] = {}
        for member in archive.getmembers():
            handle = archive.extractfile(member)
            assert handle is not None
            found[member.name] = handle.read()
        return found


def as_json(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


def test_the_package_layout(tmp_path: Path) -> None:
    path = build_package(load_guide(make_guide(tmp_path / "guide")), tmp_path / "out.tgz")
    assert path == tmp_path / "out.tgz"
    files = members(path)
    assert list(files) == sorted(files)
    assert list(files) == [
        "package/.index.json",
        "package/StructureDefinition-test-extension.json",
        "package/StructureDefinition-test-organization.json",
        "package/StructureDefinition-test-patient-minor.json",
        "package/StructureDefinition-test-patient.json",
        "package/StructureDefinition-test-task.json",
        "package/ValueSet-consent-level.json",
        "package/example/.index.json",
        "package/example/Patient-example.json",
        "package/other/invalid/Patient-no-birthdate.expected.json",
        "package/other/invalid/Patient-no-birthdate.json",
        "package/package.json",
    ]
    assert as_json(files["package/package.json"])["name"] == "example.fhir.test"
    patient = as_json(files["package/StructureDefinition-test-patient.json"])
    ids = [element["id"] for element in patient["snapshot"]["element"]]
    assert "Patient.identifier:insNir.system" in ids
    assert patient["differential"]["element"][0]["id"] == "Patient"
    assert as_json(files["package/example/Patient-example.json"])["id"] == "example"
    assert as_json(files["package/other/invalid/Patient-no-birthdate.expected.json"])[
        "code"] == "required"


def test_the_index_files(tmp_path: Path) -> None:
    files = members(build_package(load_guide(make_guide(tmp_path / "guide")),
                                  tmp_path / "out.tgz"))
    index = as_json(files["package/.index.json"])
    assert index["index-version"] == 1
    entries = {entry["filename"]: entry for entry in index["files"]}
    assert set(entries) == {name.rpartition("/")[2] for name in files
                            if name.count("/") == 1 and name != "package/package.json"
                            and not name.endswith(".index.json")}
    assert entries["StructureDefinition-test-patient.json"] == {
        "filename": "StructureDefinition-test-patient.json",
        "resourceType": "StructureDefinition", "id": "test-patient",
        "url": CANONICAL + "test-patient", "version": "1.0.0", "kind": "resource",
        "type": "Patient"}
    assert entries["ValueSet-consent-level.json"] == {
        "filename": "ValueSet-consent-level.json", "resourceType": "ValueSet",
        "id": "consent-level", "url": "https://example.org/fhir/ValueSet/consent-level",
        "version": "1.0.0"}
    examples = as_json(files["package/example/.index.json"])
    assert examples == {"index-version": 1, "files": [
        {"filename": "Patient-example.json", "resourceType": "Patient", "id": "example"}]}


def test_two_builds_of_the_same_guide_are_byte_identical(tmp_path: Path) -> None:
    first_dir = make_guide(tmp_path / "first")
    second_dir = make_guide(tmp_path / "second")
    for path in second_dir.rglob("*.json"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    first = build_package(load_guide(first_dir), tmp_path / "a.tgz")
    second = build_package(load_guide(second_dir), tmp_path / "b.tgz")
    again = build_package(load_guide(first_dir), tmp_path / "c.tgz")
    assert first.read_bytes() == second.read_bytes() == again.read_bytes()


def test_members_carry_fixed_metadata_and_gzip_no_timestamp(tmp_path: Path) -> None:
    path = build_package(load_guide(make_guide(tmp_path / "guide")), tmp_path / "out.tgz")
    data = path.read_bytes()
    assert data[:2] == b"\x1f\x8b"
    assert data[4:8] == b"\x00\x00\x00\x00"
    assert data[3] & 0x08 == 0  # no file name in the gzip header
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as archive:
        for member in archive.getmembers():
            assert (member.mtime, member.uid, member.gid, member.mode) == (
                MEMBER_MTIME, 0, 0, 0o644)
            assert (member.uname, member.gname) == ("", "")


def test_a_directory_as_out_gets_package_tgz_and_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    out.mkdir()
    path = build_package(load_guide(make_guide(tmp_path / "guide")), out)
    assert path == out / "package.tgz"
    summary = summarize_package(path)
    assert summary.files == 12
    assert summary.size == path.stat().st_size
    assert summary.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not list(out.glob("*.partial"))
