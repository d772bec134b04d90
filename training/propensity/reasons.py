"""Why a row scored high: per-row reason codes and global importance from LightGBM.

Reason codes are the three features with the largest contributions to the row's raw score:
the booster's SHAP values (``pred_contrib``), blended with the linear part's exact
contributions when the model has one (``linear.LinearScorer``), so they are the features that
push this household's propensity up the most. Global importance is the booster's total split
gain per feature.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

N_REASONS = 3
REASON_COLUMNS = tuple(f"reason_{i + 1}" for i in range(N_REASONS))


def booster_contributions(booster: lgb.Booster, matrix: pd.DataFrame) -> np.ndarray:
    """Rows × features SHAP values of the raw score (the bias column left out)."""
    return booster.predict(matrix, pred_contrib=True)[:, :-1]


def top_reasons(contrib: np.ndarray, names: list[str] | tuple[str, ...], index: pd.Index,
                k: int = N_REASONS) -> pd.DataFrame:
    """``reason_1..k``: feature names by contribution, largest first, one row per row."""
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
    names = np.asarray(names)
    return pd.DataFrame({f"reason_{i + 1}": names[order[:, i]] for i in range(k)}, index=index)


def global_importance(booster: lgb.Booster) -> pd.DataFrame:
    """``feature, gain, gain_share, splits`` sorted by gain."""
    gain = booster.feature_importance("gain")
    frame = pd.DataFrame({"feature": booster.feature_name(), "gain": gain,
                          "gain_share": gain / max(gain.sum(), 1e-12),
                          "splits": booster.feature_importance("split")})
    return frame.sort_values(["gain", "feature"], ascending=[False, True], ignore_index=True)
