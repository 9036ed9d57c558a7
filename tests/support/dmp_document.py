"""A filed report document (``ReportDocument``) of the guide's skin case, for the CDA, MHD and
DMP tests: Camille Martin's report, answered by Dr Julien Moreau, requested by the Pharmacie du
Centre, kept by the platform. Identifiers are the guide's fictitious ones (valid keys)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any

from conformance.content import tiny_pdf
from mappers.report_document import (
    GENERAL_MEDICINE,
    INS_NIR_OID,
    PHYSICIAN,
    DocumentPatient,
    Professional,
    ReportDocument,
    Structure,
)

PARIS_WINTER = timezone(timedelta(hours=1))
INS_TEST_OID = "1.2.250.1.213.1.4.10"
DOCTOR = Professional(id_nat_ps="810987654323", family="Moreau", given="Julien",
                      profession=PHYSICIAN, specialty=GENERAL_MEDICINE)
PATIENT = DocumentPatient(ins="285037505612306", ins_oid=INS_NIR_OID, family="Martin",
                          given="Camille", birth_date=date(1985, 3, 14), gender="female")
PHARMACY = Structure(name="Pharmacie du Centre", finess="950012344")
PLATFORM = Structure(name="Pictaderm", id_nat_struct="1950012351")
UNIQUE_ID = "2.25." + str(uuid.UUID("6f1c1f0e-5a52-4d4e-9d6b-2c4f7c1d9a01").int)
SUBMISSION_SET_ID = "2.25." + str(uuid.UUID("0b6c3d1e-2f4a-4b5c-8d6e-7f8091a2b3c4").int)


def report_document(**changes: Any) -> ReportDocument:
    """The skin case's report document; ``changes`` replace fields (``dataclasses.replace``)."""
    document = ReportDocument(
        unique_id=UNIQUE_ID,
        title="Compte rendu de téléexpertise",
        created=datetime(2026, 11, 20, 11, 1, tzinfo=PARIS_WINTER),
        service_start=datetime(2026, 11, 20, 9, 15, tzinfo=PARIS_WINTER),
        service_end=datetime(2026, 11, 20, 11, 0, tzinfo=PARIS_WINTER),
        patient=PATIENT, author=DOCTOR, legal_authenticator=DOCTOR, facility=PHARMACY,
        custodian=PLATFORM, pdf=tiny_pdf("Compte rendu de teleexpertise"))
    return dataclasses.replace(document, **changes)


def with_patient(**changes: Any) -> ReportDocument:
    """The report document with the patient's fields changed."""
    return report_document(patient=dataclasses.replace(PATIENT, **changes))


def fresh_unique_id() -> str:
    """A new document OID under 2.25 (from a random UUID)."""
    return f"2.25.{uuid.uuid4().int}"
