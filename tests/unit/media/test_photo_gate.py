"""Which Binaries are photos, and what the gate stores for them."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from fhir_server.errors import FhirError
from fhir_server.media.photo_gate import PhotoGate, names_media
from fhir_server.media.scrubbing import PhotoLimits
from tests.support.photos import exif_with_gps, jpeg, png

GATE = PhotoGate(PhotoLimits(max_bytes=1_000_000, max_pixels=1_000_000))
CTX: Any = None
"""The gate does not look at the engine context."""


def _binary(content_type: str | None, data: bytes | None, context: str | None = None,
            ) -> dict[str, Any]:
    binary: dict[str, Any] = {"resourceType": "Binary"}
    if content_type is not None:
        binary["contentType"] = content_type
    if data is not None:
        binary["data"] = base64.b64encode(data).decode()
    if context is not None:
        binary["securityContext"] = {"reference": context}
    return binary


def _status(resource: dict[str, Any]) -> int:
    with pytest.raises(FhirError) as raised:
        GATE.prepare(resource, CTX)
    return raised.value.status


def test_other_resources_and_documents_pass_unchanged() -> None:
    patient = {"resourceType": "Patient", "id": "p"}
    pdf = _binary("application/pdf", b"%PDF-1.7")
    assert GATE.prepare(patient, CTX) is patient
    assert GATE.prepare(pdf, CTX) is pdf


def test_a_photo_binary_is_stored_without_its_metadata() -> None:
    prepared = GATE.prepare(_binary("image/jpeg", jpeg(exif=exif_with_gps()), "Media/m1"), CTX)
    stored = base64.b64decode(prepared["data"])
    assert b"Exif" not in stored and stored[:2] == b"\xff\xd8"
    assert prepared["securityContext"] == {"reference": "Media/m1"}


def test_a_clean_photo_binary_is_the_same_resource() -> None:
    binary = _binary("image/png", png())
    assert GATE.prepare(binary, CTX) is binary


def test_an_image_type_the_server_does_not_take_is_415() -> None:
    assert _status(_binary("image/gif", b"GIF89a" + bytes(20))) == 415
    assert _status(_binary("image/heic", b"anything")) == 415


def test_a_media_binary_must_be_a_photo_whatever_its_declared_type() -> None:
    assert _status(_binary("application/pdf", b"%PDF-1.7", "Media/m1")) == 415
    assert _status(_binary(None, jpeg(), "Media/m1")) == 415
    assert _status(_binary("image/png", jpeg(), "Media/m1")) == 422


def test_a_photo_binary_without_bytes_or_with_bad_base64_is_422() -> None:
    assert _status(_binary("image/jpeg", None)) == 422
    assert _status({"resourceType": "Binary", "contentType": "image/jpeg",
                    "data": "not base64 at all!"}) == 422


def test_security_contexts_naming_a_media() -> None:
    assert names_media(_binary(None, None, "Media/abc-1"))
    assert names_media(_binary(None, None, "https://x.example/fhir/Media/abc/_history/2"))
    assert not names_media(_binary(None, None, "DocumentReference/abc"))
    assert not names_media(_binary(None, None, "MyMedia/abc"))
