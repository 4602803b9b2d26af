"""``tourpulse demo``: the whole pipeline on the embedded stack with simulated HCMC sites.

It composes the other commands as child processes (exactly what an operator would run by
hand), so the demo exercises the same entry points as production. Children's output goes
to ``<data_dir>/logs/<name>.log``; a child that dies stops the demo with its log tail.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.settings import get_settings
from device_configs import Site, load_device_configs
from edge.camera_sim.demo import demo_children as camera_demo_children
from edge.camera_sim.demo import demo_env as camera_demo_env
from edge.simulator.generator import SimConfig
from edge.simulator.profiles import profile_for

DEMO_USER = "demo-admin"
SURGE_SITE = "phu-hoa-dong-rice-paper-village"
#: The festival at SURGE_SITE: its visitors alone would fill the village this many times
#: over, so it is full (and alerting) whatever the hour and whatever the weekday crowd.
FESTIVAL_DEMAND = 1.5
#: The simulated Meraki click-through network phones "join" (tourpulse simulate controller).
CONTROLLER = "http://127.0.0.1:8070"


@dataclass
class Child:
    name: str
    args: list[str]
    #: The camera tours are an add-on to the pipeline: if they can't run (no video could
    #: be obtained, say), the demo reports it and carries on without them.
    required: bool = True
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)


def _tourpulse(*args: str) -> list[str]:
    return [sys.executable, "-m", "infra.cli", *args]


def demo_children(speed: float, device_configs: Path) -> list[Child]:
    """The services of the demo, in start order (consumers before producers).

    The simulated clock starts an hour back so the history endpoints (which look at the
    last hour of wall-clock time) have data within the first minutes of the demo.
    """
    start = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    cameras = [
        Child(name, argv, required=False)
        for name, argv in camera_demo_children(device_configs, _tourpulse())
    ]
    return [
        Child("gateway", _tourpulse("gateway")),
        Child("worker", _tourpulse("worker")),
        Child("flows", _tourpulse("flows")),
        Child("alerts", _tourpulse("alerts")),
        *cameras,
        Child("api", _tourpulse("api")),
        Child("controller", _tourpulse("simulate", "controller")),
        Child("simulator", _tourpulse(*simulator_args(speed, start, device_configs))),
    ]


def simulator_args(speed: float, start: str, device_configs: Path) -> list[str]:
    """The demo's Wi-Fi simulator: every site, plus a festival at the rice-paper village
    (tests/test_demo_alert.py runs exactly these arguments through the pipeline)."""
    factor = festival_factor(load_device_configs(device_configs).site(SURGE_SITE))
    return [
        "simulate",
        "wifi",
        "--speed",
        str(speed),
        "--start",
        start,
        "--surge",
        f"{SURGE_SITE}={factor}",
    ]


def festival_factor(site: Site) -> float:
    """The ``--surge`` factor (a multiple of the site's busiest-hour arrival rate) that
    brings FESTIVAL_DEMAND x its capacity in visitors.

    The simulator sizes a site's busiest-hour rate so a weekend peak fills ``peak_fill``
    of its capacity (Little's law); the festival's arrivals are scaled from that rate.
    """
    weekend = profile_for(site).weekend_factor
    return round(FESTIVAL_DEMAND * weekend / SimConfig.peak_fill, 2)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on the embedded stack with simulated HCMC sites",
        description="Starts the stack, migrates the database, then runs gateway, worker, "
        "API and the Wi-Fi simulator until Ctrl-C (or --for seconds).",
    )
    p.add_argument("--speed", type=float, default=10.0, help="simulated time speed-up")
    p.add_argument("--for", dest="duration", type=float, default=None, help="stop after N s")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    for step in (("stack", "up"), ("db", "migrate")):
        print(f"demo: tourpulse {' '.join(step)}", flush=True)
        if subprocess.call(_tourpulse(*step)) != 0:
            print(f"demo: 'tourpulse {' '.join(step)}' failed; see above", file=sys.stderr)
            return 1
    operator_password = _demo_operator()
    # The portal may hand phones only to the simulated controller, and all children share
    # one cookie secret for the run.
    os.environ.setdefault("TP_PORTAL_GRANT_HOSTS", '["127.0.0.1"]')
    os.environ.setdefault("TP_PORTAL_SECRET", secrets.token_hex(32))
    # The funnel is business data behind an admin token: a fresh one for this run, printed.
    tokens = os.environ.setdefault(
        "TP_PORTAL_ADMIN_TOKENS", json.dumps({"demo": secrets.token_urlsafe(24)})
    )
    admin_token = str(next(iter(json.loads(tokens).values())))
    # Camera credentials (demo values) must be set before simulator, agents and API start.
    os.environ.update(camera_demo_env(settings.device_configs))
    children = demo_children(args.speed, settings.device_configs)
    stop = _install_signal_handlers()
    try:
        for child in children:
            child.log = log_dir / f"{child.name}.log"
            with child.log.open("ab") as out:
                child.proc = subprocess.Popen(child.args, stdout=out, stderr=subprocess.STDOUT)
            print(f"demo: started {child.name} (pid {child.proc.pid}, log {child.log})")
            time.sleep(1.0)  # let consumers subscribe before producers publish
        _print_urls(settings.api_host, settings.api_port, operator_password, admin_token)
        return _supervise(children, stop, args.duration)
    finally:
        _stop_all(children)
        print("demo: stopping the stack services it started", flush=True)
        subprocess.call(_tourpulse("stack", "down"))


def _install_signal_handlers() -> list[bool]:
    stop = [False]

    def _handler(signum: int, _frame: object) -> None:
        stop[0] = True

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


def _demo_operator() -> str:
    """A fresh random password for the demo's IOC admin, set on every demo start.

    There is no default password anywhere: this one is made now, shown once, and
    replaced by the next demo run.
    """
    password = secrets.token_urlsafe(12)
    for action in ("create", "set-password"):
        extra = ["--role", "admin"] if action == "create" else []
        done = subprocess.run(
            _tourpulse("users", action, "--username", DEMO_USER, "--password-stdin", *extra),
            input=password + "\n",
            text=True,
            capture_output=True,
            check=False,
        )
        if done.returncode == 0:
            return password
    raise SystemExit(f"demo: could not set up the IOC user: {done.stderr.strip()}")


def _print_urls(host: str, port: int, operator_password: str, admin_token: str) -> None:
    base = f"http://{host}:{port}"
    print(
        "\nTourPulse demo is running (Ctrl-C to stop):\n"
        f"  IOC console           {base}/ioc   (user {DEMO_USER}, password {operator_password})\n"
        f"  phone joins Wi-Fi     {CONTROLLER}/connect/ben-thanh-market?lang=vi  (or ?lang=en)\n"
        f"  portal funnel         {base}/api/v1/portal/funnel?site=ben-thanh-market"
        f"  (header Authorization: Bearer {admin_token})\n"
        f"  live occupancy (SSE)  {base}/api/v1/live\n"
        f"  sites (GeoJSON)       {base}/api/v1/sites\n"
        f"  occupancy history     {base}/api/v1/sites/ben-thanh-market/occupancy\n"
        f"  live camera tour      {base}/tours/cu-chi-tunnels-ben-dinh-cam1\n"
        f"  API docs              {base}/docs\n"
        f"  health / metrics      {base}/healthz  {base}/metrics\n",
        flush=True,
    )


def _supervise(children: list[Child], stop: list[bool], duration: float | None) -> int:
    deadline = time.monotonic() + duration if duration else None
    running = list(children)
    while not stop[0] and (deadline is None or time.monotonic() < deadline):
        for child in list(running):
            assert child.proc is not None
            if child.proc.poll() is not None:
                print(f"demo: {child.name} exited with {child.proc.returncode}; last log lines:")
                print(_tail(child.log), file=sys.stderr)
                if child.required:
                    return 1
                running.remove(child)
                print(f"demo: continuing without {child.name}")
        time.sleep(0.5)
    return 0


def _stop_all(children: list[Child]) -> None:
    for child in reversed(children):
        if child.proc and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    for child in reversed(children):
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
        print(f"demo: stopped {child.name}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
