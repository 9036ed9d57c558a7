"""DICOM out: photos become VL Photographic or Dermoscopic Photography instances that pydicom
reads back with the patient module, stable UIDs and decodable JPEG Baseline pixels; and an
imported instance makes the same round trip."""

from __future__ import annotations

import copy
import io
from typing import Any

import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from mappers.dicom_in import DERMOSCOPIC_PHOTOGRAPHY_IMAGE, VL_PHOTOGRAPHIC_IMAGE, import_photo
from mappers.dicom_out import (
    DicomExportRefused,
    PhotoExport,
    dicom_of_photo,
    instance_uid,
    series_uid,
    study_uid,
)
from tests.support.photos import dicom_photo, jpeg, picture, png
from tests.support.workflow_case import example

PATIENT = example("Patient-camille-martin")
MINOR = example("Patient-lucas-bernard")
REQUEST = example("ServiceRequest-skin-camille-martin")
CLINICAL = example("Media-skin-camille-martin-1")
DERMOSCOPY = example("Media-mole-lucas-bernard-dermoscopy")


def _export(media: dict[str, Any], *, image: bytes | None = None, content_type: str =
            "image/jpeg", patient: dict[str, Any] = PATIENT) -> Dataset:
    instance = dicom_of_photo(PhotoExport(media=media, patient=patient, service_request=REQUEST,
                                          image=image if image is not None else jpeg(),
                                          content_type=content_type))
    return pydicom.dcmread(io.BytesIO(instance))


def _frame_image(dataset: Dataset) -> Image.Image:
    frame = next(generate_frames(dataset.PixelData, number_of_frames=1))
    image = Image.open(io.BytesIO(frame))
    image.load()
    return image


def test_a_clinical_photo_is_a_vl_photographic_image_with_the_patient_module() -> None:
    dataset = _export(CLINICAL)
    assert dataset.SOPClassUID == VL_PHOTOGRAPHIC_IMAGE
    assert dataset.Modality == "XC"
    assert dataset.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert dataset.PatientID == "285037505612306"
    assert dataset.IssuerOfPatientID == "1.2.250.1.213.1.4.8"
    assert str(dataset.PatientName) == "Martin^Camille"
    assert dataset.PatientBirthDate == PATIENT["birthDate"].replace("-", "")
    assert dataset.PatientSex == "F"
    assert dataset.AcquisitionDateTime == "20261120091000+0100"
    region = dataset.AnatomicRegionSequence[0]
    assert (region.CodingSchemeDesignator, region.CodeValue) == ("SCT", "368208006")


def test_the_pixels_are_the_photo_as_jpeg_baseline() -> None:
    photo = jpeg(picture(48, 32))
    dataset = _export(CLINICAL, image=photo)
    assert (dataset.Rows, dataset.Columns, dataset.SamplesPerPixel) == (32, 48, 3)
    assert dataset.PhotometricInterpretation == "YBR_FULL_422"
    assert dataset.BitsAllocated == 8 and dataset.LossyImageCompression == "01"
    assert list(dataset.ImageType) == ["ORIGINAL", "PRIMARY"]
    assert next(generate_frames(dataset.PixelData, number_of_frames=1)).startswith(photo)
    assert _frame_image(dataset).size == (48, 32)


@pytest.mark.parametrize(("image", "content_type"), [
    (png(picture(20, 10)), "image/png"),
    (jpeg(picture(20, 10), progressive=True), "image/jpeg")])
def test_other_photos_are_encoded_again_as_baseline(image: bytes, content_type: str) -> None:
    dataset = _export(CLINICAL, image=image, content_type=content_type)
    assert list(dataset.ImageType) == ["DERIVED", "PRIMARY"]
    assert dataset.PhotometricInterpretation == "YBR_FULL"
    decoded = _frame_image(dataset)
    assert decoded.size == (20, 10) == (dataset.Columns, dataset.Rows)
    assert decoded.info.get("progressive") is None


