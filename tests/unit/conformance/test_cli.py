"""``python -m conformance``: usage errors and an unreachable server exit 2, clearly, no token."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.__main__ import EXIT_USAGE, main
from tests.support.server import free_port

TOKEN = "cli-secret-token-value"


def test_an_unknown_group_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--base", "http://127.0.0.1:1/fhir", "--only", "metadata,bogus"])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert "unknown group(s) bogus" in captured.err
    assert captured.out == ""


def test_a_missing_base_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main([])
    assert exit.value.code == EXIT_USAGE
    assert "--base" in capsys.readouterr().err


def test_an_unreachable_server_exits_2_without_printing_the_token(
        capsys: pytest.CaptureFixture[str]) -> None:
    base = f"http://127.0.0.1:{free_port()}/fhir"
    code = main(["--base", base, "--token", TOKEN, "--timeout", "2"])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert f"nothing answers at {base}" in captured.err
    assert TOKEN not in captured.err + captured.out


def test_the_token_comes_from_the_environment_too(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIR_SERVER_API_TOKEN", TOKEN)
    code = main(["--base", f"http://127.0.0.1:{free_port()}/fhir", "--timeout", "2"])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert TOKEN not in captured.err + captured.out


def test_a_guide_that_cannot_be_read_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--base", "http://127.0.0.1:1/fhir", "--profiles", str(tmp_path / "none")])
    assert code == EXIT_USAGE
    assert "the guide cannot be read" in capsys.readouterr().err
