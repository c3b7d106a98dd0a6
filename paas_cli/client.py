"""The platform's REST API over HTTP: JSON requests, its error shape, and Server-Sent Events that resume."""
import json
import time
from dataclasses import dataclass

import requests
import urllib3

from paas_cli.config import check_token

USER_AGENT = "paas-cli"
# A dropped event stream is opened again with Last-Event-ID, this many times in a row at most, this far apart.
RECONNECTS, RECONNECT_SECONDS = 20, 1.0


class ApiError(Exception):
    """The API refused, or could not be reached; worded for the user (message, field errors, request id)."""

    def __init__(self, message, *, status=None, code=None, fields=None, request_id=None):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code
        self.fields, self.request_id = fields or {}, request_id


@dataclass(frozen=True)
class Event:
    name: str
    id: str | None
    data: str

    def json(self):
        return json.loads(self.data) if self.data else {}


class BearerAuth(requests.auth.AuthBase):
    """The token on every request. Set as the session's auth, so that requests never replaces it with a
    ~/.netrc entry for the host (which would also hand that password to the platform)."""

    def __init__(self, token):
        self.token = token

    def __call__(self, request):
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        else:
            request.headers.pop("Authorization", None)
        return request


class Client:
    def __init__(self, url, token=None, *, timeout=30.0, verify=True):
        self.url, self.timeout = url.rstrip("/"), timeout
        if token is not None:
            check_token(token)
        self.session = requests.Session()
        # Given with each request: a session's verify would lose to REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE.
        self.verify = verify
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.auth = BearerAuth(token)

    def _send(self, method, path, *, stream=False, timeout=None, **kwargs):
        url = f"{self.url}/api{path}"
        try:
            # No redirects: a 307 would carry a password or a token's request to wherever it points.
            response = self.session.request(method, url, stream=stream, timeout=timeout or self.timeout,
                                            verify=self.verify, allow_redirects=False, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise ApiError(f"TLS verification failed for {self.url}: {_reason(exc)} "
                           "(give the platform's CA with --ca-bundle or PAAS_CA_BUNDLE)") from None
        except requests.exceptions.Timeout:
            raise ApiError(f"{self.url} did not answer within {timeout or self.timeout:g} s") from None
        except requests.exceptions.ConnectionError as exc:
            raise ApiError(f"cannot reach {self.url}: {_reason(exc)}") from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema):
            raise ApiError(f"not a usable URL: {self.url} (give http:// or https:// and a host)") from None
        except requests.exceptions.RequestException as exc:
            raise ApiError(f"talking to {self.url} failed: {_reason(exc)}") from None
        if 300 <= response.status_code < 400:
            raise ApiError(f"{self.url} answered {response.status_code}, a redirect to "
                           f"{response.headers.get('Location', 'nowhere')}: log in with the address it names",
                           status=response.status_code)
        return response

    def request(self, method, path, *, json_body=None, params=None):
        """The answer's JSON; ApiError for anything but 2xx."""
        response = self._send(method, path, json=json_body, params=params)
        _raise_for(response)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"{self.url} answered {response.status_code} with something that is not JSON; "
                           "is it the platform's URL?", status=response.status_code) from None

    def text(self, path, params=None):
        response = self._send("GET", path, params=params)
        _raise_for(response)
        return response.text

    def get(self, path, **params):
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path, body=None):
        return self.request("POST", path, json_body=body if body is not None else {})

    def put(self, path, body):
        return self.request("PUT", path, json_body=body)

    def patch(self, path, body):
        return self.request("PATCH", path, json_body=body)

    def delete(self, path):
        return self.request("DELETE", path)

    def events(self, path, params=None, last_event_id=None):
        """Server-Sent Events from path, opened again with Last-Event-ID when the connection drops (or the server
        ends the stream with `timeout`), until an `end` event, which is yielded last."""
        failures = 0
        while True:
            # Uncompressed: a proxy that gzips the stream would otherwise hold lines back until a block fills.
            headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                response = self._send("GET", path, params=params, stream=True, timeout=(10, 60), headers=headers)
                _raise_for(response)
                with response:
                    for event in _parse(response):
                        if event.name == "line":
                            failures = 0  # progress; a server's `timeout` event alone is none
                        if event.id:
                            last_event_id = event.id
                        yield event
                        if event.name == "end":
                            return
            except ApiError as exc:
                if exc.status is not None:  # the API said no: trying again would not help
                    raise
                error = exc
            except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                # Dropped while reading (urllib3's own errors come through read1 unwrapped).
                error = ApiError(f"the event stream from {self.url} broke: {_reason(exc)}")
            else:
                error = None  # the server ended the stream (its time limit): carry on from the last event
            failures += 1
            if failures > RECONNECTS:
                raise error or ApiError(f"the event stream from {self.url} kept ending without its end event")
            time.sleep(RECONNECT_SECONDS)


def _lines(response):
    """The response's lines as they arrive. requests' iter_lines waits for a whole chunk_size (or, unchunked, for
    the end of the body); urllib3's read1 hands over whatever one read of the socket brought."""
    pending = b""
    while True:
        chunk = response.raw.read1(65536, decode_content=True)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r").decode("utf-8", "replace")
    if pending:
        yield pending.rstrip(b"\r").decode("utf-8", "replace")


def _parse(response):
    """Events of a text/event-stream response (comments and retry: lines skipped)."""
    name, ident, data = "message", None, []
    for line in _lines(response):
        if not line:
            if data or name != "message":
                yield Event(name, ident, "\n".join(data))
            name, ident, data = "message", None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            ident = value


def _raise_for(response):
    if 200 <= response.status_code < 300:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
    message = error.get("message") if isinstance(error.get("message"), str) else None
    message = message or f"{response.url.split('?')[0]} answered {response.status_code} {response.reason}"
    if response.status_code == 429 and response.headers.get("Retry-After"):
        message += f" (retry after {response.headers['Retry-After']} s)"
    fields = error.get("fields") if isinstance(error.get("fields"), dict) else {}
    raise ApiError(message, status=response.status_code, code=error.get("code"), fields=fields,
                   request_id=error.get("request_id") or response.headers.get("X-Request-ID"))


def _reason(exc):
    """The innermost reason of a requests exception, without the URL and object reprs around it."""
    inner = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    text = str(inner) or inner.__class__.__name__
    for marker in ("] ", "): "):
        if marker in text and len(text) > 120:
            text = text.rsplit(marker, 1)[-1]
    return text.strip(" '\"")[:300]
