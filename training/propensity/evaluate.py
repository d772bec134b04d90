"""Binary-classification metrics and plots for propensity scores (plain functions).

``y`` holds 0/1 labels and ``p`` probabilities. The expected calibration error uses
``bins`` equal-width probability bins (10 by default): the row-weighted mean of
|mean predicted - observed rate| per non-empty bin. Lift and capture at a fraction rank rows
by score (ties kept in row order, so results are deterministic).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and scores {p.shape} must be equal-length vectors")
    if len(np.unique(y)) < 2:
        raise ValueError("metrics need both classes among the labels")
    return y, p


def deciles(scores: np.ndarray) -> np.ndarray:
    """1 for the highest-scoring tenth, 10 for the lowest; ties keep row order."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return (rank * 10 // max(len(order), 1) + 1).astype(np.int64)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    y, p = _check(y, p)
    edges = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(edges):
        mask = edges == b
        total += mask.sum() * abs(p[mask].mean() - y[mask].mean())
    return float(total / len(y))


def _top(p: np.ndarray, fraction: float) -> np.ndarray:
    n = max(1, int(round(len(p) * fraction)))
    return np.argsort(-p, kind="stable")[:n]


def capture_at(y: np.ndarray, p: np.ndarray, fraction: float) -> float:
    """Share of all positives found in the top ``fraction`` of rows by score."""
    y, p = _check(y, p)
    return float(y[_top(p, fraction)].sum() / y.sum())


def lift_at(y: np.ndarray, p: np.ndarray, fraction: float) -> float:
    """Positive rate in the top ``fraction`` of rows over the overall positive rate."""
    y, p = _check(y, p)
    return float(y[_top(p, fraction)].mean() / y.mean())


def binary_report(y: np.ndarray, p: np.ndarray, bins: int = 10,
                  fraction: float = 0.1) -> dict[str, float]:
    """All metrics of one system on one set, named as they are logged."""
    y, p = _check(y, p)
    pct = int(round(fraction * 100))
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p, bins),
        f"lift_at_{pct}pct": lift_at(y, p, fraction),
        f"capture_at_{pct}pct": capture_at(y, p, fraction),
        "positive_rate": float(y.mean()),
        "mean_score": float(p.mean()),
        "rows": float(len(y)),
    }


INTERVAL_METRICS = {"roc_auc": roc_auc_score, "pr_auc": average_precision_score,
                    "ece": expected_calibration_error}


def bootstrap_intervals(y: np.ndarray, p: np.ndarray, groups: np.ndarray | None = None,
                        resamples: int = 1000, seed: int = 0, level: float = 0.95,
                        targets: Mapping[str, float] | None = None) -> dict[str, dict]:
    """Percentile bootstrap intervals of ROC-AUC, PR-AUC and ECE.

    Resamples ``groups`` (e.g. household ids, so a household's rows across campaigns stay
    together; each row its own group when None) with replacement, ``resamples`` times with a
    generator seeded by ``seed``; a resample with one class only is drawn again. Per metric:
    the point estimate, the ``level`` interval and, for a metric named in ``targets``, the
    share of resamples on the target's good side (at least it; at most it for ``ece``).
    ECE's resamples lean high (repeated rows add noise to every bin's gap, and gaps only
    add), so its interval can sit above a small estimate and its share is a cautious one.
    """
    y, p = _check(y, p)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    if groups.shape != y.shape:
        raise ValueError(f"groups {groups.shape} must have one entry per label {y.shape}")
    unknown = set(targets or ()) - set(INTERVAL_METRICS)
    if unknown:
        raise ValueError(f"targets {sorted(unknown)}: intervals exist for "
                         f"{', '.join(INTERVAL_METRICS)} only")
    _, member = np.unique(groups, return_inverse=True)
    n_groups = member.max() + 1
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in INTERVAL_METRICS}
    while len(draws["ece"]) < resamples:
        counts = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
        rows = np.repeat(np.arange(len(y)), counts[member])
        if y[rows].min() == y[rows].max():
            continue
        for name, metric in INTERVAL_METRICS.items():
            draws[name].append(float(metric(y[rows], p[rows])))
    tail = (1 - level) / 2 * 100
    out: dict[str, dict] = {}
    for name, metric in INTERVAL_METRICS.items():
        values = np.asarray(draws[name])
        lo, hi = np.percentile(values, [tail, 100 - tail])
        out[name] = {"estimate": float(metric(y, p)), "low": float(lo), "high": float(hi)}
        if targets and name in targets:
            good = values <= targets[name] if name == "ece" else values >= targets[name]
            out[name]["share_meeting_target"] = float(good.mean())
    return out


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(plt, fig, ax, diagonal: str, xlabel: str, ylabel: str, title: str,
            path: Path) -> None:
    """The dotted diagonal (labelled ``diagonal``), labels, legend; saves and closes."""
    ax.plot([0, 1], [0, 1], "k:", label=diagonal)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def gain_chart(y: np.ndarray, scores: Mapping[str, np.ndarray], path: Path, title: str) -> None:
    """Cumulative share of positives captured against share of rows targeted, per system."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    y = np.asarray(y, dtype=float)
    for name, p in scores.items():
        order = np.argsort(-np.asarray(p, dtype=float), kind="stable")
        gained = np.concatenate([[0.0], np.cumsum(y[order]) / y.sum()])
        ax.plot(np.linspace(0, 1, len(gained)), gained, label=name)
    _finish(plt, fig, ax, "random", "share of rows targeted (by score)",
            "share of positives captured", title, path)


def calibration_plot(y: np.ndarray, scores: Mapping[str, np.ndarray], path: Path, title: str,
                     bins: int = 10) -> None:
    """Observed positive rate against mean predicted probability in equal-width bins. A
    marker's size grows with its bin's row count (area with the square root), so a bin of a
    few rows, whose observed rate is mostly noise, shows as a dot."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    y = np.asarray(y, dtype=float)
    for name, p in scores.items():
        p = np.asarray(p, dtype=float)
        edges = np.minimum((p * bins).astype(int), bins - 1)
        used, counts = np.unique(edges, return_counts=True)
        mean_p = [p[edges == b].mean() for b in used]
        observed = [y[edges == b].mean() for b in used]
        line, = ax.plot(mean_p, observed, label=name)
        ax.scatter(mean_p, observed, s=4 + 150 * np.sqrt(counts / len(p)), color=line.get_color())
    _finish(plt, fig, ax, "perfect", "mean predicted probability",
            "observed rate (marker size: rows in the bin)", title, path)
