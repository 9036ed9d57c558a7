"""The photo formats are read from the bytes, never from the declared type."""

from __future__ import annotations

from fhir_server.media.formats import (
    ImageFormat,
    bare_media_type,
    declared_format,
    is_photo_type,
    sniff,
)
from tests.support.photos import dicom_photo, heic_header, jpeg, png


def test_each_format_is_recognised_from_its_bytes() -> None:
    assert sniff(jpeg()) == ImageFormat.JPEG
    assert sniff(png()) == ImageFormat.PNG
    assert sniff(dicom_photo()) == ImageFormat.DICOM
    assert sniff(heic_header()) == ImageFormat.HEIF


def test_other_bytes_are_no_photo_format() -> None:
    assert sniff(b"%PDF-1.7\n") is None
    assert sniff(b"GIF89a" + bytes(20)) is None
    assert sniff(b"") is None
    assert sniff(bytes(128) + b"DICX") is None


def test_declared_types_are_compared_bare_and_lower_case() -> None:
    assert bare_media_type("Image/JPEG; charset=binary") == "image/jpeg"
    assert bare_media_type(None) is None
    assert declared_format("image/png") == ImageFormat.PNG
    assert declared_format("image/heif") == ImageFormat.HEIF
    assert declared_format("image/gif") is None


def test_image_types_and_dicom_are_photo_types() -> None:
    assert is_photo_type("image/gif")
    assert is_photo_type("application/dicom")
    assert not is_photo_type("application/pdf")
    assert not is_photo_type(None)
