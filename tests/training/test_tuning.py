"""``growth tune``: two worker processes sharing one SQLite study, nested MLflow runs under one
parent, pruned trials marked, and a tuned config that the model's loader accepts."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.trial import TrialState

from features.config import Strict, load_config
from features.sources import GrowthError
from features.synth import generate
from tests.test_models_cli import growth
from tests.training.test_registry import _migrated_db, _store  # noqa: F401  (fast MLflow store)
from training.tuning import run as session
from training.tuning.identity import STUDY_ATTR
from training.tuning.request import TuneRequest
from training.tuning.run import BASE_ATTR, STATE_TAG, TuneResult, _quotas, unreproducible
from training.tuning.space import (
    LIGHTGBM_SPACE,
    SPECS,
    TWO_TOWER_SPACE,
    ModelSpec,
    base_params,
    model_spec,
    searched_fields,
)
from training.tuning.storage import open_storage, storage_url
from training.tuning.tuned_file import recorded_best, recorded_settings
from training.two_tower.config import load_two_tower_config

# tiny two-tower settings; dim is fixed here, so the search must leave it alone
SMALL = ("as_of=2017-06-05", "window_days=14", "n_cutoffs=3", "history_len=30", "dim=16",
         "id_dim=16", "attr_dim=4", "hidden=32", "epochs=2", "threads=1")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synth") / "data"
    generate(folder, households=200, products=300, weeks=24, seed=3)
    return folder


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tune() loads data with the default quarantine folder, relative to the working
    directory: run in tmp_path, never the repository's quarantine/."""
    monkeypatch.chdir(tmp_path)


def _children(parent_run_id: str, experiment: str) -> list:
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    return [r for r in runs if r.data.tags.get(MLFLOW_PARENT_RUN_ID) == parent_run_id]


def test_two_workers_share_one_sqlite_study(data: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    out = tmp_path / "tuned" / "two_tower.yaml"
    result = session.tune(TuneRequest(
        "two-tower", trials=4, storage=storage, study="shared", workers=2, data=data,
        overrides=SMALL, out=out))

    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials()
    assert len(trials) == 4
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    # the base config first, in this process (workers popping its waiting trial together
    # could both take it on SQLite), then the other three in two worker processes
    assert trials[0].user_attrs["pid"] == os.getpid() and BASE_ATTR in (
        trials[0].user_attrs)
    pids = {t.user_attrs["pid"] for t in trials[1:]}
    assert len(pids) == 2 and os.getpid() not in pids
    pids.add(os.getpid())
    assert all("dim" not in t.params and "lr" in t.params for t in trials)

    children = _children(result.parent_run_id, "two_tower_tuning")
    assert sorted(r.info.run_id for r in children) == sorted(
        t.user_attrs["mlflow_run_id"] for t in trials)
    assert {r.data.tags["pid"] for r in children} == {str(p) for p in pids}
    for run in children:
        trial = trials[int(run.data.tags["optuna.trial"])]
        assert run.info.status == "FINISHED"
        assert run.data.tags[STATE_TAG] == trial.state.name
        assert float(run.data.params["lr"]) == pytest.approx(trial.params["lr"])
        if trial.state == TrialState.COMPLETE:
            assert run.data.metrics["value"] == pytest.approx(trial.value)
            # the score under the metric's own name, as a training run logs it
            assert run.data.metrics["val_recall_at_20"] == pytest.approx(trial.value)
        curve = mlflow.MlflowClient().get_metric_history(run.info.run_id,
                                                         "val_recall_at_20_at_step")
        assert sorted(m.step for m in curve) == sorted(trial.intermediate_values)

    parent = mlflow.get_run(result.parent_run_id)
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert parent.data.params["best_trial"] == str(study.best_trial.number)
    assert "best_trial" not in parent.data.metrics
    assert parent.data.params["workers"] == "2"
    cfg = load_two_tower_config(out)
    assert cfg.lr == pytest.approx(study.best_params["lr"]) and cfg.dim == 16
    assert cfg.batch_size == study.best_params["batch_size"]


def test_default_storage_and_trial_split() -> None:
    assert storage_url(TuneRequest("churn", 4), "s") is None  # in memory
    shared = storage_url(TuneRequest("churn", 4, workers=2), "s")
    assert shared == f"sqlite:///{Path('artifacts/tuning/s.db').resolve()}"
    given = "postgresql://u:secret@db/optuna"
    assert storage_url(TuneRequest("churn", 4, given, workers=2), "s") == given
    assert _quotas(5, 2) == [3, 2] and _quotas(2, 4) == [1, 1]


def test_churn_trials_report_every_ten_rounds(data: Path, tmp_path: Path) -> None:
    from training.propensity.config import load_churn_config

    sets = ("as_of=2017-05-01", "horizon_days=28", "n_cutoffs=8", "step_days=14",
            "max_rounds=40", "learning_rate=0.1")
    storage = f"sqlite:///{tmp_path / 'churn.db'}"  # to read Optuna's values back
    result = session.tune(TuneRequest("churn", trials=2, data=data, overrides=sets,
                                      storage=storage, study="churn",
                                      out=tmp_path / "churn.yaml"))
    trials = optuna.load_study(study_name="churn", storage=storage).get_trials()
    client = mlflow.MlflowClient()
    spec = model_spec("churn")
    assert (spec.metric, spec.progress_metric) == ("val_pr_auc", "val_pr_auc_at_step")
    for run in _children(result.parent_run_id, "churn_tuning"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id,
                                                           spec.progress_metric)]
        assert steps and all(step % 10 == 0 for step in steps)
        # val_pr_auc is the trial's score (best round), logged once: not the last step's
        trial = trials[int(run.data.tags["optuna.trial"])]
        assert trial.state == TrialState.COMPLETE
        scores = client.get_metric_history(run.info.run_id, spec.metric)
        assert [m.value for m in scores] == [pytest.approx(trial.value)]
        assert "learning_rate" not in run.data.params  # fixed with --set
    cfg = load_churn_config(tmp_path / "churn.yaml")
    assert cfg.num_leaves == result.best_params["num_leaves"] and cfg.horizon_days == 28
    assert cfg.learning_rate == 0.1 and 0 < result.best_value <= 1


