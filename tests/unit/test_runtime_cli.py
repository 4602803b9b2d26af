"""Per-worker runtime options from the command line: what each worker kind defaults to,
and that the worker supervisor hands every option on to its children."""

from __future__ import annotations

import argparse

from infra.cli import build_parser
from stream.cli import _forwarded
from stream.runtime import RuntimeOptions
from stream.runtime_cli import runtime_options


def _options(argv: list[str]) -> RuntimeOptions:
    args = build_parser(argv[0]).parse_args(argv)
    return runtime_options(args, "g")


def test_alert_changes_leave_without_linger_and_bulk_outputs_batch() -> None:
    # The alert engine's 20 ms producer linger was most of an alert's median delay on the
    # IOC feed (bench alerts, idle: p50 34 -> 14 ms, p95 147 -> 24 ms without it).
    assert _options(["alerts"]).producer_linger_ms == 0
    assert _options(["worker"]).producer_linger_ms == 20
    tuned = _options(["alerts", "--producer-linger-ms", "5"])
    assert tuned.producer_linger_ms == 5


def test_worker_children_get_the_producer_linger_too() -> None:
    args = build_parser("worker").parse_args(["worker", "--producer-linger-ms", "7"])
    forwarded = _forwarded(args)
    assert forwarded[forwarded.index("--producer-linger-ms") + 1] == "7"


def test_the_occupancy_worker_waits_for_full_batches_and_the_alert_engine_does_not() -> None:
    # Fuller batches cost the occupancy path ~6 % less CPU per event at the same latency
    # (bench pipeline A/B); the alert engine answers within milliseconds, so it takes
    # whatever has arrived.
    assert _options(["worker"]).batch_min_bytes == 256 * 1024
    assert _options(["alerts"]).batch_min_bytes == 1
    args = build_parser("worker").parse_args(["worker", "--batch-min-bytes", "1000"])
    forwarded = _forwarded(args)
    assert forwarded[forwarded.index("--batch-min-bytes") + 1] == "1000"


def test_worker_children_get_every_per_process_option() -> None:
    """The supervisor's own options aside, every worker option reaches each child with its
    value: `--rollup-interval` did not, so `--workers 2` silently ran the default."""
    parser = build_parser("worker")
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    # --instance-id goes to each child with its index appended (unique per group).
    own = {"help", "workers", "metrics_port", "no_migrate", "instance_id"}
    options = [a for a in sub.choices["worker"]._actions if a.dest not in own]
    args = parser.parse_args(["worker"])
    forwarded = _forwarded(args)
    for action in options:
        flag = action.option_strings[0]
        assert flag in forwarded, f"{flag} is not passed on to the worker processes"
        assert forwarded[forwarded.index(flag) + 1] == str(getattr(args, action.dest))
    tuned = parser.parse_args(["worker", "--rollup-interval", "7"])
    assert _forwarded(tuned)[_forwarded(tuned).index("--rollup-interval") + 1] == "7.0"
