"""``tourpulse stack up|down|status|fetch``: run the dev/CI services on this machine."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from core.settings import Settings
from infra.stack import manager
from infra.stack.kafka import KafkaUnavailable, fetch_jars
from infra.stack.postgres import redact
from infra.stack.state import StackConfig


def _config() -> StackConfig:
    # A fresh Settings (not the cached one) so env changes in this process are honoured.
    return StackConfig.from_settings(Settings())


def _up(args: argparse.Namespace) -> int:
    cfg = dataclasses.replace(_config(), kafka_brokers=args.kafka_brokers)
    print(f"stack: data in {cfg.data_dir}", flush=True)
    if getattr(args, "secure", False):
        from infra.stack.secure import up_secure

        try:
            up_secure(cfg, Settings(), lambda line: print(line, flush=True))
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            print(f"stack up --secure failed: {exc}", file=sys.stderr)
            return 1
        print(
            f"stack: up (secure)  mqtt=TLS {cfg.mqtt_host}:{cfg.mqtt_port}  "
            f"kafka=SASL_SSL {cfg.kafka_bootstrap}"
        )
        return 0
    try:
        endpoints = manager.up(cfg).endpoints
    except (RuntimeError, OSError) as exc:
        print(f"stack up failed: {exc}", file=sys.stderr)
        print("(what did start is recorded; `tourpulse stack down` stops it)", file=sys.stderr)
        return 1
    print(
        f"stack: up  mqtt={endpoints.mqtt_host}:{endpoints.mqtt_port}  "
        f"kafka={endpoints.kafka_bootstrap}  database={redact(endpoints.database_url)}"
    )
    return 0


def _down(_args: argparse.Namespace) -> int:
    return manager.down(_config())


def _status(_args: argparse.Namespace) -> int:
    return manager.status(_config())


def _fetch(_args: argparse.Namespace) -> int:
    cfg = _config()
    try:
        libs = fetch_jars(cfg.libs_dir, lambda line: print(line, flush=True))
    except KafkaUnavailable as exc:
        print(f"stack fetch failed: {exc}", file=sys.stderr)
        return 1
    print(f"kafka: jars ready in {libs}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "stack",
        help="start/stop/inspect the local Mosquitto, Kafka and PostgreSQL",
        description=(
            "Run the dev/CI services on 127.0.0.1, reusing any already listening on the "
            "configured ports (TP_MQTT_HOST/PORT, TP_KAFKA_BOOTSTRAP, TP_PG_PORT or "
            "DATABASE_URL). State and data live in TP_DATA_DIR (default .tourpulse)."
        ),
    )
    sub = parser.add_subparsers(dest="stack_command", required=True, metavar="ACTION")
    for name, func, text in (
        ("up", _up, "start whatever is not already running and record it in stack.json"),
        ("down", _down, "stop only what `up` started"),
        ("status", _status, "show each component, its address, version and owner"),
        ("fetch", _fetch, "download the Kafka broker jars (Maven) without starting anything"),
    ):
        action = sub.add_parser(name, help=text, description=text)
        action.set_defaults(func=func)
        if name == "up":
            action.add_argument(
                "--kafka-brokers",
                type=int,
                choices=(1, 3),
                default=1,
                help="1 (default, fast dev/CI) or a 3-broker KRaft cluster on consecutive "
                "ports (replication 3, min.insync.replicas 2)",
            )
            action.add_argument(
                "--secure",
                action="store_true",
                help="Mosquitto with TLS + passwords + ACL, Kafka with SASL_SSL (SCRAM-SHA-512) "
                "+ ACLs; certificates, secrets and per-service .env files in <data dir>/secure",
            )
