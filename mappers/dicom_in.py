"""DICOM in: a VL Photographic or Dermoscopic Photography Image instance as a photo's Media
and its pixels as JPEG (pure: bytes in, a dict and bytes out).

- The SOP class decides the modality and the guide's profile: VL Photographic Image → ``XC``
  (``pictaderm-clinical-photo``), Dermoscopic Photography Image → ``DMS``
  (``pictaderm-dermoscopy-photo``). Any other SOP class is refused as unsupported.
- Pixels: a JPEG Baseline frame is taken as it is; uncompressed 8-bit RGB, YBR_FULL or
  MONOCHROME1/2 pixels (either planar configuration) are encoded as JPEG with Pillow (quality
  95, no chroma subsampling, the instance's ICC profile kept). Other transfer syntaxes, bit
  depths, photometric interpretations and multi-frame instances are refused as unsupported.
- The Media: body site from the Anatomic Region Sequence (a SNOMED CT coding when the scheme is
  ``SCT``, its meaning as text otherwise), else Body Part Examined as text; ``createdDateTime``
  from Acquisition DateTime, else Acquisition or Content Date and Time — with the time only when
  the offset from UTC is known (a FHIR dateTime with a time must carry one), the date alone
  otherwise; width and height; the device's maker and model; the SOP Instance UID as
  identifier (``urn:dicom:uid``).
"""

from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass
from typing import Any, Final

import pydicom
from PIL import Image, ImageOps
from pydicom import config
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from fhir_server.types import ResourceDict

VL_PHOTOGRAPHIC_IMAGE: Final = "1.2.840.10008.5.1.4.1.1.77.1.4"
DERMOSCOPIC_PHOTOGRAPHY_IMAGE: Final = "1.2.840.10008.5.1.4.1.1.77.1.7"
JPEG_BASELINE: Final = "1.2.840.10008.1.2.4.50"
NATIVE_SYNTAXES: Final = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})
"""Implicit and Explicit VR Little Endian: uncompressed pixels."""
DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED: Final = "http://snomed.info/sct"
MEDIA_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/media-type"
DICOM_UID_SYSTEM: Final = "urn:dicom:uid"
PROFILES: Final = "https://fhir.pictaderm.com/StructureDefinition/"
JPEG_QUALITY: Final = 95
UNREADABLE: Final = "the DICOM file cannot be read (corrupt or truncated)"
_UID: Final = re.compile(r"[0-9]+(\.[0-9]+)*")
_VALIDATION_SWITCH: Final = threading.Lock()


@dataclass(frozen=True, slots=True)
class PhotoKind:
    """A photo SOP class and what it means in the guide."""

    sop_class: str
    modality: str
    display: str
    profile: str
    title: str


PHOTO_KINDS: Final = {
    VL_PHOTOGRAPHIC_IMAGE: PhotoKind(VL_PHOTOGRAPHIC_IMAGE, "XC", "External-camera Photography",
                                     PROFILES + "pictaderm-clinical-photo", "Photo clinique"),
    DERMOSCOPIC_PHOTOGRAPHY_IMAGE: PhotoKind(DERMOSCOPIC_PHOTOGRAPHY_IMAGE, "DMS", "Dermoscopy",
                                             PROFILES + "pictaderm-dermoscopy-photo",
                                             "Photo de dermoscopie"),
}
"""The SOP classes taken as photos, by UID."""


class DicomRefused(ValueError):
    """An instance that is not taken: ``unsupported`` (a kind of DICOM this server does not
    take) or malformed. The message describes the instance's structure, never its content."""

    def __init__(self, message: str, *, unsupported: bool) -> None:
        super().__init__(message)
        self.unsupported = unsupported


@dataclass(frozen=True, slots=True)
class DicomPhoto:
    """A parsed photo instance of a supported SOP class."""

    kind: PhotoKind
    dataset: Dataset
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class ImportedPhoto:
    """The Media of an imported instance and its photo's JPEG bytes."""

    media: ResourceDict
    jpeg: bytes


