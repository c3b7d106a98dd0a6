"""What the API and the dashboard both stream: a release's build log as Server-Sent Events."""
import json

from flask import Response, stream_with_context

from backend.schemas.common import dump
from backend.schemas.releases import LogLineOut
from backend.services import history


def release_log_events(deployment_id, release_id, version, *, after=None, max_seconds=1800, keep_going=None):
    """The SSE text of a followed release log: `line` events with their ids (a client resumes after the last it
    saw), keep-alive comments, then `end` with the release's status, or `timeout` after max_seconds; it stops
    without a word when keep_going() turns false (the client's reconnection is then refused)."""
    for kind, item in history.follow_release_log(deployment_id, release_id, version, after=after,
                                                 max_seconds=max_seconds, keep_going=keep_going):
        if kind == "line":
            yield f"id: {item.id}\nevent: line\ndata: {json.dumps(dump(LogLineOut, item))}\n\n"
        elif kind == "keepalive":
            yield ": keep-alive\n\n"
        elif kind == "end":
            yield f"event: end\ndata: {json.dumps({'release': version, 'status': item})}\n\n"
        else:
            yield "event: timeout\ndata: {}\n\n"


def event_stream(events):
    """A text/event-stream response of a generator of SSE text, never cached nor buffered by a proxy."""
    response = Response(stream_with_context(events), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response
