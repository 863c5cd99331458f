"""LeadstreamError and the domain errors, each with the dead-letter reason it maps to."""

from __future__ import annotations


class LeadstreamError(Exception):
    """Root of every error leadstream raises on purpose.

    `reason` is the value of the `reason` header when the input that caused the error goes to a
    dead-letter topic; `retriable` tells a delivery loop whether trying again can help.
    """

    reason: str = "processing_error"
    retriable: bool = False


class SettingsError(LeadstreamError):
    """A setting has a value leadstream cannot use; the message names the variable and the fix."""

    reason = "settings"


class DevEnvironmentError(LeadstreamError):
    """The local Kafka/Redis could not be set up; the message says what to install or free."""

    reason = "dev_environment"


class InvalidJsonError(LeadstreamError):
    reason = "invalid_json"


class SchemaViolationError(LeadstreamError):
    reason = "schema_violation"


class SizeViolationError(LeadstreamError):
    reason = "size_violation"


class UnknownSourceError(LeadstreamError):
    reason = "unknown_source"


class SignatureInvalidError(LeadstreamError):
    reason = "signature_invalid"


class ForbiddenTypeError(LeadstreamError):
    """A browser write key sent a type only server keys may send (CRM outcomes, overrides)."""

    reason = "forbidden_type"


class KafkaUnavailableError(LeadstreamError):
    """Kafka did not acknowledge in time: clients should retry (collector answers 503)."""

    reason = "kafka_unavailable"
    retriable = True


class RedisUnavailableError(LeadstreamError):
    """Redis did not answer where a guarantee depends on it (replay protection): answer 503."""

    reason = "redis_unavailable"
    retriable = True


class RequestTimeoutError(LeadstreamError):
    """A client sent its request body too slowly: answered 408 and the connection is closed."""

    reason = "request_timeout"


class DeliveryError(LeadstreamError):
    """A notification could not be delivered; `retriable` says whether to try again."""

    reason = "delivery_failed"

    def __init__(self, message: str, *, retriable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retriable = retriable
        self.retry_after = retry_after


class UnsafeUrlError(LeadstreamError):
    """An outbound URL points where leadstream must not send data (SSRF guard)."""

    reason = "unsafe_url"
