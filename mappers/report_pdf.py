"""Renders the PDF report of a tele-expertise case (A4, French, black-and-white friendly) from a
ReportInput with reportlab: embedded Bitstream Vera fonts, deterministic bytes, "page x / y"."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import date, datetime
from html import escape
from pathlib import Path
from typing import Any

import reportlab
from PIL import Image as PillowImage
from PIL import UnidentifiedImageError
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.flowables import CallerMacro

from mappers.report_input import Answer, Clarification, Photo, ReportInput

FONT = "PictadermVera"
FONT_BOLD = "PictadermVera-Bold"
FONT_ITALIC = "PictadermVera-Italic"
FONT_FILES = {FONT: "Vera.ttf", FONT_BOLD: "VeraBd.ttf", FONT_ITALIC: "VeraIt.ttf",
              "PictadermVera-BoldItalic": "VeraBI.ttf"}
PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 18 * mm
FRAME_PADDING = 6
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN - 2 * FRAME_PADDING
THUMBNAIL_PIXELS = 480
THUMBNAIL_SIZE = 62 * mm
THUMBNAIL_QUALITY = 80
PHOTOS_PER_ROW = 2
PAGE_TOTAL_FORM = "pictadermPageTotal"
LEGAL_MENTION = ("Le présent compte rendu relève d'un acte de téléexpertise au sens de l'article "
                 "R6316-1 du code de la santé publique.")
FOOTER_MENTION = "Acte de téléexpertise (art. R6316-1 du code de la santé publique)"
TITLE = "Compte rendu de téléexpertise en dermatologie"
LIGHT_GREY = colors.Color(0.88, 0.88, 0.88)
MID_GREY = colors.Color(0.45, 0.45, 0.45)


def render_report(report: ReportInput) -> bytes:
    """The report as PDF bytes, identical for the same input."""
    register_fonts()
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN + 16 * mm,
        bottomMargin=MARGIN + 8 * mm, title=f"{TITLE} — dossier {report.case_number}",
        author=report.doctor.name, subject=FOOTER_MENTION, creator=report.platform,
        producer=report.platform, lang="fr-FR", invariant=1, initialFontName=FONT)
    decorate = page_decoration(report)
    document.build(list(story(report)), onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()


def register_fonts() -> None:
    """Registers the Vera TrueType family shipped with reportlab (embedded, subset)."""
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    directory = Path(reportlab.__file__).parent / "fonts"
    for name, file in FONT_FILES.items():
        pdfmetrics.registerFont(TTFont(name, str(directory / file)))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT_ITALIC,
                                  boldItalic="PictadermVera-BoldItalic")


STYLES = {
    "title": ParagraphStyle("title", fontName=FONT_BOLD, fontSize=15, leading=19,
                            alignment=TA_CENTER, spaceAfter=4 * mm),
    "section": ParagraphStyle("section", fontName=FONT_BOLD, fontSize=11.5, leading=15,
                              spaceBefore=5 * mm, spaceAfter=2 * mm, keepWithNext=1),
    "body": ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=12.5),
    "label": ParagraphStyle("label", fontName=FONT_BOLD, fontSize=9, leading=12),
    "small": ParagraphStyle("small", fontName=FONT, fontSize=8.5, leading=11),
    "caption": ParagraphStyle("caption", fontName=FONT, fontSize=8.5, leading=11,
                              alignment=TA_CENTER),
    "note": ParagraphStyle("note", fontName=FONT_ITALIC, fontSize=9, leading=12),
}


def text(value: str, style: str = "body") -> Paragraph:
    """A paragraph of plain text (markup characters escaped, line breaks kept)."""
    return Paragraph(escape(value, quote=False).replace("\n", "<br/>"), STYLES[style])


def french_date(value: date | None) -> str:
    """``14/03/1985``, or a dash when unknown."""
    return value.strftime("%d/%m/%Y") if value else "—"


def french_datetime(value: datetime | None) -> str:
    """``20/11/2026 à 09:15`` in the time zone the resource gave, or a dash when unknown."""
    return value.strftime("%d/%m/%Y à %H:%M") if value else "—"


def story(report: ReportInput) -> Iterator[Any]:
    """The report's flowables, section by section."""
    yield text(TITLE, "title")
    yield fields_table([("N° de dossier", report.case_number),
                        ("Date de la demande", french_datetime(report.requested)),
                        ("Date de la réponse", french_datetime(report.answered))])
    yield from patient_section(report)
    yield from request_section(report)
    yield from photos_section(report.photos)
    yield from clarifications_section(report.clarifications)
    yield from answer_section(report)
    yield from documents_section(report.documents)
    yield from signature_section(report)
    yield CallerMacro(drawCallable=record_page_total)


def section(title: str) -> Paragraph:
    return text(title, "section")


