"""Turns the bytes of an uploaded photo into the bytes to store, or refuses them.

In order: the byte limit; the format, read from the bytes and compared with the declared one;
the structure and the image size from the header, against the pixel limit, before anything is
decoded; the whole image data decoded; the metadata stripped at segment or chunk level; the
EXIF orientation applied when it is not upright (the stored photo then needs no metadata to be
shown the right way up, in a browser, the PDF report or a DICOM viewer alike). A DICOM
instance is kept as it is, once its SOP class is known to be a photo's and its size within the
pixel limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.media import refusals
from fhir_server.media.decoding import check_decodes, turned_upright
from fhir_server.media.formats import ImageFormat, sniff
from fhir_server.media.jpeg_segments import read_jpeg
from fhir_server.media.malformed import MalformedImage
from fhir_server.media.orientation import UPRIGHT
from fhir_server.media.png_chunks import read_png
from mappers.dicom_in import DicomRefused, read_photo_instance


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    """The most bytes and pixels (width × height) a photo may have."""

    max_bytes: int
    max_pixels: int


def scrub_photo(data: bytes, declared: ImageFormat, limits: PhotoLimits) -> bytes:
    """The bytes to store for a photo declared as ``declared`` (the same object when nothing
    had to change); FhirError 413, 415 or 422 otherwise."""
    if len(data) > limits.max_bytes:
        raise refusals.too_many_bytes(len(data), limits.max_bytes)
    found = sniff(data)
    if found == ImageFormat.HEIF:
        raise refusals.heif_unsupported()
    if found != declared:
        raise refusals.mismatch(declared, found)
    if found == ImageFormat.DICOM:
        return _checked_dicom(data, limits)
    try:
        if found == ImageFormat.JPEG:
            jpeg = read_jpeg(data)
            width, height = jpeg.frame.width, jpeg.frame.height
            orientation, stripped = jpeg.orientation, jpeg.stripped
        else:
            png = read_png(data)
            width, height, orientation, stripped = png.width, png.height, png.orientation, \
                png.stripped
        _check_pixels(width, height, limits)
        check_decodes(stripped, found)
        if orientation != UPRIGHT:
            stripped = turned_upright(stripped, found, orientation)
    except MalformedImage as error:
        raise refusals.corrupt(str(error)) from None
    if len(stripped) > limits.max_bytes:
        raise refusals.too_many_bytes(len(stripped), limits.max_bytes)
    return stripped


def _check_pixels(width: int, height: int, limits: PhotoLimits) -> None:
    if width * height > limits.max_pixels:
        raise refusals.too_many_pixels(width, height, limits.max_pixels)


def _checked_dicom(data: bytes, limits: PhotoLimits) -> bytes:
    try:
        photo = read_photo_instance(data)
    except DicomRefused as refused:
        if refused.unsupported:
            raise refusals.unsupported_dicom(str(refused)) from None
        raise refusals.corrupt(str(refused)) from None
    _check_pixels(photo.width, photo.height, limits)
    return data
