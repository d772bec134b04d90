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
    """Observed positive rate against mean predicted probability in equal-width bins."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    y = np.asarray(y, dtype=float)
    for name, p in scores.items():
        p = np.asarray(p, dtype=float)
        edges = np.minimum((p * bins).astype(int), bins - 1)
        used = np.unique(edges)
        ax.plot([p[edges == b].mean() for b in used], [y[edges == b].mean() for b in used],
                marker="o", label=name)
    _finish(plt, fig, ax, "perfect", "mean predicted probability", "observed rate", title,
            path)
