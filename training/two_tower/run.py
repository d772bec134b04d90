"""Tracked runs: ``growth train two-tower`` and ``growth recommend``.

Training logs params, per-epoch losses, every metric (ours and the baselines'), a recall@k
plot and the model bundle (with its FAISS index) to MLflow, registers a ``two_tower``
version that records where its training data ends, and moves ``@champion`` only when the
version beats the champion on validation recall@20. Recommending as of a date uses the
newest version whose data ends on or before that date (the point-in-time rule).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import NamedTuple

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features import schema as s
from features.dataset import Dataset
from features.household import sql_date
from features.sources import GrowthError
from training import registry
from training.retrieval import recall_against_exact
from training.two_tower import bundle
from training.two_tower.config import TwoTowerConfig
from training.two_tower.job import KS, Recommender, evaluate
from training.two_tower.train import check_history, prepare, train

MODEL_NAME = "two_tower"
EXPERIMENT = "two_tower"
GATE_METRIC = "val_recall_at_20"


def _recall_plot(metrics: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, m in metrics.items():
        ax.plot(KS, [m[f"recall_all_at_{k}"] for k in KS], marker="o", label=name)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k (all items)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def phase_seconds(clock: list[float]) -> dict[str, float]:
    """Wall seconds per phase from the clock readings taken between them; ``training`` is
    everything but the evaluation (the model, its blends and its bundle)."""
    names = ("prepare_and_epochs", "blends", "evaluation", "bundle_and_logging")
    out = {n: round(b - a, 1) for n, a, b in zip(names, clock[:-1], clock[1:], strict=True)}
    out["training"] = round(out["prepare_and_epochs"] + out["blends"]
                            + out["bundle_and_logging"], 1)
    out["total"] = round(clock[-1] - clock[0], 1)
    return out


def describe_seconds(seconds: dict[str, float]) -> str:
    return (f"training {seconds['training']:.0f} s (examples and epochs "
            f"{seconds['prepare_and_epochs']:.0f} s, blends {seconds['blends']:.0f} s, bundle "
            f"and logging {seconds['bundle_and_logging']:.0f} s) + evaluation "
            f"{seconds['evaluation']:.0f} s = {seconds['total']:.0f} s")


def train_two_tower(ds: Dataset, cfg: TwoTowerConfig, checkpoint_root: Path,
                    reports_dir: Path, resume: bool = False,
                    say: Callable[[str], None] = lambda line: None) -> dict:
    """Train, evaluate, log, register and gate one version; returns a summary. Data too
    short for the windows it reads is a GrowthError raised before any MLflow run starts.
    ``say`` gets a line as each stage and each epoch ends (a long run's only sign of life
    when its output is a log file)."""
    check_history(ds, cfg, test_window=True)
    registry.setup(EXPERIMENT)
    if resume:
        registry.close_stale_runs(EXPERIMENT)
    checkpoint_dir = checkpoint_root / f"{cfg.as_of}-seed{cfg.seed}"
    params = {k: str(v) for k, v in cfg.model_dump().items()}
    source = ds.source
    clock = [time.perf_counter()]
    prep = prepare(ds, cfg)
    say(f"two-tower: {len(prep.item):,} training examples from {len(prep.cutoffs)} cutoffs, "
        f"{prep.vocab.n_items:,} products ({time.perf_counter() - clock[0]:.0f} s)")
    with registry.tracked_run(EXPERIMENT, f"two_tower_{cfg.as_of}", params=params,
                              tags={registry.DATA_END_TAG: cfg.as_of.isoformat(),
                                    registry.DATA_SOURCE_TAG: source}) as run:

        def log_epoch(record: dict) -> None:
            mlflow.log_metrics({"train_loss": record["loss"],
                                GATE_METRIC: record["val_recall_at_20"],
                                "epoch_seconds": record["seconds"]}, step=record["epoch"])
            say(f"two-tower: epoch {record['epoch']}/{cfg.epochs}: loss {record['loss']:.4f}, "
                f"validation recall@20 {record['val_recall_at_20']:.4f} "
                f"({record['seconds']:.0f} s)")

        result = train(prep, cfg, checkpoint_dir, resume=resume, on_epoch=log_epoch)
        clock.append(time.perf_counter())
        rec = Recommender(result.model, prep.vocab, cfg).fit_blend(ds, prep)
        clock.append(time.perf_counter())
        say(f"two-tower: blends learnt on {cfg.blend_windows} windows "
            f"({clock[-1] - clock[-2]:.0f} s); evaluating against the baselines ...")
        metrics = evaluate(ds, rec, cfg)
        clock.append(time.perf_counter())
        say(f"two-tower: evaluated ({clock[-1] - clock[-2]:.0f} s); writing the index and "
            "logging ...")
        flat = {f"{system}.{name}": value for system, m in metrics.items()
                for name, value in m.items()}
        flat.update({f"best_{GATE_METRIC}": result.best_val_recall,
                     "best_epoch": result.best_epoch, "train_seconds": result.seconds})
        mlflow.log_metrics(flat)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            index = bundle.save(rec, folder, ds, cfg.as_of, model_version=run.info.run_id)
            users, items = rec.embeddings(ds, cfg.as_of, prep.val_state.household_ids[:200])
            index_recall = recall_against_exact(index, items, users, k=20)
            mlflow.log_metrics({"index_recall_vs_exact_at_20": index_recall})
            mlflow.log_param("index_kind", index.kind)
            mlflow.log_artifacts(str(folder), artifact_path="model")
            _recall_plot(metrics, Path(tmp) / "recall_at_k.png")
            mlflow.log_artifact(str(Path(tmp) / "recall_at_k.png"))
        clock.append(time.perf_counter())
        seconds = phase_seconds(clock)
        mlflow.log_metrics({f"seconds_{name}": value for name, value in seconds.items()})
        version = registry.register_version(
            MODEL_NAME, run.info.run_id, "model", cfg.as_of, source,
            metrics={GATE_METRIC: result.best_val_recall,
                     "recall_all_at_20": metrics["two_tower_blend"]["recall_all_at_20"]})
        promoted, reason = registry.promote_if_better(MODEL_NAME, version, GATE_METRIC)
    summary = {"model": MODEL_NAME, "version": version, "run_id": run.info.run_id,
               "as_of": cfg.as_of.isoformat(), "data_source": source, "promoted": promoted,
               "promotion": reason,
               "best_epoch": result.best_epoch, "train_seconds": result.seconds,
               "seconds": seconds,
               "index_kind": index.kind, "index_recall_vs_exact_at_20": index_recall,
               "epochs": result.history, "metrics": metrics}
    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def load_for_date(as_of: date, ds: Dataset, dest: Path) -> tuple[Recommender, int]:
    """The newest registered version trained on the data of ``ds`` whose training data ends
    on or before ``as_of``."""
    folder, version = registry.download_for_date(
        MODEL_NAME, as_of, ds, dest, f"growth train two-tower --as-of {as_of}")
    return bundle.load(folder), version


def active_households(ds: Dataset, as_of: date) -> np.ndarray:
    ts = s.TRANSACTION_TIMESTAMP
    return ds.df(f"SELECT DISTINCT {s.HOUSEHOLD_ID} FROM {s.TRANSACTIONS} WHERE {ts} < "
                 f"CAST({sql_date(as_of)} AS TIMESTAMP) ORDER BY 1")[s.HOUSEHOLD_ID].to_numpy()


class Recommendations(NamedTuple):
    """What :func:`recommend_to_file` wrote: its rows, the model version, and the given
    households without a purchase before ``as_of`` (they got the popular list)."""

    frame: pd.DataFrame
    version: int
    cold_start: list[int]


def recommend_to_file(ds: Dataset, as_of: date, k: int, out: Path,
                      household_ids: list[int] | None = None,
                      exclude_purchased: bool = False) -> Recommendations:
    """Write household_id, rank, product_id, score, reason for every household active
    before ``as_of`` (or the given ones) with the version the point-in-time rule picks;
    ``as_of`` must lie within the data (``Dataset.check_as_of``). Given households without
    purchases before ``as_of`` get popular items (``popular``). Every household gets ``k``
    rows unless fewer products were sold before ``as_of`` (see ``Recommender.recommend``
    and :func:`describe_recommendations`)."""
    if not 1 <= k <= 200:
        raise GrowthError(f"--k must be between 1 and 200, got {k}")
    ds.check_as_of(as_of)
    active = active_households(ds, as_of)
    households, cold = active, np.empty(0, dtype=np.int64)
    if household_ids:
        given = np.asarray(sorted(set(household_ids)), dtype=np.int64)
        known = np.isin(given, active)
        households, cold = given[known], given[~known]
    with tempfile.TemporaryDirectory() as tmp:
        rec, version = load_for_date(as_of, ds, Path(tmp))
    parts = []
    if len(households):
        parts.append(rec.recommend(ds, as_of, households, k,
                                   exclude_purchased=exclude_purchased))
    if len(cold):  # no purchase before as_of: the cold-start path, not an error
        parts.append(rec.popular(ds, as_of, cold, k))
    frame = pd.concat(parts, ignore_index=True).sort_values(
        [s.HOUSEHOLD_ID, "rank"], kind="stable").reset_index(drop=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {b"model_name": MODEL_NAME.encode(), b"model_version": str(version).encode(),
            b"as_of": as_of.isoformat().encode(), **registry.gate_metadata(MODEL_NAME, version)}
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **meta}),
                   out)
    return Recommendations(frame, version, cold.tolist())


def describe_recommendations(recs: Recommendations, k: int, as_of: date, out: Path) -> str:
    """What ``growth recommend`` prints for what :func:`recommend_to_file` wrote: the model
    version, households and rows written, why some lists are shorter than ``k`` (the only
    reason it leaves one short), and which given households had no purchase before
    ``as_of`` (so got the popular list), naming the first few."""
    frame, cold = recs.frame, recs.cold_start
    per_household = frame.groupby(s.HOUSEHOLD_ID).size()
    head = (f"{MODEL_NAME} v{recs.version} as of {as_of}: "
            f"{len(per_household):,} households")
    line = f"{head} x {k} products -> {out}"
    short = int((per_household < k).sum())
    if short:
        line = (f"{head}, {len(frame):,} rows -> {out}; {short:,} of them get fewer than {k} "
                f"products: no more products (new to the household, with "
                f"--exclude-purchased) were sold before {as_of}")
    if cold:
        named = ", ".join(map(str, cold[:5])) + (f" and {len(cold) - 5:,} more"
                                                  if len(cold) > 5 else "")
        line += (f"; {len(cold):,} of them had no purchase before {as_of} and got the "
                 f"popular list: {named}")
    return line
