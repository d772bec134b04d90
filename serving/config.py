"""Settings of the bundle and the service (configs/serving.yaml); every field has a default."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from features.config import CONFIG_DIR, Strict, load_config

REPO_ROOT = CONFIG_DIR.parent


class ServingConfig(Strict):
    bundle_name: str = "growthloop"  # BentoML model name of the bundle
    bentoml_home: Path = Path("bentoml_home")  # model store; relative to the repository
    host: str = "127.0.0.1"  # `growth serve` binds here (loopback unless asked otherwise)
    port: int = Field(3000, ge=1, le=65535)
    workers: int = Field(1, ge=1)  # BentoML worker processes
    list_length: int = Field(200, ge=1)  # precomputed recommendations per household and list
    max_request_bytes: int = Field(1 << 20, ge=1024)  # larger bodies get 413
    access_log: bool = False  # per-request access log (costs about a fifth of throughput)
    # OpenTelemetry spans per request. BentoML samples none unless tracing is configured, yet
    # its middleware still builds five unsampled spans per request: off skips it entirely.
    trace_requests: bool = False
    faiss_threads: int = Field(1, ge=1)  # one query per request: more threads only spin
    # BentoML's own Prometheus traffic middleware (about 60 us per request) instead of
    # serving/metrics.py's (one histogram update per request); /metrics is served either way
    bentoml_metrics: bool = False
    # Host names the service answers (others get 403; "*" any). Empty: only localhost,
    # 127.0.0.1 and [::1] when `growth serve` binds a loopback address, any name otherwise.
    # Name the public host here when a proxy forwards its Host header to a loopback server.
    allowed_hosts: tuple[str, ...] = ()


def load_serving_config(path: Path | None = None,
                        overrides: list[str] | None = None) -> ServingConfig:
    return load_config(ServingConfig, path, overrides, default_name="serving")


def use_bentoml_home(cfg: ServingConfig) -> Path:
    """Point BentoML at the project's model store unless ``BENTOML_HOME`` is already set, and
    turn its usage tracking off (a local tool makes no network calls); returns the store
    folder. Call before BentoML first touches its store."""
    home = Path(os.environ.get("BENTOML_HOME") or REPO_ROOT / cfg.bentoml_home)
    os.environ["BENTOML_HOME"] = str(home)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    return home
