"""Photos for the photo and DICOM tests, made with Pillow and pydicom: JPEGs and PNGs with
metadata (EXIF with GPS, XMP, comments, text chunks), and DICOM photo instances."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Final

from PIL import Image, PngImagePlugin
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit

from mappers.dicom_in import DERMOSCOPIC_PHOTOGRAPHY_IMAGE, VL_PHOTOGRAPHIC_IMAGE

GPS_TAG: Final = 0x8825
MAKE_TAG: Final = 0x010F
ORIENTATION_TAG: Final = 0x0112
CT_IMAGE: Final = "1.2.840.10008.5.1.4.1.1.2"
XMP: Final = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
              b'exif:GPSLatitude="48,51.4N"/></rdf:RDF></x:xmpmeta>')
ICC: Final = b"\x00\x00\x02\x0cICC profile kept by the scrubbing tests" + bytes(480)
"""Bytes carried as an ICC profile (Pillow copies them without interpreting them)."""


def picture(width: int = 48, height: int = 32) -> Image.Image:
    """An RGB test card: four coloured quadrants, so that any turn or flip shows."""
    image = Image.new("RGB", (width, height), (220, 40, 40))
    image.paste((40, 200, 40), (width // 2, 0, width, height // 2))
    image.paste((40, 40, 220), (0, height // 2, width // 2, height))
    image.paste((230, 230, 40), (width // 2, height // 2, width, height))
    return image


def exif_with_gps(orientation: int | None = None) -> Image.Exif:
    """EXIF naming the camera and where the photo was taken (and an orientation)."""
    exif = Image.Exif()
    exif[MAKE_TAG] = "PhoneMaker"
    exif[GPS_TAG] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 7.0)}
    if orientation is not None:
        exif[ORIENTATION_TAG] = orientation
    return exif


def jpeg(image: Image.Image | None = None, *, exif: Image.Exif | None = None,
         comment: bytes | None = None, icc: bytes | None = None, xmp: bytes | None = None,
         quality: int = 90, progressive: bool = False) -> bytes:
    """A JPEG of ``image`` (the test card by default) with the metadata given."""
    options: dict[str, object] = {"quality": quality, "progressive": progressive}
    if exif is not None:
        options["exif"] = exif
    if comment is not None:
        options["comment"] = comment
    if icc is not None:
        options["icc_profile"] = icc
    if xmp is not None:
        options["xmp"] = xmp
    out = io.BytesIO()
    (image or picture()).save(out, format="JPEG", **options)
    return out.getvalue()


def png(image: Image.Image | None = None, *, text: dict[str, str] | None = None,
        exif: Image.Exif | None = None, icc: bytes | None = None) -> bytes:
    """A PNG of ``image`` with tEXt/iTXt/zTXt chunks (``text``), an eXIf chunk and an ICC
    profile as given."""
    info = PngImagePlugin.PngInfo()
    for index, (key, value) in enumerate((text or {}).items()):
        if index % 3 == 0:
            info.add_text(key, value)
        elif index % 3 == 1:
            info.add_itxt(key, value)
        else:
            info.add_text(key, value, zip=True)
    options: dict[str, object] = {"pnginfo": info}
    if exif is not None:
        options["exif"] = exif
    if icc is not None:
        options["icc_profile"] = icc
    out = io.BytesIO()
    (image or picture()).save(out, format="PNG", **options)
    return out.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


def with_png_chunk(data: bytes, kind: bytes, body: bytes) -> bytes:
    """The PNG with one more chunk right after IHDR (e.g. a tIME chunk)."""
    ihdr_end = 8 + 12 + 13
    return data[:ihdr_end] + png_chunk(kind, body) + data[ihdr_end:]


def png_bomb_header(width: int, height: int) -> bytes:
    """A small PNG whose header announces ``width`` × ``height`` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"".join((b"\x89PNG\r\n\x1a\n", png_chunk(b"IHDR", header),
                     png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)), png_chunk(b"IEND", b"")))


