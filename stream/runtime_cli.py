"""The command-line side of :mod:`stream.runtime`: one argparse group, one way to run.

Every worker command (``worker``, ``flows``, ``alerts``) takes the same consumer-group
options from here, with defaults chosen per worker kind, and runs its runtime until SIGTERM
or SIGINT, so the three commands cannot drift apart again.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Literal

from core.gc_tuning import tune_for_streaming
from stream.runtime import RuntimeOptions, StreamRuntime


def add_runtime_args(
    parser: argparse.ArgumentParser,
    *,
    batch_window: float,
    batch_min_bytes: int = 1,
    producer_linger_ms: int = 20,
    rebalance_timeout: float = 10.0,
    group_session_timeout: float = 8.0,
    heartbeat_interval: float = 1.0,
) -> None:
    group = parser.add_argument_group("Kafka consumer group")
    group.add_argument("--batch-size", type=int, default=2000, help="max events per batch")
    group.add_argument(
        "--batch-window", type=float, default=batch_window, help="max seconds to fill a batch"
    )
    group.add_argument(
        "--batch-min-bytes",
        type=int,
        default=batch_min_bytes,
        help="bytes of Kafka records a fetch waits for, up to --batch-window "
        "(bigger batches cost less per event; 1: hand over whatever has arrived)",
    )
    group.add_argument(
        "--producer-linger-ms",
        type=int,
        default=producer_linger_ms,
        help="ms an output waits for company before it is sent (throughput vs latency)",
    )
    group.add_argument(
        "--rebalance-timeout",
        type=float,
        default=rebalance_timeout,
        help="seconds the group waits for members to rejoin",
    )
    group.add_argument(
        "--group-session-timeout",
        type=float,
        default=group_session_timeout,
        help="seconds before Kafka evicts a dead worker (takeover time)",
    )
    group.add_argument(
        "--heartbeat-interval",
        type=float,
        default=heartbeat_interval,
        help="seconds between group heartbeats",
    )
    group.add_argument(
        "--instance-id",
        default=None,
        help="static group membership: a worker restarted with the same id "
        "resumes its partitions at once; unique per group, e.g. the "
        "systemd instance name",
    )


#: The options above, by attribute name, for supervisors that forward them to children.
RUNTIME_ARGS = (
    "batch_size",
    "batch_window",
    "batch_min_bytes",
    "producer_linger_ms",
    "rebalance_timeout",
    "group_session_timeout",
    "heartbeat_interval",
)


def runtime_options(
    args: argparse.Namespace,
    group_id: str,
    offset_reset: Literal["earliest", "latest"] = "earliest",
) -> RuntimeOptions:
    return RuntimeOptions(
        group_id=group_id,
        batch_size=args.batch_size,
        batch_window=args.batch_window,
        batch_min_bytes=args.batch_min_bytes,
        producer_linger_ms=args.producer_linger_ms,
        rebalance_timeout=args.rebalance_timeout,
        group_session_timeout=args.group_session_timeout,
        heartbeat_interval=args.heartbeat_interval,
        instance_id=args.instance_id,
        offset_reset=offset_reset,
    )


def run_until_signalled(runtime: StreamRuntime) -> int:
    """Run until SIGTERM/SIGINT; the batch in flight is committed before exiting.

    The collector is tuned for a stream processor first (see :mod:`core.gc_tuning`).
    """
    tune_for_streaming()

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await runtime.run(stop)
        return 0

    return asyncio.run(main())
