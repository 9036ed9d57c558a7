"""The refusals of photo uploads, as errors a pharmacy's software can show and act on.

415: a type this server does not take as a photo (declared or found in the bytes, HEIC
included); 413: more bytes or more pixels than the limits; 422: bytes that are not of the
declared type, or that are corrupt or truncated. Messages describe the file, never what it
shows.
"""

from __future__ import annotations

from typing import Final

from fhir_server.errors import ErrorCode, FhirError

ACCEPTED: Final = "image/jpeg, image/png or application/dicom"
DATA: Final = ("Binary.data",)
CONTENT_TYPE: Final = ("Binary.contentType",)
_MB: Final = 1024 * 1024
_FOUND: Final = {"image/jpeg": "a JPEG image", "image/png": "a PNG image",
                 "application/dicom": "a DICOM file", "image/heic": "a HEIC/HEIF image"}


def unsupported_type(declared: str | None) -> FhirError:
    shown = (declared or "none")[:60]
    return FhirError(ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                     f"Content type '{shown}' is not accepted for a photo: send {ACCEPTED}",
                     expression=CONTENT_TYPE)


def heif_unsupported() -> FhirError:
    return FhirError(ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                     "HEIC/HEIF photos are not supported by this server (it has no HEIF "
                     "decoder): convert the photo to JPEG before sending it",
                     expression=DATA)


def mismatch(declared: str, found: str | None) -> FhirError:
    what = _FOUND.get(found or "", "none of JPEG, PNG or DICOM")
    return FhirError(ErrorCode.INVALID_RESOURCE,
                     f"The Binary is declared as {declared} but its bytes are {what}: "
                     "the content type must match the bytes sent",
                     expression=DATA)


def too_many_bytes(size: int, limit: int) -> FhirError:
    return FhirError(ErrorCode.TOO_LARGE,
                     f"The photo is {size / _MB:.1f} MB; the largest accepted is "
                     f"{limit / _MB:.1f} MB: send it at a lower resolution or quality",
                     expression=DATA)


def too_many_pixels(width: int, height: int, limit: int) -> FhirError:
    return FhirError(ErrorCode.TOO_LARGE,
                     f"The photo is {width}×{height} pixels; at most {limit} pixels (width × "
                     "height) are accepted: send it at a lower resolution",
                     expression=DATA)


def corrupt(reason: str) -> FhirError:
    return FhirError(ErrorCode.INVALID_RESOURCE, f"The photo cannot be accepted: {reason}",
                     expression=DATA)


def no_bytes() -> FhirError:
    return FhirError(ErrorCode.INVALID_RESOURCE,
                     "A photo's Binary must carry the photo's bytes in Binary.data (base64)",
                     expression=DATA)


def unsupported_dicom(reason: str) -> FhirError:
    return FhirError(ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                     f"The DICOM instance cannot be accepted: {reason}", expression=DATA)
