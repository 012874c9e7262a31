"""What a request can fail with; service.py turns each into a JSON error response with this status."""

from __future__ import annotations


class InvalidRequestError(ValueError):
    """Bad input the schema could not catch: 400 with this message."""

    status = 400


class NotFoundError(LookupError):
    """An unknown id: 404 with this message."""

    status = 404


class ConflictError(ValueError):
    """The request contradicts what is recorded (an event id sent again with other values): 409 with this message."""

    status = 409


class UnavailableError(RuntimeError):
    """A dependency is down and the request cannot be served without it: 503 with this message."""

    status = 503
