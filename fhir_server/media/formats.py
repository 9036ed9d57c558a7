"""Recognises a photo's format from its bytes (never from what the client declares).

JPEG starts with SOI and a marker; PNG with its 8-byte signature; a DICOM Part 10 file has a
128-byte preamble then ``DICM``; HEIF (HEIC, AVIF) is an ISO-BMFF file whose first box is
``ftyp`` with a HEIF brand. Media types are compared without parameters, lower-cased.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class ImageFormat(StrEnum):
    """The formats a photo's bytes are recognised as."""

    JPEG = "image/jpeg"
    PNG = "image/png"
    DICOM = "application/dicom"
    HEIF = "image/heic"


SUPPORTED: Final = frozenset({ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.DICOM})
"""What this server stores as a photo."""
HEIF_MEDIA_TYPES: Final = frozenset({"image/heic", "image/heif", "image/heic-sequence",
                                     "image/heif-sequence", "image/avif"})
HEIF_BRANDS: Final = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm",
                                b"hevs", b"mif1", b"msf1", b"avif", b"avis"})
"""``ftyp`` major brands of HEIF files (HEVC- or AV1-coded)."""
_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_DICOM_PREAMBLE: Final = 128


def sniff(data: bytes) -> ImageFormat | None:
    """The format the bytes are in, or None when they are none of the photo formats."""
    if data[:3] == b"\xff\xd8\xff":
        return ImageFormat.JPEG
    if data[:8] == _PNG_SIGNATURE:
        return ImageFormat.PNG
    if data[_DICOM_PREAMBLE:_DICOM_PREAMBLE + 4] == b"DICM":
        return ImageFormat.DICOM
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        return ImageFormat.HEIF
    return None


def bare_media_type(content_type: object) -> str | None:
    """``image/JPEG; q=1`` → ``image/jpeg``; None for a missing or non-text value."""
    if not isinstance(content_type, str):
        return None
    bare = content_type.split(";", 1)[0].strip().lower()
    return bare or None


def declared_format(media_type: str) -> ImageFormat | None:
    """The format a declared media type names (HEIF for every HEIF type), None for others."""
    if media_type in HEIF_MEDIA_TYPES:
        return ImageFormat.HEIF
    try:
        return ImageFormat(media_type)
    except ValueError:
        return None


def is_photo_type(media_type: str | None) -> bool:
    """Whether a declared media type makes a Binary's bytes subject to the photo rules."""
    return media_type is not None and (media_type.startswith("image/")
                                       or media_type == ImageFormat.DICOM)