class FakeConfig(Strict):
    seed: int = 0
    learning_rate: float = 0.1
    num_leaves: int = 31


def _fake_spec(score, prepare=lambda ds, cfg: None, space=None) -> ModelSpec:
    return ModelSpec(
        "fake", "auc", space or {"learning_rate": LIGHTGBM_SPACE["learning_rate"]},
        warmup_steps=1, load_config=lambda path, sets: load_config(FakeConfig, path, sets),
        score=score, prepare=prepare)


def test_data_the_model_cannot_use_fails_before_the_study(
        tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One clear error, no trial, no tuning run: not a traceback from inside Optuna."""
    def prepare(ds, cfg: FakeConfig) -> None:
        raise GrowthError(f"{ds.source} is too short for the fake model")

    def score(ds, cfg: FakeConfig, report) -> float:
        raise AssertionError("no trial may start")

    monkeypatch.setitem(SPECS, "fake", lambda: _fake_spec(score, prepare))
    with pytest.raises(GrowthError, match="too short for the fake model"):
        session.tune(TuneRequest("fake", trials=2, data=tiny_folder,
                                 out=tmp_path / "fake.yaml"))
    assert mlflow.get_experiment_by_name("fake_tuning") is None
    assert not (tmp_path / "fake.yaml").exists()


def test_pruned_trials_are_marked(tiny_folder: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def score(ds, cfg: FakeConfig, report) -> float:
        """A learning curve that rises with the learning rate: the median prunes low ones."""
        for step in (1, 2, 3):
            report(step, cfg.learning_rate * step)
        return cfg.learning_rate * 3

    monkeypatch.setitem(SPECS, "fake", lambda: _fake_spec(score))
    result = session.tune(TuneRequest("fake", trials=12, data=tiny_folder,
                                      out=tmp_path / "fake.yaml"))
    assert result.session_states.get("PRUNED", 0) >= 1
    assert result.session_states["COMPLETE"] + result.session_states["PRUNED"] == 12
    children = _children(result.parent_run_id, "fake_tuning")
    states = [r.data.tags[STATE_TAG] for r in children]
    assert states.count("PRUNED") == result.session_states["PRUNED"]
    for run in children:  # a pruned run keeps its curve up to the pruning step, no value
        assert ("value" in run.data.metrics) == (run.data.tags[STATE_TAG] == "COMPLETE")
        assert ("auc" in run.data.metrics) == (run.data.tags[STATE_TAG] == "COMPLETE")
        assert "auc_at_step" in run.data.metrics
    tuned = load_config(FakeConfig, tmp_path / "fake.yaml")
    assert tuned.learning_rate * 3 == pytest.approx(result.best_value)
    assert tuned.num_leaves == 31  # not in the space: the base value


def test_same_seed_same_trials(tiny_folder: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(SPECS, "fake",
                        lambda: _fake_spec(lambda ds, cfg, report: cfg.learning_rate))

    def drawn(*sets: str, storage: str | None = None) -> list[float]:
        result = session.tune(TuneRequest("fake", trials=3, data=tiny_folder,
                                          overrides=sets, storage=storage,
                                          out=tmp_path / "fake.yaml"))
        runs = _children(result.parent_run_id, "fake_tuning")
        return sorted(float(r.data.params["learning_rate"]) for r in runs)

    assert drawn() == drawn() != drawn("seed=1")
    assert drawn(storage="sqlite://") == drawn()  # in memory: the same as no storage
    assert "cannot be reproduced" not in capsys.readouterr().err

    drawn(storage=f"sqlite:///{tmp_path / 'study.db'}")  # unseeded: said first
    assert capsys.readouterr().err.startswith(
        "note: this session's trials cannot be reproduced from the seed: --storage leaves the "
        "sampler unseeded, so sessions sharing the study do not repeat each other's trials\n")
    assert unreproducible(False, 1) is None
    assert unreproducible(True, 2).endswith(
        "trials; 2 workers each draw from the trials finished so far, in whatever order they "
        "finish")


def test_no_completed_trial_writes_no_config(tiny_folder: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def score(ds, cfg, report) -> float:
        raise optuna.TrialPruned("always")

    monkeypatch.setitem(SPECS, "fake", lambda: _fake_spec(score))
    with pytest.raises(GrowthError, match="no trial of study .* completed"):
        session.tune(TuneRequest("fake", trials=2, data=tiny_folder,
                                 out=tmp_path / "fake.yaml"))
    assert not (tmp_path / "fake.yaml").exists()


def test_a_study_that_tunes_something_else_is_refused(tiny_folder: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared study's best trial becomes the written config: trials of another model, on
    other data or with other fixed settings must not be mixed into it."""
    monkeypatch.setitem(SPECS, "fake",
                        lambda: _fake_spec(lambda ds, cfg, report: cfg.learning_rate))
    monkeypatch.setitem(SPECS, "other", lambda: dataclasses.replace(
        _fake_spec(lambda ds, cfg, report: 1.0), name="other"))
    storage = f"sqlite:///{tmp_path / 'study.db'}"

    def run(model: str = "fake", *sets: str, data: Path = tiny_folder,
            data_config: str = "") -> TuneResult:
        config = tmp_path / "data.yaml"
        config.write_text(data_config or "seed: 0\n")
        return session.tune(TuneRequest(model, trials=1, storage=storage, study="s",
                                        data=data, overrides=sets, data_config=config,
                                        out=tmp_path / f"{model}.yaml"))

    run()
    assert run().study_trials == 2  # same model, data and settings: trials add up
    # another machine's memory and folders change no score
    assert run(data_config="memory_limit: 2GB\nquarantine_dir: elsewhere\n").study_trials == 3
    with pytest.raises(GrowthError, match=r"study s tunes something else: fixed.num_leaves "
                                          r"\(31 there, 7 here\)"):
        run("fake", "num_leaves=7")
    with pytest.raises(GrowthError, match=r"study s tunes something else: "
                                          r"data_config.top_departments \(12 there, 3 here\)"):
        run(data_config="top_departments: 3\n")
    other = tmp_path / "other-data"
    shutil.copytree(tiny_folder, other)
    with pytest.raises(GrowthError, match="study s tunes something else: data"):
        run(data=other)
    with pytest.raises(GrowthError, match="study s tunes something else: model .'fake' there, "
                                          "'other' here."):
        run("other")
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 3


def _creator_records(monkeypatch: pytest.MonkeyPatch, creator: optuna.Study,
                     identity: dict) -> list[float]:
    """While a joining session waits (its first sleep), the session that created the study
    records what it tunes; the sleeps asked for, returned."""
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        if not sleeps:
            creator.set_user_attr(STUDY_ATTR, identity)
        sleeps.append(seconds)

    monkeypatch.setattr("training.tuning.identity.sleep", sleep)
    return sleeps


def test_only_the_session_that_creates_a_study_records_what_it_tunes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sessions opening one new shared study together both found it empty and without
    an identity, and both recorded theirs, the later write kept: a session with other
    settings could add trials to a study recording another's. Now the one that created it
    records; the other waits for that record and checks it."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    theirs = {"model": "fake", "fixed": {"num_leaves": 31}}
    creator = optuna.create_study(study_name="s", storage=open_storage(url))  # not recorded yet
    sleeps = _creator_records(monkeypatch, creator, theirs)
    with pytest.raises(GrowthError, match=r"study s tunes something else: fixed.num_leaves "
                                          r"\(31 there, 7 here\)"):
        session._open_study("s", open_storage(url), {"model": "fake",
                                                     "fixed": {"num_leaves": 7}})
    assert sleeps  # it waited for the creator's record
    assert optuna.load_study(study_name="s", storage=url).user_attrs[STUDY_ATTR] == theirs

    creator = optuna.create_study(study_name="t", storage=open_storage(url))
    sleeps = _creator_records(monkeypatch, creator, theirs)
    joined = session._open_study("t", open_storage(url), dict(theirs))  # the same: joins
    assert sleeps and joined.user_attrs[STUDY_ATTR] == theirs and not joined.trials
    # the creator records the study it opens at once, whatever another session recorded
    assert session._open_study("new", open_storage(url), theirs).user_attrs[STUDY_ATTR] == theirs


def test_a_study_whose_creator_recorded_nothing_is_recorded_after_the_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A creator that stopped between creating the study and recording its identity: an
    empty study is this session's after the wait; one with trials is refused at once."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    ours = {"model": "fake", "fixed": {"num_leaves": 7}}
    optuna.create_study(study_name="s", storage=url)
    session._open_study("s", open_storage(url), ours, wait_s=0.3)
    assert optuna.load_study(study_name="s", storage=url).user_attrs[STUDY_ATTR] == ours
    old = optuna.create_study(study_name="old", storage=url)  # trials, no identity
    old.optimize(lambda trial: 0.0, n_trials=1)

    def sleep(seconds: float) -> None:
        raise AssertionError("trials without an identity: no record will come")

    monkeypatch.setattr("training.tuning.identity.sleep", sleep)
    with pytest.raises(GrowthError, match="study old already holds 1 trial that does not say "
                                          "what it tunes; choose another --study"):
        session._open_study("old", open_storage(url), ours)
    old.optimize(lambda trial: 0.0, n_trials=1)
    with pytest.raises(GrowthError, match="study old already holds 2 trials that do not say "
                                          "what they tune; choose another --study"):
        session._open_study("old", open_storage(url), ours)


def test_a_storage_that_is_no_database_or_lacks_its_folder_is_refused(
        tiny_folder: Path, tmp_path: Path) -> None:
    """Refused before the data is read: a mistyped SQLite folder would silently start a new,
    empty study; an MLflow server's URL failed with SQLAlchemy's NoSuchModuleError."""
    missing = tmp_path / "missing" / "x"
    url = f"sqlite:///{missing / 'study.db'}"
    with pytest.raises(GrowthError, match=re.escape(
            f"--storage {url}: folder {missing} does not exist; create it first to start a "
            "new study there, or fix the path to resume one")):
        session.tune(TuneRequest("churn", trials=1, storage=url, data=tiny_folder / "none"))
    assert not (tmp_path / "missing").exists()
    with pytest.raises(GrowthError, match=re.escape(
            "--storage http://localhost:5000: its scheme http:// is not a database SQLAlchemy "
            "knows; Optuna's storage is an SQLAlchemy database URL such as "
            "sqlite:///path/to/study.db or postgresql://user@host/db")):
        session.tune(TuneRequest("churn", trials=1, storage="http://localhost:5000",
                                 data=tiny_folder / "none"))
    # the default folder under artifacts/tuning/ is created, as before
    default = storage_url(TuneRequest("churn", 2, workers=2), "s")
    open_storage(default)
    assert (tmp_path / "artifacts" / "tuning").is_dir()


def test_an_in_memory_storage_cannot_be_shared_by_workers(tiny_folder: Path) -> None:
    for url in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(GrowthError, match="in-memory database, which each worker"):
            session.tune(TuneRequest("churn", trials=2, workers=2, storage=url,
                                     data=tiny_folder))


def test_tune_command(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    sets = [a for v in SMALL for a in ("--set", v)]
    code, out, err = growth(monkeypatch, capsys, "tune", "two-tower", "--trials", "2",
                            "--data", str(data), *sets)
    assert code == 0, err[-3000:]
    assert "2 complete" in out and "configs/tuned/two_tower.yaml" in out
    cfg = load_two_tower_config(tmp_path / "configs" / "tuned" / "two_tower.yaml")
    assert cfg.as_of.isoformat() == "2017-06-05" and cfg.dim == 16

    code, _, err = growth(monkeypatch, capsys, "tune", "lasso", "--trials", "2")
    assert code == 2 and "cannot tune 'lasso'" in err


def test_the_first_trial_of_a_new_study_is_the_base_config(
        tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    """The base config (here best where it is: learning_rate 0.1) is trial 0, so the tuned
    config is never worse than it; the command prints both scores and how to train."""
    monkeypatch.setitem(SPECS, "fake", lambda: _fake_spec(
        lambda ds, cfg, report: -abs(cfg.learning_rate - 0.1)))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    out = tmp_path / "fake.yaml"
    code, stdout, err = growth(monkeypatch, capsys, "tune", "fake", "--trials", "3",
                               "--storage", storage, "--study", "s", "--data",
                               str(tiny_folder), "--out", str(out))
    assert code == 0, err[-3000:]
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert trials[0].params == {"learning_rate": 0.1}
    assert trials[0].user_attrs[BASE_ATTR] == "configs/fake.yaml"
    assert load_config(FakeConfig, out).learning_rate == 0.1
    text = " ".join(stdout.split())
    assert ("base config configs/fake.yaml: trial 0, validation score 0.000000 (no trial "
            "beat it)") in text
    assert "best of study s: trial 0, validation score 0.000000" in text
    assert f"train with it: growth train fake --config {out} --data {tiny_folder}" in text

    # another session on the same study: no second base-config trial
    result = session.tune(TuneRequest("fake", trials=2, storage=storage, study="s",
                                      data=tiny_folder, out=out))
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert len(trials) == 5
    assert [t.number for t in trials if BASE_ATTR in t.user_attrs] == [0]
    assert (result.base_trial, result.base_value, result.best_trial) == (0, 0.0, 0)


def test_a_base_value_outside_the_space_is_clipped_and_said(
        tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SPECS, "fake", lambda: _fake_spec(
        lambda ds, cfg, report: cfg.learning_rate))
    base = tmp_path / "base.yaml"
    base.write_text("learning_rate: 0.5\n")  # the space ends at 0.2
    result = session.tune(TuneRequest("fake", trials=1, config=base, data=tiny_folder,
                                      out=tmp_path / "fake.yaml"))
    assert result.best_params == {"learning_rate": 0.2} and result.base_trial == 0
    assert result.base_label == str(base)
    assert result.base_changes == ["learning_rate 0.5 is outside the searched range "
                                   "0.01..0.2: tried as 0.2"]

    class Config(Strict):
        learning_rate: float = 0.001
        num_leaves: int = 500
        dim: int = 48
        batch_size: int = 1024

    space = {"learning_rate": LIGHTGBM_SPACE["learning_rate"],
             "num_leaves": LIGHTGBM_SPACE["num_leaves"],
             "dim": TWO_TOWER_SPACE["dim"],
             "batch_size": TWO_TOWER_SPACE["batch_size"]}
    values, changes = base_params(_fake_spec(None, space=space), Config(), list(space))
    assert values == {"learning_rate": 0.01, "num_leaves": 128, "batch_size": 1024}
    assert changes == [
        "learning_rate 0.001 is outside the searched range 0.01..0.2: tried as 0.01",
        "num_leaves 500 is outside the searched range 4..128: tried as 128",
        "dim 48 is not one of the searched values 32, 64, 128: drawn by the sampler"]


@pytest.mark.parametrize("model", ["churn", "coupon", "two-tower"])
def test_the_committed_configs_lie_in_the_search_space(model: str) -> None:
    """configs/<model>.yaml is tried as it is: churn's lambda_l2 50 was outside the space."""
    spec = model_spec(model)
    base = spec.load_config(None, None)
    values, changes = base_params(spec, base, searched_fields(spec, base, ()))
    assert changes == [] and values == {n: getattr(base, n) for n in values}


def test_a_better_tuned_config_on_the_same_settings_is_kept(
        tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    """A worse study leaves a better config measured on the same data and settings in
    place (its own best goes to MLflow) unless --overwrite; one measured on other settings
    is replaced, with a warning naming the difference."""
    offset = [1.0]
    monkeypatch.setitem(SPECS, "fake", lambda: _fake_spec(
        lambda ds, cfg, report: cfg.learning_rate + offset[0]))
    out = tmp_path / "fake.yaml"

    def tune(study: str, *sets: str, data: Path = tiny_folder, **kw) -> TuneResult:
        return session.tune(TuneRequest("fake", trials=2, study=study, data=data,
                                        overrides=sets, out=out, **kw))

    first = tune("good")
    assert first.warning is None and first.kept is None and first.written
    recorded = {"model": "fake", "study": "good", "metric": "auc",
                "value": f"{first.best_value:.6g}"}
    assert recorded_best(out) == recorded
    assert recorded_settings(out) == {
        "data": str(tiny_folder.resolve()), "data_config": recorded_settings(out)[
            "data_config"], "searched": ["learning_rate"]}
    good = out.read_text()

    offset[0] = 0.0
    code, stdout, err = growth(monkeypatch, capsys, "tune", "fake", "--trials", "2",
                               "--study", "worse", "--data", str(tiny_folder), "--out",
                               str(out))
    assert code == 0, err[-3000:]
    assert out.read_text() == good
    err, stdout = " ".join(err.split()), " ".join(stdout.split())
    assert (f"note: kept {out}: its auc {first.best_value:.6g} (study good) beats this "
            "study's best 0.1, measured on the same model, data and settings; this study's "
            "best config is logged in MLflow experiment fake_tuning, run worse (id ") in err
    assert f"artifact fake.yaml; --overwrite writes it to {out}" in err
    assert "tuned config:" not in stdout
    assert f"train with the kept config: growth train fake --config {out} --data" in stdout
    parent = mlflow.search_runs(experiment_names=["fake_tuning"], output_format="list",
                                filter_string="attributes.run_name = 'worse'")[0]
    logged = Path(mlflow.artifacts.download_artifacts(run_id=parent.info.run_id,
                                                      artifact_path="fake.yaml"))
    assert recorded_best(logged)["study"] == "worse"

    # a file written before the settings were recorded: compared on its config fields
    lines = good.splitlines(keepends=True)
    out.write_text("".join(line for line in lines if not line.startswith("# measured on")))
    legacy = tune("legacy")
    assert not legacy.written and "the file does not record its data" in legacy.kept

    out.write_text(good)
    replaced = tune("forced", overwrite=True)
    assert replaced.written and recorded_best(out)["study"] == "forced"
    assert replaced.warning.startswith(f"replaced {out} (--overwrite), whose auc "
                                       f"{first.best_value:.6g} (study good) is better")

    out.write_text(good)  # other fixed settings: the scores do not compare
    other = tune("other", "num_leaves=7")
    assert other.written and recorded_best(out)["study"] == "other"
    assert (f"replaced {out}, whose auc {first.best_value:.6g} (study good) is better than "
            f"this study's 0.1 but was measured on other settings: fixed.num_leaves (31 "
            "there, 7 here); the two scores do not compare; the replaced config is logged in "
            "MLflow experiment fake_tuning, run good") == other.warning
    load_config(FakeConfig, out)  # the loader reads the header as comments

    out.write_text(good)  # other data
    folder = tmp_path / "other-data"
    shutil.copytree(tiny_folder, folder)
    moved = tune("moved", data=folder)
    assert moved.written and f"data ({tiny_folder.resolve()} there, {folder} here)" in (
        moved.warning)

    offset[0] = 2.0  # better: written without a word
    better = tune("better")
    assert better.written and better.warning is None and better.kept is None


def test_the_printed_train_command_trains_the_tuned_config(
        data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    """`growth train churn --config <tuned>` (what tune prints) trains exactly that config,
    not configs/churn.yaml with the data config's dates."""
    from training.propensity import run
    from training.propensity.config import load_churn_config

    sets = ("as_of=2017-05-01", "horizon_days=28", "n_cutoffs=4", "step_days=14",
            "max_rounds=20", "learning_rate=0.1")
    out = tmp_path / "tuned" / "churn.yaml"
    result = session.tune(TuneRequest("churn", trials=1, data=data, overrides=sets,
                                      out=out))
    assert result.train_command == f"growth train churn --config {out} --data {data}"
    trained = []

    def train_churn(ds, cfg, *args, **kwargs):
        trained.append(cfg)
        raise GrowthError("stop before training")

    monkeypatch.setattr(run, "train_churn", train_churn)
    code, _, err = growth(monkeypatch, capsys, *result.train_command.split()[1:])
    assert code == 2 and "stop before training" in err
    assert trained == [load_churn_config(out)]


def test_tune_has_trains_date_options(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture) -> None:
    """--as-of, --horizon-days, --split-date become the same overrides as `growth train`'s,
    refused (before any data is read) for a model they do not apply to."""
    requests = []

    def tune(request):
        requests.append(request)
        raise GrowthError("stop before tuning")

    monkeypatch.setattr("training.tuning.tune", tune)  # growth/cli.py imports it from there
    cases = {
        ("churn", "--as-of", "2017-05-01", "--horizon-days", "28", "--set", "seed=3"):
            ("seed=3", "as_of=2017-05-01", "horizon_days=28"),
        ("coupon", "--split-date", "2017-06-01"): ("split_date=2017-06-01",),
        ("two_tower", "--as-of", "2017-06-05"): ("as_of=2017-06-05",),
    }
    for args, overrides in cases.items():
        code, _, err = growth(monkeypatch, capsys, "tune", *args, "--trials", "1")
        assert code == 2 and "stop before tuning" in err, err
        assert requests.pop().overrides == overrides
    refused = {
        ("coupon", "--as-of", "2017-05-01"): "--as-of: applies to churn and two-tower, not "
                                             "coupon",
        ("two-tower", "--horizon-days", "28"): "--horizon-days: applies to churn, not "
                                               "two-tower",
        ("churn", "--split-date", "2017-05-01"): "--split-date: applies to coupon, not churn",
        ("churn", "--as-of", "2017-13-01"): "--as-of: expected a date as YYYY-MM-DD",
        ("churn", "--as-of", "2017-05-01", "--set", "as_of=2017-01-02"):  # neither wins
            "--as-of: --set as_of=... sets the same setting; give one",
    }
    for args, message in refused.items():
        code, _, err = growth(monkeypatch, capsys, "tune", *args, "--trials", "1")
        assert code == 2 and message in " ".join(err.replace("│", " ").split()), err
    assert requests == []


@pytest.mark.parametrize("url, module, package", [
    ("postgresql://u@127.0.0.1:1/db", "psycopg", "'psycopg[binary]'"),
    ("postgresql+psycopg2://u@127.0.0.1:1/db", "psycopg2", "psycopg2-binary"),
    ("mysql://u@127.0.0.1:1/db", "MySQLdb", "mysqlclient (or PyMySQL, with a mysql+pymysql"),
    ("mysql+pymysql://u@127.0.0.1:1/db", "pymysql", "PyMySQL")])
def test_a_storage_without_its_driver_names_the_package(url: str, module: str,
                                                        package: str) -> None:
    """No server needed: SQLAlchemy imports the URL's driver before it connects."""
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed")
    dialect = url.split(":")[0].split("+")[0]
    with pytest.raises(GrowthError, match=re.escape(
            f"its {dialect} driver, Python module {module}, is not installed (growthloop "
            f"installs only SQLite's): pip install {package}")):
        open_storage(url)
