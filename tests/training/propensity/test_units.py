"""Metrics, calibration, feature encoding, deciles and reason codes on hand-made inputs."""

from __future__ import annotations

import json
import warnings

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.glossary import value_text
from training.propensity.bgnbd import bgnbd_probabilities, fit_bgnbd
from training.propensity.bundle import PropensityModel
from training.propensity.calibrate import Calibrator, fit_calibrator
from training.propensity.evaluate import (
    binary_report,
    bootstrap_intervals,
    capture_at,
    deciles,
    expected_calibration_error,
    lift_at,
)
from training.propensity.gbdt import FeatureSpec, MissingFeatures
from training.propensity.reasons import (
    REASON_COLUMNS,
    VALUE_COLUMNS,
    booster_contributions,
    global_importance,
    top_reasons,
)


def test_ece_by_hand() -> None:
    # bin [0.1, 0.2): p 0.1, 0.1, observed 0.5 -> gap 0.4; bin [0.9, 1]: p 0.9, 0.9, observed 1
    y = np.array([0, 1, 1, 1])
    p = np.array([0.1, 0.1, 0.9, 0.9])
    assert expected_calibration_error(y, p, bins=10) == pytest.approx((2 * 0.4 + 2 * 0.1) / 4)


def test_lift_and_capture_at_top_fraction() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    p = np.linspace(1, 0, 10)  # row 0 ranks first
    assert capture_at(y, p, 0.1) == 0.5
    assert lift_at(y, p, 0.1) == pytest.approx(1.0 / 0.2)
    report = binary_report(y, p)
    assert report["roc_auc"] == pytest.approx(15 / 16)
    assert set(report) >= {"pr_auc", "brier", "ece", "lift_at_10pct", "capture_at_10pct"}


def test_bootstrap_intervals_bracket_the_estimate_and_repeat_with_the_seed() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(600) < 0.2).astype(float)
    p = np.clip(0.2 + 0.3 * (y - 0.2) + rng.normal(0, 0.15, 600), 0.01, 0.99)
    first = bootstrap_intervals(y, p, resamples=200, seed=1,
                                targets={"roc_auc": 0.5, "pr_auc": 0.99, "ece": 0.5})
    assert first == bootstrap_intervals(y, p, resamples=200, seed=1,
                                        targets={"roc_auc": 0.5, "pr_auc": 0.99, "ece": 0.5})
    assert first != bootstrap_intervals(y, p, resamples=200, seed=2)
    for name, values in first.items():
        assert values["low"] < values["high"], name
        assert values["estimate"] <= values["high"], name
    for name in ("roc_auc", "pr_auc"):  # ECE's resamples lean high (see the docstring)
        assert first[name]["low"] <= first[name]["estimate"], name
    assert first["roc_auc"]["estimate"] == pytest.approx(binary_report(y, p)["roc_auc"])
    assert first["roc_auc"]["share_meeting_target"] == 1.0  # far above chance
    assert first["pr_auc"]["share_meeting_target"] == 0.0
    assert first["ece"]["share_meeting_target"] == 1.0  # ECE is good when at most the target
    with pytest.raises(ValueError, match="brier"):
        bootstrap_intervals(y, p, resamples=10, targets={"brier": 0.1})
    with pytest.raises(ValueError, match="one entry per label"):
        bootstrap_intervals(y, p, groups=np.arange(10), resamples=10)
    perfect = bootstrap_intervals(y, y * 0.8 + 0.1, resamples=50)
    assert perfect["roc_auc"]["low"] == perfect["roc_auc"]["high"] == 1.0


def test_bootstrap_resamples_whole_groups() -> None:
    """Twenty copies of each row are not twenty independent rows: resampling the groups
    gives the width of the original rows' interval, resampling rows a far narrower one."""
    rng = np.random.default_rng(4)
    y = (rng.random(300) < 0.3).astype(float)
    p = np.clip(0.3 + 0.2 * (y - 0.3) + rng.normal(0, 0.2, 300), 0.01, 0.99)
    copies = np.repeat(np.arange(300), 20)

    def width(intervals: dict) -> float:
        return intervals["roc_auc"]["high"] - intervals["roc_auc"]["low"]

    original = width(bootstrap_intervals(y, p, resamples=300))
    grouped = width(bootstrap_intervals(y[copies], p[copies], copies, resamples=300))
    by_row = width(bootstrap_intervals(y[copies], p[copies], resamples=300))
    assert grouped == pytest.approx(original, rel=0.25)
    assert by_row < grouped / 2.5


def test_metrics_need_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        binary_report(np.zeros(5), np.linspace(0, 1, 5))


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibrator_fits_and_round_trips_through_json(method: str) -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(2 * raw - 1)))).astype(int)
    cal = fit_calibrator(raw, y, method)
    p = cal.predict(raw)
    assert expected_calibration_error(y, p) < 0.03
    again = Calibrator.from_json(json.loads(json.dumps(cal.to_json())))
    np.testing.assert_allclose(again.predict(raw), p)
    if method == "platt":
        assert cal.params["a"] == pytest.approx(2, abs=0.2)


