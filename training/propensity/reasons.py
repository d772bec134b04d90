"""Why a row scored high: per-row reason codes and global importance from LightGBM.

Reason codes are the three features with the largest contributions to the row's raw score
(SHAP values from ``pred_contrib``): the features that push this household's propensity up
the most. Global importance is total split gain per feature.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

N_REASONS = 3
REASON_COLUMNS = tuple(f"reason_{i + 1}" for i in range(N_REASONS))


def reason_codes(booster: lgb.Booster, matrix: pd.DataFrame, k: int = N_REASONS) -> pd.DataFrame:
    """``reason_1..k``: feature names by contribution, largest first, one row per input row."""
    contrib = booster.predict(matrix, pred_contrib=True)[:, :-1]  # last column: the bias
    names = np.asarray(booster.feature_name())
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
    return pd.DataFrame({f"reason_{i + 1}": names[order[:, i]] for i in range(k)},
                        index=matrix.index)


def global_importance(booster: lgb.Booster) -> pd.DataFrame:
    """``feature, gain, gain_share, splits`` sorted by gain."""
    gain = booster.feature_importance("gain")
    frame = pd.DataFrame({"feature": booster.feature_name(), "gain": gain,
                          "gain_share": gain / max(gain.sum(), 1e-12),
                          "splits": booster.feature_importance("split")})
    return frame.sort_values(["gain", "feature"], ascending=[False, True], ignore_index=True)
