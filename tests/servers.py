"""Servers that tests and benchmarks start on 127.0.0.1 themselves and stop: a free port, and
a process in its own session (so that stopping it stops its workers too) that is ready once
a URL of it answers 200."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

LOWEST_PORT = 10000


def ephemeral_ports() -> tuple[int, int]:
    """The range the kernel draws outgoing connections' local ports from (Linux's default
    when it cannot be read)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, drawn at random below the kernel's ephemeral range.

    The server binds it a moment later. A port from ``bind((host, 0))`` would come from the
    ephemeral range, which the kernel may hand to any process's outgoing connection in that
    moment (an MLflow or HTTP client of the same test run, say); below it, only a process
    that asks for that very port can take it."""
    low, _ = ephemeral_ports()
    draw = random.SystemRandom()
    for _ in range(200):
        port = draw.randrange(LOWEST_PORT, low) if low > LOWEST_PORT + 1000 else 0
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:  # taken: draw again
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port on {host} in 200 draws from {LOWEST_PORT}..{low - 1}")


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
