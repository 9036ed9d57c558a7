"""The limits, the format check, the decoding check and the orientation of uploaded photos."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from fhir_server.errors import FhirError
from fhir_server.media.formats import ImageFormat
from fhir_server.media.scrubbing import PhotoLimits, scrub_photo
from tests.support.photos import (
    CT_IMAGE,
    dicom_photo,
    exif_with_gps,
    heic_header,
    jpeg,
    jpeg_bomb_header,
    picture,
    pixels_of,
    png,
    png_bomb_header,
)

LIMITS = PhotoLimits(max_bytes=1_000_000, max_pixels=1_000_000)


def _refusal(data: bytes, declared: ImageFormat, limits: PhotoLimits = LIMITS) -> FhirError:
    with pytest.raises(FhirError) as raised:
        scrub_photo(data, declared, limits)
    return raised.value


def test_more_bytes_than_the_limit_is_413() -> None:
    data = jpeg()
    refusal = _refusal(data, ImageFormat.JPEG, PhotoLimits(len(data) - 1, 1_000_000))
    assert refusal.status == 413 and "MB" in refusal.diagnostics


@pytest.mark.parametrize(("bomb", "declared"), [
    (png_bomb_header(50_000, 50_000), ImageFormat.PNG),
    (jpeg_bomb_header(40_000, 30_000), ImageFormat.JPEG)])
def test_a_header_announcing_too_many_pixels_is_413_before_decoding(
        bomb: bytes, declared: ImageFormat) -> None:
    refusal = _refusal(bomb, declared)
    assert refusal.status == 413
    assert "pixels" in refusal.diagnostics
    assert len(bomb) < 2000


def test_bytes_of_another_type_than_declared_are_422() -> None:
    refusal = _refusal(png(), ImageFormat.JPEG)
    assert refusal.status == 422 and "PNG" in refusal.diagnostics
    assert _refusal(b"%PDF-1.7 not a photo", ImageFormat.PNG).status == 422


def test_heic_bytes_are_415_whatever_the_declared_type() -> None:
    refusal = _refusal(heic_header(), ImageFormat.JPEG)
    assert refusal.status == 415 and "HEIC" in refusal.diagnostics


def test_a_truncated_photo_is_422() -> None:
    assert _refusal(jpeg()[:-40], ImageFormat.JPEG).status == 422
    assert _refusal(png()[:-30], ImageFormat.PNG).status == 422


def test_image_data_that_does_not_decode_is_422() -> None:
    data = bytearray(png())
    start = data.index(b"IDAT") + 4
    broken = bytes(data[:start]) + b"\x00" * 8 + bytes(data[start + 8:])
    fixed_crc = _with_fixed_crcs(broken)
    refusal = _refusal(fixed_crc, ImageFormat.PNG)
    assert refusal.status == 422 and "decoded" in refusal.diagnostics


def test_exif_with_gps_is_gone_and_pixels_unchanged() -> None:
    original = jpeg(exif=exif_with_gps())
    stored = scrub_photo(original, ImageFormat.JPEG, LIMITS)
    assert b"Exif" not in stored and b"PhoneMaker" not in stored
    assert pixels_of(stored) == pixels_of(original)


def test_a_photo_without_metadata_is_stored_as_it_came() -> None:
    plain = png()
    assert scrub_photo(plain, ImageFormat.PNG, LIMITS) is plain


@pytest.mark.parametrize("maker", [jpeg, png])
def test_an_orientation_other_than_upright_is_applied(maker: object) -> None:
    make = jpeg if maker is jpeg else png
    declared = ImageFormat.JPEG if maker is jpeg else ImageFormat.PNG
    stored = scrub_photo(make(exif=exif_with_gps(orientation=6)), declared, LIMITS)
    assert b"Exif" not in stored and b"eXIf" not in stored
    with Image.open(io.BytesIO(stored)) as turned:
        assert turned.size == (32, 48)
        expected = picture().transpose(Image.Transpose.ROTATE_270)
        assert _close(turned.convert("RGB").getpixel((2, 2)), expected.getpixel((2, 2)))
        assert _close(turned.convert("RGB").getpixel((29, 45)), expected.getpixel((29, 45)))


def test_a_dicom_photo_is_kept_as_it_is() -> None:
    instance = dicom_photo()
    assert scrub_photo(instance, ImageFormat.DICOM, LIMITS) is instance


def test_a_dicom_instance_of_another_sop_class_is_415() -> None:
    refusal = _refusal(dicom_photo(sop_class=CT_IMAGE), ImageFormat.DICOM)
    assert refusal.status == 415 and CT_IMAGE in refusal.diagnostics


def test_a_dicom_photo_with_too_many_pixels_is_413() -> None:
    refusal = _refusal(dicom_photo(pixels="mono", width=40, height=30), ImageFormat.DICOM,
                       PhotoLimits(max_bytes=1_000_000, max_pixels=1000))
    assert refusal.status == 413


def test_a_truncated_dicom_photo_is_422() -> None:
    assert _refusal(dicom_photo()[:300], ImageFormat.DICOM).status == 422


def _close(one: object, other: object) -> bool:
    assert isinstance(one, tuple) and isinstance(other, tuple)
    return all(abs(a - b) < 40 for a, b in zip(one, other, strict=True))


def _with_fixed_crcs(data: bytes) -> bytes:
    """The PNG with every chunk's CRC recomputed (to corrupt a chunk's content only)."""
    import zlib

    out, position = [data[:8]], 8
    while position < len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kind_and_body = data[position + 4:position + 8 + length]
        out.append(data[position:position + 8 + length]
                   + (zlib.crc32(kind_and_body) & 0xFFFFFFFF).to_bytes(4, "big"))
        position += 12 + length
    return b"".join(out)
