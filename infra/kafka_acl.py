"""Least-privilege Kafka ACLs for every service principal (StandardAuthorizer, SCRAM users).

Why generated: with ``allow.everyone.if.no.acl.found=false`` a principal can do only what
is listed here, so each service's needs are written down once, next to the topic contract:

* gateway: create, describe and write the ingest topics and the dead-letter topic; no reads.
* worker: read every topic of the deployment, write derived topics and dead letters, use
  consumer groups and create the topics they declare, all inside the deployment's prefix.
* api: read the live feeds (occupancy, fused occupancy, alert changes, flows) and write only
  alert changes (operator actions); no consumer groups (it assigns partitions itself).
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import AclBinding, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

from schemas.topics import KafkaTopic

DERIVED = (
    KafkaTopic.OCCUPANCY_LIVE,
    KafkaTopic.OCCUPANCY_FUSED,
    KafkaTopic.ALERT_CHANGES,
    KafkaTopic.FLOWS_HOURLY,
)
INGEST = tuple(t for t in KafkaTopic if t not in DERIVED)
API_READS = DERIVED


@dataclass(frozen=True)
class Grant:
    principal: str  # SCRAM user name
    resource: ResourceType
    name: str
    pattern: ResourcePatternType
    operation: AclOperation

    def binding(self) -> AclBinding:
        return AclBinding(
            self.resource,
            self.name,
            self.pattern,
            f"User:{self.principal}",
            "*",
            self.operation,
            AclPermissionType.ALLOW,
        )


def service_grants(
    namespace: str | None,
    gateway: str = "tp-gateway",
    worker: str = "tp-worker",
    api: str = "tp-api",
) -> list[Grant]:
    """Every ACL the three service principals need in the deployment ``namespace``."""
    ns = f"{namespace}." if namespace else ""
    topic, literal = ResourceType.TOPIC, ResourcePatternType.LITERAL
    op = AclOperation
    grants = [
        Grant(gateway, topic, ns + t, literal, o)
        for t in INGEST
        for o in (op.CREATE, op.DESCRIBE, op.WRITE)
    ]
    # Workers: everything under the namespace prefix (topics and consumer groups are
    # namespaced); without a namespace, every topic and group.
    scope = (ns, ResourcePatternType.PREFIXED) if ns else ("*", literal)
    grants += [
        Grant(worker, res, scope[0], scope[1], o)
        for res, ops in (
            (topic, (op.CREATE, op.DESCRIBE, op.READ, op.WRITE, op.DESCRIBE_CONFIGS)),
            (ResourceType.GROUP, (op.READ, op.DESCRIBE)),
        )
        for o in ops
    ]
    grants += [
        Grant(api, topic, ns + t, literal, o) for t in API_READS for o in (op.DESCRIBE, op.READ)
    ]
    grants.append(Grant(api, topic, ns + KafkaTopic.ALERT_CHANGES, literal, op.WRITE))
    return grants


def apply_grants(admin: AdminClient, grants: list[Grant], timeout_s: float = 30.0) -> int:
    """Create the ACLs (idempotent: Kafka ignores an ACL that already exists)."""
    futures = admin.create_acls([g.binding() for g in grants], request_timeout=timeout_s)
    for future in futures.values():
        future.result(timeout_s)
    return len(futures)
