"""Photo uploads over HTTP: every way a Binary arrives (raw bytes, FHIR JSON, a transaction, a
batch, PATCH, a pharmacist's intake) meets the photo rules; a refused upload stores nothing and
answers an OperationOutcome; an accepted one is stored without its metadata."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fhir_server.demo import intake_bundle, seed
from tests.api.conftest import Api
from tests.support.backends import BACKENDS
from tests.support.photo_api import (
    MAX_IMAGE_BYTES,
    SERVER,
    photo_api,
    stored_versions,
)
from tests.support.photos import (
    ICC,
    exif_with_gps,
    heic_header,
    jpeg,
    picture,
    pixels_of,
    png,
    png_bomb_header,
)

RAW = {"Accept": "*/*"}


@pytest.fixture(params=BACKENDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    async with photo_api(request.param, tmp_path) as app:
        yield app


def _binary(content_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Binary", "contentType": content_type,
            "data": base64.b64encode(data).decode(), **extra}


def _noise_jpeg() -> bytes:
    """A JPEG larger than the test limit of 60 kB (random pixels do not compress)."""
    import os

    from PIL import Image

    return jpeg(Image.frombytes("RGB", (190, 190), os.urandom(190 * 190 * 3)), quality=100)


async def test_a_raw_jpeg_is_read_back_without_its_exif(api: Api) -> None:
    original = jpeg(exif=exif_with_gps(), icc=ICC, comment=b"rue de la Paix")
    created = await api.client.post("/Binary", content=original,
                                    headers={"Content-Type": "image/jpeg"})
    assert created.status_code == 201, created.text
    raw = await api.client.get(f"/Binary/{created.json()['id']}", headers=RAW)
    assert raw.headers["content-type"] == "image/jpeg"
    assert b"Exif" not in raw.content and b"PhoneMaker" not in raw.content
    assert b"rue de la Paix" not in raw.content
    assert b"ICC_PROFILE" in raw.content
    assert pixels_of(raw.content) == pixels_of(original)


@pytest.mark.parametrize(("content_type", "body", "status"), [
    ("image/jpeg", png(), 422),
    ("image/png", b"not a png at all", 422),
    ("image/gif", b"GIF89a" + bytes(40), 415),
    ("image/heic", heic_header(), 415),
    ("image/jpeg", heic_header(), 415),
    ("image/jpeg", jpeg()[:-60], 422),
    ("image/png", png_bomb_header(30_000, 30_000), 413),
    ("application/dicom", b"\x00" * 128 + b"DICM" + bytes(16), 422),
])
async def test_a_refused_raw_upload_stores_nothing(api: Api, content_type: str, body: bytes,
                                                   status: int) -> None:
    before = await stored_versions(api.store)
    answer = await api.client.post("/Binary", content=body,
                                   headers={"Content-Type": content_type})
    assert answer.status_code == status, answer.text
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["diagnostics"]
    assert await stored_versions(api.store) == before


async def test_a_photo_over_the_byte_limit_is_413(api: Api) -> None:
    big = _noise_jpeg()
    assert len(big) > MAX_IMAGE_BYTES
    before = await stored_versions(api.store)
    answer = await api.client.post("/Binary", json=_binary("image/jpeg", big))
    assert answer.status_code == 413
    assert "MB" in answer.json()["issue"][0]["diagnostics"]
    assert await stored_versions(api.store) == before


async def test_a_media_binary_of_another_type_is_refused(api: Api) -> None:
    before = await stored_versions(api.store)
    answer = await api.client.post("/Binary", json=_binary(
        "application/pdf", b"%PDF-1.7", securityContext={"reference": "Media/m-1"}))
    assert answer.status_code == 415
    raw = await api.client.post("/Binary", content=b"%PDF-1.7", headers={
        "Content-Type": "application/octet-stream", "X-Security-Context": "Media/m-1"})
    assert raw.status_code == 415
    assert await stored_versions(api.store) == before


async def test_a_put_of_raw_png_is_stored_without_its_text_chunks(api: Api) -> None:
    original = png(text={"Author": "Pharmacie", "Location": "Lyon"}, exif=exif_with_gps())
    answer = await api.client.put("/Binary/png-1", content=original,
                                  headers={"Content-Type": "image/png"})
    assert answer.status_code == 201, answer.text
    raw = (await api.client.get("/Binary/png-1", headers=RAW)).content
    assert b"tEXt" not in raw and b"iTXt" not in raw and b"eXIf" not in raw
    assert b"Pharmacie" not in raw and b"Lyon" not in raw
    assert pixels_of(raw) == pixels_of(original)


async def test_a_transaction_with_one_bad_photo_stores_nothing(api: Api) -> None:
    kinds = ("Binary", "Media", "Patient")
    before = await stored_versions(api.store, kinds)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:9b0b7c52-5d1e-4d3c-8e59-3c1c3b0f0a01",
         "resource": _binary("image/jpeg", jpeg()), "request": {"method": "POST",
                                                                "url": "Binary"}},
        {"resource": {"resourceType": "Patient", "active": True},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": _binary("image/png", jpeg()), "request": {"method": "POST",
                                                               "url": "Binary"}}]}
    answer = await api.client.post("", json=bundle)
    assert answer.status_code == 422, answer.text
    assert "Bundle.entry[2]" in answer.json()["issue"][0]["diagnostics"]
    assert await stored_versions(api.store, kinds) == before


async def test_a_transaction_photo_is_stored_stripped(api: Api) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _binary("image/jpeg", jpeg(exif=exif_with_gps())),
         "request": {"method": "POST", "url": "Binary"}}]}
    answer = await api.client.post("", json=bundle)
    assert answer.status_code == 200, answer.text
    location = answer.json()["entry"][0]["response"]["location"].split("/_history")[0]
    raw = (await api.client.get(f"/{location}", headers=RAW)).content
    assert raw[:2] == b"\xff\xd8" and b"Exif" not in raw


async def test_a_batch_refuses_the_bad_photo_entry_only(api: Api) -> None:
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": _binary("image/jpeg", jpeg()), "request": {"method": "POST",
                                                                "url": "Binary"}},
        {"resource": _binary("image/gif", b"GIF89a"), "request": {"method": "POST",
                                                                  "url": "Binary"}}]}
    answer = await api.client.post("", json=bundle)
    statuses = [entry["response"]["status"] for entry in answer.json()["entry"]]
    assert statuses[0].startswith("201") and statuses[1].startswith("415")


async def test_a_patch_of_the_photo_bytes_meets_the_same_rules(api: Api) -> None:
    created = await api.client.post("/Binary", json=_binary("image/jpeg", jpeg()))
    binary_id = created.json()["id"]
    before = await stored_versions(api.store)
    bad = [{"op": "replace", "path": "/data", "value": base64.b64encode(png()).decode()}]
    refused = await api.client.patch(f"/Binary/{binary_id}", json=bad,
                                     headers={"Content-Type": "application/json-patch+json"})
    assert refused.status_code == 422, refused.text
    assert await stored_versions(api.store) == before
    tagged = jpeg(picture(30, 20), exif=exif_with_gps())
    good = [{"op": "replace", "path": "/data", "value": base64.b64encode(tagged).decode()}]
    patched = await api.client.patch(f"/Binary/{binary_id}", json=good,
                                     headers={"Content-Type": "application/json-patch+json"})
    assert patched.status_code == 200, patched.text
    raw = (await api.client.get(f"/Binary/{binary_id}", headers=RAW)).content
    assert b"Exif" not in raw and pixels_of(raw) == pixels_of(tagged)


async def test_other_binaries_are_stored_as_they_came(api: Api) -> None:
    document = b"%PDF-1.7 a report"
    created = await api.client.post("/Binary", content=document,
                                    headers={"Content-Type": "application/pdf"})
    raw = await api.client.get(f"/Binary/{created.json()['id']}", headers=RAW)
    assert raw.content == document


async def test_a_pharmacists_intake_photo_is_stored_stripped(api: Api) -> None:
    cast = await seed(api.anonymous, SERVER, {})
    bundle = intake_bundle(cast.pharmacist, family="EXIF")
    photo = jpeg(exif=exif_with_gps())
    binary = next(entry["resource"] for entry in bundle["entry"]
                  if entry["resource"]["resourceType"] == "Binary")
    binary["data"] = base64.b64encode(photo).decode()
    media = next(entry["resource"] for entry in bundle["entry"]
                 if entry["resource"]["resourceType"] == "Media")
    media["content"] = {key: value for key, value in media["content"].items()
                        if key not in ("size", "hash")}
    answer = await api.anonymous.post("", json=bundle, headers=cast.pharmacist.headers)
    assert answer.status_code == 200, answer.text
    location = next(entry["response"]["location"] for entry in answer.json()["entry"]
                    if entry["response"]["location"].startswith("Binary/"))
    raw = await api.anonymous.get("/" + location.split("/_history")[0],
                                  headers={**cast.pharmacist.headers, **RAW})
    assert raw.status_code == 200
    assert b"Exif" not in raw.content and pixels_of(raw.content) == pixels_of(photo)

