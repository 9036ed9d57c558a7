"""``fhir-server bench dmp`` runs every step once and prints its table (the figures themselves
are measured by hand into docs/performance.md, never asserted)."""

from __future__ import annotations

import pytest

from fhir_server.cli import main


def test_the_dmp_bench_prints_a_row_per_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "dmp", "--runs", "1", "--photos", "1"]) == 0
    table = capsys.readouterr().out
    steps = [line.split("|")[1].strip() for line in table.splitlines()
             if line.startswith("| ") and not line.startswith("| step")]
    assert steps == ["render_report (1 photos)", "render_cda", "provide_document_bundle",
                     "iti41_request (VIHF + XAdES signing, MTOM)",
                     "MHD submission to our server (in-process)",
                     "XDS submission to the stand-in (loopback HTTP)"]
    assert "command: fhir-server bench dmp --runs 1 --photos 1" in table
