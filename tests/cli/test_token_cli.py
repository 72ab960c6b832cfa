"""Item 6 from the command line: a token with surrounding whitespace works; one no header can carry is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobtrace.cli import main


def test_a_token_with_a_trailing_newline_works_from_the_cli(
    capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> None:
    assert main(["check"], env={**env, "AIRTABLE_API_KEY": env["AIRTABLE_API_KEY"] + "\n"}) == 0
    assert "ok: tables" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["runs"], ["check"], ["replay"], ["show", "251005-210247"]])
def test_a_token_no_header_can_carry_is_one_line_without_the_token(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], command: list[str]
) -> None:
    token = env["AIRTABLE_API_KEY"]
    broken = f"{token[:10]}\n{token[10:]}"
    Path(env["JOBTRACE_JOURNAL"]).touch()  # so that replay gets as far as the token
    code = main(command, env={**env, "AIRTABLE_API_KEY": broken})
    out, err = capsys.readouterr()
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("jobtrace: error: the Airtable API key") and "line break" in line
    assert token[:10] not in out + err and token[10:] not in out + err
