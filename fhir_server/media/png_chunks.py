"""Reads a PNG's chunks (PNG specification, 3rd edition, §5): its header, its EXIF orientation,
and a copy without the chunks that carry metadata.

Every chunk's CRC is checked, the first must be IHDR and the last IEND. Dropped: textual data
(tEXt, iTXt, zTXt — XMP travels in iTXt), EXIF (eXIf, GPS included), the modification time
(tIME), and whatever follows IEND. Everything else is kept as it is, the ICC profile (iCCP) and
the image data included, so the pixels are unchanged. A file with none of these comes back as
the same bytes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final

from fhir_server.media.malformed import MalformedImage
from fhir_server.media.orientation import UPRIGHT, orientation_of

SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
METADATA_CHUNKS: Final = frozenset({b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"tIME"})
TRUNCATED: Final = "the PNG ends before its IEND chunk (truncated file)"


@dataclass(frozen=True, slots=True)
class PngFile:
    """What reading a PNG found, and the file without its metadata."""

    width: int
    height: int
    orientation: int
    """The EXIF Orientation of its eXIf chunk (``UPRIGHT`` when none)."""
    stripped: bytes
    """The file without its metadata chunks: the very same bytes when it had none."""


def read_png(data: bytes) -> PngFile:
    """Walk every chunk of a PNG; MalformedImage when it is truncated or inconsistent."""
    if data[:8] != SIGNATURE:
        raise MalformedImage("the file does not start with the PNG signature")
    kept = [SIGNATURE]
    changed = False
    size: tuple[int, int] | None = None
    orientation = UPRIGHT
    has_data = False
    position = 8
    while True:
        if position + 8 > len(data):
            raise MalformedImage(TRUNCATED)
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        end = position + 12 + length
        if end > len(data):
            raise MalformedImage(TRUNCATED)
        body = data[position + 8:position + 8 + length]
        crc = int.from_bytes(data[end - 4:end], "big")
        if zlib.crc32(kind + body) != crc:
            raise MalformedImage("a PNG chunk fails its CRC check (corrupt file)")
        if size is None:
            size = _header(kind, body)
        if kind == b"IDAT":
            has_data = True
        if kind in METADATA_CHUNKS:
            changed = True
            if kind == b"eXIf":
                orientation = orientation_of(body)
        else:
            kept.append(data[position:end])
        position = end
        if kind == b"IEND":
            changed = changed or position < len(data)
            break
    if not has_data:
        raise MalformedImage("the PNG has no image data (IDAT)")
    width, height = size
    return PngFile(width=width, height=height, orientation=orientation,
                   stripped=b"".join(kept) if changed else data)


def _header(kind: bytes, body: bytes) -> tuple[int, int]:
    """Width and height of the IHDR chunk, which must come first."""
    if kind != b"IHDR" or len(body) != 13:
        raise MalformedImage("the PNG does not start with a valid IHDR chunk")
    width = int.from_bytes(body[0:4], "big")
    height = int.from_bytes(body[4:8], "big")
    if width == 0 or height == 0:
        raise MalformedImage("the PNG header gives no image size")
    return width, height
