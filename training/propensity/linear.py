"""The linear part of a blended propensity model: an L2 logistic regression on the booster's
own features, stored as JSON (never pickled).

The linear part reads the model's features except those the config's ``linear_exclude``
names (by prefix: demographic codes, for instance, which the booster can use but which add
noise to a linear fit). Design columns from ``FeatureSpec.matrix``: each numeric feature
enters as sign(x)·log1p(|x|) (missing: 0) plus a missing indicator; each categorical feature
as one indicator per level the spec knows (unknown or missing: all zero). Columns are
standardised on the training rows and scikit-learn's ``LogisticRegression`` (lbfgs,
deterministic) fits them with inverse regularisation ``c``.

The blend is in log-odds: ``raw = (1 - weight) · booster + weight · linear``; the calibrator
is fitted on that raw score. The linear margin is its intercept plus one contribution per
feature (coefficient × standardised column, summed over the feature's columns), the exact
SHAP values of a linear model, so reason codes add them to the booster's TreeSHAP values
with the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from features.sources import GrowthError
from training.propensity.gbdt import FeatureSpec


def _columns(spec: FeatureSpec) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Design column names and, for each, the index of the feature in ``spec.names``."""
    names: list[str] = []
    sources: list[int] = []
    for i, feature in enumerate(spec.names):
        levels = spec.categories.get(feature)
        added = ([f"{feature}={level}" for level in levels] if levels is not None
                 else [feature, f"{feature}:missing"])
        names += added
        sources += [i] * len(added)
    return tuple(names), tuple(sources)


def design(spec: FeatureSpec, matrix: pd.DataFrame) -> np.ndarray:
    """Unstandardised design columns (in ``_columns(spec)`` order) of ``spec.matrix`` rows."""
    blocks = []
    for feature in spec.names:
        x = matrix[feature].to_numpy(dtype=float)
        missing = np.isnan(x)
        levels = spec.categories.get(feature)
        if levels is not None:
            codes = np.where(missing, -1, x).astype(int)
            blocks.append((codes[:, None] == np.arange(len(levels))[None, :]).astype(float))
        else:
            v = np.where(missing, 0.0, x)
            blocks.append(np.column_stack([np.sign(v) * np.log1p(np.abs(v)),
                                           missing.astype(float)]))
    return np.hstack(blocks) if blocks else np.empty((len(matrix), 0))


def linear_spec(spec: FeatureSpec, features: tuple[str, ...]) -> FeatureSpec:
    """``spec`` restricted to ``features`` (kept in ``spec``'s order)."""
    unknown = sorted(set(features) - set(spec.names))
    if unknown:
        raise ValueError(f"linear part: features {unknown} are not the model's")
    names = tuple(n for n in spec.names if n in features)
    return FeatureSpec(names, {k: v for k, v in spec.categories.items() if k in names})


@dataclass(frozen=True)
class LinearScorer:
    """Standardisation, coefficients and blend weight of the linear part, which reads
    ``features`` (a subset of the model's)."""

    weight: float  # share of the blended log-odds
    c: float  # inverse L2 strength it was fitted with
    features: tuple[str, ...]
    columns: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def _z(self, spec: FeatureSpec, matrix: pd.DataFrame) -> np.ndarray:
        return (design(linear_spec(spec, self.features), matrix) - self.mean) / self.scale

    def margin(self, spec: FeatureSpec, matrix: pd.DataFrame) -> np.ndarray:
        """Log-odds of the linear part for each row of ``spec.matrix(frame)``."""
        return self._z(spec, matrix) @ self.coef + self.intercept

    def contributions(self, spec: FeatureSpec, matrix: pd.DataFrame) -> np.ndarray:
        """Rows × the model's features (``spec.names`` order; 0 for those the linear part
        leaves out); each row sums to margin − intercept."""
        _, sources = _columns(linear_spec(spec, self.features))
        position = {name: i for i, name in enumerate(spec.names)}
        target = np.asarray([position[self.features[i]] for i in sources], dtype=int)
        out = np.zeros((len(matrix), len(spec.names)))
        np.add.at(out.T, target, (self._z(spec, matrix) * self.coef).T)
        return out

    def blend(self, booster_raw: np.ndarray, linear_margin: np.ndarray) -> np.ndarray:
        return (1.0 - self.weight) * np.asarray(booster_raw) + self.weight * linear_margin

    def to_json(self) -> dict[str, Any]:
        return {"weight": self.weight, "c": self.c, "features": list(self.features),
                "columns": list(self.columns),
                "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept}

    @classmethod
    def from_json(cls, data: dict[str, Any], spec: FeatureSpec) -> LinearScorer:
        """Checks that the stored features are the model's, that the stored columns are the
        ones they give, and the arrays' sizes."""
        features = tuple(data.get("features", ()))
        columns, _ = _columns(linear_spec(spec, features))
        if tuple(data.get("columns", ())) != columns:
            raise ValueError("linear part: its columns do not match the model's feature spec")
        arrays = {k: np.asarray(data.get(k, ()), dtype=float) for k in ("mean", "scale", "coef")}
        bad = [k for k, v in arrays.items() if v.shape != (len(columns),)]
        if bad:
            raise ValueError(f"linear part: {', '.join(bad)} must hold {len(columns)} numbers")
        if not all(np.isfinite(v).all() for v in arrays.values()) or (arrays["scale"] <= 0).any():
            raise ValueError("linear part: mean, scale and coef must be finite, scale positive")
        weight = float(data["weight"])
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"linear part: weight {weight} is not in [0, 1]")
        return cls(weight, float(data["c"]), linear_spec(spec, features).names, columns,
                   arrays["mean"], arrays["scale"],
                   arrays["coef"], float(data["intercept"]))


def fit_linear(spec: FeatureSpec, matrix: pd.DataFrame, y: np.ndarray, c: float,
               weight: float, exclude: tuple[str, ...] = ()) -> LinearScorer:
    """Fit on ``spec.matrix(train)`` and 0/1 labels, leaving out the features whose names
    start with an entry of ``exclude``; constant columns get scale 1."""
    sub = linear_spec(spec, tuple(n for n in spec.names if not n.startswith(tuple(exclude))))
    if not sub.names:
        raise GrowthError(f"linear_exclude {list(exclude)} leaves the linear part no feature "
                          "(its entries are name prefixes; an empty one matches every name)")
    x = design(sub, matrix)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=5000).fit((x - mean) / scale, np.asarray(y))
    return LinearScorer(float(weight), float(c), sub.names, _columns(sub)[0], mean, scale,
                        model.coef_[0].copy(), float(model.intercept_[0]))
