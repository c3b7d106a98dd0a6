"""`python -m backend.simulation.fake_proxmox`: a standalone fake cluster to try things by hand, or for a
benchmark to run in a process of its own (bench/bench_provisioning.py)."""
import argparse
import json
import re
import time

from backend.simulation.fake_proxmox.fake import FakeProxmox
from backend.simulation.fake_proxmox.model import Node
from backend.simulation.fake_proxmox.server import RequestHandler


def summary(fake):
    """What the fake did, as one JSON-able dict: every task, requests by endpoint, its own CPU."""
    with fake.lock:
        fake.advance()
        endpoints, polls = {}, {}
        for record in fake.requests:
            upid = re.search(r"UPID:[^/]+", record.path)
            if upid and record.path.endswith("/status"):
                polls[upid.group(0)] = polls.get(upid.group(0), 0) + 1
            path = re.sub(r"UPID:[^/]+", "{upid}", record.path)
            path = re.sub(r"/nodes/[^/]+", "/nodes/{node}", path)
            path = re.sub(r"/(lxc|qemu)/\d+", r"/\1/{vmid}", path)
            key = f"{record.method} {path}"
            endpoints[key] = endpoints.get(key, 0) + 1
        tasks = [{"type": task.type, "id": task.id, "seconds": task.duration, "finished": task.finished,
                  "exitstatus": task.exitstatus, "status_polls": polls.get(task.upid, 0)}
                 for task in fake.tasks.values()]
        return {"tasks": tasks, "requests": len(fake.requests), "endpoints": endpoints,
                "violations": len(fake.schema_violations), "cpu_seconds": round(time.process_time(), 3)}


def main(argv=None):
    """Run a fake cluster (two nodes, a VM template 9000) until interrupted or its --lifetime is over."""
    parser = argparse.ArgumentParser(description="Run a fake Proxmox VE API on 127.0.0.1.")
    parser.add_argument("--task-seconds", type=float, default=2.0)
    parser.add_argument("--agent-delay", type=float, default=3.0)
    parser.add_argument("--lifetime", type=float, default=None,
                        help="exit by itself after this many seconds (default: run until interrupted)")
    parser.add_argument("--summary", action="store_true",
                        help="on exit, print one line 'SUMMARY {json}': tasks, requests by endpoint, own CPU")
    parser.add_argument("--tcp-nodelay", action="store_true",
                        help="send answers without Nagle's delay (headers and body are two writes, so a "
                             "client's delayed ACK otherwise holds every answer for about 40 ms)")
    args = parser.parse_args(argv)
    RequestHandler.disable_nagle_algorithm = args.tcp_nodelay
    fake = FakeProxmox(nodes=[Node("pve1"), Node("pve2")], task_seconds=args.task_seconds,
                       agent_delay=args.agent_delay)
    fake.add_template(9000, node="pve1")
    deadline = None if args.lifetime is None else time.monotonic() + args.lifetime
    with fake:
        print(f"PROXMOX_HOST=127.0.0.1\nPROXMOX_PORT={fake.port}\nPROXMOX_USER=root@pam\n"
              f"PROXMOX_TOKEN_NAME=paas\nPROXMOX_TOKEN_VALUE=secret\nPROXMOX_CA_BUNDLE={fake.ca_bundle_path}",
              flush=True)
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        if args.summary:
            print("SUMMARY " + json.dumps(summary(fake)), flush=True)
        fake.assert_no_violations()