def fields_table(rows: list[tuple[str, str]]) -> Table:
    """Label / value rows, labels in bold on a light grey column."""
    table = Table([[text(label, "label"), text(value)] for label, value in rows],
                  colWidths=[52 * mm, CONTENT_WIDTH - 52 * mm])
    table.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), FONT),
        ("BACKGROUND", (0, 0), (0, -1), LIGHT_GREY),
        ("GRID", (0, 0), (-1, -1), 0.4, MID_GREY),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5)]))
    return table


def patient_section(report: ReportInput) -> Iterator[Any]:
    patient = report.patient
    yield section("Patient")
    yield fields_table([
        ("Nom", patient.family or "—"), ("Prénom(s)", patient.given or "—"),
        ("Date de naissance", french_date(patient.birth_date)), ("Sexe", patient.sex),
        ("NIR (masqué)", patient.masked_nir or "Non renseigné (pas d'INS propre au patient)")])


def request_section(report: ReportInput) -> Iterator[Any]:
    yield section("Demande du pharmacien")
    yield fields_table([("Formulaire", report.form_type)])
    if report.answers:
        yield Spacer(1, 2 * mm)
        yield answers_table(report.answers)
    yield Spacer(1, 2 * mm)
    yield fields_table([("Question posée au médecin", report.pharmacist_question or "—")])


def answers_table(answers: tuple[Answer, ...]) -> Table:
    """The form's answers under their group headings."""
    rows: list[list[Any]] = [[text("Question", "label"), text("Réponse", "label")]]
    headings: list[int] = []
    group: str | None = None
    for answer in answers:
        if answer.group and answer.group != group:
            headings.append(len(rows))
            rows.append([text(answer.group, "label"), []])
        group = answer.group
        rows.append([text(answer.question), text(answer.answer)])
    table = Table(rows, colWidths=[CONTENT_WIDTH * 0.55, CONTENT_WIDTH * 0.45], repeatRows=1)
    commands: list[tuple[Any, ...]] = [
        ("FONTNAME", (0, 0), (-1, -1), FONT),
        ("BACKGROUND", (0, 0), (-1, 0), LIGHT_GREY),
        ("LINEBELOW", (0, 0), (-1, -1), 0.3, MID_GREY),
        ("BOX", (0, 0), (-1, -1), 0.4, MID_GREY),
        ("VALIGN", (0, 0), (-1, -1), "TOP")]
    commands += [("SPAN", (0, row), (1, row)) for row in headings]
    table.setStyle(TableStyle(commands))
    return table


