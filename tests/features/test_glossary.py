"""The glossary describes every feature the churn and coupon models train on, in short and
distinct phrases. Feature lists come from the models' own training sets, built on small
synthetic data and on a sample of the embedded data (its departments, demographic fields and
campaign types), so a new feature without a description fails here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.dataset import load_dataset
from features.glossary import PLAIN, describe, unit, value_text
from features.synth import generate
from tests.fixtures import embedded_sample, write_folder
from training.propensity import churn, coupon
from training.propensity.config import load_churn_config, load_coupon_config

# Small settings (as in tests/serving/conftest.py): each training set builds in about a second.
SYNTH_CHURN = ["as_of=2017-05-01", "horizon_days=28", "n_cutoffs=4", "step_days=14"]
SYNTH_COUPON = ["split_date=2017-03-20", "validation_days=40"]
EMBEDDED_CHURN = ["n_cutoffs=2", "step_days=56"]  # the standard as_of and horizon


@pytest.fixture(scope="module")
def model_features(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, ...]]:
    """Feature names by ``<data>/<model>``, as the models' FeatureSpecs list them."""
    root = tmp_path_factory.mktemp("glossary")
    synth = root / "synth"
    generate(synth, households=120, products=200, weeks=24, seed=5)
    embedded = write_folder(root / "embedded", embedded_sample())
    settings = {"synthetic": (synth, SYNTH_CHURN, SYNTH_COUPON),
                "embedded": (embedded, EMBEDDED_CHURN, [])}
    names = {}
    for data, (folder, churn_set, coupon_set) in settings.items():
        ds = load_dataset(folder, quarantine_dir=root / f"quarantine_{data}")
        names[f"{data}/churn"] = churn.training_set(ds, load_churn_config(
            overrides=churn_set)).spec.names
        names[f"{data}/coupon"] = coupon.training_set(ds, load_coupon_config(
            overrides=coupon_set)).spec.names
        ds.con.close()
    return names


def test_every_model_feature_is_described(model_features: dict[str, tuple[str, ...]]) -> None:
    # the embedded data's own families are among them
    assert {"dept_share_meat_pckgd", "demo_marital_status",
            "running_campaigns_type_a"} <= set(model_features["embedded/churn"])
    assert {"dept_share_frozen", "covered_spend_13w"} <= set(model_features["synthetic/coupon"])
    missing = []
    for key, names in model_features.items():
        for name in names:
            try:
                describe(name)
            except KeyError:
                missing.append(f"{key}: {name}")
    assert not missing


def test_phrases_are_short_and_distinct(model_features: dict[str, tuple[str, ...]]) -> None:
    names = sorted(set().union(*model_features.values()))
    phrases = {name: describe(name) for name in names}
    too_long = {name: p for name, p in phrases.items() if len(p) > 80}
    assert not too_long
    shared: dict[str, list[str]] = {}
    for name, phrase in phrases.items():
        shared.setdefault(phrase, []).append(name)
    assert not {p: n for p, n in shared.items() if len(n) > 1}


@pytest.mark.parametrize(("name", "phrase"), [
    ("spend_13w", "spend in the last 13 weeks"),
    ("baskets_all", "baskets (shopping trips) in all history"),
    ("covered_spend_4w", "spend on this campaign's products in the last 4 weeks"),
    ("bgnbd_no_visit", "modelled chance of no visit in the churn window (BG/NBD)"),
    ("spend_trend_4w_26w", "weekly spend in the last 4 weeks vs the last 26 weeks (ratio)"),
    ("dept_share_meat_pckgd", "share of spend in meat pckgd in the last 52 weeks"),
    ("demo_income", "income band (demographics)"),
    ("demo_pet_owner", "pet owner (demographics)"),
    ("baskets_week_0", "baskets 1-7 days ago"),
    ("baskets_week_7", "baskets 50-56 days ago"),
    ("running_campaigns_type_b", "received type b campaigns running on the scoring date"),
    ("running_campaign_days_left",
     "minus the days until the soonest-ending running campaign ends (0 or less)"),
    ("campaign_type", "this campaign's type"),
])
def test_exact_phrases(name: str, phrase: str) -> None:
    assert describe(name) == phrase


@pytest.mark.parametrize("name", [
    "no_such_feature", "", "spend", "spend_13", "spend_trend_4w_13w", "dept_share_",
    "baskets_week_x", "household_id", "churned", "Spend_13w",
])
def test_unknown_names_raise(name: str) -> None:
    with pytest.raises(KeyError, match="no description"):
        describe(name)


def test_every_model_feature_has_a_unit(model_features: dict[str, tuple[str, ...]]) -> None:
    """value_text knows the unit of every feature the models build (PLAIN is for names it
    does not know)."""
    names = sorted(set().union(*model_features.values()))
    assert not [name for name in names if unit(name) == PLAIN]


@pytest.mark.parametrize(("name", "value", "text"), [
    ("spend_8w", 0.0, "$0.00"),
    ("spend_all", 1234.5, "$1,234.50"),
    ("covered_spend_13w", -3.456, "-$3.46"),
    ("spend_prev_4w", 12.345, "$12.35"),
    ("recency_days", 177, "177 days"),
    ("gap_mean_days", 12.333, "12.3 days"),
    ("days_since_last_redemption", 1.0, "1 day"),
    ("days_since_last_redemption", np.nan, "none"),
    ("weekend_share_52w", 0.123, "12%"),
    ("dept_share_meat_pckgd", 0.5, "50%"),
    ("idle_window_rate", 0.0, "0%"),
    ("baskets_13w", 12.0, "12"),
    ("baskets_week_0", np.int64(3), "3"),
    ("running_campaigns_type_a", 2, "2"),
    ("campaign_recipients", 1234, "1,234"),
    ("bgnbd_p_alive", 0.5, "0.50"),
    ("spend_trend_4w_26w", 1.23456, "1.23"),
    ("demo_income", None, "not on file"),
    ("demo_income", np.nan, "not on file"),
    ("demo_income", pd.NA, "not on file"),
    ("demo_income", "50-74K", "50-74K"),
    ("member_tier", pd.Categorical(["gold"])[0], "gold"),
    ("member_tier", None, "none"),
    ("campaign_type", "TypeA", "TypeA"),
    ("no_such_feature", 3.14159, "3.14"),
    ("no_such_feature", 2.0, "2"),
])
def test_value_text(name: str, value: object, text: str) -> None:
    assert value_text(name, value) == text
