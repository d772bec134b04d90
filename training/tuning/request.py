"""What a ``growth tune`` session is asked: :class:`TuneRequest`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TuneRequest:
    """One ``growth tune`` session; picklable, so spawned workers receive it whole."""

    model: str  # a key of SPECS
    trials: int  # run by this session, over all its workers
    storage: str | None = None  # Optuna RDB URL; None: see ``storage_url``
    study: str | None = None  # None: <model>-<UTC time>
    workers: int = 1
    timeout: float | None = None  # seconds per worker before it starts no new trial
    data: Path | None = None
    data_config: Path | None = None
    config: Path | None = None
    overrides: tuple[str, ...] = ()
    out: Path | None = None  # tuned config file; None: configs/tuned/<model>.yaml
    overwrite: bool = False  # replace ``out`` even when it records a better comparable score
