"""``tourpulse bench chaos``: the chaos suite (see :mod:`infra.chaos`) -> .bench/chaos.json.

Full run (``make chaos``): private Mosquitto, Kafka and PostgreSQL on the reliability port
range, every fault with its full duration (Kafka stopped 20 s, edge uplink cut 10 minutes).
``--quick`` (what ``make test`` runs through tests/test_chaos.py): private Mosquitto, the
shared Kafka and PostgreSQL, the faults that do not stop those, short holds.
Faults that kill a broker run afterwards on a private 3-broker KRaft cluster (full only).
One entry per fault: ``acked``, ``stored_distinct``, ``duplicates``, ``lost_after_ack``
(must be 0), ``recovery_s``, ``rollups_match``, ``dead_lettered`` and what was injected.
"""

from __future__ import annotations

import logging
import shutil
import sys
from typing import Any

from infra.bench.context import BenchContext, BenchError
from infra.chaos.faults import FAULTS, run_fault
from infra.chaos.rig import Rig

log = logging.getLogger(__name__)

FULL_EVENTS = 3000
QUICK_EVENTS = 600


def _say(line: str) -> None:
    print(f"[chaos] {line}", file=sys.stderr, flush=True)


def run(
    ctx: BenchContext, only: list[str] | None = None, worker_args: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Every fault (or ``only`` these); ``worker_args`` go to both workers.

    Two rigs, one after the other: the single-broker one for most faults, then (full runs
    only) the 3-broker cluster for the faults that kill a broker.
    """
    count = ctx.events or (QUICK_EVENTS if ctx.quick else FULL_EVENTS)
    results: dict[str, Any] = {}
    for brokers in (1, 3):
        faults = [
            f
            for f in FAULTS
            if (only is None or f.name in only) and f.needs_cluster == (brokers > 1)
        ]
        if not faults or (brokers > 1 and ctx.quick):
            continue
        work = ctx.out_dir / ("chaos-run" if brokers == 1 else "chaos-run-cluster")  # logs
        shutil.rmtree(work, ignore_errors=True)
        rig = Rig(ctx.settings, work, full=not ctx.quick, log=_say, worker_args=worker_args,
                  brokers=brokers)  # fmt: skip
        try:
            rig.up()
            for fault in faults:
                if fault.needs_private and not rig.full:
                    continue
                if fault.name == "outbox_disk_full" and not rig.tmpfs:
                    results[fault.name] = {"skipped": "needs root to mount a tmpfs for the outbox"}
                    continue
                results[fault.name] = run_fault(rig, fault, count, _say)
        except RuntimeError as exc:
            raise BenchError(str(exc)) from exc
        finally:
            rig.down()
    lost = {k: v["lost_after_ack"] for k, v in results.items() if "lost_after_ack" in v}
    _say(f"lost after acknowledgement per fault: {lost}")
    return results
