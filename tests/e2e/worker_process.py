"""Start `python -m worker` as production does: its own process group, environment only."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STOP_SECONDS = 15.0  # how long `stop` waits for the worker before it SIGKILLs the group


class WorkerProcess:
    def __init__(self, env: dict[str, str], log: Path, *args: str):
        self.log_path = log
        self.sigkilled = False  # `stop` had to SIGKILL it: the signal it sent was not obeyed in time
        self._log = open(log, "ab")  # noqa: SIM115 (the child writes to it until stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the worker, its scheduler and its work horses: one group
        )

    def kill(self) -> None:
        """SIGKILL the whole group, as an OOM killer or a lost machine would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_SECONDS) -> int:
        """Send `sig` to the group (as a process manager, or Ctrl-C in a terminal, does) and wait
        `timeout` seconds; a worker still running then is SIGKILLed (`sigkilled`). Its exit status."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.sigkilled = True
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if not self._log.closed:
            self._log.close()
        return self.process.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]
