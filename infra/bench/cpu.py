"""CPU time per pipeline stage during a benchmark run, as shares of the whole machine.

A throughput number alone does not say what to fix; the share of the machine each stage
burnt does (on 2 cores, a stage at 0.5 is one core flat out). Stages are sets of processes
found once the services are up: started ones by pid (with their children), shared ones
(Mosquitto, Kafka, PostgreSQL) by process name or command line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

import psutil

ProcessMatch = Callable[[psutil.Process], bool]


def by_name(*names: str) -> ProcessMatch:
    return lambda p: p.info["name"] in names


def only(pid: int) -> ProcessMatch:
    """Just this process, not its children (a benchmark's own services are its children)."""
    return lambda p: p.pid == pid


def by_cmdline(fragment: str) -> ProcessMatch:
    return lambda p: fragment in " ".join(p.info["cmdline"] or ())


def with_children(pids: Iterable[int]) -> set[int]:
    """The given processes and all their descendants (supervisors fork workers)."""
    found: set[int] = set()
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            found |= {pid, *(c.pid for c in proc.children(recursive=True))}
        except psutil.NoSuchProcess:
            continue
    return found


class CpuMeter:
    """Call :meth:`start` and :meth:`stop` around the measured window."""

    def __init__(self, stages: dict[str, set[int] | ProcessMatch]) -> None:
        self._stages = stages
        self._pids: dict[str, set[int]] = {}
        self._before: dict[int, float] = {}
        #: CPU seconds per stage and the window's length, filled by :meth:`stop`.
        self.seconds: dict[str, float] = {}
        self.wall = 0.0
        self._t0 = 0.0
        self._machine0: psutil._common.scputimes | None = None

    def start(self) -> None:
        self._pids = self._resolve()
        self._before = {pid: t for pids in self._pids.values() for pid, t in _cpu(pids).items()}
        self._machine0 = psutil.cpu_times()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        """Share of the machine (all cores = 1.0) per stage, plus ``other`` and ``idle``."""
        wall = self.wall = time.monotonic() - self._t0
        capacity = wall * (os.cpu_count() or 1)
        shares: dict[str, float] = {}
        for stage, pids in self._pids.items():
            after = _cpu(pids)
            used = sum(t - self._before.get(pid, t) for pid, t in after.items())
            self.seconds[stage] = used
            shares[stage] = round(used / capacity, 3)
        assert self._machine0 is not None, "CpuMeter.stop() before start()"
        machine = psutil.cpu_times()
        idle = (machine.idle - self._machine0.idle) + (machine.iowait - self._machine0.iowait)
        shares["idle"] = round(idle / capacity, 3)
        shares["other"] = round(max(0.0, 1.0 - sum(shares.values())), 3)
        return shares

    def net_seconds(self, *backgrounds: CpuMeter) -> dict[str, float]:
        """CPU seconds per stage minus what the stage burns anyway (other measured windows
        with no load from us: other clients of shared brokers, housekeeping).

        With several windows, each stage's quietest counts: a window can still hold the
        tail of earlier work (a broker's start-up, the clean-up after a burst), and
        subtracting that took a whole stage's cost out of a run once (Kafka at 0).
        """
        return {
            stage: max(
                0.0, used - min(b.seconds.get(stage, 0.0) / b.wall for b in backgrounds) * self.wall
            )
            for stage, used in self.seconds.items()
        }

    def _resolve(self) -> dict[str, set[int]]:
        procs = list(psutil.process_iter(["name", "cmdline"]))
        resolved: dict[str, set[int]] = {}
        claimed: set[int] = set()
        for stage, spec in self._stages.items():
            pids = (
                with_children(spec) if isinstance(spec, set) else {p.pid for p in procs if spec(p)}
            )
            resolved[stage] = pids - claimed
            claimed |= pids
        return resolved


def _cpu(pids: Iterable[int]) -> dict[int, float]:
    """user + system seconds per live process (gone ones are skipped)."""
    out: dict[int, float] = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[pid] = t.user + t.system
    return out
