"""A secured single-node Kafka (KRaft) for ``--secure`` dev/CI runs.

SASL_SSL listener with SCRAM-SHA-512 users bootstrapped at format time, a TLS certificate
from :mod:`infra.stack.certs`, and the StandardAuthorizer with no access unless an ACL
grants it (``allow.everyone.if.no.acl.found=false``): the shape a city's cluster has, so the
clients' SASL/TLS settings and the generated ACLs are tested against the real thing.

The controller listener (loopback) is mutual TLS: SCRAM cannot authenticate controller
connections in KRaft (its credentials live in the metadata the controller serves), and the
broker authenticates to its controller with the server certificate, whose subject is the
only other super user.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from infra.stack.certs import ServerCert
from infra.stack.kafka import JVM_OPTS, KAFKA_DIR
from infra.stack.procs import ProcessId, spawn_detached

ADMIN = "tp-kafka-admin"


@dataclass(frozen=True)
class SecureKafka:
    bootstrap: str
    admin_password: str
    proc: ProcessId
    home: Path


def render_config(home: Path, host: str, port: int, certs: ServerCert, admin_password: str) -> Path:
    pem = home / "server.pem"  # PEM keystore: key and certificate in one file
    pem.write_text(certs.key.read_text() + certs.cert.read_text())
    pem.chmod(0o600)
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN}" password="{admin_password}";'
    )
    conf = home / "server.properties"
    conf.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{host}:{port + 1}",
                f"listeners=SASL_SSL://{host}:{port},CONTROLLER://{host}:{port + 1}",
                f"advertised.listeners=SASL_SSL://{host}:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=SASL_SSL",
                "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL",
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
                f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}",
                "listener.name.controller.ssl.client.auth=required",
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={pem}",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={certs.ca}",
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                f"super.users=User:{ADMIN};User:CN={host}",
                "allow.everyone.if.no.acl.found=false",
                f"log.dirs={home / 'data'}",
                "num.partitions=4",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
                "",
            ]
        )
    )
    return conf


def start_secure_kafka(
    java: str,
    libs: Path,
    home: Path,
    certs: ServerCert,
    users: dict[str, str],
    host: str = "127.0.0.1",
    port: int = 27092,
) -> SecureKafka:
    """Format (SCRAM users included) and start the broker; the caller waits for readiness."""
    (home / "logs").mkdir(parents=True, exist_ok=True)
    admin_password = users[ADMIN]
    conf = render_config(home, host, port, certs, admin_password)
    classpath = f"{libs}/*"
    if not (home / "data" / "meta.properties").exists():
        tool = [java, "-cp", classpath, "kafka.tools.StorageTool"]
        cluster = subprocess.run(
            [*tool, "random-uuid"], capture_output=True, text=True, check=True
        ).stdout.strip()
        scram = [
            a
            for name, pw in sorted(users.items())
            for a in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={pw}]")
        ]
        done = subprocess.run(
            [*tool, "format", "-t", cluster, "-c", str(conf), *scram],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kafka storage format failed: {done.stderr[-2000:]}")
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
    proc = spawn_detached(argv, home / "logs" / "kafka.out")
    return SecureKafka(f"{host}:{port}", admin_password, proc, home)
