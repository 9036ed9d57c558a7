"""The PDF report of a tele-expertise case: what the reader finds in it (pypdf text
extraction), byte-identical renders, embedded fonts only, photos, missing optional parts."""

from __future__ import annotations

import dataclasses
import io
import re

from pypdf import PageObject, PdfReader
from pypdf.generic import DictionaryObject

from mappers.report_input import (
    ORIENTATION_URL,
    RECOMMENDATION_URL,
    mask_nir,
    report_input,
)
from mappers.report_pdf import render_report
from tests.support.report_case import case_with_photos
from tests.support.workflow_case import example

FULL_NIR = "285037505612306"
BASE_14 = {"Helvetica", "Times-Roman", "Courier", "Symbol", "ZapfDingbats"}


def pdf_text(pdf: bytes) -> str:
    """The text of every page, whitespace collapsed to single spaces."""
    pages = PdfReader(io.BytesIO(pdf)).pages
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in pages))


def fonts_of(resources: DictionaryObject) -> list[DictionaryObject]:
    """The fonts of a resource dictionary and of the form XObjects it uses."""
    fonts = [font.get_object() for font in resources.get("/Font", {}).values()]
    for xobject in resources.get("/XObject", {}).values():
        inner = xobject.get_object()
        if inner.get("/Subtype") == "/Form" and "/Resources" in inner:
            fonts += fonts_of(inner["/Resources"].get_object())
    return fonts


def resources_of(page: PageObject) -> DictionaryObject:
    """The page's resource dictionary."""
    resources = page["/Resources"].get_object()
    assert isinstance(resources, DictionaryObject)
    return resources


def images_on(pdf: bytes) -> int:
    """How many image XObjects the pages draw."""
    return sum(len(page.images) for page in PdfReader(io.BytesIO(pdf)).pages)


def test_the_report_shows_every_required_field() -> None:
    text = pdf_text(render_report(report_input(case_with_photos())))

    for expected in (
            "Pictaderm", "Pharmacie du Centre", "950012344",
            "N° de dossier", "skin-camille-martin",
            "Date de la demande 20/11/2026 à 09:15", "Date de la réponse 20/11/2026 à 11:00",
            "Nom Martin", "Prénom(s) Camille", "Date de naissance 14/03/1985", "Sexe Féminin",
            "NIR (masqué) • •• •• •• ••• •23 06",
            "Formulaire Peau", "Nombre de lésions 3", "Démangeaisons Oui", "Fièvre Non",
            "Depuis combien de temps la lésion est-elle présente ? 1 à 4 semaines",
            "S'agit-il d'un eczéma ? Quel traitement proposer ?",
            "Photo 1 — Left upper arm structure", "Photo 2 — Trunk structure",
            "Dermoscopie : oui", "Dermoscopie : non",
            "Aspect d'eczéma nummulaire", "Eczema (43116000)",
            "Aucun document joint.",
            "Dr Julien Moreau", "Médecin généraliste appétent à la dermatologie", "10987654323",
            "signé électroniquement",
            "La photo de dermoscopie est floue", "Nouvelle photo de dermoscopie envoyée.",
            "21/11/2026 à 10:05",
            "acte de téléexpertise au sens de l'article R6316-1 du code de la santé publique"):
        assert expected in text, expected
    assert FULL_NIR not in text
    assert "0375056" not in text.replace(" ", "")


def test_every_page_is_numbered_out_of_the_total() -> None:
    pdf = render_report(report_input(case_with_photos()))
    pages = PdfReader(io.BytesIO(pdf)).pages

    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        page_text = re.sub(r"\s+", " ", page.extract_text())
        assert re.search(rf"Page {number} / ?{len(pages)}\b", page_text), page_text


def test_two_renders_of_the_same_input_are_byte_identical() -> None:
    report = report_input(case_with_photos())

    assert render_report(report) == render_report(report)


def test_document_date_and_id_come_from_the_case() -> None:
    first = PdfReader(io.BytesIO(render_report(report_input(case_with_photos()))))
    other_request = {**example("ServiceRequest-skin-camille-martin"),
                     "identifier": [{"system": "urn:ietf:rfc:3986", "value": "PX-2026-000042"}]}
    second = PdfReader(io.BytesIO(render_report(report_input(
        case_with_photos(service_request=other_request)))))

    assert first.metadata is not None
    assert str(first.metadata["/CreationDate"]) == "D:20261120110000+01'00'"
    assert first.trailer["/ID"] != second.trailer["/ID"]
    assert "PX-2026-000042" in pdf_text(render_report(report_input(
        case_with_photos(service_request=other_request))))


