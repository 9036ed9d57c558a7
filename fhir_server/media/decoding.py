"""Decodes a photo with Pillow: the proof that its image data is whole, and its pixels turned
upright when its EXIF orientation says so.

Decoding comes only after the header was checked against the pixel limit. A JPEG is decoded
at 1/8 scale (libjpeg's DCT scaling still reads every entropy-coded block, so a broken or
truncated stream fails, at 1/64 of the memory); a PNG is decoded in full (zlib stream, row
filters). Turning a photo upright decodes it in full and encodes it again: a PNG losslessly,
a JPEG at quality 95 with the original's chroma subsampling; both keep their ICC profile.
"""

from __future__ import annotations

import io
import zlib
from typing import Any, Final

from PIL import Image, JpegImagePlugin

from fhir_server.media.formats import ImageFormat
from fhir_server.media.malformed import MalformedImage
from fhir_server.media.orientation import upright

JPEG_QUALITY: Final = 95
"""Quality of a JPEG encoded again after being turned upright."""
_PILLOW_FORMATS: Final = {ImageFormat.JPEG: "JPEG", ImageFormat.PNG: "PNG"}
_DECODING_ERRORS: Final = (OSError, SyntaxError, ValueError, EOFError, IndexError,
                           zlib.error, Image.DecompressionBombError)
CORRUPT: Final = "the image data is corrupt or truncated: it cannot be decoded"


def check_decodes(data: bytes, kind: ImageFormat) -> None:
    """MalformedImage unless the whole image data of a JPEG or PNG decodes."""
    try:
        with _opened(data, kind) as image:
            if kind == ImageFormat.JPEG:
                image.draft(None, (1, 1))
            image.load()
    except _DECODING_ERRORS:
        raise MalformedImage(CORRUPT) from None


def turned_upright(data: bytes, kind: ImageFormat, orientation: int) -> bytes:
    """The photo encoded again with its pixels turned as ``orientation`` says (no EXIF)."""
    try:
        with _opened(data, kind) as image:
            image.load()
            options: dict[str, Any] = {}
            icc = image.info.get("icc_profile")
            if icc:
                options["icc_profile"] = icc
            if kind == ImageFormat.JPEG:
                options["quality"] = JPEG_QUALITY
                sampling = JpegImagePlugin.get_sampling(image)
                if sampling >= 0:
                    options["subsampling"] = sampling
            elif image.info.get("transparency") is not None:
                options["transparency"] = image.info["transparency"]
            turned = upright(image, orientation)
            encoded = io.BytesIO()
            turned.save(encoded, format=_PILLOW_FORMATS[kind], **options)
    except _DECODING_ERRORS:
        raise MalformedImage(CORRUPT) from None
    return encoded.getvalue()


def _opened(data: bytes, kind: ImageFormat) -> Image.Image:
    return Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[kind]])
