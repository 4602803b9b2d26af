"""Every MQTT and Kafka client of the product is built through the one factory/settings model.

Why a source check: a client built by hand (``mqtt.Client(...)``, ``bootstrap_servers=...``,
``{"bootstrap.servers": ...}``) silently ignores the configured credentials and TLS and so
works only against an open broker: the bug issue 12 found in six places. The behaviour of
the factories themselves is tested against real secured brokers (tests/e2e/test_secure_kafka.py,
tests/integration/test_secure_mqtt.py); this keeps new hand-built clients out.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
PACKAGES = ("api", "core", "device_configs", "edge", "infra", "schemas", "stream")
#: The factory itself.
ALLOWED = {Path("core/mqtt_client.py")}


def _hand_built(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "Client"
            and isinstance(func.value, ast.Name)
            and func.value.id == "mqtt"
        ):
            found.append((node.lineno, "paho mqtt.Client(...): use make_mqtt_client"))
        if any(k.arg == "bootstrap_servers" for k in node.keywords):
            found.append((node.lineno, "bootstrap_servers=: use KafkaClientSettings.aiokafka()"))
        for arg in node.args:
            if isinstance(arg, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == "bootstrap.servers" for k in arg.keys
            ):
                found.append((node.lineno, "librdkafka dict: use KafkaClientSettings.librdkafka()"))
    return found


def test_no_client_is_built_outside_the_factories() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel in ALLOWED:
                continue
            for line, why in _hand_built(ast.parse(path.read_text(), str(path))):
                offenders.append(f"{rel}:{line}: {why}")
    assert offenders == []


def test_the_check_finds_a_hand_built_client() -> None:
    sample = (
        "client = mqtt.Client(CallbackAPIVersion.VERSION2)\n"
        "producer = AIOKafkaProducer(bootstrap_servers='x:9092')\n"
        "admin = AdminClient({'bootstrap.servers': 'x:9092'})\n"
    )
    assert [line for line, _ in _hand_built(ast.parse(sample))] == [1, 2, 3]
