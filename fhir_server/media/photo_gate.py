"""The prepare hook every Binary a client writes goes through: a photo's bytes are checked and
scrubbed (``scrubbing.py``) before they are validated and stored.

A Binary is a photo when its declared ``contentType`` is an image type or
``application/dicom``, or when its ``securityContext`` is a Media (a Media's bytes must be a
photo whatever type is declared). Every way a Binary arrives meets this hook, since the engine
prepares each resource of a create, update, patch, batch or transaction entry: raw bytes with a
Content-Type, FHIR JSON with ``data``, a transaction entry, a PATCH of ``data``. Other Binaries
(PDF, CDA) pass unchanged.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from fhir_server.media import refusals
from fhir_server.media.formats import (
    ImageFormat,
    bare_media_type,
    declared_format,
    is_photo_type,
)
from fhir_server.media.scrubbing import PhotoLimits, scrub_photo
from fhir_server.settings import Settings
from fhir_server.types import ResourceDict

if TYPE_CHECKING:
    from fhir_server.engine.context import EngineContext

_MEDIA_REFERENCE: Final = re.compile(r"(^|/)Media/[A-Za-z0-9\-.]{1,64}(/_history/[^/]+)?$")


@dataclass(frozen=True, slots=True)
class PhotoGate:
    """The photo rules with the configured limits."""

    limits: PhotoLimits

    @classmethod
    def from_settings(cls, settings: Settings) -> PhotoGate:
        return cls(PhotoLimits(max_bytes=settings.max_image_bytes,
                               max_pixels=settings.max_image_pixels))

    def prepare(self, resource: ResourceDict, ctx: EngineContext) -> ResourceDict:
        """The Binary to store: its photo bytes scrubbed; refused with 413, 415 or 422."""
        if resource.get("resourceType") != "Binary":
            return resource
        declared = bare_media_type(resource.get("contentType"))
        if not is_photo_type(declared) and not names_media(resource):
            return resource
        kind = declared_format(declared) if declared is not None else None
        if kind == ImageFormat.HEIF:
            raise refusals.heif_unsupported()
        if kind is None:
            raise refusals.unsupported_type(declared)
        data = photo_bytes(resource)
        scrubbed = scrub_photo(data, kind, self.limits)
        if scrubbed is data:
            return resource
        return {**resource, "data": base64.b64encode(scrubbed).decode("ascii")}


def names_media(binary: ResourceDict) -> bool:
    """Whether the Binary's ``securityContext`` is a Media."""
    context = binary.get("securityContext")
    reference = context.get("reference") if isinstance(context, dict) else None
    return isinstance(reference, str) and _MEDIA_REFERENCE.search(reference) is not None


def photo_bytes(binary: ResourceDict) -> bytes:
    """The decoded ``data`` of a photo's Binary; 422 when absent or not base64."""
    data = binary.get("data")
    if not isinstance(data, str) or not data.strip():
        raise refusals.no_bytes()
    try:
        return base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        raise refusals.corrupt("Binary.data is not valid base64") from None
