"""DICOM out: a photo's Media, its patient and its case as a VL Photographic Image or a
Dermoscopic Photography Image instance, the photo as JPEG Baseline encapsulated pixel data
(pure: dicts and bytes in, bytes out).

- SOP class from the Media's modality: ``XC`` → VL Photographic Image, ``DMS`` → Dermoscopic
  Photography Image. Identity is derived, never random, so exporting twice gives the same
  instance: ``2.25.`` UIDs from name-based UUIDs (RFC 9562 v5) of the ServiceRequest (Study),
  the ServiceRequest and the modality (Series), the Media (SOP Instance).
- Patient module: PatientID = the patient's INS (its own, never the parent's NIR of the ``NH``
  slice) with its OID as IssuerOfPatientID; a patient without one gets the server's Patient id
  and no issuer. Name, birth date and sex from the Patient.
- Pixels: a baseline 8-bit JPEG of 1 or 3 components is encapsulated as it is (the stored
  photo has no metadata and is already upright), its Photometric Interpretation read from the
  frame (MONOCHROME2, RGB, YBR_FULL or YBR_FULL_422); any other photo (PNG, progressive JPEG,
  CMYK…) is decoded and encoded as baseline JPEG (quality 95, no chroma subsampling) and
  the Image Type says DERIVED.
- Acquisition date-time and body site (a SNOMED CT coding → Anatomic Region Sequence) from the
  Media; an imported Media's original instance in the Source Image Sequence.
- Dermoscopy: the Dermoscopic Photography Image attributes that pydicom's dictionary knows are
  Recognizable Visual Features (type 1: ``YES``, since nothing proves that a skin photo cannot
  identify the patient) and the acquisition conditions (light source polarization, emitter
  colour temperature, contact method, optical magnification), type 2: present and empty, since
  a Media does not record them.
"""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from typing import Any, Final

from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import JPEGBaseline8Bit

from fhir_server.media.jpeg_segments import JpegFile, read_jpeg
from fhir_server.media.malformed import MalformedImage
from fhir_server.media.orientation import UPRIGHT
from fhir_server.types import ResourceDict
from mappers.dicom_in import (
    DCM,
    DERMOSCOPIC_PHOTOGRAPHY_IMAGE,
    DICOM_UID_SYSTEM,
    PHOTO_KINDS,
    SNOMED,
    PhotoKind,
)

INS_SYSTEMS: Final = ("urn:oid:1.2.250.1.213.1.4.8", "urn:oid:1.2.250.1.213.1.4.10",
                      "urn:oid:1.2.250.1.213.1.4.11")
"""INS-NIR, then the test and demonstration INS, in order of preference."""
INSURED_TYPE: Final = "NH"
"""The identifier type of the insured person's NIR (a minor's parent): not the patient's."""
UID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://fhir.pictaderm.com/dicom")
JPEG_QUALITY: Final = 95
STUDY_DESCRIPTION: Final = "Téléexpertise dermatologique"
SERIES_NUMBERS: Final = {"XC": "1", "DMS": "2"}
_SEX: Final = {"male": "M", "female": "F", "other": "O"}
_RGB_IDS: Final = (ord("R"), ord("G"), ord("B"))
_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
                       r"(Z|[+-]\d{2}:\d{2})?)?$")


class DicomExportRefused(ValueError):
    """The Media cannot become a DICOM instance (not a photo of the guide, unreadable image)."""


@dataclass(frozen=True, slots=True)
class PhotoExport:
    """What an instance is built from: the Media (with its id), its Patient, its
    ServiceRequest (with its id), and the photo's bytes and media type."""

    media: ResourceDict
    patient: ResourceDict
    service_request: ResourceDict
    image: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class _Pixels:
    frame: bytes
    width: int
    height: int
    samples: int
    photometric: str
    derived: bool


def uid_of(name: str) -> str:
    """A DICOM UID (``2.25.`` + a name-based UUID as an integer) derived from ``name``."""
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, name).int}"


def study_uid(service_request_id: str) -> str:
    return uid_of(f"ServiceRequest/{service_request_id}")


def series_uid(service_request_id: str, modality: str) -> str:
    return uid_of(f"ServiceRequest/{service_request_id}/series/{modality}")


def instance_uid(media_id: str) -> str:
    return uid_of(f"Media/{media_id}")


def photo_kind(media: ResourceDict) -> PhotoKind:
    """The SOP class of a Media's modality (XC or DMS)."""
    codes = {coding.get("code") for coding in (media.get("modality") or {}).get("coding") or ()
             if isinstance(coding, dict) and coding.get("system") == DCM}
    for kind in PHOTO_KINDS.values():
        if kind.modality in codes:
            return kind
    raise DicomExportRefused("the Media's modality is neither a clinical photo (DCM XC) nor a "
                             "dermoscopy (DCM DMS)")


