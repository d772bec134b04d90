"""Hyper-parameter search with Optuna: ``growth tune churn|coupon|two-tower``.

    growth tune two-tower --trials 30
    growth tune churn --trials 40 --workers 2        # 2 processes share one SQLite study
    growth tune coupon --trials 20 --storage postgresql://db/optuna --study coupon-aug
        # the same command on several machines: each adds its trials to the shared study

A model is a :class:`ModelSpec`: a search space over fields of its config and an objective
that trains on the training data and returns the validation score (higher is better). The
test window is never read. Objectives report intermediate values (two-tower: validation
recall@20 each epoch; LightGBM: the validation metric every ``report_every`` rounds) so the
median pruner stops weak trials early. Fields set with ``--set`` stay fixed, not searched.
A two-tower trial trains at most 4 epochs; the written config keeps the base ``epochs``.

The first trial of a new study is the base config itself (``configs/<model>.yaml`` or
``--config``, with ``--set``): its values of the searched fields, a value outside the search
space clipped to its bound (or, not one of a field's choices, drawn). So the best trial is
never worse than the config it would replace, and the session reports both scores.

MLflow: one parent run per session in experiment ``<model>_tuning``; each trial is a child
run (tag ``mlflow.parentRunId``) logged by whichever process ran it, with its parameters,
intermediate values, ``value`` and tag ``optuna.state`` (COMPLETE or PRUNED). The best trial
of the study is applied to the base config and written as a full config file (default
``configs/tuned/<model>.yaml``, loadable with ``--config``), which the parent run logs too.
A file there that records a better score measured on the same model, data and settings is
kept (``overwrite`` replaces it); the session's best config is then only logged in MLflow.

Several processes share a study through an Optuna RDB storage. ``--workers K`` starts K
spawned processes on this machine; ``--trials N`` is the number this command runs in total,
split between them. Without ``--storage``, one worker uses an in-memory study and several
use a SQLite file under ``artifacts/tuning/``. With ``--storage`` the samplers are unseeded,
so sessions joining the same study do not repeat each other's trials.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import multiprocessing
import os
import re
import shlex
import socket
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import optuna
import yaml
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState
from pydantic import BaseModel
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from features.config import load_data_config, parse_overrides, standard_overrides
from features.dataset import Dataset, load_dataset
from features.sources import GrowthError
from training import registry
from training.tracking import sqlite_file

TUNING_DIR = Path("artifacts/tuning")  # default SQLite studies (relative to the working dir)
TUNED_DIR = Path("configs/tuned")  # default output: configs/tuned/<model>.yaml
STATE_TAG = "optuna.state"
SQLITE_TIMEOUT_S = 60  # wait this long for another process's write lock
TWO_TOWER_TRIAL_EPOCHS = 4  # a two-tower trial trains at most this many epochs
# the first line of a tuned config (a YAML comment), which ``recorded_best`` reads back
HEADER = ("{model} tuned by `growth tune {command}`: study {study}, trial {trial} of {trials}, "
          "{metric} {value:.6g}")
HEADER_LINE = re.compile(r"# (?P<model>\S+) tuned by `growth tune [^`]*`: study (?P<study>.*), "
                         r"trial \d+ of \d+, (?P<metric>\S+) (?P<value>\S+)")
# a later header line: what the score was measured on besides the config's own fields
SETTINGS = "measured on data {data}; data config {data_config}; searched {searched}"
SETTINGS_LINE = re.compile(r"# measured on data (?P<data>.*); data config (?P<data_config>"
                           r"[0-9a-f]+); searched (?P<searched>\S*)")
BASE_ATTR = "base_config"  # user attribute of the trial that runs the base config's values
BASE_CHANGES_ATTR = "base_config_changes"  # what was moved into the search space
# what to pip install for a database driver module SQLAlchemy imports for a storage URL
DRIVER_PACKAGES = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary",
                   "MySQLdb": "mysqlclient (or PyMySQL, with a mysql+pymysql:// URL)",
                   "pymysql": "PyMySQL"}

Report = Callable[[int, float], None]  # report(step, value): an intermediate value
Suggest = Callable[[optuna.Trial, str], Any]  # draws one parameter by name


@dataclass(frozen=True)
class Param:
    """A :data:`Suggest` that knows its range (``base_params`` fits values into it)."""

    distribution: BaseDistribution

    def __call__(self, trial: optuna.Trial, name: str) -> Any:
        d = self.distribution
        if isinstance(d, FloatDistribution):
            return trial.suggest_float(name, d.low, d.high, log=d.log)
        if isinstance(d, IntDistribution):
            return trial.suggest_int(name, d.low, d.high, log=d.log)
        assert isinstance(d, CategoricalDistribution)
        return trial.suggest_categorical(name, d.choices)


def _float(low: float, high: float, log: bool = False) -> Suggest:
    return Param(FloatDistribution(low, high, log=log))


def _int(low: int, high: int, log: bool = False) -> Suggest:
    return Param(IntDistribution(low, high, log=log))


def _choice(*options: Any) -> Suggest:
    return Param(CategoricalDistribution(options))


LIGHTGBM_SPACE: dict[str, Suggest] = {
    "learning_rate": _float(0.01, 0.2, log=True),
    "num_leaves": _int(4, 128, log=True),
    "min_data_in_leaf": _int(10, 300, log=True),
    "feature_fraction": _float(0.4, 1.0),
    "bagging_fraction": _float(0.5, 1.0),
    "lambda_l2": _float(1e-3, 100.0, log=True),  # holds configs/churn.yaml's 50
}
TWO_TOWER_SPACE: dict[str, Suggest] = {
    "lr": _float(3e-4, 1e-2, log=True),
    "dim": _choice(32, 64, 128),
    "temperature": _float(0.02, 0.2, log=True),
    "batch_size": _choice(512, 1024, 2048),  # smaller batches: slower, fewer negatives
    # a few values only: each distinct one prepares the training examples again
    "history_half_life_days": _choice(30.0, 60.0, 120.0, 240.0),
}


@dataclass(frozen=True)
class ModelSpec:
    """What the tuner needs to know about one model family."""

    name: str  # registry and experiment name: two_tower, churn, coupon
    metric: str  # what ``score`` returns (logged per step on each trial's run)
    space: dict[str, Suggest]  # config field -> how to draw it
    warmup_steps: int  # the pruner judges no trial before this step
    load_config: Callable[[Path | None, list[str] | None], BaseModel]
    score: Callable[[Dataset, Any, Report | None], float]  # (ds, cfg, report) -> validation
    # builds (and memoises for ``score``) the training examples; raises GrowthError when the
    # data cannot support the model, so a session fails before its study starts
    prepare: Callable[[Dataset, Any], object]


def _two_tower_spec() -> ModelSpec:
    from training.two_tower.config import load_two_tower_config
    from training.two_tower.train import prepare, train

    # fields ``prepare`` reads: trials that agree on them share the prepared examples
    prepare_fields = ("as_of", "window_days", "n_cutoffs", "catalog_weeks", "history_len",
                      "history_half_life_days", "new_items_only")
    prepared: dict[tuple, Any] = {}

    def prepared_for(ds: Dataset, cfg: Any) -> Any:
        key = tuple(getattr(cfg, f) for f in prepare_fields)
        if key not in prepared:
            prepared[key] = prepare(ds, cfg)
        return prepared[key]

    def score(ds: Dataset, cfg: Any, report: Report | None = None) -> float:
        """Best validation recall@20 over at most TWO_TOWER_TRIAL_EPOCHS epochs (early
        stopping as configured; validation recall usually peaks within a few epochs)."""
        cfg = _with(cfg, {"epochs": min(cfg.epochs, TWO_TOWER_TRIAL_EPOCHS)})

        def on_epoch(record: dict) -> None:
            if report is not None:
                report(record["epoch"], record["val_recall_at_20"])

        return train(prepared_for(ds, cfg), cfg, on_epoch=on_epoch).best_val_recall

    # run.py's MODEL_NAME and GATE_METRIC, not imported: run.py loads FAISS and the bundle,
    # seconds of start-up in every worker
    return ModelSpec("two_tower", "val_recall_at_20", TWO_TOWER_SPACE, warmup_steps=2,
                     load_config=load_two_tower_config, score=score, prepare=prepared_for)


def _propensity_spec(kind: str) -> ModelSpec:
    """churn / coupon: ``training.propensity.<kind>.validation_score`` fits LightGBM and
    returns the validation-fold metric, reporting every ``report_every`` rounds."""
    module_name = f"training.propensity.{kind}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise GrowthError(f"tuning {kind} needs {module_name}.validation_score, and that "
                          "module is missing") from exc
    from training.propensity import config

    return ModelSpec(kind, getattr(module, "GATE_METRIC", "validation_score"), LIGHTGBM_SPACE,
                     warmup_steps=30, load_config=getattr(config, f"load_{kind}_config"),
                     score=module.validation_score, prepare=getattr(module, f"{kind}_data"))


SPECS: dict[str, Callable[[], ModelSpec]] = {
    "two-tower": _two_tower_spec,
    "churn": lambda: _propensity_spec("churn"),
    "coupon": lambda: _propensity_spec("coupon"),
}


def model_spec(model: str) -> ModelSpec:
    if model not in SPECS:
        raise GrowthError(f"cannot tune {model!r}; choose one of {', '.join(SPECS)}")
    return SPECS[model]()


# --- the study ------------------------------------------------------------------------------


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


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage several processes can share. SQLite gets a long lock timeout (writes
    from the other workers would otherwise fail with "database is locked"); a heartbeat lets
    any process mark the trials of a worker that died as FAIL instead of RUNNING forever."""
    parsed = _parse_url(url)
    if parsed.drivername.startswith("sqlite"):
        db = sqlite_file(url)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    with warnings.catch_warnings():  # the heartbeat is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                              heartbeat_interval=60, grace_period=180)
        except ImportError as exc:  # the URL's driver, imported before any connection
            module = getattr(exc.__cause__, "name", None) or exc.name
            if module is None:
                raise GrowthError(f"cannot open the Optuna storage {_shown(parsed)}: "
                                  f"ImportError: {exc}") from exc
            raise GrowthError(
                f"cannot open the Optuna storage {_shown(parsed)}: its "
                f"{parsed.get_backend_name()} driver, Python module {module}, is not installed "
                "(growthloop installs only SQLite's): pip install "
                f"{DRIVER_PACKAGES.get(module, module)}") from exc
        except SQLAlchemyError as exc:
            raise GrowthError(f"cannot open the Optuna storage {_shown(parsed)}: "
                              f"{exc.__class__.__name__}: {exc}") from exc


