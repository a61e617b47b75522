"""Which CPU each process of the Procfile's `web` runs on (WEB_CPU_AFFINITY, Settings.web).

A gthread worker is one CPython process: its threads take turns holding the GIL. Left to the
scheduler, the threads run on every core, and a thread woken on one core (a request whose
answer came in) must win the GIL from a thread running on another: the hand-off crosses cores,
the waiting thread keeps losing it, and requests queue behind those waits while the CPU is far
from busy. Kept on one core, the same threads hand the GIL over where they run (what pinning
bought is measured in bench/RESULTS.md, Intake).

`auto` (the default) pins each worker to one CPU, and the intake writer process (a GIL of its
own: a serving thread and a waker) to another: the writer gets the last CPU the web server may
use, each worker the CPU with the fewest of our processes on it (the fewest workers, then the
lowest, on a tie). With a single CPU allowed nothing is pinned, nor under a CPU quota smaller
than the CPUs the server sees (`placeable`): that is a container sharing the host's CPUs with
others by time, and every one of them pinning to the same lowest CPUs would pile up there.
`off` leaves placement to the operating system: set it where several web servers share a host
without quotas, or where something else already pins. Only Linux has sched_setaffinity;
elsewhere nothing is pinned.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence


def allowed() -> list[int]:
    """The CPUs this process may run on, lowest first; [] where that cannot be set (not Linux)."""
    if not hasattr(os, "sched_getaffinity") or not hasattr(os, "sched_setaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


def cpu_quota(root: str = "/sys/fs/cgroup", own: str = "/proc/self/cgroup") -> float | None:
    """The CPUs' worth of time this process's cgroup may use (cgroup v2 cpu.max, or v1's CFS
    quota and period); None without a quota, or where there are no cgroups to read."""
    try:
        with open(own) as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f if line.count(":") >= 2]
    except OSError:
        return None
    for _, controllers, path in lines:
        try:
            if controllers == "":  # cgroup v2: "0::/path"
                with open(os.path.join(root, path.lstrip("/"), "cpu.max")) as f:
                    quota, period = f.read().split()[:2]
                if quota != "max":
                    return int(quota) / int(period)
            elif "cpu" in controllers.split(","):  # cgroup v1: "N:cpu,cpuacct:/path"
                base = os.path.join(root, controllers, path.lstrip("/"))
                if not os.path.isdir(base):
                    base = os.path.join(root, "cpu", path.lstrip("/"))
                with open(os.path.join(base, "cpu.cfs_quota_us")) as f:
                    quota_us = int(f.read())
                with open(os.path.join(base, "cpu.cfs_period_us")) as f:
                    period_us = int(f.read())
                if quota_us > 0 and period_us > 0:
                    return quota_us / period_us
        except (OSError, ValueError):
            continue
    return None


def placeable(cpus: Sequence[int], quota: float | None) -> list[int]:
    """The CPUs to pin to: `cpus`, unless a quota smaller than them says the host's CPUs are
    shared by time with other containers (then none)."""
    if quota is not None and quota < len(cpus):
        return []
    return list(cpus)


def writer_cpu(cpus: Sequence[int]) -> int | None:
    """The intake writer's CPU: the last allowed one, or None when there is no choice to make."""
    return cpus[-1] if len(cpus) >= 2 else None


def worker_cpu(cpus: Sequence[int], taken: Iterable[int | None], writer: int | None) -> int | None:
    """A new worker's CPU: the allowed one with the fewest of our processes on it (the running
    workers, `taken`, and the writer), then the fewest workers, then the lowest; None when there
    is no choice to make."""
    if len(cpus) < 2:
        return None
    workers = dict.fromkeys(cpus, 0)
    for cpu in taken:
        if cpu in workers:
            workers[cpu] += 1
    return min(cpus, key=lambda cpu: (workers[cpu] + (cpu == writer), workers[cpu], cpu))


def pin(cpu: int | None) -> bool:
    """Keep the calling thread, and every thread and process it starts from now on, on `cpu`.
    False if that could not be done (None, not Linux, or the CPU is not ours any more)."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return False
    return True
