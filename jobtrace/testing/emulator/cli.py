"""The ``jobtrace emulator`` subcommand: serve a local Airtable until interrupted.

Prints the URL and the API key (the only place the key is ever shown: that
is how users get it), one per line as ``url=...``, ``api_key=...`` and
``bases=...``, then the same as ``export AIRTABLE_...=`` lines to paste into a
shell. Without ``--base`` it serves jobtrace's default base as
``appJobtraceLocal1``; ``--data FILE`` keeps the bases across restarts.

This module imports none of the emulator's machinery until :func:`run`, so the
``jobtrace`` command can register it cheaply.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from ...argtypes import non_negative_seconds, port_number


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``emulator`` on an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "emulator",
        help="serve a local Airtable emulator for offline testing",
        description="Serve a local Airtable (Web API v0) on 127.0.0.1 until interrupted.",
    )
    _configure(parser)
    return parser


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8765, help="port; 0 picks a free one")
    parser.add_argument(
        "--base",
        action="append",
        default=[],
        metavar="APP_ID=SCHEMA.json",
        help=f"a base and its metadata-API schema file (repeatable; default: jobtrace's default base as "
        f"{DEFAULT_BASE_ID})",
    )
    parser.add_argument(
        "--data",
        metavar="FILE",
        help="keep the bases (schemas and records) in this JSON file across restarts",
    )
    parser.add_argument("--api-key", default=None, help="token to require (default: random)")
    parser.add_argument("--no-rate-limit", action="store_true", help="do not enforce 5 requests/s per base")
    parser.add_argument(
        "--rate-limit-penalty",
        type=non_negative_seconds,
        default=30.0,
        help="seconds a base is refused after exceeding the limit (default 30)",
    )


#: The base ID the emulator serves jobtrace's default base under when no --base is given.
DEFAULT_BASE_ID = "appJobtraceLocal1"


def run(args: argparse.Namespace) -> int:
    """Run the emulator described by parsed ``args``; returns the exit code."""
    from .emulator import AirtableEmulator, check_base_id

    bases: dict[str, Any] = {}
    for spec in args.base:
        base_id, sep, path = spec.partition("=")
        if not sep or not base_id or not path:
            print(f"error: --base expects APP_ID=SCHEMA.json, got {spec!r}", file=sys.stderr)
            return 2
        try:
            bases[check_base_id(base_id)] = path
        except ValueError as exc:
            print(f"error: --base: {exc}", file=sys.stderr)
            return 2
    if not bases:
        from ...schema import default_base_metadata

        bases[DEFAULT_BASE_ID] = default_base_metadata()
    try:
        emu = AirtableEmulator(
            bases=bases,
            api_key=args.api_key,
            rate_limit=not args.no_rate_limit,
            rate_limit_penalty=args.rate_limit_penalty,
            host=args.host,
            port=args.port,
            data=args.data,
        )
        emu.start()
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    served = emu.base_ids
    chosen = next((b for b in bases if b in served), served[0])
    print(f"url={emu.url}", flush=True)
    print(f"api_key={emu.api_key}", flush=True)
    print(f"bases={','.join(served)}", flush=True)
    kept = f"; kept in {args.data}" if args.data else ""
    print(f"# base {chosen} at {emu.url}{kept}. To point jobtrace at it, paste:", flush=True)
    print(f"export AIRTABLE_ENDPOINT_URL={emu.url}", flush=True)
    print(f"export AIRTABLE_API_KEY={emu.api_key}", flush=True)
    print(f"export AIRTABLE_BASE_ID={chosen}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m jobtrace.testing.emulator``."""
    parser = argparse.ArgumentParser(
        prog="python -m jobtrace.testing.emulator",
        description="Serve a local Airtable (Web API v0) on 127.0.0.1 until interrupted.",
    )
    _configure(parser)
    return run(parser.parse_args(argv))
