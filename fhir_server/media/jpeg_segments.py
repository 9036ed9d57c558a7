"""Reads a JPEG's marker segments (ITU-T T.81 annex B): its frame header, its EXIF
orientation, and a copy without the segments that carry metadata.

Kept: the image itself (tables, frame and scan headers, entropy-coded data copied byte for
byte, so the pixels are unchanged), the JFIF APP0 header, the ICC profile (APP2
``ICC_PROFILE``) and Adobe's APP14 colour-transform flag. Dropped: EXIF (APP1, GPS included),
XMP (APP1), IPTC and Photoshop resources (APP13), comments (COM), every other application
segment (JFXX thumbnails, MPF, maker data), and whatever follows the end-of-image marker
(appended images, vendor trailers). A file with none of these comes back as the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fhir_server.media.malformed import MalformedImage
from fhir_server.media.orientation import UPRIGHT, orientation_of

SOI: Final = 0xD8
EOI: Final = 0xD9
SOS: Final = 0xDA
BASELINE: Final = 0xC0
APP0: Final = 0xE0
APP1: Final = 0xE1
APP2: Final = 0xE2
APP14: Final = 0xEE
COM: Final = 0xFE
STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})
"""Markers without a length: TEM and the restart markers."""
FRAME_MARKERS: Final = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB,
                                  0xCD, 0xCE, 0xCF})
_KEPT_APPLICATION: Final = {APP0: b"JFIF\x00", APP2: b"ICC_PROFILE\x00", APP14: b"Adobe"}
"""The application segments kept, by marker, recognised by their identifier."""
TRUNCATED: Final = "the JPEG ends before its end-of-image marker (truncated file)"


@dataclass(frozen=True, slots=True)
class Component:
    """One colour component of the frame, with its sampling factors."""

    id: int
    horizontal: int
    vertical: int


@dataclass(frozen=True, slots=True)
class JpegFrame:
    """The frame header (SOFn): coding process, sample precision, size and components."""

    marker: int
    precision: int
    width: int
    height: int
    components: tuple[Component, ...]

    @property
    def is_baseline(self) -> bool:
        """Baseline sequential DCT, 8-bit samples (DICOM's JPEG Baseline transfer syntax)."""
        return self.marker == BASELINE and self.precision == 8


@dataclass(frozen=True, slots=True)
class JpegFile:
    """What reading a JPEG found, and the file without its metadata."""

    frame: JpegFrame
    orientation: int
    """The EXIF Orientation (``UPRIGHT`` when there was no EXIF)."""
    adobe_transform: int | None
    """The Adobe APP14 transform flag (0: components are RGB or CMYK, not YCbCr)."""
    stripped: bytes
    """The file without its metadata segments: the very same bytes when it had none."""


def read_jpeg(data: bytes) -> JpegFile:
    """Walk every segment of a JPEG; MalformedImage when it is truncated or inconsistent."""
    if data[:2] != b"\xff\xd8":
        raise MalformedImage("the file does not start with a JPEG start-of-image marker")
    kept = [data[:2]]
    changed = False
    frame: JpegFrame | None = None
    orientation = UPRIGHT
    exif_read = False
    adobe: int | None = None
    scans = 0
    position = 2
    while True:
        marker, position = _next_marker(data, position)
        if marker == EOI:
            changed = changed or position < len(data)
            kept.append(b"\xff\xd9")
            break
        if marker in STANDALONE:
            kept.append(bytes((0xFF, marker)))
            continue
        if position + 2 > len(data):
            raise MalformedImage(TRUNCATED)
        length = int.from_bytes(data[position:position + 2], "big")
        end = position + length
        if length < 2 or end > len(data):
            raise MalformedImage(TRUNCATED if length >= 2 else "a JPEG segment length is invalid")
        payload = data[position + 2:end]
        segment = bytes((0xFF, marker)) + data[position:end]
        if marker in FRAME_MARKERS and frame is None:
            frame = _frame(marker, payload)
        if marker == SOS:
            if frame is None:
                raise MalformedImage("a JPEG scan comes before the frame header")
            scan_end = _entropy_end(data, end)
            kept.append(segment + data[end:scan_end])
            scans += 1
            position = scan_end
            continue
        if _is_metadata(marker, payload):
            changed = True
            if marker == APP1 and payload.startswith(b"Exif\x00\x00") and not exif_read:
                orientation, exif_read = orientation_of(payload), True
        else:
            if marker == APP14 and len(payload) >= 12:
                adobe = payload[11]
            kept.append(segment)
        position = end
    if frame is None or scans == 0:
        raise MalformedImage("the JPEG has no frame or no scan: it holds no image")
    return JpegFile(frame=frame, orientation=orientation, adobe_transform=adobe,
                    stripped=b"".join(kept) if changed else data)


def _next_marker(data: bytes, position: int) -> tuple[int, int]:
    """The marker at ``position`` (fill bytes skipped) and the position after it."""
    if position >= len(data):
        raise MalformedImage(TRUNCATED)
    if data[position] != 0xFF:
        raise MalformedImage("unexpected bytes between two JPEG segments")
    while position < len(data) and data[position] == 0xFF:
        position += 1
    if position >= len(data):
        raise MalformedImage(TRUNCATED)
    marker = data[position]
    if marker == 0x00:
        raise MalformedImage("an invalid JPEG marker was found")
    return marker, position + 1


def _entropy_end(data: bytes, position: int) -> int:
    """Where the entropy-coded data starting at ``position`` ends: at the next marker that is
    neither a stuffed 0xFF00 nor a restart marker."""
    while True:
        found = data.find(b"\xff", position)
        if found < 0 or found + 1 >= len(data):
            raise MalformedImage(TRUNCATED)
        following = data[found + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            position = found + 2
            continue
        return found


def _frame(marker: int, payload: bytes) -> JpegFrame:
    if len(payload) < 6:
        raise MalformedImage("the JPEG frame header is too short")
    count = payload[5]
    if count == 0 or len(payload) < 6 + 3 * count:
        raise MalformedImage("the JPEG frame header lists its components wrongly")
    height = int.from_bytes(payload[1:3], "big")
    width = int.from_bytes(payload[3:5], "big")
    if width == 0 or height == 0:
        raise MalformedImage("the JPEG frame header gives no image size")
    components = tuple(Component(id=payload[6 + 3 * i], horizontal=payload[7 + 3 * i] >> 4,
                                 vertical=payload[7 + 3 * i] & 0x0F) for i in range(count))
    return JpegFrame(marker=marker, precision=payload[0], width=width, height=height,
                     components=components)


def _is_metadata(marker: int, payload: bytes) -> bool:
    """Whether a segment carries metadata rather than the image or how to show it."""
    if marker == COM:
        return True
    if not APP0 <= marker <= 0xEF:
        return False
    identifier = _KEPT_APPLICATION.get(marker)
    return identifier is None or not payload.startswith(identifier)
