"""PNG metadata is stripped at chunk level: text, EXIF and time chunks go, the ICC profile
stays, the pixels do not change."""

from __future__ import annotations

import pytest

from fhir_server.media.malformed import MalformedImage
from fhir_server.media.png_chunks import read_png
from tests.support.photos import ICC, exif_with_gps, jpeg, pixels_of, png, with_png_chunk

TEXT = {"Author": "Pharmacie du Centre", "Comment": "lesion left arm", "Location": "Paris"}


def _chunk_types(data: bytes) -> list[bytes]:
    kinds, position = [], 8
    while position < len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kinds.append(data[position + 4:position + 8])
        position += 12 + length
    return kinds


def test_text_exif_and_time_chunks_are_gone_and_pixels_unchanged() -> None:
    original = with_png_chunk(png(text=TEXT, exif=exif_with_gps()), b"tIME",
                              bytes([7, 234, 11, 20, 9, 10, 0]))
    assert {b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"tIME"} <= set(_chunk_types(original))
    stripped = read_png(original).stripped
    kinds = _chunk_types(stripped)
    assert not {b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"tIME"} & set(kinds)
    assert b"Pharmacie" not in stripped and b"PhoneMaker" not in stripped
    assert pixels_of(stripped) == pixels_of(original)


def test_the_icc_profile_is_kept() -> None:
    stripped = read_png(png(text=TEXT, icc=ICC)).stripped
    assert b"iCCP" in _chunk_types(stripped)


def test_a_png_without_metadata_comes_back_as_the_same_bytes() -> None:
    plain = png()
    found = read_png(plain)
    assert found.stripped is plain
    assert (found.width, found.height) == (48, 32)


def test_the_exif_orientation_is_read() -> None:
    assert read_png(png(exif=exif_with_gps(orientation=8))).orientation == 8


def test_a_truncated_png_is_malformed() -> None:
    with pytest.raises(MalformedImage, match="truncated"):
        read_png(png()[:-20])


def test_a_chunk_failing_its_crc_is_malformed() -> None:
    data = bytearray(png())
    data[40] ^= 0xFF
    with pytest.raises(MalformedImage, match="CRC"):
        read_png(bytes(data))


def test_a_jpeg_is_not_read_as_a_png() -> None:
    with pytest.raises(MalformedImage):
        read_png(jpeg())
