"""The guide's answered skin case as the report mapper takes it, with photos: shared by the
report tests and the report benchmark."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image as PillowImage

from mappers.report_input import CasePhoto, CaseResources
from tests.support.workflow_case import example

QUESTIONNAIRE = Path(__file__).resolve().parents[2] / "profiles" / "Questionnaire-skin.json"


def jpeg(width: int, height: int, shade: int) -> bytes:
    """A plain JPEG photo of the given size."""
    encoded = io.BytesIO()
    PillowImage.new("RGB", (width, height), (shade, 120, 255 - shade)).save(encoded, "JPEG")
    return encoded.getvalue()


def case_with_photos(count: int = 4, **changes: Any) -> CaseResources:
    """The guide's skin case of Camille Martin (answered by Dr Julien Moreau, one clarification
    exchange) with ``count`` photos alternating clinical and dermoscopy."""
    clinical = example("Media-skin-camille-martin-1")
    dermoscopy = example("Media-mole-lucas-bernard-dermoscopy")
    photos = tuple(CasePhoto(media=dermoscopy if number % 2 else clinical,
                             image=jpeg(1600, 1200, 40 * number)) for number in range(count))
    case = CaseResources(
        service_request=example("ServiceRequest-skin-camille-martin"),
        patient=example("Patient-camille-martin"),
        questionnaire_response=example("QuestionnaireResponse-skin-camille-martin"),
        diagnostic_report=example("DiagnosticReport-skin-camille-martin"),
        pharmacy=example("Organization-pharmacie-du-centre"),
        doctor_role=example("PractitionerRole-tier-1-julien-moreau"),
        doctor=example("Practitioner-julien-moreau"),
        questionnaire=json.loads(QUESTIONNAIRE.read_text()),
        photos=photos,
        communications=(example("Communication-clarification-answer"),
                        example("Communication-clarification-question")),
        report_url="Binary/report-skin-camille-martin")
    return dataclasses.replace(case, **changes)
