"""``fhir-server dmp status`` and ``fhir-server dmp retry CASE``: the operator's view of the DMP
exports and the way to try a settled one again (e.g. after a ``dmp-failed``). Both open the
store the settings name, like ``fhir-server admin``; a running server delivers the retry (its
outbox dispatcher, or the Celery workers)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from fhir_server.dmp.export import ExportRow
    from fhir_server.dmp.status import ExportStatus
    from fhir_server.settings import Settings

NOT_FOUND: Final = 1
USAGE_ERROR: Final = 2


def add_dmp_commands(subparsers: Any) -> None:
    """Add ``dmp status`` and ``dmp retry`` to the ``fhir-server`` subcommands."""
    dmp = subparsers.add_parser("dmp", help="the DMP exports of the reports")
    actions = dmp.add_subparsers(dest="dmp_command", required=True)
    status = actions.add_parser("status", help="list the report documents' DMP exports")
    status.add_argument("--status", default=None,
                        help="only this status (e.g. dmp-failed, dmp-skipped-no-ins)")
    retry = actions.add_parser("retry", help="try the DMP export of a case again")
    retry.add_argument("case", help="the case's Task id (or Task/<id>)")
    for action in (status, retry):
        action.add_argument("--data-dir", type=Path, default=None,
                            help="where the embedded store lives (FHIR_SERVER_DATA_DIR)")


def run_dmp(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``fhir-server dmp …``; the exit code."""
    from fhir_server.dmp.status import ExportStatus

    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    if args.dmp_command == "status":
        wanted = None
        if args.status:
            try:
                wanted = ExportStatus(args.status)
            except ValueError:
                choices = ", ".join(status.value for status in ExportStatus)
                print(f"fhir-server dmp status: unknown status {args.status!r} "
                      f"(one of {choices})", file=sys.stderr)
                return USAGE_ERROR
        rows = asyncio.run(_with_engine(settings, lambda ctx: _rows(ctx, wanted)))
        for row in rows:
            print(_line(row))
        print(f"{len(rows)} export(s)")
        return 0
    task_id = str(args.case).removeprefix("Task/")
    before = asyncio.run(_with_engine(settings, lambda ctx: _retry(ctx, task_id)))
    if before is None:
        print(f"fhir-server dmp retry: case {task_id} has no report document with a DMP "
              "export", file=sys.stderr)
        return NOT_FOUND
    if not before.is_final:
        print(f"Case {task_id}: the DMP export is still pending; it is retried by itself.")
        return 0
    print(f"Case {task_id}: the DMP export was {before.value}; it is queued again.")
    return 0


async def _rows(ctx: Any, wanted: ExportStatus | None) -> list[ExportRow]:
    from fhir_server.dmp.export import list_exports

    return await list_exports(ctx, status=wanted)


async def _retry(ctx: Any, task_id: str) -> ExportStatus | None:
    from fhir_server.dmp.export import request_retry
    from mappers.report_filing import report_ids

    return await request_retry(ctx, report_ids(task_id))


def _line(row: ExportRow) -> str:
    state = row.state
    last = state.last_attempt.isoformat(timespec="seconds") if state.last_attempt else "-"
    return (f"{row.task or row.document_reference}\t{state.status.value}\t"
            f"{state.route or '-'}\tattempts={state.attempts}\tlast={last}\t{state.reason or ''}")


async def _with_engine(settings: Settings, work: Any) -> Any:
    """Run ``work(engine context)`` on the store the settings name, then close it."""
    from fhir_server.crypto.keys import load_keys
    from fhir_server.runtime import build_engine
    from fhir_server.storage.factory import open_store

    keys = load_keys(settings)
    store = open_store(settings)
    await store.start()
    try:
        engine = build_engine(store, keys, settings)
        await engine.start()
        return await work(engine.ctx)
    finally:
        await store.close()
