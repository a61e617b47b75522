"""webhook/cpus.py: which CPU each process of the Procfile's web runs on (WEB_CPU_AFFINITY)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.settings import Settings
from webhook import cpus

ROOT = Path(__file__).resolve().parents[2]


def test_the_setting_is_auto_by_default_and_anything_else_but_off_is_refused():
    assert Settings.from_env({}).web.cpu_affinity == "auto"
    assert Settings.from_env({"WEB_CPU_AFFINITY": ""}).web.cpu_affinity == "auto"
    assert Settings.from_env({"WEB_CPU_AFFINITY": " OFF "}).web.cpu_affinity == "off"
    with pytest.raises(RuntimeError, match="WEB_CPU_AFFINITY must be one of auto, off, not 'yes'"):
        Settings.from_env({"WEB_CPU_AFFINITY": "yes"})


def test_one_worker_and_the_writer_get_a_cpu_each():
    writer = cpus.writer_cpu([0, 1])
    assert writer == 1
    assert cpus.worker_cpu([0, 1], [], writer) == 0


def test_workers_go_where_fewest_of_ours_run_the_lowest_cpu_first():
    allowed = [2, 3, 5, 7]  # a cpuset need not start at 0 nor be contiguous
    writer = cpus.writer_cpu(allowed)
    taken: list[int | None] = []
    for _ in range(7):
        taken.append(cpus.worker_cpu(allowed, taken, writer))
    assert writer == 7
    # the writer counts as one of ours; on a tie the CPU with fewer workers
    assert taken == [2, 3, 5, 7, 2, 3, 5]
    # a replacement for the worker that ran on 5 goes back to 5
    survivors = [2, 3, 7, 2, 3, 5]
    assert cpus.worker_cpu(allowed, survivors, writer) == 5


def test_without_processes_in_process_the_workers_spread_over_every_cpu():
    taken: list[int | None] = []
    for _ in range(3):
        taken.append(cpus.worker_cpu([0, 1], taken, None))
    assert taken == [0, 1, 0]


def test_with_one_cpu_nothing_is_pinned():
    assert cpus.writer_cpu([0]) is None
    assert cpus.worker_cpu([0], [], None) is None
    assert cpus.worker_cpu([], [], None) is None
    assert cpus.pin(None) is False


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="only Linux can pin")
def test_pin_keeps_the_process_and_the_threads_it_starts_on_one_cpu():
    allowed = cpus.allowed()
    target = allowed[-1]
    script = (
        "import os, threading; from webhook import cpus\n"
        f"assert cpus.pin({target})\n"
        "seen = []\n"
        "t = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0))); t.start(); t.join()\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        f"    os._exit(0 if os.sched_getaffinity(0) == {{{target}}} else 3)\n"
        "print(sorted(os.sched_getaffinity(0)), sorted(seen[0]), os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == f"[{target}] [{target}] 0"
    assert cpus.allowed() == allowed  # this process was left alone


def test_a_cpu_we_may_not_use_is_not_pinned():
    if not hasattr(os, "sched_setaffinity"):
        assert cpus.pin(0) is False
        return
    assert cpus.pin(max(cpus.allowed()) + 4096) is False


def _cgroup(tmp_path, own: str, files: dict[str, str]) -> tuple[str, str]:
    for name, text in files.items():
        path = tmp_path / "fs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "self-cgroup").write_text(own)
    return str(tmp_path / "fs"), str(tmp_path / "self-cgroup")


def test_a_cgroup_v2_quota_is_read_in_cpus(tmp_path):
    root, own = _cgroup(tmp_path, "0::/web.slice/app\n", {"web.slice/app/cpu.max": "150000 100000\n"})
    assert cpus.cpu_quota(root, own) == 1.5
    root, own = _cgroup(tmp_path, "0::/web.slice/app\n", {"web.slice/app/cpu.max": "max 100000\n"})
    assert cpus.cpu_quota(root, own) is None


def test_a_cgroup_v1_quota_is_read_in_cpus(tmp_path):
    own_lines = "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n"
    root, own = _cgroup(tmp_path, own_lines, {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "50000\n",
                                              "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"})
    assert cpus.cpu_quota(root, own) == 0.5
    root, own = _cgroup(tmp_path, own_lines, {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "-1\n",
                                              "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"})
    assert cpus.cpu_quota(root, own) is None


def test_no_cgroups_no_quota(tmp_path):
    assert cpus.cpu_quota(str(tmp_path / "none"), str(tmp_path / "none" / "cgroup")) is None


def test_under_a_quota_smaller_than_the_cpus_seen_nothing_is_pinned():
    assert cpus.placeable([0, 1, 2, 3], 2.0) == []  # a container sharing a 4-CPU host by time
    assert cpus.placeable([0, 1, 2, 3], 4.0) == [0, 1, 2, 3]
    assert cpus.placeable([0, 1], None) == [0, 1]
