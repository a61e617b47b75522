"""gunicorn's settings for the `web` process (the Procfile's), from Settings (its `web`).

gthread workers, and beside them the intake writer process (webhook/writer.py), which commits
the webhook deliveries of every worker: the master starts it before the first worker and stops
it after the last. INTAKE_WRITER=in-process leaves the commits to each worker's own writer
thread instead (webhook/batcher.py).

Its logs carry no credential: `RedactingLogger` blanks, in the access log and the error log
alike, the values of URL parameters named like a secret (the widget's legacy `?token=`, an
admin link's `?ticket=`, OAuth's `?code=` and `&state=`), Bearer strings and JWTs, and any
header atom such as `%({authorization}i)s` or `%({cookie}i)s` a custom format might name.
"""
import contextlib
import gc
import os
import socket
import subprocess
import sys
import tempfile
import time

from gunicorn.glogging import Logger, SafeAtoms

from infra import logs, redact
from infra.settings import from_env_or_exit
from webhook import cpus

_settings = from_env_or_exit()  # the master's; a refused setting stops the server (one line) before it starts
worker_class = "gthread"
workers = _settings.web.workers
threads = _settings.web.threads
bind = f"0.0.0.0:{_settings.web.port}"
accesslog = _settings.web.access_log  # WEB_ACCESS_LOG set empty: no access log


class RedactedAtoms(SafeAtoms):
    """The access log's atoms, each scrubbed as the format reads it."""

    def __getitem__(self, name):
        value = super().__getitem__(name)
        if not isinstance(value, str):
            return value
        name = name.lower()
        if name in ("q", "{query_string}e"):
            return redact.query(value)
        if name.startswith("{") and redact.SECRET_HEADER.search(name):
            return redact.REDACTED
        return redact.url(value)  # %(r)s, %(f)s (a Referer), %({raw_uri}e)s ...


class RedactingLogger(Logger):
    """gunicorn's logger, with every credential blanked before a line is written."""

    atoms_wrapper_class = RedactedAtoms

    def setup(self, cfg):
        super().setup(cfg)
        # The access log's lines are made of RedactedAtoms alone, each scrubbed as it is read, so
        # they need no second pass on every request; the error log's free text does ("Error
        # handling request GET /x?ticket=...").
        if not any(isinstance(f, logs.Redact) for f in self.error_log.filters):
            self.error_log.addFilter(logs.Redact())


logger_class = RedactingLogger

SWITCH_INTERVAL = 0.001  # seconds: sys.setswitchinterval in every worker (CPython's default is 0.005)
WRITER_START_SECONDS = 30  # how long the intake writer may take to listen
_writer = None
_writer_dir = None  # the private directory made for its socket, removed on exit
_cpus: list[int] = []  # the CPUs processes are pinned to (WEB_CPU_AFFINITY, webhook/cpus.py); [] for none
_writer_cpu = None  # the intake writer's


def on_starting(server):
    """Start the intake writer and tell the workers (forked after this) where it listens."""
    global _writer, _writer_dir, _cpus, _writer_cpu
    web = _settings.web
    _cpus = cpus.placeable(cpus.allowed(), cpus.cpu_quota()) if web.cpu_affinity == "auto" else []
    if web.intake_writer == "in-process":
        os.environ.pop("INTAKE_SOCKET", None)  # the workers, forked after this, must not look for a writer
        server.log.info("intake: each worker commits its own deliveries (INTAKE_WRITER=in-process)")
        return
    path = _settings.intake_socket
    if not path:
        _writer_dir = tempfile.mkdtemp(prefix="xm-intake-")  # 0700: only this user reaches the socket
        path = os.path.join(_writer_dir, "intake.sock")
    # a session of its own: a signal to the web server's process group leaves it serving the
    # workers while they finish; on_exit stops it after them
    _writer_cpu = cpus.writer_cpu(_cpus)
    argv = [sys.executable, "-m", "webhook.writer", "--socket", path]
    if _writer_cpu is not None:
        argv += ["--cpu", str(_writer_cpu)]
    _writer = subprocess.Popen(argv, start_new_session=True)
    deadline = time.monotonic() + WRITER_START_SECONDS
    while not _listening(path):
        if _writer.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the intake writer did not start (exit status {_writer.poll()}); see its log above")
        time.sleep(0.05)
    os.environ["INTAKE_SOCKET"] = path
    server.log.info("intake writer (pid %d) listening at %s%s", _writer.pid, path,
                    "" if _writer_cpu is None else f", on CPU {_writer_cpu}")


def pre_fork(server, worker):
    """Choose the new worker's CPU (in the master, which knows where the others run)."""
    worker.xm_cpu = cpus.worker_cpu(_cpus, [getattr(w, "xm_cpu", None) for w in server.WORKERS.values()],
                                    _writer_cpu)


def post_fork(server, worker):
    """Pin the worker to its CPU before it starts a thread: every thread it starts stays there."""
    cpu = getattr(worker, "xm_cpu", None)
    if cpus.pin(cpu):
        worker.log.info("worker pinned to CPU %d (WEB_CPU_AFFINITY=auto)", cpu)


def on_exit(server):
    if _writer is not None and _writer.poll() is None:
        _writer.terminate()
        try:
            _writer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _writer.kill()
    if _writer_dir is not None:
        with contextlib.suppress(OSError):
            os.rmdir(_writer_dir)  # empty once the writer has removed its socket


def _listening(path):
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def post_worker_init(worker):
    """Move everything the app was built from out of the garbage collector's sight.

    Those objects live as long as the worker, yet every full collection walked them all: about
    120,000 objects, a 60 ms pause in the middle of requests, several times a minute under load.
    Frozen, a full collection walks only what requests create.

    And a thread waiting for the GIL (a request whose answer just came in) asks the running one
    to give it up after 1 ms instead of CPython's 5: under load, requests no longer queue in
    5 ms steps behind whichever thread holds it (p99 at 80% of the maximum, bench/RESULTS.md).
    """
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL)
    worker.log.info("%d objects frozen out of the garbage collector's sight", gc.get_freeze_count())
