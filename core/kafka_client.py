"""One Kafka client settings model, rendered for librdkafka and aiokafka.

Why: the gateway (confluent-kafka), the API and the stream workers (aiokafka) each spelled
out their own connection options, so none could use TLS or SASL and
Kafka had to stay PLAINTEXT. The security options now live in :class:`KafkaClientSettings`
once; each client library gets them through one adapter method here, so adding SASL_SSL to
a deployment is a matter of ``TP_KAFKA_*`` variables, not of editing every client.

The producer durability defaults (``acks=all`` + idempotence) also live here so every
producer, whatever its library, gets them from one place.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class KafkaClientSettings(BaseModel):
    """Where Kafka is and how to authenticate, validated as a whole."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    tls_ca: Path | None = None

    @model_validator(mode="after")
    def _consistent(self) -> KafkaClientSettings:
        if self.sasl and not (self.username and self.password):
            raise ValueError(f"Kafka {self.security_protocol} needs a username and a password")
        if not self.sasl and (self.username or self.password):
            raise ValueError(
                "Kafka credentials are set but the security protocol "
                f"{self.security_protocol} does not use SASL"
            )
        if self.tls_ca is not None and not self.tls:
            raise ValueError(f"a Kafka TLS CA is set but {self.security_protocol} has no TLS")
        if self.tls_ca is not None and not Path(self.tls_ca).is_file():
            raise ValueError(f"Kafka TLS CA file not found: {self.tls_ca}")
        return self

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def secret(self) -> str:
        """The SASL password in clear, for the client libraries' own config objects."""
        return self.password.get_secret_value() if self.password else ""

    def ssl_context(self) -> ssl.SSLContext:
        """Verifying TLS context (hostname checked) for aiokafka."""
        ctx = ssl.create_default_context(
            cafile=str(self.tls_ca) if self.tls_ca is not None else None
        )
        return ctx

    # ----- adapters, one per client library -----------------------------------------
    def librdkafka(self, **extra: Any) -> dict[str, Any]:
        """confluent-kafka (librdkafka) config: connection + security, then ``extra``."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
        }
        if self.sasl:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.username
            conf["sasl.password"] = self.secret()
        if self.tls:
            conf["ssl.endpoint.identification.algorithm"] = "https"
            if self.tls_ca is not None:
                conf["ssl.ca.location"] = str(self.tls_ca)
        conf.update(extra)
        return conf

    def librdkafka_producer(self, **extra: Any) -> dict[str, Any]:
        """Producer defaults every service shares: no loss, no duplicates on retry."""
        return self.librdkafka(**{"acks": "all", "enable.idempotence": True, **extra})

    def aiokafka(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer/Consumer/AdminClient."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = self.secret()
        if self.tls:
            kwargs["ssl_context"] = self.ssl_context()
        kwargs.update(extra)
        return kwargs

    def aiokafka_producer(self, **extra: Any) -> dict[str, Any]:
        return self.aiokafka(**{"acks": "all", "enable_idempotence": True, **extra})


def as_kafka(target: str | KafkaClientSettings) -> KafkaClientSettings:
    """Accept a bare bootstrap string (tests, local tools) where settings are expected."""
    return (
        target if isinstance(target, KafkaClientSettings) else KafkaClientSettings(bootstrap=target)
    )
