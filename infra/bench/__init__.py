"""Benchmarks: ``tourpulse bench [NAME...]`` writes one ``.bench/<name>.json`` per benchmark.

Speed is measured here against the real services, never asserted in unit tests. Each
benchmark is a module with ``run(ctx: BenchContext) -> dict``; registering one is a line in
:data:`infra.bench.cli.BENCHMARKS`.
"""