def test_only_embedded_fonts_are_used() -> None:
    reader = PdfReader(io.BytesIO(render_report(report_input(case_with_photos()))))
    fonts = [font for page in reader.pages for font in fonts_of(resources_of(page))]

    assert fonts
    for font in fonts:
        name = str(font["/BaseFont"])
        assert name.lstrip("/").split("+")[-1] not in BASE_14, name
        descriptor = font["/FontDescriptor"].get_object()
        assert isinstance(descriptor, DictionaryObject)
        assert "/FontFile2" in descriptor, name
        assert "Vera" in name


def test_four_photos_render_as_thumbnails() -> None:
    report = report_input(case_with_photos(4))
    pdf = render_report(report)

    assert images_on(pdf) == 4
    assert [photo.dermoscopy for photo in report.photos] == [False, True, False, True]
    assert "Photos (4)" in pdf_text(pdf)
    assert len(pdf) < 500_000


def test_an_odd_number_of_photos_and_an_unreadable_one_render() -> None:
    photos = case_with_photos(3).photos
    broken = dataclasses.replace(photos[2], image=b"not an image")
    pdf = render_report(report_input(case_with_photos(photos=(*photos[:2], broken))))

    assert images_on(pdf) == 2
    assert "Image illisible" in pdf_text(pdf)


def test_missing_optional_parts_render() -> None:
    report_resource = {key: value for key, value
                       in example("DiagnosticReport-skin-camille-martin").items()
                       if key not in ("conclusionCode", "presentedForm")}
    patient = {key: value for key, value in example("Patient-camille-martin").items()
               if key != "identifier"}
    text = pdf_text(render_report(report_input(case_with_photos(
        0, diagnostic_report=report_resource, communications=(), patient=patient,
        questionnaire=None))))

    assert "Aucune demande de précisions." in text
    assert "Diagnostic codé Non codé" in text
    assert "Aucune photo transmise." in text
    assert "Non renseigné (pas d'INS propre au patient)" in text
    assert "lesion-count 3" in text
    assert "R6316-1" in text


def test_recommendations_orientation_and_attached_documents_are_shown() -> None:
    resource = example("DiagnosticReport-skin-camille-martin")
    resource["extension"] = [
        {"url": RECOMMENDATION_URL, "valueString": "Appliquer l'émollient deux fois par jour."},
        {"url": RECOMMENDATION_URL, "valueString": "Éviter les savons parfumés."},
        {"url": ORIENTATION_URL, "valueCodeableConcept": {"text": "Consultation sous 15 jours"}}]
    resource["presentedForm"].append({"contentType": "application/pdf", "title": "Ordonnance"})
    report = report_input(case_with_photos(1, diagnostic_report=resource))
    text = pdf_text(render_report(report))

    assert report.documents == ("Ordonnance",)
    assert "• Appliquer l'émollient deux fois par jour." in text
    assert "• Éviter les savons parfumés." in text
    assert "Orientation / urgence Consultation sous 15 jours" in text
    assert "• Ordonnance" in text
    assert "Compte rendu de téléexpertise" not in text.split("Documents joints")[1]


def test_the_nir_is_masked_but_for_its_last_digits() -> None:
    assert mask_nir(FULL_NIR) == "• •• •• •• ••• •23 06"
    assert mask_nir("1 85 03 75 056 123 45") == "• •• •• •• ••• •23 45"


def test_clarifications_pair_each_question_with_its_answer_in_order() -> None:
    later_question = {**example("Communication-clarification-question"),
                      "id": "second", "sent": "2026-11-21T12:00:00+01:00",
                      "payload": [{"contentString": "Une photo de plus près ?"}]}
    report = report_input(case_with_photos(0, communications=(
        later_question, example("Communication-clarification-answer"),
        example("Communication-clarification-question"))))

    assert [exchange.question[:20] for exchange in report.clarifications] == [
        "La photo de dermosco", "Une photo de plus pr"]
    assert report.clarifications[0].answer == "Nouvelle photo de dermoscopie envoyée."
    assert report.clarifications[1].answer is None
    assert "Sans réponse" in pdf_text(render_report(report))
