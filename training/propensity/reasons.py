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

from features.glossary import value_text

N_REASONS = 3
REASON_COLUMNS = tuple(f"reason_{i + 1}" for i in range(N_REASONS))  # feature names
# the row's value of each reason's feature, as text for marketers (glossary.value_text)
VALUE_COLUMNS = tuple(f"{c}_value" for c in REASON_COLUMNS)


def booster_contributions(booster: lgb.Booster, matrix: pd.DataFrame) -> np.ndarray:
    """Rows × features SHAP values of the raw score (the bias column left out)."""
    return booster.predict(matrix, pred_contrib=True)[:, :-1]


def top_reasons(contrib: np.ndarray, names: list[str] | tuple[str, ...], index: pd.Index,
                k: int = N_REASONS) -> pd.DataFrame:
    """``reason_1..k``: feature names by contribution, largest first, one row per row."""
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
    names = np.asarray(names)
    return pd.DataFrame({f"reason_{i + 1}": names[order[:, i]] for i in range(k)}, index=index)


def with_values(reasons: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """``reasons`` (``top_reasons``) plus ``reason_i_value`` after them: each row's value of
    its ``reason_i`` feature in ``frame`` (the same rows, in order; a categorical feature's
    text, not its code), as ``value_text`` writes it."""
    values = {}
    for column in reasons.columns:
        names = reasons[column].to_numpy()
        texts = np.empty(len(names), dtype=object)
        for name in pd.unique(names):
            at = np.flatnonzero(names == name)
            texts[at] = [value_text(name, v) for v in frame[name].to_numpy(dtype=object)[at]]
        values[f"{column}_value"] = texts
    return reasons.assign(**values)


def global_importance(booster: lgb.Booster) -> pd.DataFrame:
    """``feature, gain, gain_share, splits`` sorted by gain."""
    gain = booster.feature_importance("gain")
    frame = pd.DataFrame({"feature": booster.feature_name(), "gain": gain,
                          "gain_share": gain / max(gain.sum(), 1e-12),
                          "splits": booster.feature_importance("split")})
    return frame.sort_values(["gain", "feature"], ascending=[False, True], ignore_index=True)
