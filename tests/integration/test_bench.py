"""Cheap smoke tests of the benchmark harness (the benchmarks themselves run in `make bench`)."""

from __future__ import annotations

import importlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from infra.bench import cli as bench_cli
from infra.bench.context import BenchContext, BenchError
from infra.bench.cpu import CpuMeter, only
from infra.bench.mosquitto import measure
from infra.bench.services import counter_value
from infra.cli import main


def run(ctx: BenchContext) -> dict[str, Any]:
    """A benchmark module as the harness sees it (this test module registers itself)."""
    if ctx.events == 13:
        raise BenchError("unlucky size")
    return {"events": ctx.events, "quick": ctx.quick}


@pytest.mark.parametrize("name", sorted(bench_cli.BENCHMARKS))
def test_every_registered_benchmark_has_a_run_function(name: str) -> None:
    module = importlib.import_module(bench_cli.BENCHMARKS[name])
    assert callable(module.run)


def test_harness_writes_json_and_one_failure_does_not_hide_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_cli, "BENCHMARKS", {"sample": __name__})
    ctx = BenchContext(Settings(), tmp_path, events=7, quick=True)
    assert bench_cli.run_one("sample", ctx)
    assert json.loads((tmp_path / "sample.json").read_text()) == {"events": 7, "quick": True}
    bad = BenchContext(Settings(), tmp_path / "bad", events=13)
    assert not bench_cli.run_one("sample", bad)
    assert not (tmp_path / "bad").exists()


def test_unknown_benchmark_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "no-such-bench"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


def test_counter_value_sums_label_sets_and_ignores_lookalikes() -> None:
    text = (
        "# TYPE tp_x_total counter\n"
        'tp_x_total{reason="a"} 2.0\n'
        'tp_x_total{reason="b"} 3.0\n'
        "tp_x_total_created 1.7e9\n"
        "tp_y_total 9.0\n"
    )
    assert counter_value(text, "tp_x_total") == 5.0
    assert counter_value(text, "tp_z_total") == 0.0


def test_cpu_meter_attributes_busy_time_to_the_right_stage() -> None:
    meter = CpuMeter({"me": only(os.getpid())})
    meter.start()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        math.sqrt(12345.0)
    shares = meter.stop()
    assert shares["me"] > 0.05
    assert set(shares) == {"me", "idle", "other"}
    assert sum(shares.values()) == pytest.approx(1.0, abs=0.05)


@pytest.mark.integration
def test_mosquitto_baseline_moves_every_message(stack: Any) -> None:
    rate = measure(stack.mqtt_host, stack.mqtt_port, messages=500, size=500)
    assert rate > 0


def test_net_cpu_subtracts_what_a_stage_burns_without_us() -> None:
    def busy(seconds: float) -> CpuMeter:
        meter = CpuMeter({"me": only(os.getpid())})
        meter.start()
        deadline = time.process_time() + seconds
        while time.process_time() < deadline:
            math.sqrt(12345.0)
        meter.stop()
        return meter

    background, run = busy(0.1), busy(0.3)
    net = run.net_seconds(background)["me"]
    assert 0.0 <= net < run.seconds["me"]
    # Two idle windows: the quieter one counts, so a busy one cannot zero the stage.
    loud = busy(0.3)
    loud.wall = background.wall  # as if the same window had burned three times as much
    assert run.net_seconds(loud)["me"] == 0.0
    assert run.net_seconds(loud, background)["me"] == pytest.approx(net)
    assert run.net_seconds(background, loud)["me"] == pytest.approx(net)