def read_photo_instance(data: bytes) -> DicomPhoto:
    """Parse a DICOM Part 10 file and check it is a photo of a supported SOP class, with a
    size and pixel data."""
    try:
        dataset = _parsed(data)
        sop_class = str(dataset.get("SOPClassUID")
                        or dataset.file_meta.get("MediaStorageSOPClassUID") or "")
        rows, columns = int(dataset.get("Rows") or 0), int(dataset.get("Columns") or 0)
        has_pixels = "PixelData" in dataset and bool(dataset.PixelData)
        syntax = str(dataset.file_meta.get("TransferSyntaxUID") or "")
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, AttributeError,
            OverflowError, NotImplementedError) as error:
        raise DicomRefused(UNREADABLE, unsupported=False) from error
    if not _UID.fullmatch(sop_class) or not _UID.fullmatch(syntax):
        raise DicomRefused(UNREADABLE, unsupported=False)
    kind = PHOTO_KINDS.get(sop_class)
    if kind is None:
        raise DicomRefused(
            f"the DICOM SOP class {sop_class[:64] or '(none)'} is not a photo this server takes: "
            "send a VL Photographic Image or a Dermoscopic Photography Image", unsupported=True)
    if rows <= 0 or columns <= 0 or not has_pixels:
        raise DicomRefused("the DICOM instance has no image size or no pixel data",
                           unsupported=False)
    return DicomPhoto(kind=kind, dataset=dataset, width=columns, height=rows)


def _parsed(data: bytes) -> Dataset:
    """The dataset with every element converted now, value validation off: pydicom would
    otherwise log invalid values (a patient's name among them) when they are first read. The
    switch is pydicom's global setting: a lock keeps concurrent reads (worker threads) from
    restoring it out of order."""
    with _VALIDATION_SWITCH, config.disable_value_validation():
        dataset = pydicom.dcmread(io.BytesIO(data))
        for _element in dataset.iterall():
            pass
    return dataset


def import_photo(data: bytes, *, based_on: str, subject: str, photo_url: str,
                 body_site: dict[str, Any] | None = None) -> ImportedPhoto:
    """The Media (``content.url`` = ``photo_url``) and JPEG of a photo instance; ``body_site``
    is used when the instance names no anatomic region nor body part."""
    photo = read_photo_instance(data)
    return ImportedPhoto(media=media_of(photo, based_on=based_on, subject=subject,
                                        photo_url=photo_url, body_site=body_site),
                         jpeg=photo_jpeg(photo))


def photo_jpeg(photo: DicomPhoto) -> bytes:
    """The instance's single frame as JPEG bytes."""
    dataset = photo.dataset
    syntax = str(dataset.file_meta.get("TransferSyntaxUID") or "")
    if _number_of_frames(dataset) != 1:
        raise DicomRefused("multi-frame DICOM instances are not supported: send one photo per "
                           "instance", unsupported=True)
    if syntax == JPEG_BASELINE:
        return _baseline_frame(dataset)
    if syntax in NATIVE_SYNTAXES:
        return _encoded(dataset, photo.width, photo.height)
    name = UID(syntax).name if syntax else "(none)"
    raise DicomRefused(f"the DICOM transfer syntax {name[:80]} is not supported: send JPEG "
                       "Baseline or uncompressed (Explicit or Implicit VR Little Endian)",
                       unsupported=True)


def media_of(photo: DicomPhoto, *, based_on: str, subject: str, photo_url: str,
             body_site: dict[str, Any] | None = None) -> ResourceDict:
    """The Media of a photo instance, in the guide's profile of its SOP class."""
    dataset, kind = photo.dataset, photo.kind
    media: ResourceDict = {
        "resourceType": "Media",
        "meta": {"profile": [kind.profile]},
        "identifier": [{"system": DICOM_UID_SYSTEM,
                        "value": f"urn:oid:{dataset.get('SOPInstanceUID', '')}"}],
        "basedOn": [{"reference": based_on}],
        "status": "completed",
        "type": {"coding": [{"system": MEDIA_TYPE_SYSTEM, "code": "image", "display": "Image"}]},
        "modality": {"coding": [{"system": DCM, "code": kind.modality,
                                 "display": kind.display}]},
        "subject": {"reference": subject},
    }
    if not dataset.get("SOPInstanceUID"):
        del media["identifier"]
    created = acquired_at(dataset)
    if created is not None:
        media["createdDateTime"] = created
    site = body_site_of(dataset) or body_site
    if site is not None:
        media["bodySite"] = site
    device = " ".join(str(dataset.get(keyword) or "").strip()
                      for keyword in ("Manufacturer", "ManufacturerModelName")).strip()
    if device:
        media["deviceName"] = device
    media["height"] = photo.height
    media["width"] = photo.width
    media["content"] = {"contentType": "image/jpeg", "url": photo_url, "title": kind.title}
    return media