def test_feature_spec_encodes_categories_and_round_trips() -> None:
    frame = pd.DataFrame({"x": [1, 2, None], "tier": ["gold", "bronze", None]})
    spec = FeatureSpec.infer(frame)
    assert spec.categories == {"tier": ("bronze", "gold")}
    new = pd.DataFrame({"tier": ["gold", "platinum"], "x": [5, 6]})  # unseen level -> NaN
    matrix = FeatureSpec.from_json(json.loads(json.dumps(spec.to_json()))).matrix(new)
    assert list(matrix.columns) == ["x", "tier"]
    assert matrix["tier"].tolist()[0] == 1.0 and np.isnan(matrix["tier"].tolist()[1])
    with pytest.raises(MissingFeatures, match="tier") as err:
        spec.matrix(frame[["x"]])
    assert err.value.missing == ["tier"]


def test_deciles_one_is_highest() -> None:
    d = deciles(np.arange(20, dtype=float))
    assert d[19] == 1 and d[0] == 10 and np.bincount(d)[1:].tolist() == [2] * 10


def test_reason_codes_name_the_features_that_raise_the_score() -> None:
    rng = np.random.default_rng(1)
    x = pd.DataFrame({"signal": rng.normal(size=2000), "noise": rng.normal(size=2000),
                      "other": rng.normal(size=2000)})
    y = (x["signal"] > 0).astype(int)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1},
                        lgb.Dataset(x, y), num_boost_round=20)
    high = x[x["signal"] > 1]
    reasons = top_reasons(booster_contributions(booster, high), booster.feature_name(), high.index)
    assert list(reasons.columns) == ["reason_1", "reason_2", "reason_3"]
    assert (reasons["reason_1"] == "signal").all()
    assert global_importance(booster)["feature"].iloc[0] == "signal"


def test_reason_values_are_each_rows_feature_values_as_text() -> None:
    """``PropensityModel.reasons`` adds ``reason_i_value``: the row's own value of its
    ``reason_i`` feature, a categorical feature's text (not the spec's code), a missing
    demographic field "not on file"."""
    rng = np.random.default_rng(2)
    n = 1500
    tier = rng.choice(["bronze", "gold"], size=n)
    income = pd.Series(rng.choice(["under 35K", "50-74K"], size=n)).where(
        rng.random(n) > 0.3)
    spend = rng.gamma(2.0, 40.0, size=n).round(2)
    frame = pd.DataFrame({"spend_8w": spend, "member_tier": pd.Categorical(tier),
                          "demo_income": income, "recency_days": rng.integers(0, 200, n)},
                         index=pd.RangeIndex(1000, 1000 + n))
    y = ((tier == "gold") ^ (spend > 80) | income.isna().to_numpy()).astype(int)
    spec = FeatureSpec.infer(frame)
    assert set(spec.categories) == {"member_tier", "demo_income"}
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1,
                         "min_data_in_leaf": 5}, lgb.Dataset(spec.matrix(frame), y),
                        num_boost_round=20)
    model = PropensityModel(booster, Calibrator("platt", {"a": 1.0, "b": 0.0}), spec, {})
    reasons = model.reasons(frame)
    assert list(reasons.columns) == [*REASON_COLUMNS, *VALUE_COLUMNS]
    assert reasons.index.equals(frame.index)
    for label, row in reasons.iterrows():
        assert [row[v] for v in VALUE_COLUMNS] == [
            value_text(row[c], frame.at[label, row[c]]) for c in REASON_COLUMNS]
    names = reasons[list(REASON_COLUMNS)].to_numpy()
    values = reasons[list(VALUE_COLUMNS)].to_numpy()
    assert set(values[names == "member_tier"]) == {"bronze", "gold"}
    incomes = set(values[names == "demo_income"])
    assert "not on file" in incomes and incomes <= {"not on file", "under 35K", "50-74K"}
    spends = values[names == "spend_8w"]
    assert len(spends) and all(v.startswith("$") for v in spends)


def test_bgnbd_stays_finite_and_silent_on_extreme_histories() -> None:
    """Long silences after many visits (an as-of date years after the data) once overflowed
    ``exp`` in p_alive; the probabilities must stay finite, in [0, 1], without warnings,
    and equal the closed form where that is computable."""
    x = np.array([0.0, 1.0, 5.0, 300.0, 300.0])  # repeat visits
    t = np.array([10.0, 10.0, 52.0, 2000.0, 2000.0])  # weeks observed
    t_x = np.array([0.0, 9.0, 50.0, 2000.0, 10.0])  # the last: silent for 1990 weeks
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = fit_bgnbd(x, t_x, t)
        for params in (fitted, np.exp([8.0, -8.0, -8.0, 8.0])):  # the fit's bounds
            alive, no_visit = bgnbd_probabilities(params, x, t_x, t, horizon=8.0)
            assert ((alive >= 0) & (alive <= 1)).all() and alive[0] == 1.0
            assert ((no_visit >= 0) & (no_visit <= 1)).all()
    assert alive[4] == pytest.approx(0.0, abs=1e-12) and no_visit[4] == pytest.approx(1.0)
    r, alpha, a, b = fitted
    moderate = slice(1, 4)
    closed = 1 / (1 + a / (b + x[moderate] - 1)
                  * ((alpha + t[moderate]) / (alpha + t_x[moderate])) ** (r + x[moderate]))
    np.testing.assert_allclose(bgnbd_probabilities(fitted, x, t_x, t, 8.0)[0][moderate],
                               closed, rtol=1e-10)
