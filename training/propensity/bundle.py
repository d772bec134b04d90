"""A propensity model, how it is fitted, and how it lies on disk: LightGBM's own text format
plus JSON, never a pickle.

    model.txt         the booster (``Booster.save_model``)
    linear.json       the linear part and its blend weight (``linear.LinearScorer``), only
                      when the config's ``linear_weight`` is above 0
    calibrator.json   raw score -> probability (``calibrate.Calibrator``)
    meta.json         model name, feature spec, data end, settings, validation metrics
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from training.propensity.calibrate import Calibrator, fit_calibrator
from training.propensity.config import PropensityConfig
from training.propensity.gbdt import FeatureSpec, GBDTFit, Report, fit_gbdt
from training.propensity.linear import LinearScorer, fit_linear
from training.propensity.reasons import booster_contributions, top_reasons, with_values

MODEL_FILE, LINEAR_FILE, CALIBRATOR_FILE, META_FILE = (
    "model.txt", "linear.json", "calibrator.json", "meta.json")


@dataclass
class PropensityModel:
    booster: lgb.Booster
    calibrator: Calibrator
    spec: FeatureSpec
    meta: dict[str, Any]
    linear: LinearScorer | None = None

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Log-odds before calibration: the booster's, blended with the linear part's."""
        matrix = self.spec.matrix(frame)
        raw = self.booster.predict(matrix, raw_score=True)
        if self.linear is None:
            return raw
        return self.linear.blend(raw, self.linear.margin(self.spec, matrix))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, one per row of ``frame``."""
        return self.calibrator.predict(self.raw(frame))

    def reasons(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``reason_1..3`` (feature names, largest contribution first) and
        ``reason_1_value..reason_3_value`` (the row's value of each, as text) per row."""
        matrix = self.spec.matrix(frame)
        contrib = booster_contributions(self.booster, matrix)
        if self.linear is not None:
            contrib = self.linear.blend(contrib, self.linear.contributions(self.spec, matrix))
        return with_values(top_reasons(contrib, self.spec.names, matrix.index), frame)

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / MODEL_FILE))
        if self.linear is not None:
            (folder / LINEAR_FILE).write_text(json.dumps(self.linear.to_json()))
        (folder / CALIBRATOR_FILE).write_text(json.dumps(self.calibrator.to_json(), indent=1))
        meta = {**self.meta, "features": self.spec.to_json()}
        (folder / META_FILE).write_text(json.dumps(meta, indent=1, default=str))
        return folder

    @classmethod
    def load(cls, folder: Path) -> PropensityModel:
        folder = Path(folder)
        for name in (MODEL_FILE, CALIBRATOR_FILE, META_FILE):
            if not (folder / name).exists():
                raise FileNotFoundError(f"{folder} is not a propensity model: {name} missing")
        meta = json.loads((folder / META_FILE).read_text())
        spec = FeatureSpec.from_json(meta.pop("features"))
        linear = None
        if (folder / LINEAR_FILE).exists():
            try:
                linear = LinearScorer.from_json(
                    json.loads((folder / LINEAR_FILE).read_text()), spec)
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{folder / LINEAR_FILE}: {exc}") from exc
        return cls(lgb.Booster(model_file=str(folder / MODEL_FILE)),
                   Calibrator.from_json(json.loads((folder / CALIBRATOR_FILE).read_text())),
                   spec, meta, linear)


def fit_propensity(train: pd.DataFrame, valid: pd.DataFrame, label: str, spec: FeatureSpec,
                   cfg: PropensityConfig, meta: dict[str, Any] | None = None,
                   report: Report | None = None,
                   scheduler_address: str | None = None) -> tuple[PropensityModel, GBDTFit, float]:
    """The booster (early stopping on ``valid``), the linear part on the same training rows
    when ``cfg.linear_weight`` > 0, and the calibrator on ``valid``'s blended raw scores.
    Returns the model, the booster's fit and the validation PR-AUC of the raw scores (the
    metric the promotion gate and the tuner use). ``report`` and ``scheduler_address`` as in
    :func:`gbdt.fit_gbdt`."""
    y_train, y_valid = train[label].to_numpy(), valid[label].to_numpy()
    fit = fit_gbdt(train, y_train, spec, cfg, valid, y_valid, report=report,
                   scheduler_address=scheduler_address)
    linear = (fit_linear(spec, spec.matrix(train), y_train, cfg.linear_c, cfg.linear_weight,
                         tuple(cfg.linear_exclude))
              if cfg.linear_weight > 0 else None)
    identity = Calibrator("platt", {"a": 1.0, "b": 0.0})  # replaced once raw scores exist
    model = PropensityModel(fit.booster, identity, spec, dict(meta or {}), linear)
    raw_valid = model.raw(valid)
    model.calibrator = fit_calibrator(raw_valid, y_valid, cfg.calibration)
    return model, fit, gate_value(y_valid, raw_valid)


def gate_value(y: np.ndarray, raw: np.ndarray) -> float:
    """The promotion gate's and the tuner's metric (``task.GATE_METRIC`` on the validation
    fold): PR-AUC of the raw, uncalibrated scores."""
    return float(average_precision_score(y, raw))


def validation_pr_auc(train: pd.DataFrame, valid: pd.DataFrame, label: str, spec: FeatureSpec,
                      cfg: PropensityConfig, report: Report | None = None) -> float:
    """Validation-fold PR-AUC (higher is better) of the model fitted with ``cfg`` on
    ``train``, from its raw scores. No MLflow logging; ``report`` receives the booster's
    validation PR-AUC every ``cfg.report_every`` rounds (see :func:`gbdt.fit_gbdt`)."""
    return fit_propensity(train, valid, label, spec, cfg, report=report)[2]
