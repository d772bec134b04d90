"""Servers that tests and benchmarks start on 127.0.0.1 themselves and stop: a free port, and
a process in its own session (so that stopping it stops its workers too) that is ready once
a URL of it answers 200."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerProcess:
    """``argv`` run in its own session, stdout and stderr to ``log``."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None,
                 cwd: Path | str | None = None) -> None:
        self.log = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log.read_text(errors="replace")[-chars:]

    def wait_ready(self, url: str, timeout_s: float = 120) -> float:
        """Seconds until ``url`` answers 200; RuntimeError with the log's tail if the process
        exits first or ``timeout_s`` passes."""
        import httpx

        started = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.proc.args[0]} exited with {self.proc.returncode}; "
                                   f"{self.log}:\n{self.log_tail()}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"{url} not ready in {timeout_s:.0f} s; {self.log}:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.3)

    def stop(self) -> None:
        """SIGTERM to the whole group (workers too, even if the parent has exited), SIGKILL
        after 30 s."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:  # the group has gone already
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()
