"""Raw LightGBM scores -> probabilities, fitted on the validation fold and stored as JSON.

Isotonic regression keeps its breakpoints (probabilities between them are interpolated
linearly, as scikit-learn does); Platt scaling keeps two numbers. Neither is pickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

Method = Literal["isotonic", "platt"]


@dataclass(frozen=True)
class Calibrator:
    """``method`` with its ``params``: isotonic ``x``/``y`` breakpoints or Platt ``a``/``b``
    (probability = sigmoid(a * raw + b))."""

    method: Method
    params: dict[str, Any] = field(default_factory=dict)

    def predict(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        if self.method == "isotonic":
            return np.interp(raw, self.params["x"], self.params["y"])
        return 1.0 / (1.0 + np.exp(-(self.params["a"] * raw + self.params["b"])))

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "params": self.params}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibrator:
        if data.get("method") not in ("isotonic", "platt"):
            raise ValueError(f"unknown calibration method {data.get('method')!r}")
        return cls(data["method"], dict(data["params"]))


def fit_calibrator(raw: np.ndarray, y: np.ndarray, method: Method) -> Calibrator:
    """Fit on raw (log-odds) scores and 0/1 labels of held-out rows."""
    raw, y = np.asarray(raw, dtype=float), np.asarray(y, dtype=float)
    if len(np.unique(y)) < 2:
        raise ValueError("calibration needs both classes in the validation fold")
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        return Calibrator("isotonic", {"x": iso.X_thresholds_.tolist(),
                                       "y": iso.y_thresholds_.tolist()})
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
    return Calibrator("platt", {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])})
