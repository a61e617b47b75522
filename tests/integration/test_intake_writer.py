"""The intake writer process (webhook/writer.py), run for real: `python -m webhook.writer`, with
the web app sending it deliveries over its Unix socket, a real database and a real Redis."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from redis import Redis
from sqlalchemy import func, select

from infra.settings import Settings
from store.models import InboxEvent, WebhookDelivery
from tests.integration.test_webhook_intake import KEY, MAX_BYTES, TENANT, body, connect, event, jobs
from webhook import writer
from webhook.signature import sign
from wsgi import close_app, create_app, runtime

ROOT = Path(__file__).resolve().parents[2]


def listening(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def wait_for(condition, timeout: float = 15.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)


class WriterProcess:
    """`python -m webhook.writer --socket PATH` as gunicorn.conf.py starts it."""

    def __init__(self, path: Path, database_url: str, redis_url: str, log: Path):
        self.path = path
        self.log = log
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "XERO_WEBHOOK_KEY": KEY,
               "WEBHOOK_MAX_BYTES": str(MAX_BYTES)}
        with open(log, "ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "webhook.writer", "--socket", str(path)], cwd=ROOT,
                                            env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: listening(path) or self.process.poll() is not None, what="the writer listening")
        assert self.process.poll() is None, self.output()

    def serving_child(self) -> psutil.Process:
        children: list[psutil.Process] = []

        def found() -> bool:
            children[:] = psutil.Process(self.process.pid).children()
            return len(children) == 1
        wait_for(found, what="one serving child")
        return children[0]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def writer_process(database_url, redis_url, tmp_path):
    started = WriterProcess(tmp_path / "intake.sock", database_url, redis_url, tmp_path / "writer.log")
    yield started
    assert started.stop() == 0, started.output()
    assert not started.path.exists()  # the socket file goes with it


def app_for(database_url: str, redis_url: str, socket_path: Path):
    return create_app(Settings(database_url=database_url, redis_url=redis_url, xero_webhook_key=KEY,
                               webhook_max_bytes=MAX_BYTES, intake_socket=str(socket_path)))


@pytest.fixture
def app(database_url, redis_url, writer_process):
    app = app_for(database_url, redis_url, writer_process.path)
    yield app
    close(app)


def close(app) -> None:
    writer.client(runtime(app)).close()
    close_app(app)


def post(app, raw: bytes, key: str = KEY):
    return app.test_client().post("/webhooks/xero", data=raw, headers={"x-xero-signature": sign(raw, key)},
                                  content_type="application/json")


def events(sessions, state: str | None = None) -> int:
    query = select(func.count()).select_from(InboxEvent)
    if state:
        query = query.where(InboxEvent.state == state)
    with sessions() as s:
        return s.scalar(query)


def test_a_delivery_is_committed_by_the_writer_before_200_and_wakes_the_tenants_sync(app, sessions, redis_url):
    connect(sessions, TENANT)
    response = post(app, body(event(), event()))
    assert response.status_code == 200 and response.data == b""
    assert events(sessions) == 2  # committed before the answer: no waiting here
    redis = Redis.from_url(redis_url)
    try:  # the writer's waker queued the sync and marked the events enqueued, after the answer
        wait_for(lambda: events(sessions, "enqueued") == 2, what="the events marked enqueued")
        assert [job.args[0] for job in jobs(redis)] == [TENANT]
    finally:
        redis.close()
    assert post(app, body(event())).status_code == 200
    assert events(sessions) == 3


def test_a_redelivery_through_the_writer_is_stored_once(app, sessions):
    connect(sessions, TENANT)
    raw = body(event(), event())
    assert post(app, raw).status_code == 200
    assert post(app, raw).status_code == 200
    assert events(sessions) == 2


def test_a_malformed_body_is_kept_for_inspection_and_answered_400(app, sessions):
    assert post(app, b'{"events": "not a list"}').status_code == 400
    with sessions() as s:
        kept = s.scalars(select(WebhookDelivery)).all()
    assert [(d.outcome, d.body) for d in kept] == [("malformed", b'{"events": "not a list"}')]
    assert "'events' is missing or not a list" in kept[0].error
    assert events(sessions) == 0


def test_intent_to_receive_is_answered_200_and_keeps_nothing(app, sessions):
    raw = b'{"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": "S0MErANd0M"}'
    assert post(app, raw).status_code == 200
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


def test_a_bad_signature_is_refused_by_the_web_process_and_never_reaches_the_writer(app, sessions):
    assert post(app, body(event()), key="not-the-key").status_code == 401
    assert events(sessions) == 0


def test_concurrent_web_threads_all_hear_their_own_commit(app, sessions):
    connect(sessions, TENANT)
    raws = [body(event(), event()) for _ in range(120)]
    statuses: list[int] = []
    lock = threading.Lock()

    def send(part: list[bytes]) -> None:
        client = app.test_client()  # this thread's own connection to the writer
        for raw in part:
            answer = client.post("/webhooks/xero", data=raw, headers={"x-xero-signature": sign(raw, KEY)})
            with lock:
                statuses.append(answer.status_code)

    threads = [threading.Thread(target=send, args=(raws[i::12],)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200] * 120
    assert events(sessions) == 240


def test_no_writer_listening_answers_503_and_nothing_is_stored(database_url, redis_url, sessions, tmp_path):
    app = app_for(database_url, redis_url, tmp_path / "nobody.sock")
    try:
        assert post(app, body(event())).status_code == 503
    finally:
        close(app)
    assert events(sessions) == 0


def test_a_database_the_writer_cannot_use_answers_503_and_the_writer_serves_on(redis_url, tmp_path, sessions):
    broken = f"sqlite:///{tmp_path / 'no-such-dir' / 'mirror.db'}"  # cannot be opened
    started = WriterProcess(tmp_path / "broken.sock", broken, redis_url, tmp_path / "broken.log")
    app = app_for(broken, redis_url, started.path)
    try:
        assert post(app, body(event())).status_code == 503
        assert post(app, body(event())).status_code == 503  # the same connection, still served
        assert started.process.poll() is None
    finally:
        close(app)
        assert started.stop() == 0, started.output()
    assert "webhooks not stored" in started.output()


def test_a_serving_child_killed_mid_run_is_replaced_and_the_next_delivery_is_stored(app, sessions, writer_process):
    connect(sessions, TENANT)
    client = app.test_client()  # one thread: its kept connection goes with the killed child
    first = body(event())
    assert client.post("/webhooks/xero", data=first, headers={"x-xero-signature": sign(first, KEY)}).status_code == 200
    child = writer_process.serving_child()
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    second = body(event())  # sent before the next child is up: it waits in the listening socket's backlog
    answer = client.post("/webhooks/xero", data=second, headers={"x-xero-signature": sign(second, KEY)})
    assert answer.status_code == 200
    assert events(sessions) == 2
    assert writer_process.serving_child().pid != child.pid
    assert "intake writer exited; starting another" in writer_process.output()


def test_a_connection_that_does_not_speak_the_protocol_is_closed_and_others_are_served(app, sessions, writer_process):
    stranger = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stranger.settimeout(5)
    stranger.connect(str(writer_process.path))
    stranger.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert stranger.recv(100) == b""  # closed, nothing answered
    stranger.close()
    connect(sessions, TENANT)
    assert post(app, body(event())).status_code == 200
    assert "not our protocol" in writer_process.output()


def test_the_socket_is_for_this_user_only_and_a_second_writer_at_it_is_refused(writer_process, database_url,
                                                                             redis_url, tmp_path):
    assert writer_process.path.stat().st_mode & 0o777 == 0o600
    second = subprocess.run([sys.executable, "-m", "webhook.writer", "--socket", str(writer_process.path)], cwd=ROOT,
                            env={**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url},
                            capture_output=True, text=True, timeout=30)
    assert second.returncode != 0
    assert "already listens" in second.stderr
    assert listening(writer_process.path)  # the first one is untouched


def test_a_socket_file_left_by_a_dead_writer_is_replaced(tmp_path):
    path = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens
    listener = writer.listen(str(path))
    try:
        assert listening(path)
    finally:
        listener.close()


def test_the_writer_stops_by_itself_when_the_process_that_started_it_is_gone(database_url, redis_url, tmp_path):
    path = tmp_path / "orphan.sock"
    starter = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time\n"
         f"w = subprocess.Popen([sys.executable, '-m', 'webhook.writer', '--socket', {str(path)!r}])\n"
         "print(w.pid, flush=True)\ntime.sleep(600)"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}, stdout=subprocess.PIPE,
        text=True)
    try:
        pid = int(starter.stdout.readline())
        wait_for(lambda: listening(path), what="the writer listening")
        supervisor = psutil.Process(pid)
        family = [supervisor, *supervisor.children()]
        starter.kill()  # as a SIGKILLed gunicorn master would be
        starter.wait(10)
        gone, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, f"still running: {alive}"
        assert not path.exists()
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait(10)
        starter.stdout.close()
