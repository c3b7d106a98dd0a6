"""What goes in and out of the fake's request handling: the request as handlers see it, their answers and
errors, the reply the HTTP layer writes, and the records a test can inspect afterwards."""
import json
from dataclasses import dataclass
from urllib.parse import parse_qsl

API_PREFIX = "/api2/json"


class ApiError(Exception):
    """An error answer: HTTP status, reason phrase (the message) and optional per-parameter errors."""

    def __init__(self, status, reason, errors=None):
        """Keep the parts of the answer."""
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.errors = errors


def parameter_error(errors):
    """The 400 the server raises for a parameter problem found by the handler itself."""
    return ApiError(400, "Parameter verification failed.", errors)


@dataclass
class Request:
    """A validated request as the handlers see it."""

    method: str
    path: str
    endpoint: object
    path_values: dict
    params: dict
    user: str | None


@dataclass
class Envelope:
    """A handler result with attributes beside `data` in the body (the task log's `total`)."""

    data: object
    extra: dict


@dataclass
class Reply:
    """What the HTTP layer writes back."""

    status: int
    reason: str
    body: dict
    drop: bool = False


def success_reply(result):
    """The reply for a handler's result: `{"data": ...}`, with an Envelope's attributes beside it."""
    body = {"data": result.data, **result.extra} if isinstance(result, Envelope) else {"data": result}
    return Reply(200, "OK", body)


def error_reply(error):
    """The reply for an ApiError: reason phrase, `data: null`, `message`, maybe `errors`."""
    body = {"data": None, "message": f"{error.reason}\n"}
    if error.errors is not None:
        body["errors"] = error.errors
    return Reply(error.status, error.reason, body)


def parse_params(query, headers, body):
    """Query and body parameters (form-encoded or JSON); a repeated key joins with NUL."""
    pairs = parse_qsl(query, keep_blank_values=True)
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if body and content_type == "application/json":
        decoded = json.loads(body.decode("utf-8"))
        if not isinstance(decoded, dict):
            raise ValueError("JSON body is not an object")
        pairs += [(key, value) for key, value in decoded.items() if value is not None]
    elif body:
        pairs += parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    params = {}
    for key, value in pairs:
        params[key] = f"{params[key]}\0{value}" if key in params else value
    return params


@dataclass
class SchemaViolation:
    """A request the real server would have refused: what was sent and why it is wrong."""

    method: str
    path: str
    params: dict
    errors: dict

    def __str__(self):
        """One line per problem."""
        problems = "; ".join(f"{name}: {message}" for name, message in sorted(self.errors.items()))
        return f"{self.method} {self.path} {self.params!r}: {problems}"


@dataclass
class RequestRecord:
    """A request the fake answered, for tests that look at what the client sent."""

    method: str
    path: str
    params: dict
    status: int
    user: str | None
