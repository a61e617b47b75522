"""`make demo` as a user runs it: `python -m demo` in its own process, on free ports, its state in
a directory of the test's own (DEMO_VAR), never the ports or var/ of a demo someone else runs.

The README's commands against it (var/demo.env sourced), Ctrl-C in under 3 seconds without a
traceback, its state kept across a restart (the API keys, the CRM's links, the pins, and the
changes made in 'Xero', replayed into the re-seeded emulator), `--reset`, and the port check.
"""
from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from infra.redis_server import free_port
from tests.e2e.worker_process import ROOT

READY = "Ctrl-C stops everything"
SMALL = ["--contacts", "40", "--invoices", "150"]  # a small organisation: the demo's setup in seconds
OURS = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "TOKEN_KEYS", "XERO_CLIENT_ID", "XERO_CLIENT_SECRET",
        "XERO_WEBHOOK_KEY", "PUBLIC_URL")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a new shell: none of the test run's database, Redis or secrets."""
    env = {k: v for k, v in os.environ.items() if k not in OURS and not k.startswith(("DEMO_", "XERO_"))}
    return {**env, **extra}


class DemoProcess:
    """`python -m demo`, its output read line by line as it comes."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "demo", *args], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.output.append(line)
            if text in line:
                return
        raise AssertionError(f"no {text!r} within {timeout}s:\n{self.text()}")

    def interrupt(self, timeout: float = 3.0) -> float:
        """Ctrl-C; the seconds it took to exit (fails past `timeout`)."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running {timeout}s after Ctrl-C:\n{self.text()}") from None
        took = time.monotonic() - began
        time.sleep(0.2)  # the reader thread drains the pipe
        self.drain()
        return took

    def drain(self) -> None:
        while not self.lines.empty():
            self.output.append(self.lines.get())

    def text(self) -> str:
        self.drain()
        return "".join(self.output)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def read_env(path: Path) -> dict[str, str]:
    """var/demo.env, as `set -a; . var/demo.env; set +a` would set it."""
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[name] = shlex.split(value)[0]
    return values


def flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def api(base: str, key: str, path: str, method: str = "GET") -> dict:
    request = urllib.request.Request(f"{base}/api/v1{path}", method=method,
                                     headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def emulator_invoices(emulator: str, tenant: str) -> dict[str, tuple]:
    with urllib.request.urlopen(f"{emulator}/_emulator/tenants/{tenant}/snapshot", timeout=30) as answer:
        snapshot = json.loads(answer.read())
    return {i["InvoiceID"]: (i["Status"], str(i["AmountDue"]), str(i["AmountPaid"])) for i in snapshot["Invoices"]}


def wait_until(check, timeout: float, step: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return False


@pytest.fixture
def demo_env(tmp_path) -> dict[str, str]:
    ports = {name: str(free_port()) for name in ("DEMO_PORT", "DEMO_CRM_PORT", "DEMO_EMULATOR_PORT", "DEMO_REDIS_PORT")}
    return clean_env(DEMO_VAR=str(tmp_path / "var"), **ports)


@pytest.fixture
def start_demo(demo_env):
    started: list[DemoProcess] = []

    def start(*args: str) -> DemoProcess:
        demo = DemoProcess(demo_env, *SMALL, *args)
        started.append(demo)
        return demo

    yield start
    for demo in started:
        demo.kill()


def backfilled(env: dict[str, str]) -> bool:
    done = flask(env, "ops", "status", "--json")
    return done.returncode == 0 and all(t["backfill"]["status"] == "done" for t in json.loads(done.stdout)["tenants"])


def test_the_readme_commands_work_against_the_demo_which_stops_fast_and_keeps_its_state(demo_env, start_demo):
    var = Path(demo_env["DEMO_VAR"])
    web = f"http://127.0.0.1:{demo_env['DEMO_PORT']}"
    emulator = f"http://127.0.0.1:{demo_env['DEMO_EMULATOR_PORT']}"
    first = start_demo()
    first.wait_for(READY, 120)
    assert f"set -a; . {var / 'demo.env'}; set +a" in first.text()  # the one line it prints

    demo = read_env(var / "demo.env")
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "TOKEN_KEYS", "DEMO_ADMIN_KEY", "DEMO_READ_KEY",
            "DEMO_WORKSPACE_ID", "DEMO_TENANT_ID"} <= set(demo)
    assert demo["DATABASE_URL"] == f"sqlite:///{var / 'demo.db'}"
    shell = clean_env(**demo)  # a new shell that sourced var/demo.env
    assert wait_until(lambda: backfilled(shell), 60)
    status = flask(shell, "ops", "status", "--json")
    assert status.returncode == 0 and status.stderr == "", status.stderr  # no warning, no traceback
    [tenant] = json.loads(status.stdout)["tenants"]
    assert (tenant["tenant_id"], tenant["connection"], json.loads(status.stdout)["redis"]) == (
        demo["DEMO_TENANT_ID"], "active", "ok")
    table = flask(shell, "ops", "status")
    assert table.returncode == 0 and "Demo workspace" in table.stdout and table.stderr == ""
    keys = flask(shell, "workspace", "keys", "list", "--workspace", demo["DEMO_WORKSPACE_ID"])
    assert keys.returncode == 0 and "admin" in keys.stdout and "read" in keys.stdout, keys.stderr
    assert flask(shell, "ops", "failed").returncode == 0

    # what a demo user makes, which a restart must keep: the deal's links, a pin
    read_key = demo["DEMO_READ_KEY"]
    deal = "/deals/deal-1/invoices?view=all&type=all&per_page=50"
    linked = {i["invoice_id"] for i in api(web, read_key, deal)["invoices"]}
    assert linked
    pinned = api(web, read_key, "/contacts/crm-contact-1/invoices")["invoices"][0]["invoice_id"]
    api(web, read_key, f"/contacts/crm-contact-1/pins/{pinned}", method="PUT")

    # changes in 'Xero' (the demo's activity), each journalled for a restart to make again
    journal = var / "demo-activity.jsonl"
    made = len(journal.read_text().splitlines()) if journal.exists() else 0
    assert wait_until(lambda: journal.exists() and len(journal.read_text().splitlines()) > made, 20, 0.05)
    before = emulator_invoices(emulator, demo["DEMO_TENANT_ID"])  # the next change is 3 s or more away

    took = first.interrupt(timeout=3.0)
    output = first.text()
    assert first.process.returncode == 0, output
    assert "Traceback" not in output, output
    assert "demo stopped" in output
    for log in var.glob("demo-*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log
    print(f"\nCtrl-C to exit: {took:.2f}s")
    assert (var / "demo.db").exists() and not (var / "demo.pid").exists()

    second = start_demo("--no-activity")
    second.wait_for(READY, 120)
    assert "Kept" in second.text()
    assert read_env(var / "demo.env")["DEMO_READ_KEY"] == read_key  # the key printed the first time still works
    assert {i["invoice_id"] for i in api(web, read_key, deal)["invoices"]} == linked
    pins = api(web, read_key, "/contacts/crm-contact-1/invoices?view=pinned")["invoices"]
    assert [p["invoice_id"] for p in pins] == [pinned]
    # the re-seeded emulator made the journalled changes again, under the same ids
    assert emulator_invoices(emulator, demo["DEMO_TENANT_ID"]) == before
    assert flask(shell, "ops", "status").returncode == 0
    assert second.interrupt(timeout=3.0) < 3.0
    assert "Traceback" not in second.text()

    reset = subprocess.run([sys.executable, "-m", "demo", "--reset"], cwd=ROOT, env=demo_env,
                           capture_output=True, text=True, timeout=30)
    assert reset.returncode == 0, reset.stderr
    assert list(var.glob("demo*")) == []


def test_a_taken_port_is_named_with_what_holds_it_and_the_demo_starts_nothing(demo_env):
    var = Path(demo_env["DEMO_VAR"])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(demo_env["DEMO_EMULATOR_PORT"])))
        holder.listen()
        done = subprocess.run([sys.executable, "-m", "demo", *SMALL], cwd=ROOT, env=demo_env,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    port = demo_env["DEMO_EMULATOR_PORT"]
    assert f"port {port} (the Xero emulator) is taken by pid {os.getpid()}" in done.stderr, done.stderr
    assert "DEMO_EMULATOR_PORT=" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert [p.name for p in var.glob("demo*")] == []  # no database, no Redis, no emulator started


def test_reset_refuses_while_the_demo_runs(demo_env, start_demo):
    demo = start_demo("--no-activity")
    demo.wait_for(READY, 120)
    reset = subprocess.run([sys.executable, "-m", "demo", "--reset"], cwd=ROOT, env=demo_env,
                           capture_output=True, text=True, timeout=30)
    assert reset.returncode == 1 and "a demo is running" in reset.stderr
    assert (Path(demo_env["DEMO_VAR"]) / "demo.env").exists()
    again = subprocess.run([sys.executable, "-m", "demo"], cwd=ROOT, env=demo_env,
                           capture_output=True, text=True, timeout=30)
    assert again.returncode == 1 and "a demo is already running" in again.stderr
