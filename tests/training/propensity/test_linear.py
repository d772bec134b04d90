"""The linear part of a blended propensity model, on hand-made frames: its contributions add
up to its margin, excluded features get none, the blend round-trips through JSON files only,
and a tampered file is refused with its name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.sources import GrowthError
from training.propensity.bundle import LINEAR_FILE, PropensityModel, fit_propensity
from training.propensity.config import PropensityConfig
from training.propensity.gbdt import FeatureSpec
from training.propensity.linear import fit_linear
from training.propensity.reasons import booster_contributions

LABEL = "y"


def frame(n: int, seed: int) -> pd.DataFrame:
    """``signal`` drives the label; ``noise`` does not; ``demo_kind`` is a text code with
    missing values; ``spend`` has missing values and a long tail."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    spend = rng.lognormal(3, 1, n)
    spend[rng.random(n) < 0.1] = np.nan
    kind = rng.choice(["a", "b", "c"], size=n).astype(object)
    kind[rng.random(n) < 0.1] = None
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * signal - 1)))).astype(int)
    return pd.DataFrame({"signal": signal, "noise": rng.normal(size=n), "spend": spend,
                         "demo_kind": kind, LABEL: y})


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, FeatureSpec]:
    train, valid = frame(2000, 0), frame(800, 1)
    return train, valid, FeatureSpec.infer(train, exclude=(LABEL,))


def test_contributions_add_up_to_the_margin_and_excluded_features_get_none(data) -> None:
    train, valid, spec = data
    linear = fit_linear(spec, spec.matrix(train), train[LABEL].to_numpy(), c=1.0, weight=0.5,
                        exclude=("demo_",))
    assert linear.features == ("signal", "noise", "spend")
    matrix = spec.matrix(valid)
    contrib = linear.contributions(spec, matrix)
    assert contrib.shape == (len(valid), len(spec.names))
    np.testing.assert_allclose(contrib.sum(axis=1) + linear.intercept,
                               linear.margin(spec, matrix), atol=1e-10)
    assert (contrib[:, spec.names.index("demo_kind")] == 0).all()
    signal = spec.names.index("signal")
    noise = spec.names.index("noise")
    assert np.abs(contrib[:, signal]).mean() > 5 * np.abs(contrib[:, noise]).mean()
    more_signal_more_score = pd.Series(contrib[:, signal]).corr(valid["signal"].reset_index(
        drop=True), method="spearman")
    assert more_signal_more_score > 0.999  # monotone in the feature


def test_categorical_levels_and_missing_values_enter_the_linear_part(data) -> None:
    train, _, spec = data
    linear = fit_linear(spec, spec.matrix(train), train[LABEL].to_numpy(), c=1.0, weight=1.0)
    assert {"demo_kind=a", "demo_kind=b", "demo_kind=c", "spend", "spend:missing"} <= set(
        linear.columns)
    unseen = train.head(3).assign(demo_kind=["zzz", None, "a"])  # unknown level: no indicator
    assert np.isfinite(linear.margin(spec, spec.matrix(unseen))).all()
    with pytest.raises(GrowthError, match="leaves the linear part no feature"):
        fit_linear(spec, spec.matrix(train), train[LABEL].to_numpy(), c=1.0, weight=0.5,
                   exclude=("",))


def test_blended_model_round_trips_and_its_reasons_blend_both_parts(data, tmp_path: Path
                                                                  ) -> None:
    train, valid, spec = data
    cfg = PropensityConfig(linear_weight=0.3, linear_c=0.5, linear_exclude=["demo_"],
                           max_rounds=50, num_leaves=4)
    model, fit, val_pr_auc = fit_propensity(train, valid, LABEL, spec, cfg, {"name": "t"})
    assert model.linear is not None and model.linear.weight == 0.3
    matrix = spec.matrix(valid)
    booster_raw = model.booster.predict(matrix, raw_score=True)
    np.testing.assert_allclose(
        model.raw(valid), 0.7 * booster_raw + 0.3 * model.linear.margin(spec, matrix))
    assert 0.5 < val_pr_auc <= 1.0
    contrib = (0.7 * booster_contributions(model.booster, matrix)
               + 0.3 * model.linear.contributions(spec, matrix))
    expected = np.asarray(spec.names)[np.argmax(contrib, axis=1)]
    assert (model.reasons(valid)["reason_1"].to_numpy() == expected).all()

    folder = model.save(tmp_path / "m")
    json.loads((folder / LINEAR_FILE).read_text())  # plain JSON
    loaded = PropensityModel.load(folder)
    np.testing.assert_array_equal(loaded.predict(valid), model.predict(valid))
    pd.testing.assert_frame_equal(loaded.reasons(valid), model.reasons(valid))

    good = json.loads((folder / LINEAR_FILE).read_text())
    stored = {**good, "coef": good["coef"][:-1]}
    (folder / LINEAR_FILE).write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"linear\.json.*coef must hold"):
        PropensityModel.load(folder)
    stored = {**good, "scale": [0.0] * len(good["scale"])}
    (folder / LINEAR_FILE).write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"linear\.json.*scale positive"):
        PropensityModel.load(folder)


def test_weight_zero_fits_the_booster_alone(data, tmp_path: Path) -> None:
    train, valid, spec = data
    cfg = PropensityConfig(max_rounds=20, num_leaves=4)
    model, _, _ = fit_propensity(train, valid, LABEL, spec, cfg)
    assert model.linear is None
    np.testing.assert_array_equal(model.raw(valid),
                                  model.booster.predict(spec.matrix(valid), raw_score=True))
    assert not (model.save(tmp_path / "m") / LINEAR_FILE).exists()
