"""Runs and registered model versions in MLflow: tracked runs, the ``@champion`` alias, and
the point-in-time rule for backtests.

- ``tracked_run`` ends its run FINISHED, FAILED (exception) or KILLED (Ctrl-C) and tags it
  with the process id, so ``close_stale_runs`` can later close runs whose process died
  without ending them (SIGKILL, OOM killer).
- ``register_version`` records on each version the day its training data ends
  (``data_end_date``, exclusive), the data it was trained on (``data_source``: its
  ``Dataset.source``) and its metrics (``metric.<name>`` tags), so promotion and backtests need
  nothing but the registry.
- ``promote_if_better`` moves ``@champion`` only on a strict improvement over the champion
  (trained on the same data, ending no earlier; measured on the candidate's validation rows
  when the caller can re-score it) and every baseline, and writes the decision on the
  version (tag ``promotion``); ``promote`` / ``rollback`` are the manual overrides.
- ``version_for_date``: a backtest as of day D on some data may only use a version trained
  on that data whose training data ended on or before D (the latest such end; the champion
  among versions that share it); ``Dataset.check_as_of`` refuses a D outside the data.

Registry stages are deprecated in MLflow 3: the champion is an alias (``models:/name@champion``).
"""

from __future__ import annotations

import fcntl
import math
import operator
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import RunStatus
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from features.sources import EMBEDDED_SOURCE, GrowthError
from training.tracking import artifact_location, sqlite_file, tracking_uri

if TYPE_CHECKING:
    from features.dataset import Dataset

CHAMPION = "champion"
DATA_END_TAG = "data_end_date"  # ISO date; training data ends before it (exclusive)
DATA_SOURCE_TAG = "data_source"  # Dataset.source of the data it was trained on
TASK_TAG = "task"  # what it predicts, where a setting changes that (churn: its horizon)
HISTORY_TAG = "champion_history"  # on the registered model: champions in order, comma-separated
METRIC_PREFIX = "metric."
PROMOTION_TAG = "promotion"
# the gate's verdict in one word, which version_for_date reads (PROMOTION_TAG explains it):
# PROMOTED (by the gate or a person), WORSE (not better than the champion or a baseline, or
# no finite metric), NOT_COMPARED (other data or task, a backtest, nothing to compare with),
# ROLLED_BACK (taken off @champion by a rollback)
GATE_TAG = "gate"
PROMOTED, WORSE, NOT_COMPARED, ROLLED_BACK = "promoted", "worse", "not compared", "rolled back"
SET_ASIDE = (WORSE, ROLLED_BACK)  # verdicts that keep a version from scoring while another fits
PREVIOUS_CHAMPION_TAG = "previous_champion"
PID_TAG = "pid"
HOST_TAG = "host"

# measures a champion version on the candidate's validation rows (see promote_if_better)
Rescore = Callable[[int], float | None]


# --- tracking -------------------------------------------------------------------------------


def _artifact_root() -> str | None:
    """Artifact root for a new experiment, or None to let MLflow choose.

    The embedded store uses ``mlruns/artifacts``. For any other SQLite file (tests point
    ``MLFLOW_TRACKING_URI`` at one in a tmp dir) it is an ``artifacts/`` folder beside the
    database: MLflow's own default would be ``./mlruns`` in the working directory, i.e.
    inside the repository. A tracking server knows its own artifact store.
    """
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return artifact_location()
    db = sqlite_file(tracking_uri())
    return None if db is None else (db.parent / "artifacts").as_uri()