def _in_memory(url: str) -> bool:
    """A SQLite URL without a file (``sqlite://``, ``sqlite:///``, ``sqlite:///:memory:``)."""
    return _parse_url(url).drivername.startswith("sqlite") and sqlite_file(url) is None


def _parse_url(url: str) -> URL:
    """``url`` as SQLAlchemy reads it; a clear error for what is not a database URL."""
    try:
        return make_url(url)
    except SQLAlchemyError as exc:
        raise GrowthError(f"--storage {url!r} is not a database URL (expected e.g. "
                          "sqlite:///F.db or postgresql://user@host/db)") from exc


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def storage_url(request: TuneRequest, study: str) -> str | None:
    """The request's storage; a SQLite file under ``artifacts/tuning/`` when several workers
    must share a study and none was given; None (in memory) for one worker."""
    if request.storage:
        return request.storage
    if request.workers > 1:
        return f"sqlite:///{(TUNING_DIR / f'{study}.db').resolve()}"
    return None


def _sampler_seed(shared: bool, seed: int, worker: int) -> int | None:
    """Each worker its own seed, or parallel workers would draw the same startup trials.
    With a storage given (``shared``), other sessions or machines may join the study with
    the same config seed: draw from fresh entropy then (their trials interleave anyway, so
    the order is not reproducible)."""
    return None if shared else seed + worker


