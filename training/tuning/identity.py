"""What a score is measured on: model, data, data config, searched and fixed fields. A
study records it, so no session adds trials that tune something else (the session that
created the study records it; one that joins waits for that record); a tuned config's
header records it, so a better score is kept only against one measured the same way."""

from __future__ import annotations

import hashlib
import json
from time import monotonic, sleep
from typing import Any

import optuna
from pydantic import BaseModel

from features.config import load_data_config
from features.sources import GrowthError
from training.tuning.request import TuneRequest
from training.tuning.space import ModelSpec

STUDY_ATTR = "growthloop"  # the study's user attribute that records what its trials tune
# settings that may differ between the sessions of one study: machines differ in cores,
# memory and folders, and none of these changes a trial's score
UNCHECKED_FIELDS = ("threads", "num_threads", "memory_limit", "quarantine_dir")
# how long a session that joins a new study waits for its creator to record the identity,
# and how often it looks
IDENTITY_WAIT_S = 10.0
IDENTITY_POLL_S = 0.1


def checked_settings(settings: dict[str, Any], leave_out: list[str] | tuple[str, ...] = ()
             ) -> dict[str, Any]:
    return {k: v for k, v in settings.items()
            if k not in UNCHECKED_FIELDS and k not in leave_out}


def setting_differences(name: str, theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    return ([f"{name}.{k} ({theirs.get(k)!r} there, {v!r} here)" for k, v in ours.items()
             if theirs.get(k) != v]
            + [f"{name}.{k} (only there)" for k in theirs if k not in ours])


def study_identity(spec: ModelSpec, base: BaseModel, searched: list[str], request: TuneRequest,
              source: str) -> dict[str, Any]:
    """What a score is measured on: model, data, data config, searched and fixed fields."""
    return {"model": spec.name, "data": source,
            "data_config": checked_settings(load_data_config(request.data_config).model_dump(
                mode="json")),
            "searched": sorted(searched),
            "fixed": checked_settings(base.model_dump(mode="json"), searched)}


def digest(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()
                          ).hexdigest()[:12]


def awaited_identity(study: optuna.Study, wait_s: float = IDENTITY_WAIT_S,
                     poll_s: float = IDENTITY_POLL_S) -> dict[str, Any] | None:
    """What ``study`` records it tunes, read from its storage; None when nothing. A study
    another session has just created records nothing until that session writes its identity:
    wait up to ``wait_s`` seconds for it, unless the study already holds trials (its creator
    records the identity before any trial, so none will come)."""
    deadline = monotonic() + wait_s
    while True:
        recorded = study.user_attrs.get(STUDY_ATTR)  # each read asks the storage
        if recorded is not None or monotonic() >= deadline or study.get_trials(deepcopy=False):
            return recorded
        sleep(poll_s)


def check_study(study: optuna.Study, identity: dict[str, Any], created: bool,
                wait_s: float = IDENTITY_WAIT_S) -> None:
    """Record what a study tunes (``study_identity``) when this session ``created`` it;
    refuse to add trials to a study that tunes something else, whose best trial would be
    written as this model's config: another model, other data, or other fixed settings
    (``--set``, ``--config``). Only the creator records at once: sessions opening one new
    study together would otherwise each write theirs, the last one kept. One that joins
    waits for the creator's record (``awaited_identity``); still none after ``wait_s`` and no
    trial, the creator stopped before writing it, and this session records its own."""
    if created:
        study.set_user_attr(STUDY_ATTR, identity)
        return
    recorded = awaited_identity(study, wait_s)
    if recorded is None:
        if study.trials:
            held = ("1 trial that does not say what it tunes" if len(study.trials) == 1 else
                    f"{len(study.trials)} trials that do not say what they tune")
            raise GrowthError(f"study {study.study_name} already holds {held}; choose another "
                              "--study")
        study.set_user_attr(STUDY_ATTR, identity)
        return
    if recorded == identity:
        return
    differ: list[str] = []
    for key, ours in identity.items():
        theirs = recorded.get(key)
        if theirs == ours:
            continue
        if isinstance(ours, dict) and isinstance(theirs, dict):
            differ += setting_differences(key, theirs, ours)
        else:
            differ.append(f"{key} ({theirs!r} there, {ours!r} here)")
    raise GrowthError(f"study {study.study_name} tunes something else: {'; '.join(differ)}; "
                      "its best trial would not be this run's, so nothing is added to it: "
                      "choose another --study, or the same model, data and settings")
