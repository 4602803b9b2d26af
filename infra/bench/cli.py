"""``tourpulse bench [NAME...]``: run benchmarks against the real stack, write .bench/*.json.

To add a benchmark, write a module with ``run(ctx: BenchContext) -> dict`` (JSON-ready
numbers) and add one line to :data:`BENCHMARKS`. With no name, every benchmark runs; one
failing does not stop the others, but makes the exit code non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from core.settings import get_settings
from infra.bench.context import BenchContext, BenchError

#: name -> module with ``run(ctx) -> dict``; the result is written to ``<out>/<name>.json``.
BENCHMARKS: dict[str, str] = {
    "pipeline": "infra.bench.pipeline",
    "gateway": "infra.bench.gateway",
    "portal": "infra.bench.portal",
    "wifi_edge": "infra.bench.wifi_edge",
    "camera": "infra.bench.camera",
    "alerts": "infra.bench.alerts",
    "storage": "infra.bench.storage",
    "security": "infra.bench.security",
    "chaos": "infra.bench.chaos",
    "scale": "infra.bench.scale",
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="run benchmarks against the running stack (writes .bench/<name>.json)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)}"
    )
    p.add_argument("--out", type=Path, default=Path(".bench"), help="output directory")
    p.add_argument("--events", type=int, default=None, help="override the benchmark's size")
    p.add_argument("--quick", action="store_true", help="smoke-sized run (numbers mean little)")
    p.add_argument(
        "--duration", type=float, default=None, help="seconds of load for time-based benchmarks"
    )
    p.add_argument(
        "--rate", type=float, default=None, help="events/s offered by rate-paced benchmarks"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        print(f"error: unknown benchmark(s) {unknown}; known: {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    ctx = BenchContext(
        get_settings(),
        args.out,
        events=args.events,
        quick=args.quick,
        duration_s=args.duration,
        rate=args.rate,
    )
    failed = [name for name in args.names or list(BENCHMARKS) if not run_one(name, ctx)]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def run_one(name: str, ctx: BenchContext) -> bool:
    """Run one benchmark and write its JSON; False (with the reason printed) if it failed."""
    print(f"[bench] {name}: running", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        result = importlib.import_module(BENCHMARKS[name]).run(ctx)
    except BenchError as exc:
        print(f"[bench] {name}: FAILED: {exc}", file=sys.stderr)
        return False
    except Exception:  # a crashing benchmark must not hide the others' results
        print(f"[bench] {name}: CRASHED\n{traceback.format_exc()}", file=sys.stderr)
        return False
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.out_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    took = time.monotonic() - started
    print(f"[bench] {name}: wrote {path} in {took:.0f} s", file=sys.stderr)
    print(json.dumps({name: result}, sort_keys=True))
    return True
