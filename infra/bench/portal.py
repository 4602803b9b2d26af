"""Captive-portal benchmark: splash bytes, throughput and p99 latency at 500 clients, Lighthouse.

The portal runs as the real API (``api.app:create_app`` under uvicorn, two workers) against
a throw-away database, so every request is a genuine phone landing: a new visit row, promo
impressions and an MQTT funnel event. ``wrk`` (Debian) drives 500 concurrent connections;
its latency is time to the whole response, which for a ~12 KB page on loopback is the
time to first byte plus well under a millisecond, so it is reported as ``ttfb_ms_p99``.
The per-client rate limit is raised for the run: all load comes from one address.
Lighthouse (npm) scores the page as a mobile device in Debian's Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from infra.bench.context import BenchContext, BenchError
from stream.storage import migrate

REPO = Path(__file__).resolve().parents[2]
SITE = "ben-thanh-market"
LANGS = ("vi", "en", "ko", "zh-Hans", "ja")
CONCURRENCY = 500
CHROMIUM = "/usr/bin/chromium"
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu --disable-background-networking"


def run(ctx: BenchContext) -> dict[str, Any]:
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found: apt-get install -y wrk")
    lighthouse = REPO / "node_modules" / ".bin" / "lighthouse"
    if not lighthouse.exists():
        raise BenchError("node_modules/.bin/lighthouse missing: run `npm ci` in the repo root")
    admin_url = ctx.settings.database_url
    db = f"tp_bench_portal_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    try:
        url = urlunsplit(urlsplit(admin_url)._replace(path="/" + db))
        migrate.apply(url)
        return _measure(ctx, url, lighthouse)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
            )


def _measure(ctx: BenchContext, database_url: str, lighthouse: Path) -> dict[str, Any]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TP_DATA_DIR": str(ctx.out_dir / "portal-bench-state"),
        "TP_PORTAL_SECRET": uuid.uuid4().hex,
        "TP_PORTAL_RATE_PER_MINUTE": "100000000",
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    server = subprocess.Popen(cmd, env=env, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{base}/portal/{SITE}", server)
        splash = {lang: _splash_bytes(f"{base}/portal/{SITE}?lang={lang}") for lang in LANGS}
        print(f"[bench] portal: splash bytes {splash}", file=sys.stderr, flush=True)
        duration = 5 if ctx.quick else 20
        wrk = _wrk(f"{base}/portal/{SITE}?lang=vi", duration)
        scores = _lighthouse(lighthouse, f"{base}/portal/{SITE}?lang=vi")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return {
        "splash_bytes": max(splash.values()),
        "splash_bytes_by_language": splash,
        "concurrency": CONCURRENCY,
        "duration_s": duration,
        **wrk,
        "lighthouse": scores,
        "method": "uvicorn 2 workers, real PostgreSQL + MQTT; wrk -t2 -c500; lighthouse mobile",
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchError(f"portal server exited with code {server.returncode}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise BenchError(f"portal did not answer {url} within {timeout:.0f} s")


def _splash_bytes(url: str) -> int:
    """Everything a phone downloads before images: the page is self-contained (inline CSS)."""
    r = httpx.get(url, timeout=30)
    if r.status_code != 200:
        raise BenchError(f"{url} answered {r.status_code}")
    if re.search(r"<(link|script)\b[^>]*(href|src)=", r.text):
        raise BenchError("splash page references external CSS/JS: byte count would be partial")
    header_bytes = sum(len(k) + len(v) + 4 for k, v in r.headers.items())
    return len(r.content) + header_bytes


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(url: str, duration: int) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONCURRENCY}", f"-d{duration}s", "--timeout", "10s", "--latency", url],
        capture_output=True,
        text=True,
        check=False,
        timeout=duration + 120,
    )
    if out.returncode != 0:
        raise BenchError(f"wrk failed: {out.stderr.strip()[:300]}")
    text = out.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    if not (rps and p99 and p50):
        raise BenchError(f"could not parse wrk output:\n{text}")
    return {
        "requests_per_s": round(float(rps.group(1)), 1),
        "ttfb_ms_p50": round(float(p50.group(1)) * _UNITS[p50.group(2)], 2),
        "ttfb_ms_p99": round(float(p99.group(1)) * _UNITS[p99.group(2)], 2),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def _lighthouse(binary: Path, url: str) -> dict[str, float]:
    out = subprocess.run(
        [
            str(binary),
            url,
            "--quiet",
            "--output=json",
            "--form-factor=mobile",
            "--only-categories=performance,accessibility",
            f"--chrome-flags={CHROME_FLAGS}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "CHROME_PATH": CHROMIUM},
    )
    try:
        cats = json.loads(out.stdout)["categories"]
        return {k: round(cats[k]["score"] * 100, 1) for k in ("performance", "accessibility")}
    except (ValueError, KeyError, TypeError):
        raise BenchError(f"lighthouse failed: {out.stderr.strip()[-500:]}") from None
