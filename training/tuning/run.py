"""One tuning session (see the package docstring): the study and its base-config trial,
each trial's objective and MLflow run, the spawned workers, and the tuned config written."""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import optuna
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.trial import TrialState
from pydantic import BaseModel

from features.config import load_data_config, standard_overrides
from features.dataset import Dataset, load_dataset
from features.sources import GrowthError
from training import registry
from training.tuning.identity import IDENTITY_WAIT_S, check_study, digest, study_identity
from training.tuning.request import TuneRequest
from training.tuning.space import ModelSpec, base_params, model_spec, searched_fields, with_values
from training.tuning.storage import in_memory, open_storage, parse_url, redacted_url, storage_url
from training.tuning.tuned_file import (
    HEADER,
    SETTINGS,
    against_existing,
    train_command,
    tuned_path,
    write_tuned_config,
)

STATE_TAG = "optuna.state"
BASE_ATTR = "base_config"  # user attribute of the trial that runs the base config's values
BASE_CHANGES_ATTR = "base_config_changes"  # what was moved into the search space


@dataclass
class TuneResult:
    study: str
    storage: str | None  # shown without password
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    config_path: Path
    parent_run_id: str
    session_states: dict[str, int] = field(default_factory=dict)  # this session's trials
    study_trials: int = 0  # all trials in the study (other sessions and machines too)
    warning: str | None = None  # config_path held a better config, now replaced
    dates: list[str] = field(default_factory=list)  # standard dates fitted to the data
    written: bool = True  # False: config_path kept its better config (``kept`` says why)
    kept: str | None = None
    train_command: str = ""  # trains with the config at config_path
    # the study's base-config trial (see ``base_params``); None when the study has none
    base_trial: int | None = None
    base_value: float | None = None  # None unless that trial completed
    base_state: str | None = None
    base_label: str = ""  # the base config's file
    base_changes: list[str] = field(default_factory=list)  # values moved into the space


def _sampler_seed(shared: bool, seed: int, worker: int) -> int | None:
    """Each worker its own seed, or parallel workers would draw the same startup trials.
    With a storage given (``shared``), other sessions or machines may join the study with
    the same config seed: draw from fresh entropy then (their trials interleave anyway, so
    the order is not reproducible)."""
    return None if shared else seed + worker


def unreproducible(shared: bool, workers: int) -> str | None:
    """The line a session prints first when its trials cannot be drawn again from the
    config's seed (see ``_sampler_seed``); None when they can."""
    reasons = []
    if shared:
        reasons.append("--storage leaves the sampler unseeded, so sessions sharing the study "
                       "do not repeat each other's trials")
    if workers > 1:
        reasons.append(f"{workers} workers each draw from the trials finished so far, in "
                       "whatever order they finish")
    if not reasons:
        return None
    return f"note: this session's trials cannot be reproduced from the seed: {'; '.join(reasons)}"


def _pruner(spec: ModelSpec) -> optuna.pruners.MedianPruner:
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=spec.warmup_steps)


def _enqueue_base(study: optuna.Study, spec: ModelSpec, base: BaseModel, searched: list[str],
                  label: str) -> bool:
    """Make the base config the first trial of a study that has none yet; whether it did.
    Of several sessions starting one shared study, only those that find it empty enqueue,
    and a trial with the same values already waiting is not enqueued again. (Two sessions
    starting one empty SQLite study in the same instant can both take that waiting trial,
    SQLite having no row locks; the later one then fails. A server database locks it.)"""
    if study.get_trials(deepcopy=False):
        return False
    values, changes = base_params(spec, base, searched)
    if values:
        study.enqueue_trial(values, user_attrs={BASE_ATTR: label, BASE_CHANGES_ATTR: changes},
                            skip_if_exists=True)
    return bool(values)


