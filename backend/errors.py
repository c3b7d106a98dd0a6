"""Domain errors: raised anywhere below the API, translated to HTTP only at the edge."""


class DomainError(Exception):
    """Base of every error the platform reports to a client on purpose."""

    status = 400
    code = "bad_request"

    def __init__(self, message, *, fields=None, code=None, status=None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code
        if status:
            self.status = status


class ValidationFailed(DomainError):
    status = 422
    code = "validation_error"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class NameTaken(Conflict):
    code = "name_taken"


class IllegalTransition(Conflict):
    code = "illegal_transition"

    def __init__(self, current, target):
        super().__init__(
            f"cannot go from {current} to {target}",
            fields={"status": f"{current} -> {target} is not allowed"},
        )
        self.current = current
        self.target = target


class InvalidState(Conflict):
    code = "invalid_state"


class ConcurrentUpdate(Conflict):
    code = "concurrent_update"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": 'Bearer realm="paas"'}


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class QuotaExceeded(ValidationFailed):
    code = "quota_exceeded"


class ProxmoxNotConfigured(DomainError):
    """The request needs a Proxmox cluster and the platform has none configured."""

    status = 503
    code = "proxmox_not_configured"
