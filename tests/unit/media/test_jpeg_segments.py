"""JPEG metadata is stripped at segment level: EXIF (GPS), XMP and comments go, the ICC
profile stays, the pixels do not change."""

from __future__ import annotations

import pytest

from fhir_server.media.jpeg_segments import read_jpeg
from fhir_server.media.malformed import MalformedImage
from tests.support.photos import ICC, XMP, exif_with_gps, jpeg, pixels_of


def test_exif_with_gps_xmp_and_comment_are_gone_and_pixels_unchanged() -> None:
    original = jpeg(exif=exif_with_gps(), xmp=XMP, comment=b"taken at the pharmacy")
    assert b"Exif" in original and b"GPSLatitude" in original and b"pharmacy" in original
    stripped = read_jpeg(original).stripped
    assert b"Exif" not in stripped
    assert b"PhoneMaker" not in stripped
    assert b"xmpmeta" not in stripped
    assert b"pharmacy" not in stripped
    assert pixels_of(stripped) == pixels_of(original)


def test_the_icc_profile_and_jfif_header_are_kept() -> None:
    stripped = read_jpeg(jpeg(exif=exif_with_gps(), icc=ICC)).stripped
    assert b"ICC_PROFILE\x00" in stripped and ICC[:40] in stripped
    assert stripped[6:11] == b"JFIF\x00"


def test_a_jpeg_without_metadata_comes_back_as_the_same_bytes() -> None:
    plain = jpeg()
    assert read_jpeg(plain).stripped is plain


def test_what_follows_the_end_of_image_marker_is_dropped() -> None:
    plain = jpeg()
    stripped = read_jpeg(plain + b"appended second image").stripped
    assert stripped == plain


def test_the_frame_header_and_orientation_are_read() -> None:
    found = read_jpeg(jpeg(exif=exif_with_gps(orientation=6)))
    assert (found.frame.width, found.frame.height) == (48, 32)
    assert found.frame.is_baseline and len(found.frame.components) == 3
    assert found.orientation == 6
    assert read_jpeg(jpeg(progressive=True)).frame.is_baseline is False


@pytest.mark.parametrize("cut", [10, 200, -2])
def test_a_truncated_jpeg_is_malformed(cut: int) -> None:
    with pytest.raises(MalformedImage):
        read_jpeg(jpeg()[:cut])


def test_bytes_that_are_not_a_jpeg_are_malformed() -> None:
    with pytest.raises(MalformedImage):
        read_jpeg(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(300))
