"""Every failure the service raises on purpose, in one tree (httpx-style). Each carries a message,
the request field at fault and an error code; which HTTP status answers which branch is the API's
business (api/errors.py), nothing here knows HTTP.

    ServiceError
    ├── DomainError            the request breaks a rule; nothing was stored      INVALID_REQUEST
    │   ├── InvalidValue                                                          INVALID_VALUE
    │   │   ├── InvalidCollection
    │   │   ├── InvalidReportValue
    │   │   └── InvalidFormat
    │   ├── MissingField                                                          MISSING_FIELD
    │   ├── InvalidEvent / InvalidScore / TooManyEvents / ContentNotInCollection
    │   ├── SunbirdError       one of lms-service's own codes
    │   └── NotFound           what the request names does not exist              NOT_FOUND
    │       ├── ViewNotStarted / CollectionNotFound / ContextNotFound
    │       └── EnrolmentNotFound / DownloadNotFound
    ├── AuthError              who is calling, or what they may touch
    │   ├── Unauthenticated    no usable token
    │   └── Forbidden          not this caller's data                             FORBIDDEN
    └── Unavailable            the database cannot serve now; the client may retry
"""

from __future__ import annotations


class ServiceError(Exception):
    code = "INVALID_REQUEST"

    def __init__(self, message: str, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class DomainError(ServiceError):
    """The request breaks a rule: nothing was stored."""


class InvalidValue(DomainError):
    code = "INVALID_VALUE"


class InvalidCollection(InvalidValue):
    """A collection document that cannot be registered."""


class InvalidReportValue(InvalidValue):
    pass


class InvalidFormat(InvalidValue):
    pass


class MissingField(DomainError):
    code = "MISSING_FIELD"


class InvalidEvent(DomainError):
    code = "INVALID_EVENT"


class InvalidScore(DomainError):
    code = "INVALID_SCORE"


class TooManyEvents(DomainError):
    code = "TOO_MANY_EVENTS"


class ContentNotInCollection(DomainError):
    code = "CONTENT_NOT_IN_COLLECTION"


class SunbirdError(DomainError):
    """An error answered with one of lms-service's codes (its ResponseCode names)."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message, field, code)


class NotFound(DomainError):
    code = "NOT_FOUND"


class ViewNotStarted(NotFound):
    code = "VIEW_NOT_STARTED"


class CollectionNotFound(NotFound):
    code = "COLLECTION_NOT_FOUND"


class ContextNotFound(NotFound):
    code = "CONTEXT_NOT_FOUND"


class EnrolmentNotFound(NotFound):
    code = "ENROLMENT_NOT_FOUND"


class DownloadNotFound(NotFound):
    code = "DOWNLOAD_NOT_FOUND"


class AuthError(ServiceError):
    pass


class Unauthenticated(AuthError):
    """No token, or one that cannot be trusted (code: UNAUTHORIZED, TOKEN_INVALID, TOKEN_EXPIRED)."""


class Forbidden(AuthError):
    code = "FORBIDDEN"


class Unavailable(ServiceError):
    """The database could not be reached; the client may retry."""

    code = "SERVICE_UNAVAILABLE"
