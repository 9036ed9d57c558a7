"""The EXIF Orientation tag (0x0112): read from an EXIF block, and applied to pixels.

Values 2–8 say how the stored pixels must be flipped or turned to be seen upright; 1 (or no
tag) means they already are.
"""

from __future__ import annotations

from typing import Final

from PIL import Image

ORIENTATION_TAG: Final = 0x0112
UPRIGHT: Final = 1
_TRANSPOSES: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def orientation_of(exif_block: bytes) -> int:
    """The Orientation of an EXIF block (a JPEG APP1 payload with its ``Exif`` header, or a
    PNG eXIf chunk's TIFF data); ``UPRIGHT`` when absent, unreadable or out of range."""
    exif = Image.Exif()
    try:
        exif.load(exif_block)
        value = exif.get(ORIENTATION_TAG)
    except (OSError, ValueError, SyntaxError, KeyError, IndexError, TypeError):
        return UPRIGHT
    return value if isinstance(value, int) and value in _TRANSPOSES else UPRIGHT


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """The image turned as ``orientation`` says (the same image when already upright)."""
    method = _TRANSPOSES.get(orientation)
    return image if method is None else image.transpose(method)
