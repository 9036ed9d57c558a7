"""``python -m conformance`` and the ``smart`` group: not a default group without its options,
a SKIP line when asked for without them, a usage error for half a part."""

from __future__ import annotations

from pathlib import Path

import pytest
from joserfc.jwk import RSAKey

from conformance.__main__ import EXIT_PASSED, EXIT_USAGE, main
from conformance.checks import GROUPS, UnknownGroup, select_groups, skipped_groups
from conformance.checks.smart import NAME, smart_group
from conformance.kit import Group
from conformance.smart.options import SmartArguments, smart_options
from tests.unit.conformance.smart_stand_in import running_stand_in


@pytest.fixture
def smart(tmp_path: Path) -> Group:
    key = tmp_path / "key.pem"
    key.write_bytes(RSAKey.generate_key(2048).as_pem(private=True))
    options = smart_options(SmartArguments(backend_client_id="c", backend_key=key,
                                           backend_kid="k"), environ={})
    assert options is not None
    return smart_group(options)


def test_the_smart_group_runs_by_default_only_when_its_options_are_given(smart: Group) -> None:
    assert select_groups(None) == GROUPS
    assert NAME not in {group.name for group in GROUPS}
    with_smart = select_groups(None, smart_group=smart)
    assert [group.name for group in with_smart] == [*(g.name for g in GROUPS), NAME]


def test_asking_for_smart_without_its_options_skips_it_with_a_line(smart: Group) -> None:
    assert select_groups(["smart", "metadata"]) == GROUPS[:1]
    [line] = skipped_groups(["smart"])
    assert line.startswith("SKIP smart: it needs --smart-backend-client-id")
    assert skipped_groups(["smart"], smart_group=smart) == ()
    assert skipped_groups(None) == ()
    chosen = select_groups(["smart"], smart_group=smart)
    assert [group.name for group in chosen] == [NAME]


def test_an_unknown_group_lists_smart_among_the_groups() -> None:
    with pytest.raises(UnknownGroup, match="invalid, smart"):
        select_groups(["smarter"])


def test_only_smart_without_options_prints_skip_and_passes(
        capsys: pytest.CaptureFixture[str]) -> None:
    with running_stand_in() as state:
        code = main(["--base", state.base, "--only", "smart", "--timeout", "5"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == EXIT_PASSED
    assert any(line.startswith("SKIP smart: it needs") for line in lines)
    assert lines[-1] == "0 passed, 0 failed"


def test_half_a_part_is_a_usage_error_naming_what_is_missing(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--base", "http://127.0.0.1:1/fhir", "--smart-backend-client-id", "c",
                 "--smart-client-id", "app"])
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert "--smart-redirect-uri, --smart-user, --smart-password-env, --smart-patient missing" \
        in captured.err
    assert captured.out == ""


def test_an_unset_password_variable_is_a_usage_error(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_PASSWORD", raising=False)
    code = main(["--base", "http://127.0.0.1:1/fhir", "--smart-client-id", "app",
                 "--smart-redirect-uri", "https://app.example/cb", "--smart-user", "a@b.fr",
                 "--smart-password-env", "NO_SUCH_PASSWORD", "--smart-patient", "p"])
    assert code == EXIT_USAGE
    assert "$NO_SUCH_PASSWORD" in capsys.readouterr().err
