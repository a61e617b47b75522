"""The intake writer process: where a web host's webhook deliveries are committed.

A web process verifies a delivery's signature and hands the signed body to this process over a
Unix socket (INTAKE_SOCKET), then waits for the answer: 200 once the events are committed, 400
for a malformed body (kept for inspection), 503 when the database failed (Xero delivers again).
One thread here reads every delivery that came in from every web thread since the last commit,
parses them, commits them in one transaction (webhook.batcher.Intake, driven) and answers each.
The waker thread wakes the tenants' syncs after the commit, as in a web process.

Why a process: one CPython process runs one thread at a time. In the web process the commit's
Python work (the driver, SQLAlchemy, the hand-off to a writer thread and back) took turns with
the request threads, and a delivery cost twice a bare endpoint's CPU there. Here it runs on a
core of its own, the web process pays one socket round trip, and on SQLite one process per host
takes the write lock for webhooks however many web processes it runs.

`python -m webhook.writer --socket PATH` listens, then serves in a forked child: if that child
dies it is forked again within a second on the same listening socket, so web threads that
connect meanwhile wait in its backlog instead of being refused. It stops on SIGTERM or SIGINT,
and by itself when the process that started it (gunicorn's master) is gone. gunicorn.conf.py
starts it for the Procfile's `web`; INTAKE_WRITER=in-process there leaves writing to the web
processes' own threads.

The protocol: a request is a 16-byte header, b"XMI1", the body's length (uint32, network
order) and when the web process received it (float64, POSIX seconds), then the body. An answer
is a 4-byte header, the HTTP status and the length of a message (uint16 each), then the message
(UTF-8; why a 503 is one). A web thread keeps its connection for its next request and sends one
request at a time.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone

from infra import logs
from infra.settings import from_env_or_exit
from services.runtime import Runtime
from webhook import batcher, cpus

log = logging.getLogger(__name__)

REQUEST = struct.Struct("!4sId")  # magic, body length, received at
ANSWER = struct.Struct("!HH")  # HTTP status, message length
MAGIC = b"XMI1"
BACKLOG = 512  # connections a restart may keep waiting
RESTART_AFTER = 1.0  # seconds between a serving child's death and the next one
WATCH_EVERY = 0.5  # seconds between looks at whether the parent is still there
SWITCH_INTERVAL = 0.001  # seconds (gunicorn.conf.py sets the same in the web workers)


class WriterUnavailable(batcher.NotStored):
    """The intake writer process could not be reached, or did not answer in time."""


# --- the web process's side -------------------------------------------------------------------


class Client:
    """A web process's way to the writer: one connection per thread, kept between requests."""

    def __init__(self, path: str, timeout: float = batcher.ANSWER_WITHIN):
        self.path = path
        self.timeout = timeout
        self._local = threading.local()
        self._open: set[socket.socket] = set()  # every thread's, for close()
        self._open_lock = threading.Lock()

    def keep(self, body: bytes, received_at: float) -> int:
        """Have the writer keep a signed `body`: the HTTP status to answer (200 or 400). Raises
        NotStored when it was not committed, WriterUnavailable when the writer was not reached.

        A connection the writer closed since its last use (a restart) is tried once more on a
        new one. If the first attempt was committed after all, the second is a duplicate: the
        inbox keeps every event once."""
        frame = REQUEST.pack(MAGIC, len(body), received_at) + body
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            fresh = conn is None
            try:
                if conn is None:
                    conn = self._local.conn = self._connect()
                conn.sendall(frame)
                status, message = _read_answer(conn)
            except OSError as error:  # refused, reset, closed, timed out
                self._drop()
                if attempt == 1 and not fresh and not isinstance(error, TimeoutError):
                    continue
                raise WriterUnavailable(f"intake writer at {self.path}: {error or type(error).__name__}") from error
            if status == 503:
                raise batcher.NotStored(message)
            return status
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every thread's connection (a thread that uses the client again opens another)."""
        with self._open_lock:
            conns, self._open = self._open, set()
        for conn in conns:
            conn.close()

    def _connect(self) -> socket.socket:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(self.timeout)
        try:
            conn.connect(self.path)
        except BaseException:
            conn.close()
            raise
        with self._open_lock:
            self._open.add(conn)
        return conn

    def _drop(self) -> None:
        conn, self._local.conn = getattr(self._local, "conn", None), None
        if conn is not None:
            with self._open_lock:
                self._open.discard(conn)
            conn.close()


