"""GET /nodes/{node}/{kind}/{vmid}/rrddata: a guest's statistics as its RRD keeps them.

As PVE::RRD::create_rrd_data reads a guest's pve2-vm RRD: `count` points `step` seconds apart, the last one
ending at the latest multiple of step; a point stands for [time, time + step), consolidated by AVERAGE or MAX.
A point from before the guest existed carries `time` alone (the RRD has nothing there, and the server leaves
undefined values out).

The figures are made up, deterministically: from the guest's configured cores, memory and root disk, the part
of the point's interval it ran (a stopped guest uses no CPU, memory or I/O; the max* figures stay) and slow
waves of the clock with some noise per point, phased per guest, so that a graph of them looks alive and asking
twice gives the same answer.

The real handler reads no config: for a vmid without an RRD file it fails in RRDs::fetch (500 "RRD error: ...").
The fake answers an unknown guest as its other guest endpoints do (500 "Configuration file ... does not exist").
"""
import hashlib
import math
import time

# timeframe: (seconds per point, points), the RRAs of PVE's pve2-vm RRD files.
TIMEFRAMES = {"hour": (60, 70), "day": (30 * 60, 70), "week": (3 * 3600, 70), "month": (12 * 3600, 70),
              "year": (7 * 86400, 70)}
DAY_SECONDS = 86400
WAVE_SECONDS = 5400
# figure: (low, high) of a running guest's level, per second (rates in bytes/s, cpu as a fraction of its cores).
RATES = {"cpu": (0.01, 0.35), "netin": (300.0, 60_000.0), "netout": (500.0, 150_000.0),
         "diskread": (0.0, 40_000.0), "diskwrite": (2_000.0, 80_000.0)}
MEMORY_SHARE = (0.25, 0.7)  # of maxmem
DISK_SHARE = (0.15, 0.25)  # of a container's root disk (Proxmox knows no VM's disk use: 0)
MAX_PEAK = 1.35  # how far above its average a figure's maximum over a point goes


def rrd_data(cluster, request, kind):
    """GET /nodes/{node}/{kind}/{vmid}/rrddata?timeframe=...&cf=AVERAGE|MAX."""
    guest = cluster.guest_in_path(request, kind)
    params = request.params
    return guest_points(guest, params["timeframe"], params.get("cf") or "AVERAGE", time.time())


def guest_points(guest, timeframe, cf, now):
    """The points of a timeframe as the server would give them at wall-clock time now."""
    step, count = TIMEFRAMES[timeframe]
    end = step * int(now // step)
    return [guest_point(guest, end - (count - index) * step, step, cf) for index in range(count)]


def guest_point(guest, start, step, cf):
    """One point: [start, start + step) of the guest's life."""
    point = {"time": start}
    if start + step <= guest.created_at:
        return point
    ran = guest.seconds_running(start, start + step) / step
    if cf == "MAX":
        share, peak = (1.0 if ran > 0 else 0.0), MAX_PEAK
    else:
        share, peak = ran, 1.0

    def level(figure, low, high):
        return share * (low + (high - low) * min(1.0, peak * wander(guest.vmid, figure, start, step)))

    point.update({name: round(level(name, *bounds), 6 if name == "cpu" else 2) for name, bounds in RATES.items()})
    point.update({
        "maxcpu": guest.cores,
        "maxmem": guest.maxmem,
        "mem": round(guest.maxmem * level("mem", *MEMORY_SHARE), 2),
        "maxdisk": guest.maxdisk,
        "disk": round(guest.maxdisk * level("disk", *DISK_SHARE), 2) if guest.kind == "lxc" else 0,
    })
    return point


def wander(vmid, figure, start, step):
    """A level in [0, 1] for a figure over one point: a daily wave, a faster one and noise."""
    phase = 2 * math.pi * noise(vmid, figure, "phase")
    middle = start + step / 2
    daily = 0.5 + 0.5 * math.sin(2 * math.pi * middle / DAY_SECONDS + phase)
    faster = 0.5 + 0.5 * math.sin(2 * math.pi * middle / WAVE_SECONDS + 2 * phase)
    return 0.55 * daily + 0.25 * faster + 0.2 * noise(vmid, figure, start, step)


def noise(*parts):
    """A number in [0, 1) fixed by parts."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64
