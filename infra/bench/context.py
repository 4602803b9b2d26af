"""What every benchmark module gets, and the error it raises when it cannot measure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings


class BenchError(RuntimeError):
    """The benchmark could not produce a measurement (a service failed, data went missing)."""


@dataclass(frozen=True)
class BenchContext:
    settings: Settings
    out_dir: Path
    events: int | None = None  # size override; None = the benchmark's own default
    quick: bool = False  # a smoke-sized run: proves the harness works, numbers mean little
    duration_s: float | None = None  # length override for time-based benchmarks (scale)
    rate: float | None = None  # offered events/s override for rate-paced benchmarks (pipeline)