def photos_section(photos: tuple[Photo, ...]) -> Iterator[Any]:
    yield section(f"Photos ({len(photos)})")
    if not photos:
        yield text("Aucune photo transmise.", "note")
        return
    cells = [photo_cell(number, photo) for number, photo in enumerate(photos, start=1)]
    rows = [cells[start:start + PHOTOS_PER_ROW] for start in range(0, len(cells),
                                                                   PHOTOS_PER_ROW)]
    rows[-1] += [[]] * (PHOTOS_PER_ROW - len(rows[-1]))
    table = Table(rows, colWidths=[CONTENT_WIDTH / PHOTOS_PER_ROW] * PHOTOS_PER_ROW)
    table.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), FONT),
                               ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                               ("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("BOTTOMPADDING", (0, 0), (-1, -1), 4 * mm)]))
    yield table


def photo_cell(number: int, photo: Photo) -> list[Any]:
    """A thumbnail with its caption: number, body site, dermoscopy flag."""
    site = photo.body_site or "localisation non précisée"
    dermoscopy = "oui" if photo.dermoscopy else "non"
    caption = text(f"Photo {number} — {site}\nDermoscopie : {dermoscopy}", "caption")
    return [thumbnail(photo.image), caption]


def thumbnail(image: bytes) -> Any:
    """The photo scaled down (Pillow) to a JPEG thumbnail, or a note when unreadable."""
    try:
        with PillowImage.open(io.BytesIO(image)) as opened:
            opened.draft("RGB", (THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            picture = opened.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return text("Image illisible", "note")
    picture.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    encoded = io.BytesIO()
    picture.save(encoded, format="JPEG", quality=THUMBNAIL_QUALITY)
    encoded.seek(0)
    scale = THUMBNAIL_SIZE / max(picture.width, picture.height)
    return Image(encoded, width=picture.width * scale, height=picture.height * scale)


def clarifications_section(clarifications: tuple[Clarification, ...]) -> Iterator[Any]:
    yield section("Demandes de précisions")
    if not clarifications:
        yield text("Aucune demande de précisions.", "note")
        return
    for number, exchange in enumerate(clarifications, start=1):
        reason = f" ({exchange.reason})" if exchange.reason else ""
        rows = [(f"Demande {number}{reason}", french_datetime(exchange.asked)),
                ("Question du médecin", exchange.question or "—"),
                ("Réponse du pharmacien", exchange.answer or "Sans réponse"),
                ("Date de la réponse", french_datetime(exchange.answered))]
        yield KeepTogether([fields_table(rows), Spacer(1, 2 * mm)])


def answer_section(report: ReportInput) -> Iterator[Any]:
    answer = report.answer
    yield section("Avis du médecin")
    rows = [("Conclusion", answer.conclusion or "—"),
            ("Diagnostic codé", answer.diagnosis or "Non codé")]
    if answer.recommendations:
        rows.append(("Recommandations", "\n".join(f"• {item}"
                                                  for item in answer.recommendations)))
    rows.append(("Orientation / urgence", answer.orientation or "Non précisée"))
    yield fields_table(rows)


def documents_section(documents: tuple[str, ...]) -> Iterator[Any]:
    yield section("Documents joints")
    if not documents:
        yield text("Aucun document joint.", "note")
        return
    for title in documents:
        yield text(f"• {title}")


def signature_section(report: ReportInput) -> Iterator[Any]:
    doctor = report.doctor
    statement = (f"Compte rendu établi et validé par {doctor.name} le "
                 f"{french_datetime(report.answered)}, signé électroniquement sur la "
                 f"plateforme {report.platform}.")
    yield KeepTogether([
        section("Médecin requis"),
        fields_table([("Médecin", doctor.name), ("Niveau d'expertise", doctor.tier or "—"),
                      ("RPPS", doctor.rpps or "—")]),
        Spacer(1, 3 * mm), text(statement), Spacer(1, 3 * mm), text(LEGAL_MENTION, "label")])


def page_decoration(report: ReportInput) -> Callable[[Any, Any], None]:
    """Draws the header (platform, pharmacy) and footer (legal mention, page x / y); on the
    first page also fixes the document's date and ID from the report."""
    pharmacy = report.pharmacy
    identity = " — ".join(part for part in (
        pharmacy.name, f"FINESS {pharmacy.finess}" if pharmacy.finess else None,
        pharmacy.address) if part)
    stamp = pdf_date(report.answered)

    def decorate(canvas: Any, document: Any) -> None:
        if canvas.getPageNumber() == 1:
            canvas.setDateFormatter(lambda *_: stamp)
            canvas._doc.updateSignature(report.document_id)
        canvas.saveState()
        top = PAGE_HEIGHT - MARGIN
        canvas.setFont(FONT_BOLD, 13)
        canvas.drawString(MARGIN, top - 4 * mm, report.platform)
        canvas.setFont(FONT, 8.5)
        canvas.drawRightString(PAGE_WIDTH - MARGIN, top - 4 * mm, "Téléexpertise en dermatologie")
        canvas.drawString(MARGIN, top - 9 * mm, f"Pharmacie requérante : {identity}")
        canvas.setStrokeColor(MID_GREY)
        canvas.setLineWidth(0.6)
        canvas.line(MARGIN, top - 11.5 * mm, PAGE_WIDTH - MARGIN, top - 11.5 * mm)
        canvas.line(MARGIN, MARGIN + 5 * mm, PAGE_WIDTH - MARGIN, MARGIN + 5 * mm)
        canvas.setFont(FONT, 7.5)
        canvas.drawString(MARGIN, MARGIN, f"{FOOTER_MENTION} — dossier {report.case_number}")
        draw_page_number(canvas)
        canvas.restoreState()

    return decorate


def draw_page_number(canvas: Any) -> None:
    """``Page x / `` then the page total, a form drawn once the last page is known."""
    label = f"Page {canvas.getPageNumber()} / "
    width = pdfmetrics.stringWidth(label, FONT, 7.5)
    left = PAGE_WIDTH - MARGIN - width - pdfmetrics.stringWidth("000", FONT, 7.5)
    canvas.drawString(left, MARGIN, label)
    canvas.saveState()
    canvas.translate(left + width, MARGIN)
    canvas.doForm(PAGE_TOTAL_FORM)
    canvas.restoreState()


def record_page_total(macro: Any) -> None:
    """Defines the page-total form on the last page (the story's last flowable)."""
    canvas = macro.canv
    canvas.beginForm(PAGE_TOTAL_FORM)
    canvas.setFont(FONT, 7.5)
    canvas.drawString(0, 0, str(canvas.getPageNumber()))
    canvas.endForm()


def pdf_date(value: datetime | None) -> str:
    """A PDF date string (``D:YYYYMMDDHHmmSS+hh'mm'``); the fixed epoch when unknown."""
    if value is None:
        return "D:20000101000000+00'00'"
    offset = value.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    return (f"D:{value.strftime('%Y%m%d%H%M%S')}{sign}{abs(minutes) // 60:02d}'"
            f"{abs(minutes) % 60:02d}'")
