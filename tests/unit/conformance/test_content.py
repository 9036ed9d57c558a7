"""The tiny files for Binaries are well formed: JPEG segments, PNG chunks and CRCs, PDF xref."""

from __future__ import annotations

import re
import struct
import zlib

from conformance.content import (
    attachment_hash,
    sample_content,
    tiny_jpeg,
    tiny_pdf,
    tiny_png,
)


def jpeg_markers(data: bytes) -> list[int]:
    """The markers of a JPEG, walking each segment by its length up to the scan."""
    assert data[:2] == b"\xff\xd8"
    markers, position = [0xD8], 2
    while True:
        assert data[position] == 0xFF
        marker = data[position + 1]
        markers.append(marker)
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        position += 2 + length
        if marker == 0xDA:
            break
    assert data[-2:] == b"\xff\xd9"
    return [*markers, 0xD9]


def test_the_jpeg_is_a_baseline_jfif_of_one_8x8_block() -> None:
    data = tiny_jpeg()
    assert jpeg_markers(data) == [0xD8, 0xE0, 0xDB, 0xC0, 0xC4, 0xC4, 0xDA, 0xD9]
    frame = data.index(b"\xff\xc0")
    assert struct.unpack(">BHHB", data[frame + 4:frame + 10]) == (8, 8, 8, 1)


def test_the_png_chunks_have_valid_crcs() -> None:
    data = tiny_png()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, kinds = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length:position + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        kinds.append(kind)
        if kind == b"IDAT":
            assert zlib.decompress(body) == b"\x00\x80"
        position += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


def test_the_pdf_cross_reference_points_at_each_object() -> None:
    data = tiny_pdf("Hello (world)")
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
    found = re.search(rb"startxref\n(\d+)", data)
    assert found is not None
    start = int(found.group(1))
    assert data[start:start + 4] == b"xref"
    offsets = [int(m) for m in re.findall(rb"(\d{10}) 00000 n", data)]
    assert len(offsets) == 5
    for number, offset in enumerate(offsets, start=1):
        assert data[offset:].startswith(f"{number} 0 obj".encode())
    assert b"(Hello \\(world\\)) Tj" in data


def test_sample_content_by_content_type() -> None:
    assert sample_content("image/jpeg") == tiny_jpeg()
    assert sample_content("image/png") == tiny_png()
    assert sample_content("application/pdf; charset=binary").startswith(b"%PDF")
    assert sample_content("text/plain").startswith(b"Pictaderm conformance kit")


def test_the_attachment_hash_is_base64_sha1() -> None:
    assert attachment_hash(b"abc") == "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="
