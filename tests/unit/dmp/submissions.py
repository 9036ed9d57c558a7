"""What the XDS tests send: the shared skin-case report document (``tests.support.
dmp_document``) with its real CDA R2 N1 (``mappers.cda_n1``), as one ``Submission``."""

from __future__ import annotations

from typing import Any

from fhir_server.dmp.port import Submission
from mappers.cda_n1 import render_cda
from tests.support.dmp_document import SUBMISSION_SET_ID, report_document


def submission(**changes: Any) -> Submission:
    """The report document (``changes`` replace its fields) and its CDA."""
    document = report_document(**changes)
    return Submission(document=document, cda=render_cda(document),
                      submission_set_id=SUBMISSION_SET_ID)
