"""A propensity model on disk: LightGBM's own text format plus JSON, never a pickle.

    model.txt         the booster (``Booster.save_model``)
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

from training.propensity.calibrate import Calibrator
from training.propensity.gbdt import FeatureSpec
from training.propensity.reasons import reason_codes

MODEL_FILE, CALIBRATOR_FILE, META_FILE = "model.txt", "calibrator.json", "meta.json"


@dataclass
class PropensityModel:
    booster: lgb.Booster
    calibrator: Calibrator
    spec: FeatureSpec
    meta: dict[str, Any]

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        return self.booster.predict(self.spec.matrix(frame), raw_score=True)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, one per row of ``frame``."""
        return self.calibrator.predict(self.raw(frame))

    def reasons(self, frame: pd.DataFrame) -> pd.DataFrame:
        return reason_codes(self.booster, self.spec.matrix(frame))

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / MODEL_FILE))
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
        return cls(lgb.Booster(model_file=str(folder / MODEL_FILE)),
                   Calibrator.from_json(json.loads((folder / CALIBRATOR_FILE).read_text())),
                   spec, meta)
