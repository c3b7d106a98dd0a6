"""Time to take a snapshot, roll back to it and back a guest up through the platform's Proxmox client, beside the
time the fake Proxmox's task itself takes (its task_seconds): what the platform adds is the request and its
task polling.

    python bench/bench_snapshots.py [--task-seconds 0.5] [--rounds 10]

Figures are medians over alternating rounds on a shared machine: compare the ratios, not the seconds.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.proxmox.client import ProxmoxClient
from backend.simulation.fake_proxmox import FakeProxmox, Node
from backend.simulation.runtime import settings_for

VMID = 101


def timed(action):
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-seconds", type=float, default=0.5, help="how long each fake task runs")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    figures = {"snapshot": [], "rollback": [], "backup": [], "list": []}
    with FakeProxmox(nodes=[Node("pve1")], task_seconds=args.task_seconds) as fake:
        fake.add_guest(VMID, "lxc", node="pve1", status="running")
        client = ProxmoxClient(settings_for(fake, task_timeout=60))
        client.nodes()  # the connection and its TLS handshake, outside the figures
        for round_number in range(args.rounds):
            name = f"bench_{round_number}"
            figures["snapshot"].append(timed(lambda name=name: client.snapshot("pve1", VMID, "lxc", name)))
            figures["rollback"].append(timed(lambda name=name: client.rollback("pve1", VMID, "lxc", name)))
            figures["backup"].append(timed(lambda: client.wait_for_task(client.vzdump("pve1", VMID, "backup"))))
            figures["list"].append(timed(lambda: client.backups("pve1", "backup", VMID)))
            client.delete_snapshot("pve1", VMID, "lxc", name)
    task = args.task_seconds
    print(f"fake task time: {task:.3f} s; {args.rounds} rounds; medians (p90)")
    print(f"{'':<10}{'seconds':>10}{'p90':>10}{'x task':>10}")
    for what, values in figures.items():
        median = statistics.median(values)
        p90 = sorted(values)[max(0, int(len(values) * 0.9) - 1)]
        ratio = f"{median / task:.2f}x" if what != "list" else "-"
        print(f"{what:<10}{median:>10.3f}{p90:>10.3f}{ratio:>10}")
    print("(x task: the platform's time over the task's own: 1.00x would be no overhead at all; a rollback of a "
          "running CT runs its stop and start inside the one task)")


if __name__ == "__main__":
    main()