def _read_answer(conn: socket.socket) -> tuple[int, str]:
    data = b""
    while True:
        if len(data) >= ANSWER.size:
            status, length = ANSWER.unpack_from(data)
            if len(data) >= ANSWER.size + length:
                return status, data[ANSWER.size:ANSWER.size + length].decode("utf-8", "replace")
        part = conn.recv(4096)
        if not part:
            raise ConnectionResetError("the intake writer closed the connection")
        data += part


_clients: dict[tuple[int, str], Client] = {}
_clients_lock = threading.Lock()


def client(runtime: Runtime) -> Client:
    """This process's client of the writer at the runtime's INTAKE_SOCKET (a forked child gets its own)."""
    key = (os.getpid(), runtime.settings.intake_socket)
    found = _clients.get(key)
    if found is None:
        with _clients_lock:
            found = _clients.setdefault(key, Client(runtime.settings.intake_socket))
    return found


# --- the writer's side ------------------------------------------------------------------------


class _Peer:
    """One web thread's connection: what it sent that is not yet a whole request."""

    __slots__ = ("conn", "pending")

    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.pending = bytearray()


class Server:
    """The serving loop (one thread): read every request ready, commit them together, answer."""

    def __init__(self, listener: socket.socket, runtime: Runtime, parent_pid: int | None = None):
        self._listener = listener
        self._runtime = runtime
        self._intake = batcher.Intake(runtime, driven=True)
        self._limit = runtime.settings.webhook_max_bytes
        self._parent_pid = parent_pid
        self._selector = selectors.DefaultSelector()
        self._stopping = False

    def stop(self, *_args) -> None:
        self._stopping = True

    def serve(self) -> None:
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        _ = self._runtime.engine  # built now: what it is made of is frozen below
        gc.collect()
        gc.freeze()  # as gunicorn.conf.py does for the web workers: no full collection walks the libraries
        sys.setswitchinterval(SWITCH_INTERVAL)  # the waker hands the GIL back soon after a reply can go out
        last_batch = last_watch = time.monotonic()
        log.info("intake writer serving", extra={"pid": os.getpid(), "dialect": self._runtime.engine.dialect.name})
        try:
            while not self._stopping:
                requests: list[tuple[_Peer, bytes, float]] = []
                for key, _ in self._selector.select(batcher.WAKE_EVERY):
                    if key.data is None:
                        self._accept()
                    else:
                        self._read(key.data, requests)
                now = time.monotonic()
                if requests:
                    self._store(requests)
                    last_batch = now
                else:
                    self._intake.tick(now - last_batch)
                if self._parent_pid is not None and now - last_watch >= WATCH_EVERY:
                    last_watch = now
                    if os.getppid() != self._parent_pid:
                        log.warning("intake writer's parent is gone; stopping")
                        break
        finally:
            for key in list(self._selector.get_map().values()):
                if key.data is not None:
                    key.data.conn.close()
            self._selector.close()
            if not self._intake.settle(batcher.EXIT_GRACE):
                log.warning("intake writer stopped with wakes unfinished; the relay will wake them")
            self._runtime.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of file descriptors, say: the rest wait in the backlog
                log.warning("intake writer could not accept a connection", extra={"error": str(error)})
                return
            conn.setblocking(False)
            peer = _Peer(conn)
            self._selector.register(conn, selectors.EVENT_READ, peer)

    def _read(self, peer: _Peer, requests: list[tuple[_Peer, bytes, float]]) -> None:
        try:
            data = peer.conn.recv(262_144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the web thread went away
            self._close(peer)
            return
        pending = peer.pending
        pending += data
        while len(pending) >= REQUEST.size:
            magic, length, received_at = REQUEST.unpack_from(pending)
            if magic != MAGIC or length > self._limit:
                log.warning("intake writer refused a connection: not our protocol",
                            extra={"magic": magic.hex(), "length": length})
                self._close(peer)
                return
            if len(pending) < REQUEST.size + length:
                return
            requests.append((peer, bytes(pending[REQUEST.size:REQUEST.size + length]), received_at))
            del pending[:REQUEST.size + length]

    def _store(self, requests: Sequence[tuple[_Peer, bytes, float]]) -> None:
        deliveries = [batcher.delivery_for(body, datetime.fromtimestamp(at, timezone.utc)) for _, body, at in requests]
        kept = [d for d in deliveries if d is not None]
        outcomes = iter(self._intake.store_now(kept) if kept else ())
        for (peer, _, _), delivery in zip(requests, deliveries):
            outcome = next(outcomes) if delivery is not None else None
            if isinstance(outcome, BaseException):  # the intake has logged why
                self._answer(peer, 503, batcher.describe(outcome))
            else:
                try:
                    status = batcher.answer(self._runtime, delivery, outcome)
                except Exception:
                    log.exception("intake writer could not count a delivery")
                    status = 400 if delivery is not None and delivery.malformed else 200
                self._answer(peer, status, "")

    def _answer(self, peer: _Peer, status: int, message: str) -> None:
        text = message.encode("utf-8", "replace")[:2000]
        frame = ANSWER.pack(status, len(text)) + text
        try:
            sent = peer.conn.send(frame)
            if sent < len(frame):  # never with one request at a time in flight; wait for room, briefly
                peer.conn.settimeout(1.0)
                peer.conn.sendall(frame[sent:])
                peer.conn.setblocking(False)
        except (BlockingIOError, OSError):  # the web thread sees a broken connection and answers 503
            self._close(peer)

    def _close(self, peer: _Peer) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(peer.conn)
        peer.conn.close()


# --- the process: listen, then serve in a child that is replaced if it dies --------------------


def listen(path: str) -> socket.socket:
    """A listening Unix socket at `path`, readable and writable by this user only. A socket
    file left by a writer that died is replaced; one that still answers is an error."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except FileNotFoundError:
        pass
    except OSError:
        os.unlink(path)  # nobody listens there any more
    else:
        raise SystemExit(f"an intake writer already listens at {path}")
    finally:
        probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old_mask)
    listener.listen(BACKLOG)
    return listener


def main(argv: list[str] | None = None) -> int:
    settings = from_env_or_exit()  # a bad setting stops us here (one line), before anything listens
    parser = argparse.ArgumentParser(prog="python -m webhook.writer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--socket", default=settings.intake_socket,
                        help="the Unix socket to listen on (default: INTAKE_SOCKET)")
    parser.add_argument("--cpu", type=int, default=None,
                        help="run on this CPU only (gunicorn.conf.py gives it one: webhook/cpus.py)")
    args = parser.parse_args(argv)
    if not args.socket:
        parser.error("--socket or INTAKE_SOCKET is required")
    logs.configure()
    if args.cpu is not None:  # before the serving child is forked: it and its threads inherit it
        if cpus.pin(args.cpu):
            log.info("intake writer pinned", extra={"cpu": args.cpu})
        else:
            log.warning("intake writer could not be pinned; it runs where the system puts it", extra={"cpu": args.cpu})
    listener = listen(args.socket)
    parent = os.getppid()
    stopping = False
    child = 0

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            child = os.fork()
            if child == 0:  # the serving child
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                server = Server(listener, Runtime(settings), parent_pid=os.getppid())
                signal.signal(signal.SIGTERM, server.stop)
                signal.signal(signal.SIGINT, server.stop)
                code = 0
                try:
                    server.serve()
                except BaseException:
                    log.exception("intake writer failed")
                    code = 1
                logging.shutdown()
                os._exit(code)
            status = _wait(child, parent, lambda: stopping)
            child = 0
            if stopping:
                break
            if status is None:  # our parent is gone: so is the web server we wrote for
                break
            log.error("intake writer exited; starting another", extra={"status": status})
            time.sleep(RESTART_AFTER)
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.socket)
    return 0


def _wait(child: int, parent: int, stopping) -> int | None:
    """Wait for `child` to exit (its wait status); if our `parent` goes first, stop the child
    and return None."""
    while True:
        try:
            pid, status = os.waitpid(child, os.WNOHANG)
        except ChildProcessError:
            return 0
        if pid:
            return status
        if os.getppid() != parent and not stopping():
            os.kill(child, signal.SIGTERM)
            os.waitpid(child, 0)
            return None
        time.sleep(WATCH_EVERY / 5)


if __name__ == "__main__":
    sys.exit(main())
