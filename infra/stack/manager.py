"""``up`` / ``down`` / ``status`` of the whole stack, recorded in ``<data_dir>/stack.json``.

``up`` is idempotent: a component it started earlier and that still runs is kept, one
someone else runs is used as is (``managed: false``), anything missing is started.
``down`` stops only what ``up`` started, so shared or hand-started services survive.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from infra.stack.kafka import ensure_kafka, metadata_ok
from infra.stack.mqtt import ensure_mqtt
from infra.stack.postgres import ensure_postgres, server_version
from infra.stack.procs import port_open, split_hostport, stop_process
from infra.stack.state import COMPONENTS, Component, StackConfig, StackState


def _print(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class Endpoints:
    """Where clients connect once ``up`` has returned."""

    mqtt_host: str
    mqtt_port: int
    kafka_bootstrap: str
    database_url: str


def _still_running(comp: Component) -> bool:
    if comp.process is not None:
        return comp.process.alive()
    return comp.stop_command is not None and _answers(comp)


def _answers(comp: Component) -> bool:
    host, port = split_hostport(comp.address, 0)
    return port_open(host, port)


@dataclass(frozen=True)
class UpResult:
    endpoints: Endpoints
    state: StackState
    started: frozenset[str]  # components this call started (what a test session must stop)


def up(cfg: StackConfig, say: Callable[[str], None] = _print) -> UpResult:
    """Ensure every component runs; returns endpoints, the record and what was started."""
    state = StackState.load(cfg.data_dir)
    started: set[str] = set()
    for name in COMPONENTS:
        old = state.components.get(name)
        if old is not None and old.managed:
            if _still_running(old):
                say(f"{name}: {old.impl} already running at {old.address} (started by us)")
                continue
            say(f"{name}: the {old.impl} we started earlier is gone: starting again")
        if name == "mqtt":
            comp = ensure_mqtt(cfg, say)
        elif name == "kafka":
            comp = ensure_kafka(cfg, say)
        else:
            comp, state.database_url = ensure_postgres(cfg, say)
        if comp.managed:
            started.add(name)
        else:
            say(f"{name}: using running {comp.version} at {comp.address} (external)")
        state.components[name] = comp
        state.save(cfg.data_dir)  # record each start at once: a later failure can still `down`
    if state.database_url is None:
        raise RuntimeError(f"{cfg.data_dir / 'stack.json'} lost the database URL: run `down`")
    endpoints = Endpoints(cfg.mqtt_host, cfg.mqtt_port, cfg.kafka_bootstrap, state.database_url)
    return UpResult(endpoints, state, frozenset(started))


def stop_component(comp: Component) -> str:
    if comp.stop_command:
        result = subprocess.run(comp.stop_command, capture_output=True, text=True, check=False)
        return "stopped" if result.returncode == 0 else f"stop failed: {result.stderr.strip()}"
    if comp.process is not None:
        return stop_process(comp.process, signal.Signals(comp.stop_signal))
    return "nothing to stop"


def down(
    cfg: StackConfig, say: Callable[[str], None] = _print, only: set[str] | None = None
) -> int:
    """Stop what ``up`` started (or just the ``only`` components), in reverse order.

    Returns the exit code: 1 if some component could not be stopped.
    """
    state = StackState.load(cfg.data_dir)
    if not state.components:
        say(f"nothing recorded in {cfg.data_dir / 'stack.json'}: nothing to stop")
        return 0
    failures = 0
    for name in reversed(COMPONENTS):
        if only is not None and name not in only:
            continue
        comp = state.components.pop(name, None)
        if comp is None:
            continue
        if not comp.managed:
            say(f"{name}: {comp.address} is external: left running")
            continue
        say(f"{name}: stopping {comp.impl} at {comp.address} ...")
        outcome = stop_component(comp)
        say(f"{name}: {outcome}")
        if outcome.startswith("stop failed"):
            failures += 1
            state.components[name] = comp
    if not any(c.managed for c in state.components.values()):
        state.components.clear()  # only external ones left: nothing worth recording
    state.save(cfg.data_dir)
    return 1 if failures else 0


def _live_check(name: str, comp: Component, database_url: str | None) -> bool:
    if name == "kafka":
        return metadata_ok(comp.address, timeout_s=3.0)
    if name == "postgres":
        return database_url is not None and server_version(database_url) is not None
    return _answers(comp)


def status(cfg: StackConfig, say: Callable[[str], None] = _print) -> int:
    """Print each component; exit code 0 only if all three answer."""
    state = StackState.load(cfg.data_dir)
    if not state.components:
        say(f"no stack recorded in {cfg.data_dir}: run `tourpulse stack up`")
        return 1
    healthy = True
    for name in COMPONENTS:
        comp = state.components.get(name)
        if comp is None:
            say(f"{name:9} not recorded")
            healthy = False
            continue
        alive = _live_check(name, comp, state.database_url)
        healthy &= alive
        pid = f", pid {comp.process.pid}" if comp.process else ""
        owner = f"started by us: {comp.impl}{pid}" if comp.managed else "external: left alone"
        state_word = "up" if alive else "DOWN"
        say(f"{name:9}{state_word:5} {comp.address:24} {comp.version:28} {owner}")
        for note in comp.notes:
            say(f"{'':14}note: {note}")
    return 0 if healthy else 1
