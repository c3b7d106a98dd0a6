"""GET /nodes/{node}/tasks/{upid}/status and .../log: a task as the server reports it while it runs and after."""
import time

from backend.simulation.fake_proxmox.protocol import Envelope, parameter_error


def find_task(cluster, request):
    """The task named in the path, visible on that node; 400 'no such task' otherwise."""
    upid = request.path_values["upid"]
    if len(upid.split(":")) != 9 or not upid.startswith("UPID:"):
        raise parameter_error({"upid": "unable to parse worker upid"})
    task = cluster.tasks.get(upid)
    if task is None or task.node != request.path_values["node"] or time.monotonic() < task.visible_at:
        raise parameter_error({"upid": "no such task"})
    return task


def get_task_status(cluster, request):
    """GET /nodes/{node}/tasks/{upid}/status."""
    cluster.online_node(request.path_values["node"])
    task = find_task(cluster, request)
    user, _, token = task.user.partition("!")
    status = {"upid": task.upid, "node": task.node, "pid": task.pid, "pstart": task.pstart,
              "starttime": task.starttime, "type": task.type, "id": task.id, "user": user,
              "status": "stopped" if task.finished else "running"}
    if token:
        status["tokenid"] = token
    if task.finished:
        status["exitstatus"] = task.exitstatus
    return status


def get_task_log(cluster, request):
    """GET /nodes/{node}/tasks/{upid}/log, with start/limit and the `total` attribute."""
    cluster.online_node(request.path_values["node"])
    task = find_task(cluster, request)
    lines = task.log_lines()
    start = int(request.params.get("start", 0))
    limit = int(request.params.get("limit", 50))
    page = [{"n": start + i + 1, "t": text} for i, text in enumerate(lines[start:start + limit])]
    return Envelope(page, {"total": len(lines)})