def jpeg_bomb_header(width: int, height: int) -> bytes:
    """A real tiny JPEG whose frame header is rewritten to announce ``width`` × ``height``."""
    data = bytearray(jpeg(picture(8, 8)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def pixels_of(data: bytes) -> tuple[tuple[int, int], bytes]:
    """Size and decoded RGB pixels of an image file."""
    with Image.open(io.BytesIO(data)) as image:
        converted = image.convert("RGB")
    return converted.size, converted.tobytes()


def heic_header() -> bytes:
    """The first box of a HEIC file (``ftyp``, brand ``heic``) and some bytes."""
    return struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00mif1heic" + bytes(64)


def dicom_photo(*, sop_class: str = VL_PHOTOGRAPHIC_IMAGE, pixels: str = "jpeg",
                width: int = 40, height: int = 30, region: tuple[str, str, str] | None = (
                    "SCT", "368208006", "Left upper arm structure"),
                body_part: str | None = None, acquired: str | None = "20261120091000",
                offset: str | None = "+0100", instance_uid: str = "2.25.1234567890",
                frames: int | None = None) -> bytes:
    """A DICOM photo instance. ``pixels``: ``jpeg`` (JPEG Baseline), ``rgb`` / ``planar`` /
    ``ybr`` / ``mono`` / ``mono1`` (uncompressed 8-bit), ``j2k`` (JPEG 2000: unsupported)."""
    card = picture(width, height)
    dataset = Dataset()
    dataset.SOPClassUID = sop_class
    dataset.SOPInstanceUID = instance_uid
    dataset.StudyInstanceUID = "2.25.99"
    dataset.SeriesInstanceUID = "2.25.98"
    dataset.Modality = "DMS" if sop_class == DERMOSCOPIC_PHOTOGRAPHY_IMAGE else "XC"
    dataset.PatientName = "Someone^Else"
    dataset.PatientID = "OTHER-ID"
    dataset.Manufacturer = "DermaOptics"
    dataset.ManufacturerModelName = "Scope 3"
    if acquired is not None:
        dataset.AcquisitionDateTime = acquired
    if offset is not None:
        dataset.TimezoneOffsetFromUTC = offset
    if region is not None:
        item = Dataset()
        item.CodingSchemeDesignator, item.CodeValue, item.CodeMeaning = region
        dataset.AnatomicRegionSequence = Sequence([item])
    if body_part is not None:
        dataset.BodyPartExamined = body_part
    dataset.Rows, dataset.Columns = height, width
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 8, 8, 7
    dataset.PixelRepresentation = 0
    if frames is not None:
        dataset.NumberOfFrames = frames
    syntax = ExplicitVRLittleEndian
    if pixels in ("jpeg", "j2k"):
        dataset.SamplesPerPixel = 3
        dataset.PhotometricInterpretation = "YBR_FULL_422"
        dataset.PlanarConfiguration = 0
        dataset.PixelData = encapsulate([jpeg(card)])
        dataset["PixelData"].VR = "OB"
        dataset["PixelData"].is_undefined_length = True
        syntax = JPEGBaseline8Bit if pixels == "jpeg" else JPEG2000Lossless
    elif pixels in ("mono", "mono1"):
        dataset.SamplesPerPixel = 1
        dataset.PhotometricInterpretation = "MONOCHROME2" if pixels == "mono" else "MONOCHROME1"
        dataset.PixelData = card.convert("L").tobytes()
    else:
        dataset.SamplesPerPixel = 3
        dataset.PhotometricInterpretation = "YBR_FULL" if pixels == "ybr" else "RGB"
        dataset.PlanarConfiguration = 1 if pixels == "planar" else 0
        source = card.convert("YCbCr") if pixels == "ybr" else card
        if pixels == "planar":
            dataset.PixelData = b"".join(band.tobytes() for band in card.split())
        else:
            dataset.PixelData = source.tobytes()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    dataset.file_meta.MediaStorageSOPInstanceUID = UID(instance_uid)
    dataset.file_meta.TransferSyntaxUID = syntax
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()
