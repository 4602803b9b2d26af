"""Detached service processes: spawn, identify, probe and stop them safely.

The brokers must outlive ``tourpulse stack up``, so they are spawned with
``posix_spawn`` in their own session (no ``Popen`` object whose finaliser would warn
that the child is still running). A pid alone is not an identity: ``down`` may run days
later when the pid has been recycled, so every record also keeps the kernel's start
time of the process and nothing is signalled unless both match.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: How long a service gets to shut down cleanly before SIGKILL (Kafka flushes logs).
STOP_GRACE_S = 45.0


@dataclass(frozen=True)
class ProcessId:
    """A process as recorded in stack.json: pid plus its start time (clock ticks)."""

    pid: int
    start_ticks: int

    def alive(self) -> bool:
        return _start_ticks(self.pid) == self.start_ticks


def _start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` since boot, or None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: split after its closing paren.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def spawn_detached(
    argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None
) -> ProcessId:
    """Start ``argv`` in a new session with stdout+stderr appended to ``log_path``.

    Callers pass absolute paths only: the child inherits our working directory.
    """
    exe = argv[0] if "/" in argv[0] else shutil.which(argv[0])
    if exe is None:
        raise FileNotFoundError(f"{argv[0]} not found on PATH")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), flags, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    pid = os.posix_spawn(
        exe,
        list(argv),
        env if env is not None else dict(os.environ),
        file_actions=actions,
        setsid=True,
    )
    ticks = _start_ticks(pid)
    return ProcessId(pid, ticks if ticks is not None else -1)


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def exited(proc: ProcessId) -> bool:
    """True once the process is gone (reaping it if it was our child)."""
    _reap(proc.pid)
    return not proc.alive()


def stop_process(proc: ProcessId, sig: int = signal.SIGTERM, grace_s: float = STOP_GRACE_S) -> str:
    """Signal the process group, wait for it, SIGKILL after ``grace_s``. Says what happened."""
    if exited(proc):
        return "not running"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    if wait_until(lambda: exited(proc), grace_s, interval=0.2):
        return "stopped"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    wait_until(lambda: exited(proc), 10.0, interval=0.1)
    return f"killed after {grace_s:.0f}s"


def wait_until(check: Callable[[], bool], timeout_s: float, interval: float = 0.25) -> bool:
    """Poll ``check`` until it is true or ``timeout_s`` passes; returns the last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def port_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def split_hostport(address: str, default_port: int) -> tuple[str, int]:
    """``"127.0.0.1:9092"`` -> ("127.0.0.1", 9092); first entry of a bootstrap list."""
    first = address.split(",")[0].strip()
    host, sep, port = first.rpartition(":")
    if not sep:
        return first, default_port
    return host.strip("[]"), int(port)


def tail(path: Path, lines: int = 20) -> str:
    """Last lines of a log, for error messages when a service fails to start."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name
