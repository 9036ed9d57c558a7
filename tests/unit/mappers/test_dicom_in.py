"""DICOM in: photo instances made with pydicom and Pillow become a Media and a JPEG."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from mappers.dicom_in import (
    DERMOSCOPIC_PHOTOGRAPHY_IMAGE,
    DicomRefused,
    ImportedPhoto,
    import_photo,
    read_photo_instance,
)
from tests.support.photos import CT_IMAGE, dicom_photo, jpeg, picture

PHOTO_URL = "urn:uuid:0d3c2f5e-8f51-4a57-9d1c-61d0c0e6c001"
ARM = {"coding": [{"system": "http://snomed.info/sct", "code": "368208006",
                   "display": "Left upper arm structure"}]}


def _imported(instance: bytes, body_site: dict[str, Any] | None = None) -> ImportedPhoto:
    return import_photo(instance, based_on="ServiceRequest/sr-1", subject="Patient/p-1",
                        photo_url=PHOTO_URL, body_site=body_site)


def test_a_vl_photographic_instance_becomes_a_clinical_photo() -> None:
    imported = _imported(dicom_photo())
    media = imported.media
    assert media["meta"]["profile"] == [
        "https://fhir.pictaderm.com/StructureDefinition/pictaderm-clinical-photo"]
    assert media["modality"]["coding"][0]["code"] == "XC"
    assert media["basedOn"] == [{"reference": "ServiceRequest/sr-1"}]
    assert media["subject"] == {"reference": "Patient/p-1"}
    assert media["bodySite"] == ARM
    assert media["createdDateTime"] == "2026-11-20T09:10:00+01:00"
    assert (media["width"], media["height"]) == (40, 30)
    assert media["identifier"] == [{"system": "urn:dicom:uid", "value": "urn:oid:2.25.1234567890"}]
    assert media["deviceName"] == "DermaOptics Scope 3"
    assert media["content"]["url"] == PHOTO_URL
    assert media["content"]["contentType"] == "image/jpeg"


def test_a_dermoscopic_instance_becomes_a_dermoscopy_photo() -> None:
    media = _imported(dicom_photo(sop_class=DERMOSCOPIC_PHOTOGRAPHY_IMAGE)).media
    assert media["modality"]["coding"][0]["code"] == "DMS"
    assert media["meta"]["profile"][0].endswith("/pictaderm-dermoscopy-photo")


def test_a_jpeg_baseline_frame_is_taken_as_it_is() -> None:
    assert _imported(dicom_photo()).jpeg == jpeg(picture(40, 30))


@pytest.mark.parametrize("pixels", ["rgb", "planar", "ybr", "mono", "mono1"])
def test_uncompressed_pixels_are_encoded_as_jpeg(pixels: str) -> None:
    photo = _imported(dicom_photo(pixels=pixels)).jpeg
    with Image.open(io.BytesIO(photo)) as decoded:
        assert decoded.format == "JPEG" and decoded.size == (40, 30)
        sample = decoded.convert("RGB").getpixel((5, 5))
    expected = picture(40, 30).getpixel((5, 5))
    assert isinstance(sample, tuple) and isinstance(expected, tuple)
    if pixels in ("mono", "mono1"):
        grey = round(sum(expected) / 3)
        target = 255 - grey if pixels == "mono1" else grey
        assert abs(sample[0] - target) < 40
    else:
        assert all(abs(a - b) < 30 for a, b in zip(sample, expected, strict=True))


def test_without_an_offset_from_utc_only_the_date_is_kept() -> None:
    media = _imported(dicom_photo(offset=None)).media
    assert media["createdDateTime"] == "2026-11-20"
    own = _imported(dicom_photo(offset=None, acquired="20261120091000-0400")).media
    assert own["createdDateTime"] == "2026-11-20T09:10:00-04:00"


def test_body_part_examined_and_the_given_body_site_are_fallbacks() -> None:
    part = _imported(dicom_photo(region=None, body_part="ARM")).media
    assert part["bodySite"] == {"text": "ARM"}
    given = _imported(dicom_photo(region=None), body_site=ARM).media
    assert given["bodySite"] == ARM
    assert "bodySite" not in _imported(dicom_photo(region=None)).media


@pytest.mark.parametrize(("instance", "unsupported"), [
    (dicom_photo(sop_class=CT_IMAGE), True),
    (dicom_photo(pixels="j2k"), True),
    (dicom_photo(pixels="rgb", frames=2), True),
    (b"\x00" * 128 + b"DICM" + b"\x02\x00" * 40, False),
    (dicom_photo(pixels="rgb")[:-500], False),
])
def test_what_is_not_taken_is_refused(instance: bytes, unsupported: bool) -> None:
    with pytest.raises(DicomRefused) as refused:
        _imported(instance)
    assert refused.value.unsupported is unsupported


def test_a_photo_instance_is_read_with_its_size() -> None:
    photo = read_photo_instance(dicom_photo(width=64, height=16))
    assert (photo.width, photo.height, photo.kind.modality) == (64, 16, "XC")
