"""Run the benchmark suite and print its tables: ``python benchmarks/run.py [--quick]``.

Sections: ``hotpath`` (decorator/context-manager overhead against OpenTelemetry),
``memory`` (retained bytes per finished run), ``imports`` (``import jobtrace``
time), ``airtable`` (requests and wall time against the local emulator with
Airtable's rate limit, jobtrace's sink against the migration guide's approach),
``scale`` (10,000 client runs through the Airtable sink's delivery engine), ``multiprocess``
(4 job processes and an application sharing one base's budget, on one host and
as two hosts sharing Redis).
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Benchmark the checkout this script lives in, whether or not jobtrace is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SECTIONS = ("hotpath", "memory", "imports", "airtable", "scale", "multiprocess")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole suite in under a minute")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only these sections (repeatable)")
    parser.add_argument("--iterations", type=int, help="hot path: calls per sample")
    parser.add_argument("--samples", type=int, help="hot path: samples per case")
    parser.add_argument("--clients", type=int, help="airtable: client runs in the jobtrace job")
    parser.add_argument("--baseline-clients", type=int, help="airtable: client runs in the baseline job")
    parser.add_argument("--scale-clients", type=int, help="scale: client runs")
    parser.add_argument("--mp-clients", type=int, help="multiprocess: client runs per process")
    args = parser.parse_args(argv)
    sections = args.only or list(SECTIONS)
    quick = args.quick
    # Jobs claim their run IDs in the state directory: the benchmarks' thousands of jobs go to one of their own.
    if "JOBTRACE_STATE_DIR" not in os.environ:
        os.environ["JOBTRACE_STATE_DIR"] = state = tempfile.mkdtemp(prefix="jobtrace-bench-state-")
        atexit.register(shutil.rmtree, state, True)

    from benchmarks import hotpath

    print(f"jobtrace benchmarks ({'quick' if quick else 'full'} run)")
    print(f"python {platform.python_version()} on {platform.machine()}, {_cpu()}\n")
    started = time.perf_counter()
    if "hotpath" in sections:
        if not hotpath.otel_available():
            print("(opentelemetry-sdk not installed: pip install -r benchmarks/requirements.txt)\n")
        hotpath.run_hotpath(
            iterations=args.iterations or (3_000 if quick else 20_000),
            samples=args.samples or (5 if quick else 9),
        )
    if "memory" in sections:
        hotpath.run_memory(n=1_000 if quick else 5_000)
    if "imports" in sections:
        hotpath.run_imports(runs=3 if quick else 9)
    if "airtable" in sections:
        from benchmarks import airtable

        airtable.run_airtable(
            clients=args.clients or (30 if quick else 200),
            baseline_clients=args.baseline_clients or (4 if quick else 200),
            quick=quick,
        )
    if "scale" in sections:
        from benchmarks import scale

        scale.run_scale(clients=args.scale_clients or (1_000 if quick else 10_000))
    if "multiprocess" in sections:
        from benchmarks import multiprocess

        multiprocess.run_multiprocess(clients=args.mp_clients or (10 if quick else 50), peer=not quick)
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
