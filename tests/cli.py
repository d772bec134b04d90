"""``growth`` as a user runs it: a subprocess in a folder of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_growth(*args: str, cwd: Path, env: dict[str, str] | None = None,
               timeout: float = 540) -> subprocess.CompletedProcess:
    """``python -m growth ARGS`` in ``cwd``, output captured. BentoML's store is
    ``cwd/bentoml`` (never the repository's, whose ``growthloop:latest`` a developer serves,
    nor the store the serving tests set for the session) and no ``GROWTH_BUNDLE`` is
    inherited; ``env`` adds to or overrides that. The timeout leaves pytest's 600 s to report
    a hang as this command's."""
    full = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO),
            "BENTOML_HOME": str(cwd / "bentoml"), **(env or {})}
    if "GROWTH_BUNDLE" not in (env or {}):
        full.pop("GROWTH_BUNDLE", None)
    return subprocess.run([sys.executable, "-m", "growth", *args], cwd=cwd, text=True,
                          capture_output=True, env=full, timeout=timeout)