def test_uids_are_derived_from_the_case_and_stable() -> None:
    first = _export(CLINICAL)
    again = _export(copy.deepcopy(CLINICAL))
    other = _export({**DERMOSCOPY, "basedOn": CLINICAL["basedOn"]})
    assert first.StudyInstanceUID == again.StudyInstanceUID == other.StudyInstanceUID \
        == study_uid(REQUEST["id"])
    assert first.SeriesInstanceUID == series_uid(REQUEST["id"], "XC")
    assert other.SeriesInstanceUID == series_uid(REQUEST["id"], "DMS") != first.SeriesInstanceUID
    assert first.SOPInstanceUID == instance_uid(CLINICAL["id"]) != other.SOPInstanceUID
    assert first.SOPInstanceUID.startswith("2.25.") and len(first.SOPInstanceUID) <= 64
    assert dicom_of_photo(PhotoExport(CLINICAL, PATIENT, REQUEST, jpeg(), "image/jpeg")) == \
        dicom_of_photo(PhotoExport(CLINICAL, PATIENT, REQUEST, jpeg(), "image/jpeg"))


def test_a_dermoscopy_is_a_dermoscopic_photography_image() -> None:
    dataset = _export(DERMOSCOPY, patient=MINOR)
    assert dataset.SOPClassUID == DERMOSCOPIC_PHOTOGRAPHY_IMAGE
    assert dataset.Modality == "DMS"
    assert dataset.RecognizableVisualFeatures == "YES"
    for keyword in ("LightSourcePolarization", "ContactMethod", "OpticalMagnificationFactor",
                    "EmitterColorTemperature"):
        assert keyword in dataset and dataset[keyword].value in ("", None)


def test_a_minor_without_own_ins_is_never_given_the_parents_nir() -> None:
    dataset = _export(DERMOSCOPY, patient=MINOR)
    assert dataset.PatientID == MINOR["id"]
    assert "IssuerOfPatientID" not in dataset
    assert dataset.PatientSex == "M"


def test_a_media_of_another_modality_is_refused() -> None:
    media = {**CLINICAL, "modality": {"coding": [{"system": "http://dicom.nema.org/resources/"
                                                            "ontology/DCM", "code": "CT"}]}}
    with pytest.raises(DicomExportRefused):
        _export(media)


def test_an_imported_instance_makes_the_round_trip() -> None:
    original = dicom_photo(sop_class=DERMOSCOPIC_PHOTOGRAPHY_IMAGE, width=40, height=30)
    imported = import_photo(original, based_on=f"ServiceRequest/{REQUEST['id']}",
                            subject=f"Patient/{PATIENT['id']}", photo_url="Binary/photo-1")
    media = {**imported.media, "id": "imported-1"}
    dataset = _export(media, image=imported.jpeg)
    assert dataset.SOPClassUID == DERMOSCOPIC_PHOTOGRAPHY_IMAGE
    assert dataset.PatientID == "285037505612306"
    assert dataset.SOPInstanceUID == instance_uid("imported-1")
    assert dataset.SourceImageSequence[0].ReferencedSOPInstanceUID == "2.25.1234567890"
    assert dataset.AcquisitionDateTime == "20261120091000+0100"
    assert (dataset.Columns, dataset.Rows) == (40, 30) == _frame_image(dataset).size
    again = import_photo(dicom_of_photo(PhotoExport(media, PATIENT, REQUEST, imported.jpeg,
                                                    "image/jpeg")),
                         based_on="ServiceRequest/x", subject="Patient/y", photo_url="u")
    assert again.media["modality"] == imported.media["modality"]
    assert again.media["bodySite"] == imported.media["bodySite"]
    assert (again.media["width"], again.media["height"]) == (40, 30)


def test_long_snomed_codes_and_odd_names_stay_valid_dicom() -> None:
    site = {"coding": [{"system": "http://snomed.info/sct", "code": "123456789012345678",
                        "display": "Site\\with^delimiters"}]}
    patient = {**PATIENT, "name": [{"use": "official", "family": "Le^Gall",
                                    "given": ["Anne", "Marie\\Zoé"]}]}
    dataset = _export({**CLINICAL, "bodySite": site}, patient=patient)
    region = dataset.AnatomicRegionSequence[0]
    assert region.LongCodeValue == "123456789012345678" and "CodeValue" not in region
    assert region.CodeMeaning == "Site with delimiters"
    assert str(dataset.PatientName) == "Le Gall^Anne^Marie Zoé"
    written = dicom_of_photo(PhotoExport({**CLINICAL, "bodySite": site}, PATIENT, REQUEST,
                                         jpeg(), "image/jpeg"))
    back = import_photo(written, based_on="ServiceRequest/x", subject="Patient/y", photo_url="u")
    assert back.media["bodySite"]["coding"][0]["code"] == "123456789012345678"
