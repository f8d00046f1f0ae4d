"""Errors the rules raise; the API maps each to a status and code."""


class DomainError(Exception):
    status = 400
    code = "INVALID_REQUEST"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class ViewNotStarted(DomainError):
    status = 404
    code = "VIEW_NOT_STARTED"


class InvalidValue(DomainError):
    code = "INVALID_VALUE"
