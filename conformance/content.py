"""Tiny but real files (JPEG, PNG, PDF) for the Binaries a case's attachments point to.

The guide's examples point at ``Binary/…`` photos and report PDFs they do not carry; the kit
makes the smallest well-formed file of the attachment's content type instead, so a server that
checks what a photo really is sees a real image.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib

_JPEG_QUANTISATION = bytes([0x00]) + bytes([1] * 64)
"""One 8-bit table (id 0) of all ones."""
_JPEG_ONE_CODE_TABLE = bytes([1] + [0] * 15 + [0x00])
"""A Huffman table with a single one-bit code for symbol 0 (DC: difference 0; AC: end of block)."""


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def tiny_jpeg() -> bytes:
    """A baseline JFIF JPEG of one 8×8 mid-grey block."""
    return b"".join((
        b"\xff\xd8",
        _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
        _segment(0xDB, _JPEG_QUANTISATION),
        _segment(0xC0, bytes([8]) + struct.pack(">HH", 8, 8) + bytes([1, 1, 0x11, 0])),
        _segment(0xC4, bytes([0x00]) + _JPEG_ONE_CODE_TABLE),
        _segment(0xC4, bytes([0x10]) + _JPEG_ONE_CODE_TABLE),
        _segment(0xDA, bytes([1, 1, 0x00, 0, 63, 0])),
        # DC difference 0 (code 0), end of block (code 0), padded with one-bits.
        b"\x3f",
        b"\xff\xd9",
    ))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def tiny_png() -> bytes:
    """A PNG of one grey pixel."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return b"".join((b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", header),
                     _png_chunk(b"IDAT", zlib.compress(b"\x00\x80")), _png_chunk(b"IEND", b"")))


def tiny_pdf(text: str = "Pictaderm conformance kit") -> bytes:
    """A one-page PDF showing ``text`` (ASCII), with a correct cross-reference table."""
    escaped = text.encode("ascii", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(") \
        .replace(b")", b"\\)")
    stream = b"BT /F1 12 Tf 72 720 Td (" + escaped + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode() + b"0000000000 65535 f \n"
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)


_SAMPLES = {"image/jpeg": tiny_jpeg, "image/png": tiny_png, "application/pdf": tiny_pdf}


def sample_content(content_type: str) -> bytes:
    """A small well-formed file of ``content_type``; plain text bytes for a type not known."""
    make = _SAMPLES.get(content_type.split(";")[0].strip().lower())
    return make() if make else b"Pictaderm conformance kit sample content\n"


def attachment_hash(data: bytes) -> str:
    """``Attachment.hash``: base64 of the SHA-1 of the data."""
    return base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")
