"""``python -m jobtrace.testing.emulator``: prints URL and key, serves until stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyairtable

from .conftest import JOBS, REFERENCE_BASE

REPO = Path(__file__).resolve().parents[2]


def test_cli_serves_until_terminated() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobtrace.testing.emulator",
            "--port",
            "0",
            "--base",
            f"appFromTheCli0001={REFERENCE_BASE}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        info = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(3))
        assert info["url"].startswith("http://127.0.0.1:") and info["bases"] == "appFromTheCli0001"
        table = pyairtable.Api(info["api_key"], endpoint_url=info["url"]).table("appFromTheCli0001", JOBS)
        assert table.create({"Run ID": "from cli"})["fields"]["Run ID"] == "from cli"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_cli_rejects_a_malformed_base_argument() -> None:
    from jobtrace.testing.emulator.cli import main

    assert main(["--port", "0", "--base", "no-equals-sign"]) == 2


def test_add_parser_registers_the_emulator_subcommand() -> None:
    import argparse

    from jobtrace.testing.emulator import cli

    parser = argparse.ArgumentParser(prog="jobtrace")
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["emulator", "--port", "0", "--base", "appFromTheCli0001=s.json", "--no-rate-limit"])
    expected = ("emulator", 0, ["appFromTheCli0001=s.json"], True)
    assert (args.command, args.port, args.base, args.no_rate_limit) == expected
    assert cli.run(parser.parse_args(["emulator", "--base", "appFromTheCli0001=/no/such/file.json"])) == 1


def test_importing_jobtrace_testing_does_not_import_the_emulator() -> None:
    code = "import sys, jobtrace.testing; print('jobtrace.testing.emulator' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"