def body_site_of(dataset: Dataset) -> dict[str, Any] | None:
    """The body site the instance names: its anatomic region, else its body part examined."""
    regions = dataset.get("AnatomicRegionSequence") or ()
    for region in regions:
        scheme = str(region.get("CodingSchemeDesignator") or "").strip()
        code = str(region.get("CodeValue") or region.get("LongCodeValue") or "").strip()
        meaning = str(region.get("CodeMeaning") or "").strip()
        if scheme == "SCT" and code:
            coding = {"system": SNOMED, "code": code, **({"display": meaning} if meaning else {})}
            return {"coding": [coding]}
        if meaning:
            return {"text": meaning}
    part = str(dataset.get("BodyPartExamined") or "").strip()
    return {"text": part} if part else None


_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?$")


def acquired_at(dataset: Dataset) -> str | None:
    """When the photo was taken, as a FHIR dateTime (see the module's docstring)."""
    offset = str(dataset.get("TimezoneOffsetFromUTC") or "").strip()
    stamp = str(dataset.get("AcquisitionDateTime") or "").strip()
    if not stamp:
        for date_keyword, time_keyword in (("AcquisitionDate", "AcquisitionTime"),
                                           ("ContentDate", "ContentTime")):
            day = str(dataset.get(date_keyword) or "").strip()
            if day:
                stamp = day + str(dataset.get(time_keyword) or "").strip().replace(":", "")
                break
    match = _DT.match(stamp)
    if match is None:
        return None
    year, month, day, hour, minute, second, _fraction, own_offset = match.groups()
    zone = own_offset or (offset if re.fullmatch(r"[+-]\d{4}", offset) else None)
    date = "-".join(part for part in (year, month, day if month else None) if part)
    if not (month and day and hour and minute and zone):
        return date
    return (f"{date}T{hour}:{minute}:{second or '00'}"
            f"{zone[:3]}:{zone[3:]}")


def _number_of_frames(dataset: Dataset) -> int:
    try:
        return int(dataset.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        return 0


def _baseline_frame(dataset: Dataset) -> bytes:
    """The single encapsulated frame, without the padding byte that makes its length even."""
    try:
        frame = next(generate_frames(dataset.PixelData, number_of_frames=1))
    except (StopIteration, ValueError, TypeError, KeyError, EOFError) as error:
        raise DicomRefused("the DICOM encapsulated pixel data is corrupt or truncated",
                           unsupported=False) from error
    if not frame.startswith(b"\xff\xd8"):
        raise DicomRefused("the DICOM JPEG Baseline frame is not a JPEG", unsupported=False)
    if frame.endswith(b"\xff\xd9\x00"):
        frame = frame[:-1]
    return bytes(frame)


def _encoded(dataset: Dataset, width: int, height: int) -> bytes:
    """Uncompressed 8-bit pixels encoded as JPEG."""
    samples = int(dataset.get("SamplesPerPixel") or 1)
    photometric = str(dataset.get("PhotometricInterpretation") or "").strip()
    if int(dataset.get("BitsAllocated") or 0) != 8 or int(dataset.get("PixelRepresentation")
                                                          or 0) != 0:
        raise DicomRefused("only 8-bit unsigned uncompressed pixels are supported",
                           unsupported=True)
    pixels = bytes(dataset.PixelData)
    plane = width * height
    if len(pixels) < plane * samples:
        raise DicomRefused("the DICOM pixel data is shorter than its image size (truncated)",
                           unsupported=False)
    image: Image.Image
    if samples == 1 and photometric in ("MONOCHROME1", "MONOCHROME2"):
        image = Image.frombytes("L", (width, height), pixels[:plane])
        if photometric == "MONOCHROME1":
            image = ImageOps.invert(image)
    elif samples == 3 and photometric in ("RGB", "YBR_FULL"):
        mode = "RGB" if photometric == "RGB" else "YCbCr"
        if int(dataset.get("PlanarConfiguration") or 0) == 1:
            bands = [Image.frombytes("L", (width, height), pixels[i * plane:(i + 1) * plane])
                     for i in range(3)]
            image = Image.merge(mode, bands)
        else:
            image = Image.frombytes(mode, (width, height), pixels[:plane * 3])
        image = image.convert("RGB")
    else:
        raise DicomRefused(f"uncompressed pixels of {samples} samples in {photometric[:20] or '?'} "
                           "are not supported (RGB, YBR_FULL or MONOCHROME only)",
                           unsupported=True)
    options: dict[str, Any] = {"quality": JPEG_QUALITY, "subsampling": 0}
    icc = dataset.get("ICCProfile")
    if icc:
        options["icc_profile"] = bytes(icc)
    encoded = io.BytesIO()
    image.save(encoded, format="JPEG", **options)
    return encoded.getvalue()
