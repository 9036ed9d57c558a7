"""``GET /admin/dmp-exports[?status=dmp-failed]``: the report documents' DMP exports for an
administrator (or the operator) — case and document ids, status, route, attempts, last attempt
and reason; no health data. ``fhir-server dmp retry CASE`` tries a settled one again."""

from __future__ import annotations

from typing import Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fhir_server.api.accounts import answering, require_admin
from fhir_server.dmp.export import ExportRow, list_exports
from fhir_server.dmp.status import ExportStatus
from fhir_server.errors import ErrorCode, FhirError

NO_STORE: Final = {"Cache-Control": "no-store"}


@answering
async def dmp_exports(request: Request) -> Response:
    """The list, optionally of one status (``status``: a ``dmp-export-status`` code)."""
    require_admin(request)
    wanted = request.query_params.get("status")
    status = None
    if wanted:
        try:
            status = ExportStatus(wanted)
        except ValueError:
            choices = ", ".join(item.value for item in ExportStatus)
            raise FhirError(ErrorCode.BAD_PARAMETER,
                            f"unknown DMP export status {wanted!r} (one of {choices})",
                            expression=("status",)) from None
    rows = await list_exports(request.app.state.engine.ctx, status=status)
    return Response(orjson.dumps({"exports": [_row(row) for row in rows], "total": len(rows)}),
                    media_type="application/json", headers=NO_STORE)


def _row(row: ExportRow) -> dict[str, object]:
    state = row.state
    return {"task": row.task, "document_reference": row.document_reference,
            "status": state.status.value, "route": state.route, "attempts": state.attempts,
            "last_attempt": state.last_attempt.isoformat() if state.last_attempt else None,
            "reason": state.reason}


ROUTES: Final = [Route("/admin/dmp-exports", dmp_exports, methods=["GET"])]