def _pruner(spec: ModelSpec) -> optuna.pruners.MedianPruner:
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=spec.warmup_steps)


def _searched(spec: ModelSpec, cfg: BaseModel, overrides: tuple[str, ...]) -> list[str]:
    """Space fields the config has and ``--set`` does not fix."""
    fixed = set(parse_overrides(list(overrides)))
    names = [n for n in spec.space if n in type(cfg).model_fields and n not in fixed]
    if not names:
        raise GrowthError(f"nothing to tune for {spec.name}: every searched field "
                          f"({', '.join(spec.space)}) is fixed with --set or not in its config")
    return names


STUDY_ATTR = "growthloop"  # the study's user attribute that records what its trials tune
# settings that may differ between the sessions of one study: machines differ in cores,
# memory and folders, and none of these changes a trial's score
UNCHECKED_FIELDS = ("threads", "num_threads", "memory_limit", "quarantine_dir")


def _checked(settings: dict[str, Any], leave_out: list[str] | tuple[str, ...] = ()
             ) -> dict[str, Any]:
    return {k: v for k, v in settings.items()
            if k not in UNCHECKED_FIELDS and k not in leave_out}


def _differences(name: str, theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    return ([f"{name}.{k} ({theirs.get(k)!r} there, {v!r} here)" for k, v in ours.items()
             if theirs.get(k) != v]
            + [f"{name}.{k} (only there)" for k in theirs if k not in ours])


def _identity(spec: ModelSpec, base: BaseModel, searched: list[str], request: TuneRequest,
              source: str) -> dict[str, Any]:
    """What a score is measured on: model, data, data config, searched and fixed fields."""
    return {"model": spec.name, "data": source,
            "data_config": _checked(load_data_config(request.data_config).model_dump(
                mode="json")),
            "searched": sorted(searched),
            "fixed": _checked(base.model_dump(mode="json"), searched)}


def _digest(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()
                          ).hexdigest()[:12]


def _check_study(study: optuna.Study, identity: dict[str, Any]) -> None:
    """Record what a new study tunes (``_identity``); refuse to add trials to a study that
    tunes something else, whose best trial would be written as this model's config: another
    model, other data, or other fixed settings (``--set``, ``--config``)."""
    recorded = study.user_attrs.get(STUDY_ATTR)
    if recorded is None:
        if study.trials:
            raise GrowthError(f"study {study.study_name} already holds {len(study.trials)} "
                              "trials that do not say what they tune; choose another --study")
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
            differ += _differences(key, theirs, ours)
        else:
            differ.append(f"{key} ({theirs!r} there, {ours!r} here)")
    raise GrowthError(f"study {study.study_name} tunes something else: {'; '.join(differ)}; "
                      "its best trial would not be this run's, so nothing is added to it: "
                      "choose another --study, or the same model, data and settings")


def base_params(spec: ModelSpec, base: BaseModel, searched: list[str]
                ) -> tuple[dict[str, Any], list[str]]:
    """The base config's values of the searched fields, as the first trial of a new study,
    and a line for each value not tried as it is: a number outside its range is clipped to
    the bound; a value not among a field's choices (or not a number) is left to the sampler."""
    values: dict[str, Any] = {}
    changes: list[str] = []
    for name in searched:
        value = getattr(base, name)
        dist = getattr(spec.space[name], "distribution", None)
        if isinstance(dist, FloatDistribution | IntDistribution):
            if isinstance(value, bool) or not isinstance(value, int | float):
                changes.append(f"{name} {value!r} is not a number: drawn by the sampler")
                continue
            fitted = min(max(value, dist.low), dist.high)
            if fitted != value:
                changes.append(f"{name} {value:g} is outside the searched range "
                               f"{dist.low:g}..{dist.high:g}: tried as {fitted:g}")
            value = int(fitted) if isinstance(dist, IntDistribution) else float(fitted)
        elif isinstance(dist, CategoricalDistribution):
            if value not in dist.choices:
                changes.append(f"{name} {value!r} is not one of the searched values "
                               f"{', '.join(map(str, dist.choices))}: drawn by the sampler")
                continue
            value = dist.choices[dist.choices.index(value)]
        values[name] = value
    return values, changes


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


def _with(cfg: BaseModel, values: dict[str, Any]) -> BaseModel:
    """A validated copy of ``cfg`` with ``values`` (``model_copy`` would not validate)."""
    return type(cfg).model_validate({**cfg.model_dump(), **values})


def _share_threads(cfg: BaseModel, workers: int) -> BaseModel:
    """Split the configured threads between workers on one machine."""
    for name in ("threads", "num_threads"):
        if name in type(cfg).model_fields and workers > 1:
            return _with(cfg, {name: max(1, getattr(cfg, name) // workers)})
    return cfg


def _objective(spec: ModelSpec, ds: Dataset, cfg: BaseModel, searched: list[str],
               parent_run_id: str, worker: int) -> Callable[[optuna.Trial], float]:
    experiment = f"{spec.name}_tuning"

    def objective(trial: optuna.Trial) -> float:
        params = {name: spec.space[name](trial, name) for name in searched}
        trial_cfg = _with(cfg, params)
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
                mlflow.log_metric(spec.metric, value, step=step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"{spec.metric} {value:.4g} at step {step}")

            pruned: optuna.TrialPruned | None = None
            try:
                value = float(spec.score(ds, trial_cfg, report))
            except optuna.TrialPruned as exc:
                pruned = exc
                mlflow.set_tag(STATE_TAG, TrialState.PRUNED.name)
            else:
                mlflow.log_metric("value", value)
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
    searched = _searched(spec, cfg, job.request.overrides)
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


def write_tuned_config(cfg: BaseModel, path: Path, header: list[str]) -> Path:
    """Write the full config (every field) as YAML, with ``header`` as comment lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    path.write_text("".join(f"# {line}\n" for line in header) + body)
    return path


def tuned_path(request: TuneRequest) -> Path:
    """Where the session writes its config: ``out``, or configs/tuned/<model>.yaml."""
    return request.out or TUNED_DIR / f"{model_spec(request.model).name}.yaml"


def recorded_best(path: Path) -> dict[str, str] | None:
    """The model, study, metric and value that a tuned config's first line (``HEADER``)
    records; None when ``path`` is no file or does not start with that line."""
    if not path.is_file():
        return None
    found = HEADER_LINE.fullmatch(path.read_text(errors="replace").partition("\n")[0])
    return found.groupdict() if found else None


def recorded_settings(path: Path) -> dict[str, Any] | None:
    """What a tuned config's header records its score was measured on besides the config's
    own fields (``SETTINGS``): data, data config digest, searched fields; None when it does
    not (a file written before ``growth tune`` recorded them)."""
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("#"):
            break
        found = SETTINGS_LINE.fullmatch(line)
        if found:
            return {**found.groupdict(),
                    "searched": [n for n in found["searched"].split(",") if n]}
    return None


def _settings_differ(path: Path, spec: ModelSpec, identity: dict[str, Any]) -> list[str]:
    """How what ``path``'s score was measured on differs from ``identity`` (``_identity``):
    its header's data, data config and searched fields, and its config's other fields."""
    recorded = recorded_settings(path)
    try:
        old = spec.load_config(path, None)
    except GrowthError:
        return [f"its contents, which do not load as a {spec.name} config"]
    differ: list[str] = []
    searched = set(identity["searched"])
    if recorded is not None:
        if recorded["data"] != identity["data"]:
            differ.append(f"data ({recorded['data']} there, {identity['data']} here)")
        if recorded["data_config"] != _digest(identity["data_config"]):
            differ.append("the data config")
        if sorted(recorded["searched"]) != identity["searched"]:
            differ.append(f"searched ({','.join(recorded['searched'])} there, "
                          f"{','.join(identity['searched'])} here)")
        searched |= set(recorded["searched"])
    theirs = _checked(old.model_dump(mode="json"), sorted(searched))
    ours = {k: v for k, v in identity["fixed"].items() if k not in searched}
    return differ + _differences("fixed", theirs, ours)


def _against_existing(path: Path, spec: ModelSpec, value: float, identity: dict[str, Any],
                      overwrite: bool) -> tuple[bool, str | None]:
    """Whether to write the study's best (``value``) to ``path``, and what to say: a file
    recording a better score of this model's metric (higher is better, compared as written,
    to 6 significant digits) measured on the same data and settings is kept unless
    ``overwrite``; one measured on other settings is replaced (the scores do not compare),
    with a warning naming both."""
    old = recorded_best(path)
    if old is None or (old["model"], old["metric"]) != (spec.name, spec.metric):
        return True, None
    try:
        if float(old["value"]) <= float(f"{value:.6g}"):
            return True, None
    except ValueError:  # not a number: nothing to compare
        return True, None
    theirs = f"{spec.metric} {old['value']} (study {old['study']})"
    logged = (f"the replaced config is logged in MLflow experiment {spec.name}_tuning, run "
              f"{old['study']}")
    differ = _settings_differ(path, spec, identity)
    if differ:
        return True, (f"replaced {path}, whose {theirs} is better than this study's "
                      f"{value:.6g} but was measured on other settings: {'; '.join(differ)}; "
                      f"the two scores do not compare; {logged}")
    same = "the same model, data and settings"
    if recorded_settings(path) is None:
        same = ("the same model and settings (the file does not record its data: if it was "
                "another, pass --overwrite)")
    if overwrite:
        return True, (f"replaced {path} (--overwrite), whose {theirs} is better than this "
                      f"study's {value:.6g}, measured on {same}; {logged}")
    return False, f"its {theirs} beats this study's best {value:.6g}, measured on {same}"


def train_command(request: TuneRequest, path: Path) -> str:
    """The ``growth train`` command line that trains with the tuned config at ``path``."""
    args = ["growth", "train", request.model, "--config", str(path)]
    if request.data is not None:
        args += ["--data", str(request.data)]
    if request.data_config is not None:
        args += ["--data-config", str(request.data_config)]
    return shlex.join(args)


def tune(request: TuneRequest) -> TuneResult:
    """Run one tuning session (see the module docstring); returns the study's best trial,
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
    if url and _in_memory(url):
        if request.workers > 1:
            raise GrowthError(f"--storage {url!r} is an in-memory database, which each worker "
                              "process would open empty: give a file (sqlite:///F.db) or a "
                              "server's URL to share a study between workers")
        url = None  # the same as no storage: the study lives in this process
    shown_url = _shown(_parse_url(url)) if url else None
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
    searched = _searched(spec, base, request.overrides)
    quotas = _quotas(request.trials, request.workers)
    shared = bool(request.storage) and url is not None
    seeds = [_sampler_seed(shared, getattr(base, "seed", 0), i) for i in range(len(quotas))]
    storage = open_storage(url) if url else None
    spec.prepare(ds, base)  # data too short for the model fails here, before the study
    study = optuna.create_study(storage=storage,
                                sampler=optuna.samplers.TPESampler(seed=seeds[0]),
                                pruner=_pruner(spec), study_name=study_name,
                                direction="maximize", load_if_exists=True)
    identity = _identity(spec, base, searched, request, ds.source)
    _check_study(study, identity)
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
        tuned = _with(base, best.params)
        path = tuned_path(request)
        write, message = _against_existing(path, spec, best.value, identity, request.overwrite)
        header = [
            HEADER.format(model=spec.name, command=request.model, study=study_name,
                          trial=best.number, trials=len(trials), metric=spec.metric,
                          value=best.value),
            f"storage: {shown_url or 'in-memory'}; written {datetime.now(UTC):%Y-%m-%d %H:%M} "
            "UTC",
            SETTINGS.format(data=ds.source, data_config=_digest(identity["data_config"]),
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
        mlflow.log_params({f"best.{k}": v for k, v in best.params.items()})
        mlflow.log_metrics({"best_value": best.value, "best_trial": best.number})
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

