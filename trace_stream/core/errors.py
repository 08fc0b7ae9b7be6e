"""Every exception the service raises derives from TraceStreamError."""

from trace_stream.core.reasons import Reason


class TraceStreamError(Exception):
    """Base class of trace-stream's own errors."""


class ConfigError(TraceStreamError):
    """The configuration is invalid; the message names the variable to fix."""


class InvalidEvent(TraceStreamError):
    """An input event cannot be processed; it is dead-lettered, never retried.

    `reason` is a dead-letter reason (`core.reasons`, safe as a metric label); `detail` is built
    from field names and rules only, never from field values, so it cannot leak
    personal data into the dead-letter topic or the logs.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class DependencyError(TraceStreamError):
    """A dependency (such as the schema registry) failed: not the record's fault, so the
    record is not dead-lettered; the stage stops and is restarted."""


class KafkaError(TraceStreamError):
    """A Kafka operation failed; `code` is librdkafka's error code name."""

    def __init__(self, message: str, code: str = "", *, retriable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = retriable