def _client() -> MlflowClient:
    """A client on the tracking URI in force (also made the fluent API's URI)."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


@contextmanager
def _promotion_lock() -> Iterator[None]:
    """Hold an exclusive lock while a promotion reads the champion, compares and moves the
    alias, so two trainings that finish together cannot both pass against the old champion
    and leave the later writer (maybe the worse one) serving. The lock is a file beside a
    SQLite store (the embedded one, or one several processes share); a tracking server
    offers no lock, so there the last of two simultaneous promotions wins."""
    db = sqlite_file(tracking_uri())
    if db is None:
        yield
        return
    lock = db.with_name(f"{db.name}.promotion.lock")
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def setup(experiment: str) -> str:
    """Point MLflow at ``tracking_uri()`` and get or create ``experiment``; returns its id.

    The id (not the name) is what runs are started with, so a concurrent rename cannot
    send runs elsewhere.
    """
    client = _client()
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(experiment, artifact_location=_artifact_root())
    except MlflowException as e:  # another process created it in between
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise e
        return found.experiment_id


@contextmanager
def tracked_run(
    experiment: str,
    run_name: str,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    nested: bool = False,
) -> Iterator[mlflow.ActiveRun]:
    """Start a run in ``experiment`` and yield it; the run always gets a final status.

    FINISHED when the block completes, KILLED on KeyboardInterrupt, FAILED on any other
    exception (which is re-raised). Tags ``pid`` and ``host`` identify the process, for
    ``close_stale_runs``. ``nested=True`` makes it a child of the active run.
    """
    experiment_id = setup(experiment)
    run_tags = {**(tags or {}), PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    run = mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, nested=nested, tags=run_tags
    )
    try:
        if params:
            mlflow.log_params(params)
        yield run
    except KeyboardInterrupt:
        _end(run.info.run_id, RunStatus.KILLED)
        raise
    except BaseException:
        _end(run.info.run_id, RunStatus.FAILED)
        raise
    else:
        _end(run.info.run_id, RunStatus.FINISHED)


def _end(run_id: str, status: int) -> None:
    """End ``run_id`` with ``status``: via the fluent stack when it is the active run (so the
    parent becomes active again), directly otherwise (the block ended it or left a child
    active)."""
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        mlflow.end_run(RunStatus.to_string(status))
    else:
        _client().set_terminated(run_id, RunStatus.to_string(status))


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 only checks; EPERM means it exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_stale_runs(experiment: str, older_than_s: float = 0.0) -> list[str]:
    """Mark runs of ``experiment`` still RUNNING but abandoned as KILLED; returns their ids.

    A run is abandoned when its ``pid`` tag names a process that no longer exists on this
    host, or when it has no ``pid`` tag and started more than ``older_than_s`` seconds ago.
    Runs tagged by another host are left alone: their pid means nothing here. (A recycled
    pid keeps a dead run open until the new process ends: harmless.)
    """
    client = _client()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    here = socket.gethostname()
    cutoff_ms = (time.time() - older_than_s) * 1000
    closed: list[str] = []
    page_token = None
    while True:
        page = client.search_runs(
            [found.experiment_id], "attributes.status = 'RUNNING'", page_token=page_token
        )
        for run in page:
            pid = run.data.tags.get(PID_TAG)
            if pid is None:
                stale = run.info.start_time < cutoff_ms
            elif run.data.tags.get(HOST_TAG, here) != here:
                stale = False
            else:
                stale = not _pid_alive(int(pid))
            if stale:
                client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
                closed.append(run.info.run_id)
        page_token = page.token
        if not page_token:
            return closed


# --- registry -------------------------------------------------------------------------------


def _as_date(day: date) -> date:
    """``datetime`` is a ``date`` subclass: keep only the day so ISO strings compare."""
    return day.date() if isinstance(day, datetime) else day


def register_version(
    model_name: str,
    run_id: str,
    artifact_path: str,
    data_end: date,
    source: str,
    metrics: dict[str, float] | None = None,
    task: str | None = None,
) -> int:
    """Register ``runs:/<run_id>/<artifact_path>`` as a new version of ``model_name``.

    Creates the registered model on first use. Tags the version with ``data_end_date``
    (ISO, exclusive end of its training data), ``data_source`` (``source``: the
    ``Dataset.source`` of its training data), ``metric.<name>`` for each metric and, when
    given, ``task`` (what it predicts, e.g. "churn within 56 days"), which
    ``promote_if_better`` and ``version_for_date`` read. Returns the new version number.

    Uses ``MlflowClient.create_model_version``: in MLflow 3 ``mlflow.register_model`` with a
    ``runs:/`` URI insists on a LoggedModel, so plain run artifacts could not be registered.
    """
    client = _client()
    try:
        client.create_registered_model(model_name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    tags = {DATA_END_TAG: _as_date(data_end).isoformat(), DATA_SOURCE_TAG: source}
    if task is not None:
        tags[TASK_TAG] = task
    tags.update({METRIC_PREFIX + k: repr(float(v)) for k, v in (metrics or {}).items()})
    source_uri = f"runs:/{run_id}/{artifact_path.strip('/')}"
    version = client.create_model_version(model_name, source_uri, run_id=run_id, tags=tags)
    return int(version.version)


def _versions(client: MlflowClient, model_name: str) -> list[ModelVersion]:
    """All versions of ``model_name``, by version number. Their ``aliases`` are not filled
    in by search_model_versions on a SQL store: read aliases from the registered model."""
    escaped = model_name.replace("'", "\\'")
    versions: list[ModelVersion] = []
    page_token = None
    while True:
        page = client.search_model_versions(f"name = '{escaped}'", page_token=page_token)
        versions.extend(page)
        page_token = page.token
        if not page_token:
            return sorted(versions, key=lambda v: int(v.version))


def _champion(client: MlflowClient, model_name: str) -> int | None:
    try:
        aliases = client.get_registered_model(model_name).aliases
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return int(aliases[CHAMPION]) if CHAMPION in aliases else None


def champion_version(model_name: str) -> int | None:
    """The version holding ``@champion``; None if there is none (or no such model yet),
    which callers treat as "nothing to serve or beat"."""
    return _champion(_client(), model_name)


def champion_task(model_name: str) -> str | None:
    """What the ``@champion`` predicts (its ``task`` tag); None without a champion or tag."""
    client = _client()
    champion = _champion(client, model_name)
    return None if champion is None else _tags(client, model_name, champion).get(TASK_TAG)


def _tags(client: MlflowClient, model_name: str, version: int) -> dict[str, str]:
    return client.get_model_version(model_name, str(version)).tags


def _metric(tags: dict[str, str], metric: str) -> float | None:
    """The ``metric.<metric>`` tag as a number; None when absent or not finite (NaN: nothing
    to compare with)."""
    value = tags.get(METRIC_PREFIX + metric)
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def promote_if_better(
    model_name: str,
    version: int,
    metric: str,
    higher_is_better: bool = True,
    baselines: dict[str, float] | None = None,
    rescore: Rescore | None = None,
) -> tuple[bool, str]:
    """Give ``version`` the ``@champion`` alias if its ``metric.<metric>`` tag is strictly
    better than the champion's (when there is one) and than every baseline value.

    ``rescore(champion)``, when given, measures the champion on the candidate's own
    validation rows (the same metric); its value then stands for the champion instead of
    the champion's tag, which was measured on the champion's own validation window: a
    version trained to a later as-of date is validated on a later window, with another
    positive rate, and PR-AUC on two windows does not compare. The champion's trees were
    fitted on no label of those rows when its data end no later than the candidate's (the
    rows' labels lie after its training labels), but its early stopping and calibrator read
    its own validation window, which may overlap them (the calibrator is monotone and leaves
    ranking metrics alone): where the champion has seen some of the rows' labels, the
    comparison leans towards the champion, never towards the candidate. ``rescore``
    returns None when the champion cannot read those rows (another feature set): then the
    tag is used when both versions' data end on the same day, and otherwise the candidate
    is not promoted (not comparable).

    Returns ``(promoted, reason)``; the reason is also written on the version as tag
    ``promotion`` so the registry explains why each version is or is not serving. A
    champion without the metric cannot be compared: the candidate is not promoted (use
    ``promote`` to force a switch of metric). Nor can a champion trained on other data (its
    ``data_source`` differs; untagged champions from older stores are compared): a metric on
    another data set says nothing about this one, and replacing the served model with one
    trained on different data is a person's decision. Nor can a champion that predicts
    another task (its ``task`` tag differs, e.g. churn over another horizon, whose positive
    rate alone moves PR-AUC; untagged champions are compared). Nor can a champion whose training
    data end later: a backtest (an older as-of date, judged on an older validation window)
    never replaces today's model by itself. A candidate whose metric is not a finite number
    is rejected, and no candidate is promoted when a baseline's value is not one. The read,
    the comparison and the alias move hold a lock (:func:`_promotion_lock`). Raises
    ValueError if the candidate lacks the metric.
    """
    with _promotion_lock():
        return _promote_if_better(model_name, version, metric, higher_is_better, baselines,
                                  rescore)


def _champion_value(model_name: str, version: int, champion: int, metric: str,
                    held_tags: dict[str, str], own: dict[str, str],
                    rescore: Rescore | None) -> tuple[float | None, str]:
    """The champion's ``metric`` to beat and how it was measured (a note for the reason), or
    (None, why it cannot be compared)."""
    if rescore is not None:
        value = rescore(champion)
        if value is not None and math.isfinite(value):
            return value, " on this version's validation rows"
        held_end, own_end = held_tags.get(DATA_END_TAG), own.get(DATA_END_TAG)
        if held_end != own_end:
            return None, (f"(champion v{champion} cannot score this version's validation rows, "
                          f"and its own were validated on data to {held_end}, this version's "
                          f"to {own_end}: not comparable)")
    held = _metric(held_tags, metric)
    if held is None:
        return None, f"(champion v{champion} has no {metric} to compare with)"
    return held, ""


def _promote_if_better(model_name: str, version: int, metric: str, higher_is_better: bool,
                       baselines: dict[str, float] | None, rescore: Rescore | None
                       ) -> tuple[bool, str]:
    client = _client()
    own = _tags(client, model_name, version)
    if METRIC_PREFIX + metric not in own:
        raise ValueError(
            f"{model_name} v{version} has no tag {METRIC_PREFIX}{metric}; "
            "pass metrics= to register_version"
        )
    value = _metric(own, metric)
    if value is None:
        reason = (f"rejected: {metric} {own[METRIC_PREFIX + metric]} is not a finite number "
                  "(nothing to compare)")
        _decide(client, model_name, version, WORSE, reason)
        return False, reason
    better = operator.gt if higher_is_better else operator.lt
    op, not_op = (">", "<=") if higher_is_better else ("<", ">=")
    passed: list[str] = []
    failed: list[str] = []
    lost = False  # a comparison made and lost (not merely not made)
    champion = _champion(client, model_name)
    if champion == version:
        failed.append(f"(v{version} is already the champion)")
    elif champion is not None:
        held_tags = _tags(client, model_name, champion)
        held_source = held_tags.get(DATA_SOURCE_TAG)
        held_end, own_end = held_tags.get(DATA_END_TAG), own.get(DATA_END_TAG)
        if held_source is not None and held_source != own.get(DATA_SOURCE_TAG):
            failed.append(f"(champion v{champion} was trained on other data, {held_source}: "
                          "not comparable)")
        elif (held_task := held_tags.get(TASK_TAG)) is not None and (
                held_task != own.get(TASK_TAG)):
            failed.append(f"(champion v{champion} predicts {held_task}, this version "
                          f"{own.get(TASK_TAG, 'something untagged')}: not comparable)")
        elif held_end is not None and own_end is not None and own_end < held_end:
            failed.append(f"(its training data end on {own_end}, before champion "
                          f"v{champion}'s {held_end}: a backtest does not replace the served "
                          "model)")
        else:
            held, note = _champion_value(model_name, version, champion, metric, held_tags,
                                         own, rescore)
            if held is None:
                failed.append(note)
            elif better(value, held):
                passed.append(f"{op} champion v{champion} {held:g}{note}")
            else:
                failed.append(f"{not_op} champion v{champion} {held:g}{note}")
                lost = True
    else:
        passed.append("(no champion yet)")
    for name, base in (baselines or {}).items():
        if not math.isfinite(base):
            failed.append(f"(baseline {name} has no finite {metric}: {base:g})")
        elif better(value, base):
            passed.append(f"{op} baseline {name} {base:g}")
        else:
            failed.append(f"{not_op} baseline {name} {base:g}")
            lost = True
    promoted = not failed
    # "rejected" only when a comparison was made and lost; a version the gate could not
    # compare is merely not promoted
    outcome = "promoted" if promoted else "rejected" if lost else "not promoted"
    reason = f"{outcome}: {metric} {value:g} " + ", ".join(passed if promoted else failed)
    if not promoted and not lost and champion not in (None, version):
        # not compared with the champion, and no worse than any baseline: a person may serve it
        reason += f"; `growth models promote {model_name} {version}` serves this one"
    _decide(client, model_name, version,
            PROMOTED if promoted else WORSE if lost else NOT_COMPARED, reason)
    if promoted:
        _promote(client, model_name, version)
    return promoted, reason


def _decide(client: MlflowClient, model_name: str, version: int, verdict: str,
            reason: str) -> None:
    client.set_model_version_tag(model_name, str(version), PROMOTION_TAG, reason)
    client.set_model_version_tag(model_name, str(version), GATE_TAG, verdict)


def promote(model_name: str, version: int, reason: str | None = None) -> None:
    """Give ``version`` the ``@champion`` alias unconditionally (a person's decision).

    The champion it replaces is recorded on it as tag ``previous_champion`` (what ``growth
    models list`` shows), and the version is added to the model's ``champion_history``,
    which ``rollback`` unwinds; ``reason``, when given, is added to its ``promotion`` tag
    after the gate's decision, which stays readable; its ``gate`` verdict becomes promoted.
    Promoting the current champion is a :class:`GrowthError` that changes nothing (its
    recorded decision and predecessor stay as they are).
    """
    client = _client()
    client.get_model_version(model_name, str(version))  # fail clearly if it does not exist
    with _promotion_lock():
        _promote(client, model_name, version, reason)
        client.set_model_version_tag(model_name, str(version), GATE_TAG, PROMOTED)


def _history(client: MlflowClient, model_name: str) -> list[int] | None:
    """The champions of ``model_name`` in the order they took the alias, the current one
    last; None on a registry written before the history was kept."""
    value = client.get_registered_model(model_name).tags.get(HISTORY_TAG)
    return None if value is None else [int(v) for v in value.split(",") if v]


def _set_history(client: MlflowClient, model_name: str, history: list[int]) -> None:
    client.set_registered_model_tag(model_name, HISTORY_TAG, ",".join(map(str, history)))


def _promote(client: MlflowClient, model_name: str, version: int,
             reason: str | None = None) -> None:
    previous = _champion(client, model_name)
    if previous == version:
        raise GrowthError(f"{model_name} v{version} is already @{CHAMPION}; nothing changed")
    if reason is not None:  # a person's decision, after the gate's (kept)
        decided = _tags(client, model_name, version).get(PROMOTION_TAG)
        client.set_model_version_tag(model_name, str(version), PROMOTION_TAG,
                                     f"{decided}; then {reason}" if decided else reason)
    if previous is not None:
        client.set_model_version_tag(
            model_name, str(version), PREVIOUS_CHAMPION_TAG, str(previous)
        )
    history = _history(client, model_name)
    if history is None or (history and history[-1] != previous):
        history = [] if previous is None else [previous]  # kept from here on
    _set_history(client, model_name, [*history, version])
    client.set_registered_model_alias(model_name, CHAMPION, str(version))


def rollback(model_name: str) -> int:
    """Undo the last change of ``@champion``: the champion before it serves again; returns
    that version.

    Repeated rollbacks walk back through ``champion_history`` (each promotion, by the gate
    or by hand, is one step) until the first champion, then there is nothing to roll back;
    the version rolled back from gets a note in its ``promotion`` tag. A registry written
    before the history was kept follows the ``previous_champion`` tag once. Raises
    ValueError when there is no champion, nothing to go back to, the alias was moved outside
    growth (the history does not end with it), or the version to go back to was deleted.
    """
    client = _client()
    with _promotion_lock():
        return _rollback(client, model_name)


def _rollback(client: MlflowClient, model_name: str) -> int:
    current = _champion(client, model_name)
    if current is None:
        raise ValueError(f"{model_name} has no {CHAMPION}: nothing to roll back")
    history = _history(client, model_name)
    if history is None:  # an older registry: one step back along previous_champion
        previous = client.get_model_version(model_name, str(current)).tags.get(
            PREVIOUS_CHAMPION_TAG)
        if previous is None:
            raise ValueError(
                f"{model_name} {CHAMPION} v{current} has no {PREVIOUS_CHAMPION_TAG} tag: "
                "it replaced no earlier champion, so there is nothing to roll back to")
        history = [int(previous), current]
    if history[-1] != current:
        raise ValueError(
            f"{model_name} {CHAMPION} v{current} was set outside growth (its champion history "
            f"ends with v{history[-1]}): choose a version with `growth models promote "
            f"{model_name} VERSION`")
    if len(history) < 2:
        raise ValueError(f"{model_name} {CHAMPION} v{current} was the first champion: "
                         "there is nothing to roll back to")
    previous = history[-2]
    try:
        client.get_model_version(model_name, str(previous))
    except MlflowException as e:
        if e.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise ValueError(
            f"{model_name} {CHAMPION} v{current} replaced v{previous}, which has been deleted: "
            f"choose a version with `growth models promote {model_name} VERSION`") from None
    decided = client.get_model_version(model_name, str(current)).tags.get(PROMOTION_TAG)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    note = f"rolled back on {when}: v{previous} serves again"
    client.set_model_version_tag(model_name, str(current), PROMOTION_TAG,
                                 f"{decided}; {note}" if decided else note)
    client.set_model_version_tag(model_name, str(current), GATE_TAG, ROLLED_BACK)
    _set_history(client, model_name, history[:-1])
    client.set_registered_model_alias(model_name, CHAMPION, str(previous))
    return previous


def registered_models() -> list[str]:
    """Names of every registered model, sorted (``growth models list`` without a name)."""
    client = _client()
    names: list[str] = []
    page_token = None
    while True:
        page = client.search_registered_models(page_token=page_token)
        names.extend(m.name for m in page)
        page_token = page.token
        if not page_token:
            return sorted(names)


def list_versions(model_name: str) -> list[dict[str, Any]]:
    """One dict per version, by version number: ``version``, ``run_id``, ``data_end_date``,
    ``data_source`` and ``task`` (None on versions registered before it was recorded or, for
    ``task``, of a model whose settings do not change what it predicts), ``champion``
    (bool), ``metrics`` (from ``metric.*`` tags), ``promotion`` (the recorded decision, or
    None) and ``created`` (UTC datetime)."""
    client = _client()
    champion = _champion(client, model_name)
    rows = []
    for v in _versions(client, model_name):
        rows.append({
            "version": int(v.version),
            "run_id": v.run_id,
            DATA_END_TAG: v.tags.get(DATA_END_TAG),
            DATA_SOURCE_TAG: v.tags.get(DATA_SOURCE_TAG),
            TASK_TAG: v.tags.get(TASK_TAG),
            "champion": int(v.version) == champion,
            "metrics": {
                k.removeprefix(METRIC_PREFIX): float(x)
                for k, x in v.tags.items()
                if k.startswith(METRIC_PREFIX)
            },
            PROMOTION_TAG: v.tags.get(PROMOTION_TAG),
            "created": datetime.fromtimestamp(v.creation_timestamp / 1000, tz=UTC),
        })
    return rows


def version_for_date(model_name: str, as_of: date, source: str, task: str | None = None
                     ) -> int:
    """The point-in-time rule: the newest version trained on ``source`` (the
    ``Dataset.source`` of the data to score) whose ``data_end_date`` <= ``as_of``; with
    ``task``, only versions that predict it (their ``task`` tag; untagged ones count as any).

    A backtest or replay as of a day must not use a model that saw data from that day on,
    nor one trained on other data. A version the gate set aside (``gate`` verdict worse:
    not better than the champion or a baseline on its validation rows; or rolled back) is
    passed over while another eligible version is not, so a retraining the gate rejected does
    not take over scoring; when every eligible version was set aside, they all count (see
    :func:`gate_verdict` to say so). "Newest" means newest data: among those versions, the
    ones whose training data ends latest; of several with that end, the ``@champion`` when
    it is one of them, else the highest version number. So a backtest version registered
    after today's model (older data, higher number) does not replace it. Versions without a
    ``data_end_date`` are never eligible; versions without a ``data_source`` (registered
    before it was recorded) count as trained on any source, and those without a verdict as
    not set aside. Raises LookupError naming the date, the source and the newest versions'
    sources and end dates when none qualifies.
    """
    client = _client()
    day = _as_date(as_of).isoformat()
    versions = _versions(client, model_name)
    dated = [(int(v.version), v.tags[DATA_END_TAG], v.tags.get(DATA_SOURCE_TAG),
              v.tags.get(TASK_TAG)) for v in versions if DATA_END_TAG in v.tags]
    set_aside = {int(v.version) for v in versions if v.tags.get(GATE_TAG) in SET_ASIDE}
    eligible = [(end, number) for number, end, trained_on, predicts in dated
                if end <= day and trained_on in (None, source)
                and (task is None or predicts in (None, task))]
    eligible = [e for e in eligible if e[1] not in set_aside] or eligible
    if eligible:
        latest = max(end for end, _ in eligible)
        numbers = [number for end, number in eligible if end == latest]
        champion = _champion(client, model_name)
        return champion if champion in numbers else max(numbers)
    raise LookupError(
        f"no version of {model_name}{f' that predicts {task}' if task else ''} trained on "
        f"{source} has training data ending on or before {day}; "
        + _versions_in_words(dated, source))


def _versions_in_words(dated: list[tuple[int, str, str | None, str | None]], source: str
                       ) -> str:
    """What a LookupError of :func:`version_for_date` says is there: the newest versions
    trained on ``source`` (any task), else each other source with its newest version."""
    ours = [(n, end, predicts) for n, end, trained_on, predicts in dated
            if trained_on in (None, source)]
    if ours:
        return "its newest versions trained on it: " + "; ".join(
            f"v{n} data to {end}" + (f" ({predicts})" if predicts else "")
            for n, end, predicts in reversed(ours[-5:]))
    if not dated:
        return "it has no dated versions"
    newest = {trained_on: (n, end) for n, end, trained_on, _ in dated}  # by version number
    return "its versions were trained on other data: " + "; ".join(
        f"{trained_on} (newest v{n}, data to {end})" for trained_on, (n, end) in newest.items())


def gate_verdict(model_name: str, version: int) -> tuple[str | None, str | None]:
    """The ``gate`` verdict of ``version`` and its ``promotion`` reason (None where not
    recorded), e.g. for a scoring command to say that the version it uses was set aside."""
    tags = _tags(_client(), model_name, version)
    return tags.get(GATE_TAG), tags.get(PROMOTION_TAG)


def gate_metadata(model_name: str, version: int) -> dict[bytes, bytes]:
    """Parquet metadata for a file scored with ``version``: its ``gate`` verdict and the
    ``promotion`` reason, where the gate recorded them."""
    verdict, reason = gate_verdict(model_name, version)
    if verdict is None:
        return {}
    return {GATE_TAG.encode(): verdict.encode(), PROMOTION_TAG.encode(): (reason or "").encode()}


def set_aside_note(model_name: str, version: int) -> str | None:
    """A line for people when ``version`` was set aside by the gate (it scores only because
    no other version fits the date); None otherwise."""
    verdict, reason = gate_verdict(model_name, version)
    if verdict not in SET_ASIDE:
        return None
    return (f"note: {model_name} v{version} was set aside ({verdict}: {reason}); no other "
            "version fits this date")


def version_artifact_uri(model_name: str, version: int) -> str:
    """``models:/<name>/<version>``, for ``mlflow.artifacts.download_artifacts`` or
    ``mlflow.<flavor>.load_model``; checked to exist so a wrong version fails here."""
    _client().get_model_version(model_name, str(version))
    return f"models:/{model_name}/{version}"


def download_for_date(model_name: str, as_of: date, ds: Dataset, dest: Path,
                      train_command: str, task: str | None = None,
                      untrainable: Callable[[], str | None] | None = None
                      ) -> tuple[Path, int]:
    """Download the version :func:`version_for_date` picks for the data of ``ds`` into
    ``dest``; returns (folder, version). No fitting version, or no registered model at all,
    is a :class:`GrowthError` that tells people to run ``train_command`` (on this data), or,
    when ``untrainable()`` says why that command would fail here, that none can be trained
    for the date (only asked then: it may build the training data to find out)."""
    source = ds.source
    if source != EMBEDDED_SOURCE:
        train_command = f"{train_command} --data {source}"
    setup(model_name)

    def advice() -> str:
        why = untrainable() if untrainable is not None else None
        return (f"train one with `{train_command}`" if why is None else
                f"none can be trained on this data with data ending by {_as_date(as_of)}, so "
                f"nothing scores as of that day: `{train_command}` stops with: {why}")

    try:
        version = version_for_date(model_name, as_of, source, task)
    except LookupError as exc:
        raise GrowthError(f"{exc}; {advice()}") from exc
    except MlflowException as exc:  # no registered model at all
        raise GrowthError(f"no {model_name} model is registered yet ({exc}); {advice()}"
                          ) from exc
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=version_artifact_uri(model_name, version), dst_path=str(dest))
    return Path(local), version
