"""Helpers for benchmarks: run a child process and report its wall time and peak RSS."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the repository's tests package too (tests/servers.py)
    sys.path.append(str(ROOT))


def measure(cmd: list[str]) -> dict:
    """Run ``cmd``; returns its wall seconds plus the JSON its last stdout line carries (the
    driver scripts report their own phase times and peak RSS there)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-4000:]}")
    result: dict = {"wall_s": round(wall, 2)}
    lines = [line for line in out.strip().splitlines() if line.startswith("{")]
    if lines:
        result.update(json.loads(lines[-1]))
    return result


def peak_rss_mib() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
           f"Python {sys.version.split()[0]}"
