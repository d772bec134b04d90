"""``growth serve``: verify the bundle, then hand the process over to ``bentoml serve``.

    growth serve [--port P] [--workers N] [--host H] [--bundle growthloop:VERSION]

The bundle is opened and every checksum checked first, so a missing or corrupt bundle is a
clear error (exit 2), never a server answering from garbage. The exact tag verified is the
one served (``GROWTH_BUNDLE``), even if a newer bundle is written meanwhile.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from serving.bundle import Bundle, open_bundle
from serving.config import REPO_ROOT, ServingConfig, use_bentoml_home

SERVICE = "serving.service:GrowthService"


@dataclass(frozen=True)
class ServeCommand:
    bundle: Bundle
    argv: list[str]
    env: dict[str, str]
    url: str


def serve_command(cfg: ServingConfig, bundle_ref: str | None = None, host: str | None = None,
                  port: int | None = None, workers: int | None = None) -> ServeCommand:
    """The verified bundle and the ``bentoml serve`` command line that serves it."""
    home = use_bentoml_home(cfg)
    bundle = open_bundle(bundle_ref or f"{cfg.bundle_name}:latest")
    host, port = host or cfg.host, port or cfg.port
    argv = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host,
            "--port", str(port), "--working-dir", str(REPO_ROOT)]
    env = {**os.environ, "BENTOML_HOME": str(home), "GROWTH_BUNDLE": bundle.tag,
           "GROWTH_SERVE_WORKERS": str(workers or cfg.workers)}
    return ServeCommand(bundle, argv, env, f"http://{host}:{port}")