def dicom_of_photo(export: PhotoExport) -> bytes:
    """The DICOM Part 10 file of a photo."""
    media, request = export.media, export.service_request
    kind = photo_kind(media)
    pixels = _pixels(export.image, export.content_type)
    dataset = Dataset()
    dataset.SpecificCharacterSet = "ISO_IR 192"
    dataset.ImageType = ["DERIVED" if pixels.derived else "ORIGINAL", "PRIMARY"]
    dataset.SOPClassUID = kind.sop_class
    dataset.SOPInstanceUID = instance_uid(str(media["id"]))
    _patient_module(dataset, export.patient)
    _study_module(dataset, request)
    dataset.Modality = kind.modality
    dataset.SeriesInstanceUID = series_uid(str(request["id"]), kind.modality)
    dataset.SeriesNumber = SERIES_NUMBERS[kind.modality]
    dataset.Manufacturer = None
    dataset.InstanceNumber = None
    dataset.PatientOrientation = None
    _acquisition(dataset, media.get("createdDateTime"))
    dataset.AcquisitionContextSequence = DicomSequence([])
    region = _anatomic_region(media.get("bodySite"))
    if region is not None:
        dataset.AnatomicRegionSequence = DicomSequence([region])
    source = _source_image(media, kind)
    if source is not None:
        dataset.SourceImageSequence = DicomSequence([source])
    if kind.sop_class == DERMOSCOPIC_PHOTOGRAPHY_IMAGE:
        _dermoscopy(dataset)
    _pixel_module(dataset, pixels)
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    written = io.BytesIO()
    dataset.save_as(written, enforce_file_format=True)
    return written.getvalue()


def patient_identifier(patient: ResourceDict) -> tuple[str, str | None]:
    """The patient's INS and its issuer OID, or the Patient id and no issuer."""
    identifiers = [i for i in patient.get("identifier") or () if isinstance(i, dict)]
    for system in INS_SYSTEMS:
        for identifier in identifiers:
            types = {coding.get("code") for coding in (identifier.get("type") or {})
                     .get("coding") or () if isinstance(coding, dict)}
            value = identifier.get("value")
            if identifier.get("system") == system and INSURED_TYPE not in types \
                    and isinstance(value, str) and value:
                return value, system.removeprefix("urn:oid:")
    return str(patient.get("id") or ""), None


def person_name(patient: ResourceDict) -> str:
    """The patient's name as a DICOM PN (Family^Given^Middle), official name first."""
    names = [n for n in patient.get("name") or () if isinstance(n, dict)]
    names.sort(key=lambda n: {"official": 0, "usual": 1}.get(str(n.get("use")), 2))
    if not names:
        return ""
    name = names[0]
    given = [str(g) for g in name.get("given") or ()]
    parts = [str(name.get("family") or ""), given[0] if given else "", " ".join(given[1:])]
    return "^".join(_text_value(part) for part in parts).rstrip("^")


def _text_value(text: str) -> str:
    """A DICOM text value (a PN component, an LO): no delimiters nor control characters, at
    most 64 characters — so that pydicom never warns (and logs) about a patient's value."""
    cleaned = "".join(" " if char in "^=\\" or not char.isprintable() else char for char in text)
    return " ".join(cleaned.split())[:64]


def _patient_module(dataset: Dataset, patient: ResourceDict) -> None:
    patient_id, issuer = patient_identifier(patient)
    dataset.PatientName = person_name(patient)
    dataset.PatientID = _text_value(patient_id)
    if issuer is not None:
        dataset.IssuerOfPatientID = issuer
    birth = str(patient.get("birthDate") or "")
    dataset.PatientBirthDate = birth.replace("-", "") if len(birth) == 10 else None
    dataset.PatientSex = _SEX.get(str(patient.get("gender")))


def _study_module(dataset: Dataset, request: ResourceDict) -> None:
    dataset.StudyInstanceUID = study_uid(str(request["id"]))
    date, time, _ = _dicom_datetime(request.get("authoredOn"))
    dataset.StudyDate = date
    dataset.StudyTime = time
    dataset.ReferringPhysicianName = None
    dataset.StudyID = None
    dataset.AccessionNumber = None
    dataset.StudyDescription = STUDY_DESCRIPTION


def _acquisition(dataset: Dataset, created: Any) -> None:
    date, time, offset = _dicom_datetime(created)
    dataset.ContentDate = date
    dataset.ContentTime = time
    if date and time:
        dataset.AcquisitionDateTime = f"{date}{time}{offset or ''}"
    if offset:
        dataset.TimezoneOffsetFromUTC = offset