def _open_study(name: str, storage: optuna.storages.BaseStorage | None,
                identity: dict[str, Any], sampler: optuna.samplers.BaseSampler | None = None,
                pruner: optuna.pruners.BasePruner | None = None,
                wait_s: float = IDENTITY_WAIT_S) -> optuna.Study:
    """Study ``name``, created here or joined, checked to tune ``identity`` (``check_study``).
    Creating it fails when another session or machine did first, however close together
    they start: only the creator records what it tunes, and a session that joins checks the
    creator's record (waiting up to ``wait_s`` for it). Without ``storage`` (in memory) each
    session creates its own."""
    try:
        study = optuna.create_study(storage=storage, sampler=sampler, pruner=pruner,
                                    study_name=name, direction="maximize")
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        assert storage is not None  # in memory, every study is new
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler,
                                  pruner=pruner)
        created = False
    check_study(study, identity, created, wait_s)
    return study


def _share_threads(cfg: BaseModel, workers: int) -> BaseModel:
    """Split the configured threads between workers on one machine."""
    for name in ("threads", "num_threads"):
        if name in type(cfg).model_fields and workers > 1:
            return with_values(cfg, {name: max(1, getattr(cfg, name) // workers)})
    return cfg


def _objective(spec: ModelSpec, ds: Dataset, cfg: BaseModel, searched: list[str],
               parent_run_id: str, worker: int) -> Callable[[optuna.Trial], float]:
    experiment = f"{spec.name}_tuning"

    def objective(trial: optuna.Trial) -> float:
        params = {name: spec.space[name](trial, name) for name in searched}
        trial_cfg = with_values(cfg, params)
        for key, value in {"pid": os.getpid(), "host": socket.gethostname(), "worker": worker,
                           "mlflow_parent_run_id": parent_run_id}.items():
            trial.set_user_attr(key, value)
        tags = {MLFLOW_PARENT_RUN_ID: parent_run_id, "optuna.study": trial.study.study_name,
                "optuna.trial": str(trial.number)}
        if BASE_ATTR in trial.user_attrs:
            tags[BASE_ATTR] = str(trial.user_attrs[BASE_ATTR])
        # in-process the parent run is active: nest under it; a spawned worker has none
        with registry.tracked_run(experiment, f"trial-{trial.number}", params=params,
                                  tags=tags, nested=mlflow.active_run() is not None) as run:
            trial.set_user_attr("mlflow_run_id", run.info.run_id)

            def report(step: int, value: float) -> None:
                trial.report(value, step)
                mlflow.log_metric(spec.progress_metric, value, step=step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"{spec.metric} {value:.4g} at step {step}")

            pruned: optuna.TrialPruned | None = None
            try:
                value = float(spec.score(ds, trial_cfg, report))
            except optuna.TrialPruned as exc:
                pruned = exc
                mlflow.set_tag(STATE_TAG, TrialState.PRUNED.name)
            else:
                # the score under the metric's own name, as a training run logs it
                mlflow.log_metrics({spec.metric: value, "value": value})
                mlflow.set_tag(STATE_TAG, TrialState.COMPLETE.name)
        if pruned is not None:
            raise pruned
        return value

    return objective


@dataclass(frozen=True)
class _WorkerJob:
    request: TuneRequest
    study: str
    storage: str
    worker: int
    trials: int
    sampler_seed: int | None
    parent_run_id: str


def _optimize(spec: ModelSpec, study: optuna.Study, ds: Dataset, cfg: BaseModel,
              job: _WorkerJob) -> None:
    searched = searched_fields(spec, cfg, job.request.overrides)
    study.optimize(_objective(spec, ds, cfg, searched, job.parent_run_id, job.worker),
                   n_trials=job.trials, timeout=job.request.timeout)


def _load(request: TuneRequest, quarantine_dir: Path | None = None) -> Dataset:
    return load_dataset(request.data, load_data_config(request.data_config), quarantine_dir)


def _worker(job: _WorkerJob) -> None:
    """Entry point of a spawned worker: its own data, study handle and MLflow client."""
    request = job.request
    spec = model_spec(request.model)
    cfg = _share_threads(spec.load_config(request.config, list(request.overrides)),
                         request.workers)
    with tempfile.TemporaryDirectory() as quarantine:  # the parent wrote the real one
        ds = _load(request, Path(quarantine))
    study = optuna.load_study(study_name=job.study, storage=open_storage(job.storage),
                              sampler=optuna.samplers.TPESampler(seed=job.sampler_seed),
                              pruner=_pruner(spec))
    _optimize(spec, study, ds, cfg, job)


def _quotas(trials: int, workers: int) -> list[int]:
    """``trials`` split as evenly as possible over at most ``workers`` workers."""
    n = min(trials, workers)
    return [trials // n + (1 if i < trials % n else 0) for i in range(n)]


def _run_workers(jobs: list[_WorkerJob]) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(job,), name=f"tune-worker-{job.worker}")
             for job in jobs]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    finally:  # Ctrl-C or an error here: leave no worker behind
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
    failed = [f"{p.name} (exit code {p.exitcode})" for p in procs if p.exitcode != 0]
    if failed:
        raise GrowthError(f"tuning workers failed: {', '.join(failed)}; see their output above")


def tune(request: TuneRequest) -> TuneResult:
    """Run one tuning session (see the package docstring); returns the study's best trial,
    its base-config trial and where its config was written.

    A config already at that path whose header records a better value of the same metric
    for the same model is kept when it was measured on the same data and settings (header
    and config fields; ``TuneResult.kept`` says so, and the session's best config is only
    logged in MLflow), unless ``request.overwrite``; measured on other data, dates or
    ``--set`` values, the scores do not compare and it is replaced, which
    ``TuneResult.warning`` says, naming both values; the replaced config stays logged with
    its own session's MLflow run."""
    if request.trials < 1 or request.workers < 1:
        raise GrowthError("--trials and --workers must be at least 1")
    spec = model_spec(request.model)
    spec.load_config(request.config, list(request.overrides))  # a bad --set fails first
    study_name = request.study or f"{spec.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    url = storage_url(request, study_name)
    if url and in_memory(url):
        if request.workers > 1:
            raise GrowthError(f"--storage {url!r} is an in-memory database, which each worker "
                              "process would open empty: give a file (sqlite:///F.db) or a "
                              "server's URL to share a study between workers")
        url = None  # the same as no storage: the study lives in this process
    shown_url = redacted_url(parse_url(url)) if url else None
    # in the parent too: bad data fails here with one line, before the study or any worker
    # starts; the model's dates default to the data config's, fitted to the data (as
    # `growth run` and `growth train` use them), unless --set or a --config file gives them
    ds = _load(request)
    dates: list[str] = []
    if request.config is None:
        overrides, dates = standard_overrides(
            spec.name, load_data_config(request.data_config),
            *(ts.date() for ts in ds.time_range()), list(request.overrides))
        request = replace(request, overrides=tuple(overrides))
    base = spec.load_config(request.config, list(request.overrides))
    searched = searched_fields(spec, base, request.overrides)
    quotas = _quotas(request.trials, request.workers)
    shared = bool(request.storage) and url is not None
    seeds = [_sampler_seed(shared, getattr(base, "seed", 0), i) for i in range(len(quotas))]
    storage = open_storage(url) if url else None
    spec.prepare(ds, base)  # data too short for the model fails here, before the study
    identity = study_identity(spec, base, searched, request, ds.source)
    note = unreproducible(shared, len(quotas))
    if note:
        print(note, file=sys.stderr, flush=True)
    study = _open_study(study_name, storage, identity,
                        optuna.samplers.TPESampler(seed=seeds[0]), _pruner(spec))
    enqueued = _enqueue_base(study, spec, base, searched,
                             str(request.config or f"configs/{spec.name}.yaml"))
    params = {"model": spec.name, "metric": spec.metric, "study": study_name,
              "storage": shown_url or "in-memory", "trials": request.trials,
              "workers": len(quotas), "timeout_s": request.timeout, "searched": ",".join(searched),
              "sampler": f"TPE(seeds={seeds})",
              "pruner": f"Median(startup=5, warmup_steps={spec.warmup_steps})",
              "config": str(request.config or "default"), "overrides": " ".join(request.overrides)}
    with registry.tracked_run(f"{spec.name}_tuning", study_name, params=params) as parent:
        mlflow.log_dict(base.model_dump(mode="json"), "base_config.yaml")
        jobs = [_WorkerJob(request, study_name, url or "", i, n, seeds[i], parent.info.run_id)
                for i, n in enumerate(quotas)]
        if len(jobs) == 1:
            _optimize(spec, study, ds, base, jobs[0])
        else:
            if enqueued:  # the base trial here, first: workers popping one waiting trial
                # together could both take it on SQLite, and the later one would fail
                _optimize(spec, study, ds, base, replace(jobs[0], trials=1))
                left = request.trials - 1
                quotas = _quotas(left, request.workers) if left else []  # fewer workers
                jobs = [replace(job, trials=n) for job, n in zip(jobs, quotas, strict=False)]
            if jobs:
                _run_workers(jobs)
            study = optuna.load_study(study_name=study_name, storage=open_storage(url))
        trials = study.get_trials(deepcopy=False)
        if not any(t.state == TrialState.COMPLETE for t in trials):
            raise GrowthError(f"no trial of study {study_name} completed (all pruned or "
                              "failed, or --timeout too short): no config written")
        best = study.best_trial
        tuned = with_values(base, best.params)
        path = tuned_path(request)
        write, message = against_existing(path, spec, best.value, identity, request.overwrite)
        header = [
            HEADER.format(model=spec.name, command=request.model, study=study_name,
                          trial=best.number, trials=len(trials), metric=spec.metric,
                          value=best.value),
            f"storage: {shown_url or 'in-memory'}; written {datetime.now(UTC):%Y-%m-%d %H:%M} "
            "UTC",
            SETTINGS.format(data=ds.source, data_config=digest(identity["data_config"]),
                            searched=",".join(identity["searched"]))]
        warning = kept = None
        if write:
            mlflow.log_artifact(str(write_tuned_config(tuned, path, header)))
            warning = message
        else:  # the better config stays; this study's best goes to MLflow only
            with tempfile.TemporaryDirectory() as folder:
                mlflow.log_artifact(str(write_tuned_config(tuned, Path(folder) / path.name,
                                                           header)))
            kept = (f"kept {path}: {message}; this study's best config is logged in MLflow "
                    f"experiment {spec.name}_tuning, run {study_name} (id "
                    f"{parent.info.run_id}), artifact {path.name}; --overwrite writes it to "
                    f"{path}")
        mlflow.set_tag("tuned_config", f"{'written to' if write else 'not written, kept'} "
                                       f"{path}")
        mlflow.log_params({"best_trial": best.number,
                           **{f"best.{k}": v for k, v in best.params.items()}})
        mlflow.log_metric("best_value", best.value)
        mine = [t for t in trials
                if t.user_attrs.get("mlflow_parent_run_id") == parent.info.run_id]
        states = {s.name: sum(t.state == s for t in mine) for s in TrialState
                  if any(t.state == s for t in mine)}
        mlflow.set_tags({f"trials.{k.lower()}": str(v) for k, v in states.items()})
        base_trial = next((t for t in trials if BASE_ATTR in t.user_attrs), None)
        if base_trial is not None and base_trial.state == TrialState.COMPLETE:
            mlflow.log_metric("base_value", base_trial.value)
    return TuneResult(
        study_name, shown_url, best.number, float(best.value), dict(best.params), path,
        parent.info.run_id, states, len(trials), warning, dates, written=write, kept=kept,
        train_command=train_command(request, path),
        base_trial=None if base_trial is None else base_trial.number,
        base_value=(float(base_trial.value) if base_trial is not None
                    and base_trial.state == TrialState.COMPLETE else None),
        base_state=None if base_trial is None else base_trial.state.name,
        base_label="" if base_trial is None else str(base_trial.user_attrs[BASE_ATTR]),
        base_changes=[] if base_trial is None
        else list(base_trial.user_attrs.get(BASE_CHANGES_ATTR, [])))
