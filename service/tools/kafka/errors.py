"""The one error type of the local Kafka tools, and how a tool's output becomes one line."""

from __future__ import annotations


class BrokerError(RuntimeError):
    """A failure of the local broker: `reason` is a code; str(e) starts with one line for a person.

    Only a broker that died while starting adds lines after that one: the end of its log.
    """

    MISSING_TOOL = "missing_tool"
    BAD_VERSION = "bad_version"
    FETCH_FAILED = "fetch_failed"
    TLS_FAILED = "tls_failed"
    PORT_IN_USE = "port_in_use"
    START_FAILED = "start_failed"
    NOT_READY = "not_ready"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def first_error(output: str) -> str:
    """The first [ERROR] line of a tool's output, else its first line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("[ERROR]")]
    return (errors or lines or ["no output"])[0]
