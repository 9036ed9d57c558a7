"""The implementation guide package served for download: public, the bytes ``ig build`` writes,
cached by a strong ETag."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from fhir_server.ig import build_package, load_guide
from tests.api.conftest import Api

ROOT = "http://test"


async def test_the_package_is_public_and_is_the_build(api: Api, tmp_path: Path) -> None:
    response = await api.anonymous.get(f"{ROOT}/ig/package.tgz")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/gzip"
    assert 'filename="pictaderm.fhir.teleexpertise-0.1.0.tgz"' in (
        response.headers["content-disposition"])
    built = build_package(load_guide(), tmp_path).read_bytes()
    assert response.content == built
    assert response.headers["etag"] == f'"{hashlib.sha256(built).hexdigest()}"'
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        member = archive.extractfile("package/StructureDefinition-pictaderm-patient.json")
        assert member is not None
        assert json.load(member)["snapshot"]["element"][0]["path"] == "Patient"


async def test_the_etag_revalidates(api: Api) -> None:
    first = await api.anonymous.get(f"{ROOT}/ig/package.tgz")
    etag = first.headers["etag"]
    again = await api.anonymous.get(f"{ROOT}/ig/package.tgz", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    stale = await api.anonymous.get(f"{ROOT}/ig/package.tgz",
                                    headers={"If-None-Match": '"0000"'})
    assert stale.status_code == 200 and stale.content == first.content
    head = await api.anonymous.head(f"{ROOT}/ig/package.tgz")
    assert head.status_code == 200 and head.headers["etag"] == etag


async def test_the_manifest_is_public(api: Api) -> None:
    response = await api.anonymous.get(f"{ROOT}/ig/package.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == dict(load_guide().manifest)
    assert response.headers["etag"] == (
        f'"{hashlib.sha256(response.content).hexdigest()}"')
    assert (await api.anonymous.get("/StructureDefinition")).status_code == 401