def _dicom_datetime(value: Any) -> tuple[str | None, str | None, str | None]:
    """A FHIR date or dateTime as DICOM (DA, TM, offset ``+HHMM``); Nones when absent."""
    match = _DATETIME.match(value) if isinstance(value, str) else None
    if match is None:
        return None, None, None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    date = f"{year}{month}{day}"
    if hour is None:
        return date, None, None
    time = f"{hour}{minute}{second or '00'}{(fraction or '')[:7]}"
    offset = None
    if zone is not None:
        offset = "+0000" if zone == "Z" else zone.replace(":", "")
    return date, time, offset


def _anatomic_region(body_site: Any) -> Dataset | None:
    """A code item for the first SNOMED CT coding of the body site."""
    if not isinstance(body_site, dict):
        return None
    for coding in body_site.get("coding") or ():
        if isinstance(coding, dict) and coding.get("system") == SNOMED and coding.get("code"):
            code = _text_value(str(coding["code"]))
            item = Dataset()
            if len(code) > 16:
                item.LongCodeValue = code
            else:
                item.CodeValue = code
            item.CodingSchemeDesignator = "SCT"
            item.CodeMeaning = _text_value(str(coding.get("display") or body_site.get("text")
                                               or code))
            return item
    return None


def _source_image(media: ResourceDict, kind: PhotoKind) -> Dataset | None:
    """The imported original instance, named by the Media's ``urn:dicom:uid`` identifier."""
    for identifier in media.get("identifier") or ():
        value = identifier.get("value") if isinstance(identifier, dict) else None
        if identifier.get("system") == DICOM_UID_SYSTEM and isinstance(value, str) \
                and value.startswith("urn:oid:"):
            item = Dataset()
            item.ReferencedSOPClassUID = kind.sop_class
            item.ReferencedSOPInstanceUID = value.removeprefix("urn:oid:")
            return item
    return None


def _dermoscopy(dataset: Dataset) -> None:
    dataset.RecognizableVisualFeatures = "YES"
    dataset.LightSourcePolarization = None
    dataset.EmitterColorTemperature = None
    dataset.ContactMethod = None
    dataset.OpticalMagnificationFactor = None


def _pixel_module(dataset: Dataset, pixels: _Pixels) -> None:
    dataset.SamplesPerPixel = pixels.samples
    dataset.PhotometricInterpretation = pixels.photometric
    if pixels.samples == 3:
        dataset.PlanarConfiguration = 0
    dataset.Rows = pixels.height
    dataset.Columns = pixels.width
    dataset.BitsAllocated = 8
    dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    dataset.LossyImageCompression = "01"
    dataset.LossyImageCompressionMethod = "ISO_10918_1"
    dataset.PixelData = encapsulate([pixels.frame])
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True


def _pixels(image: bytes, content_type: str) -> _Pixels:
    """The photo as one JPEG Baseline frame, taken as it is when it already is one."""
    if content_type == "image/jpeg":
        try:
            jpeg = read_jpeg(image)
        except MalformedImage as error:
            raise DicomExportRefused(f"the photo is not a readable JPEG: {error}") from None
        photometric = _photometric(jpeg)
        if jpeg.frame.is_baseline and jpeg.orientation == UPRIGHT and photometric is not None:
            return _Pixels(frame=jpeg.stripped, width=jpeg.frame.width,
                           height=jpeg.frame.height, samples=len(jpeg.frame.components),
                           photometric=photometric, derived=False)
    elif content_type != "image/png":
        raise DicomExportRefused(f"a photo of type {content_type[:60]} cannot be exported")
    return _encoded(image)


def _photometric(jpeg: JpegFile) -> str | None:
    """How the frame's components are to be read, None for what DICOM JPEG Baseline has not."""
    components = jpeg.frame.components
    if len(components) == 1:
        return "MONOCHROME2"
    if len(components) != 3:
        return None
    if jpeg.adobe_transform == 0 or tuple(c.id for c in components) == _RGB_IDS:
        return "RGB" if all((c.horizontal, c.vertical) == (1, 1) for c in components) else None
    luma = components[0]
    subsampled = (luma.horizontal, luma.vertical) != (1, 1)
    return "YBR_FULL_422" if subsampled else "YBR_FULL"


def _encoded(image: bytes) -> _Pixels:
    """Any readable photo decoded and encoded as a baseline JPEG without chroma subsampling."""
    try:
        with Image.open(io.BytesIO(image)) as opened:
            grey = opened.mode in ("1", "L", "LA", "I;16", "I")
            picture = opened.convert("L" if grey else "RGB")
    except (OSError, ValueError, SyntaxError) as error:
        raise DicomExportRefused("the photo cannot be decoded") from error
    encoded = io.BytesIO()
    picture.save(encoded, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return _Pixels(frame=encoded.getvalue(), width=picture.width, height=picture.height,
                   samples=1 if grey else 3, photometric="MONOCHROME2" if grey else "YBR_FULL",
                   derived=True)

