"""The Procfile's `web` line, run as a process manager runs it: gunicorn with gunicorn.conf.py."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from sqlalchemy import func, select

from infra.redis_server import free_port
from store.models import InboxEvent
from tests.integration.test_webhook_intake import TENANT, body, connect, event
from webhook.signature import sign

ROOT = Path(__file__).resolve().parents[2]
KEY = "procfile-webhook-key"
# What production (the Procfile's APP_ENV=production) insists on, so that the web line starts.
PRODUCTION = {
    "SECRET_KEY": "procfile-secret-key-procfile-secret-key-0123456789",
    "PUBLIC_URL": "https://mirror.example.com",
    "EMBED_FRAME_ANCESTORS": "https://crm.example.com",
    "METRICS_TOKEN": "procfile-metrics-token-procfile-metrics-token-0123",
}


def web_command() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise AssertionError("the Procfile has no web line")


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def deliver(port: int, raw: bytes) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/xero", data=raw, method="POST",
                                     headers={"x-xero-signature": sign(raw, KEY)})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return answer.status


@contextmanager
def running_web(database_url: str, redis_url: str, log: Path, **extra: str) -> Iterator[tuple[int, bytes]]:
    """The Procfile's web line, in a session of its own, output to `log`: its port and the body
    of its first 200 from /healthz; stopped with SIGTERM to its process group on the way out."""
    port = free_port()
    env = {**os.environ, **PRODUCTION, "PORT": str(port), "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "XERO_WEBHOOK_KEY": KEY, "WEB_THREADS": "4",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **extra}
    with open(log, "wb") as out:
        web = subprocess.Popen(["bash", "-c", web_command()], cwd=ROOT, env=env, stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        status, text = None, b""
        while time.monotonic() < deadline and web.poll() is None:
            try:
                status, text = get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200, log.read_text()[-3000:]
        yield port, text
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)


def test_the_procfile_web_line_serves_with_its_gunicorn_settings(database_url, redis_url, sessions, tmp_path):
    connect(sessions, TENANT)
    log = tmp_path / "web.log"
    with running_web(database_url, redis_url, log) as (port, health):
        assert json.loads(health) == {"ok": True, "database": "ok", "redis": "ok"}
        raw = json.dumps({"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": "x"}).encode()
        assert deliver(port, raw) == 200
        assert deliver(port, body(event(), event())) == 200  # committed by the intake writer process before the 200
        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(InboxEvent)) == 2
    output = log.read_text()
    assert "Using worker: gthread" in output, output[-3000:]  # the worker class of gunicorn.conf.py
    frozen = re.search(r"(\d+) objects frozen out of the garbage collector's sight", output)
    assert frozen and int(frozen.group(1)) > 10_000, output[-3000:]  # post_worker_init ran, after the app was built
    assert '"POST /webhooks/xero HTTP/1.1" 200' in output  # the access log, on standard output
    writer = re.search(r"intake writer \(pid (\d+)\) listening at (\S+)", output)
    assert writer, output[-3000:]  # on_starting started it before the workers
    assert not Path(writer.group(2)).parent.exists()  # stopped with the master, its socket and directory removed
    assert not psutil.pid_exists(int(writer.group(1))) or psutil.Process(int(writer.group(1))).status() == "zombie"


def test_intake_writer_in_process_leaves_the_commits_to_the_workers(database_url, redis_url, sessions, tmp_path):
    connect(sessions, TENANT)
    log = tmp_path / "web.log"
    with running_web(database_url, redis_url, log, INTAKE_WRITER="in-process") as (port, _health):
        assert deliver(port, body(event())) == 200
        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(InboxEvent)) == 1
    output = log.read_text()
    assert "each worker commits its own deliveries" in output
    assert "intake writer (pid" not in output


def _pinned_processes(output: str) -> dict[int, int]:
    """pid -> the CPU gunicorn.conf.py says it pinned it to, for the workers and the writer."""
    found = {}
    for match in re.finditer(r"\[(\d+)\] \[INFO\] worker pinned to CPU (\d+)", output):
        found[int(match.group(1))] = int(match.group(2))
    writer = re.search(r"intake writer \(pid (\d+)\) listening at \S+, on CPU (\d+)", output)
    if writer:
        found[int(writer.group(1))] = int(writer.group(2))
    return found


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="pinning needs Linux and two CPUs")
def test_each_worker_and_the_intake_writer_run_on_a_cpu_of_their_own(database_url, redis_url, tmp_path):
    allowed = sorted(os.sched_getaffinity(0))
    log = tmp_path / "web.log"
    with running_web(database_url, redis_url, log, WEB_CONCURRENCY="2"):
        deadline = time.monotonic() + 15
        while len(pinned := _pinned_processes(log.read_text())) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(pinned) == 3, log.read_text()[-3000:]  # two workers and the writer
        for pid, cpu in pinned.items():  # the kernel agrees, for every thread and the writer's serving child
            process = psutil.Process(pid)
            for member in [process, *process.children(recursive=True)]:
                for thread in member.threads():
                    assert psutil.Process(thread.id).cpu_affinity() == [cpu], (member.cmdline(), thread.id)
        # the writer on the last CPU, the workers on the first two (with 2 CPUs: one beside the writer)
        assert sorted(pinned.values()) == sorted([allowed[0], allowed[1], allowed[-1]])


def test_web_cpu_affinity_off_leaves_placement_to_the_system(database_url, redis_url, tmp_path):
    log = tmp_path / "web.log"
    with running_web(database_url, redis_url, log, WEB_CPU_AFFINITY="off"):
        output = log.read_text()
        worker = re.search(r"Booting worker with pid: (\d+)", output)
        writer = re.search(r"intake writer \(pid (\d+)\) listening at \S+\n", output)
        assert worker and writer, output[-3000:]
        for pid in (int(worker.group(1)), int(writer.group(1))):
            assert psutil.Process(pid).cpu_affinity() == sorted(os.sched_getaffinity(0))
    assert "pinned" not in log.read_text()
