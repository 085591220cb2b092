"""Domain errors raised by the services; the app maps them to HTTP status codes."""

from __future__ import annotations


class NotFound(LookupError):
    """The named object does not exist (404)."""


class Conflict(RuntimeError):
    """The request is valid but the current state does not allow it (409)."""


class Forbidden(PermissionError):
    """The caller's token does not open this object (403)."""


class InvalidInput(ValueError):
    """Input that passed the schema but not a business rule (422); ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class IntakeNotStored(RuntimeError):
    """A new request was not stored because its intake batch failed for a reason that is not
    its own row: 503 when ``retryable`` (database unreachable, locked or timed out), else 500.
    The writer logs the cause once per batch."""

    def __init__(self, retryable: bool) -> None:
        super().__init__("the request was not stored; retry" if retryable else "not stored")
        self.retryable = retryable
