"""Outbox topics of the report's life, and their payloads (JSON objects of references)."""

from __future__ import annotations

from typing import Final

REPORT_FILED: Final = "report-filed"
"""A completed case's PDF report is filed. Payload: ``{"task": "Task/<id>",
"diagnostic_report": "DiagnosticReport/<id>", "document_reference": "DocumentReference/<id>",
"binary": "Binary/<id>"}``. Consumers: the DMP export, the "report ready" notifications."""

DMP_EXPORT_SETTLED: Final = "dmp-export-settled"
"""A DMP export reached a final status. Payload: ``{"task": "Task/<id>",
"document_reference": "DocumentReference/<id>", "status": "<dmp status code>"}``, status one of
``dmp-submitted``, ``dmp-skipped-no-ins``, ``dmp-skipped-disabled``, ``dmp-skipped-opposed``,
``dmp-failed``. Consumer: the notifications (a pharmacist files the report itself when the
export was skipped for want of the patient's own INS, or failed)."""

DMP_EXPORT_REQUESTED: Final = "dmp-export-requested"
"""An operator asked to try a DMP export again (``fhir-server dmp retry``): the report
document's export status went back from a final status to ``dmp-pending``. Payload:
``{"task": "Task/<id>", "document_reference": "DocumentReference/<id>"}``. Consumer: the DMP
export (not the notifications: the report was announced when filed)."""
