"""How motcua's Kafka clients authenticate: one value read from env once, two client dialects.

The publisher (kafka-python) and the worker (faust over aiokafka) take the same settings
under different names; `KafkaSecurity` holds them once and renders either form.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# Username/password mechanisms only: GSSAPI and OAUTHBEARER need settings this file does not hold.
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

ENV_PREFIX = "MOTCUA_KAFKA_"
_ENV_FIELDS = {
    "protocol": "SECURITY_PROTOCOL",
    "sasl_mechanism": "SASL_MECHANISM",
    "sasl_username": "SASL_USERNAME",
    "sasl_password": "SASL_PASSWORD",
    "ssl_cafile": "SSL_CAFILE",
    "ssl_certfile": "SSL_CERTFILE",
    "ssl_keyfile": "SSL_KEYFILE",
}


class KafkaSecurityError(ValueError):
    """Security settings that cannot work together; str(e) is one line naming the setting."""


@dataclass(frozen=True)
class KafkaSecurity:
    """Transport security and SASL credentials for a Kafka client (PLAINTEXT by default)."""

    protocol: str = "PLAINTEXT"  # security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)  # never in logs or reprs
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def __post_init__(self) -> None:
        protocol = (self.protocol or "PLAINTEXT").strip().upper()
        if protocol not in PROTOCOLS:
            raise KafkaSecurityError(
                f"security protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}"
            )
        object.__setattr__(self, "protocol", protocol)
        if self.uses_sasl:
            mechanism = (self.sasl_mechanism or "PLAIN").strip().upper()
            object.__setattr__(self, "sasl_mechanism", mechanism)
            if mechanism not in MECHANISMS:
                raise KafkaSecurityError(
                    f"SASL mechanism {mechanism!r} is not one of {', '.join(MECHANISMS)}"
                )
            if not self.sasl_username or self.sasl_password is None:
                raise KafkaSecurityError(f"{protocol} needs a SASL username and password")
        elif self.sasl_mechanism or self.sasl_username or self.sasl_password:
            raise KafkaSecurityError(
                f"SASL credentials are set but the security protocol is {protocol}"
            )
        files = (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile)
        if not self.uses_ssl and any(files):
            raise KafkaSecurityError(f"SSL files are set but the security protocol is {protocol}")
        if self.ssl_keyfile and not self.ssl_certfile:
            raise KafkaSecurityError("an SSL key file needs its certificate file")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaSecurity:
        """Read MOTCUA_KAFKA_SECURITY_PROTOCOL, MOTCUA_KAFKA_SASL_* and MOTCUA_KAFKA_SSL_*.

        Empty variables count as unset, so a compose file can list them all.
        """
        source = os.environ if env is None else env
        values: dict[str, str] = {}
        for name, suffix in _ENV_FIELDS.items():
            value = source.get(ENV_PREFIX + suffix, "")
            if value.strip():
                values[name] = value if name == "sasl_password" else value.strip()
        return cls(**values)

    @property
    def uses_ssl(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying client context for SSL protocols (None for plaintext ones)."""
        if not self.uses_ssl:
            return None
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ssl_cafile)
            if self.ssl_certfile:
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise KafkaSecurityError(f"cannot load the SSL files: {exc}") from None
        return context

    def kafka_python_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaProducer/KafkaConsumer."""
        out: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            out.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        if self.uses_ssl:
            # kafka-python builds its own context from the file names.
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                value = getattr(self, name)
                if value:
                    out[name] = value
        return out

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's AIOKafkaProducer/AIOKafkaConsumer."""
        out: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            out.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        if self.uses_ssl:
            out["ssl_context"] = self.ssl_context()
        return out

    def faust_credentials(self) -> Any | None:
        """faust's `broker_credentials` value (None for PLAINTEXT)."""
        if self.protocol == "PLAINTEXT":
            return None
        # Imported here so the publisher and the CLI do not pay for importing faust.
        from faust.auth import SASLCredentials, SSLCredentials

        if self.uses_sasl:
            return SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                ssl_context=self.ssl_context(),
                mechanism=self.sasl_mechanism,
            )
        return SSLCredentials(self.ssl_context())
