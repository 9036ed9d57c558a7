"""The README's checkable promises: two Quick-start lines, CI runs the same one, config."""

from __future__ import annotations

import re
from pathlib import Path

from fhir_server.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [line for block in blocks[:2] for line in block.strip().splitlines()]


def test_quick_start_has_exactly_two_command_lines() -> None:
    commands = _quick_start_commands()
    assert len(commands) == 2
    assert commands[0].endswith("fhir-server serve")
    assert commands[1].endswith("pytest")


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _quick_start_commands()[1] in ci
    assert "-eq 5" in ci


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"`FHIR_SERVER_{name.upper()}`" in README, name
