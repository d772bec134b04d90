"""Plain-English descriptions of the churn and coupon models' feature names, for marketers.

Reason codes (``training/propensity/reasons.py``) are raw feature names such as
``bgnbd_no_visit``; ``describe`` turns one into a short phrase:

    >>> describe("spend_13w")
    'spend in the last 13 weeks'

Every feature is computed as of one date and reads only data before it: the scoring date for
churn (a training cutoff while training), the campaign's first day for coupon response. So
"last 13 weeks" means the 91 days before that date and "all history" everything before it.
Words the phrases share: a *shopping day* is a day with at least one basket; an *item* is one
product line of a basket (quantity ignored); a *coupon* is a line with a coupon discount; the
*churn window* is the churn model's horizon, the days from the scoring date in which no
purchase counts as churned (``horizon_days`` in configs/churn.yaml).

Names come in families: ``<stem>_<window>`` (``_13w``, ``_all``, ...) for the stems in
``WINDOWED``, ``dept_share_<department>``, ``demo_<field>``, ``baskets_week_<k>`` and
``running_campaigns_<type>``; the rest are in ``EXACT``. Phrases are checked against the
SQL in features/household.py, features/coupon.py and training/propensity/churn.py.

``value_text`` writes a household's value of a feature in the family's unit (``$0.00``,
``177 days``, ``12%``; a demographic field without data reads ``not on file``), so a reason
reads "spend in the last 8 weeks: $0.00".
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from features import schema as s
from features.household import DAYS_52W, RECENCY

LAST_52W = f"the last {DAYS_52W // 7} weeks"

# Features with a fixed meaning (no window suffix, or one that the pattern would misread).
EXACT: dict[str, str] = {
    # household_features: recency, trends, tier
    RECENCY: "days since the last purchase",
    "tenure_days": "days since the first purchase",
    "spend_trend_4w_26w": "weekly spend in the last 4 weeks vs the last 26 weeks (ratio)",
    "visit_trend_4w_26w": "weekly baskets in the last 4 weeks vs the last 26 weeks (ratio)",
    "member_tier": f"spend tier (bronze, silver, gold, platinum) by spend in {LAST_52W}",
    # household_features: gaps between shopping days, over all history
    "n_gaps": "shopping days after the first one (all history)",
    "gap_mean_days": "average days between shopping days (all history)",
    "gap_median_days": "typical (median) days between shopping days (all history)",
    "gap_std_days": "spread (standard deviation) of days between shopping days (all history)",
    "gap_max_days": "longest gap in days between shopping days (all history)",
    "overdue_ratio": "days since the last purchase divided by the average gap (all history)",
    # cadence_features (churn only)
    "spend_prev_4w": "spend 5 to 8 weeks ago (the 4 weeks before the last 4)",
    "baskets_prev_4w": "baskets 5 to 8 weeks ago (the 4 weeks before the last 4)",
    "last_gap_days": "days between the last two shopping days",
    "recent_gap_mean_days": "average of the last 3 gaps between shopping days (days)",
    "recent_gap_max_days": "longest of the last 5 gaps between shopping days (days)",
    "gap_p90_days": "90th percentile of days between shopping days (all history)",
    "recency_over_recent_gap": "days since the last purchase divided by the last 3 gaps' average",
    "gap_survival_at_recency": "share of past gaps longer than the time since the last purchase",
    "gap_survival_beyond_horizon":
        "of past gaps longer than the current one, share at least a churn window longer",
    "long_gaps": "number of gaps between shopping days at least a churn window long",
    "idle_window_rate":
        "share of churn-window-long periods since the first purchase with no purchase",
    "poisson_no_visit": "chance of no purchase in the churn window at the 13-week visit rate",
    "bgnbd_p_alive": "modelled chance the household is still a customer (BG/NBD)",
    "bgnbd_no_visit": "modelled chance of no visit in the churn window (BG/NBD)",
    # campaigns and redemptions (household_features, campaign_exposure)
    "days_since_last_redemption": "days since the last coupon redemption",
    "campaign_redemption_rate":
        "campaigns with a coupon redeemed per campaign received (all history)",
    "running_campaigns": "received campaigns running on the scoring date",
    "running_campaign_days_left":
        "minus the days until the soonest-ending running campaign ends (0 or less)",
    "days_since_campaign_start": "days since the latest campaign the household received began",
    # coupon_features: the campaign offered and the household's history with it
    s.CAMPAIGN_TYPE: "this campaign's type",
    "campaign_days": "this campaign's length in days (end date minus start date)",
    "campaign_coupons": "number of different coupons in this campaign",
    "campaign_products": "number of products this campaign's coupons cover",
    "campaign_recipients": "number of households that received this campaign",
    "covered_products_share": f"share of this campaign's products bought in {LAST_52W}",
    "covered_share_of_own_products":
        f"share of products bought in {LAST_52W} that this campaign covers",
    "days_since_coupon_use": f"days since the last purchase with a coupon (within {LAST_52W})",
    "overlapping_campaigns": "earlier campaigns received still running when this one starts",
    "prior_redeemed_campaigns":
        "earlier campaigns received with a coupon redeemed before this one starts",
    "prior_same_type_received": "earlier campaigns of this type received",
    "prior_same_type_redeemed":
        "earlier campaigns of this type with a coupon redeemed before this one starts",
    "prior_same_type_redeem_rate":
        "share of earlier campaigns of this type with a coupon redeemed",
    "prior_redemptions_of_offered_coupons": "past redemptions of the coupons this campaign offers",
}

# ``<stem>_<n>w`` and ``<stem>_all``: the stem's phrase, then the window's.
WINDOWED: dict[str, str] = {
    "spend": "spend",
    "baskets": "baskets (shopping trips)",
    "active_weeks": "weeks with a purchase",
    "visit_days": "days with a purchase",
    "distinct_products": "different products bought",
    "store_count": "different stores shopped at",
    "avg_basket_spend": "average spend per basket",
    "avg_basket_lines": "average items per basket",
    "weekend_share": "share of baskets on Saturday or Sunday",
    "morning_share": "share of baskets before noon",
    "evening_share": "share of baskets from 5 pm on",
    "mean_hour": "average hour of day of baskets",
    "retail_disc_share": "store discounts as a share of spend",
    "coupon_disc_share": "coupon discounts as a share of spend",
    "coupon_line_share": "share of items bought with a coupon",
    "campaigns_received": "campaigns received",
    "redemptions": "coupon redemptions",
    "redeemed_campaigns": "campaigns with a coupon redeemed",
    "coupon_lines": "items bought with a coupon",
    "coupon_match_lines": "items with a store coupon-match discount",
    "coupon_baskets": "baskets where a coupon was used",
    "coupon_products": "different products bought with a coupon",
    "coupon_basket_share": "share of baskets where a coupon was used",
    "covered_spend": "spend on this campaign's products",
    "covered_spend_share": "share of spend on this campaign's products",
    "covered_baskets": "baskets with any of this campaign's products",
    "covered_products_bought": "different products of this campaign bought",
    "covered_coupon_lines": "items of this campaign's products bought with a coupon",
}

# Clearer words for the embedded data's demographic fields; other fields read as named.
DEMOGRAPHICS: dict[str, str] = {
    "age": "age band",
    "income": "income band",
    "home_ownership": "home owner or renter",
    "household_comp": "adults and kids in the household",
    "kids_count": "number of kids",
}

# Units of values (``value_text``). DEMO: a demographic field's text; missing reads
# "not on file". PLAIN: a number with up to 2 decimals, for a name of unknown unit.
MONEY, DAYS, SHARE, COUNT, DECIMAL, TEXT, DEMO, PLAIN = (
    "money", "days", "share", "count", "decimal", "text", "demo", "plain")
# EXACT names not listed here: DAYS when "days" is one of the name's words, else PLAIN.
EXACT_UNITS: dict[str, str] = {
    "spend_prev_4w": MONEY,
    **dict.fromkeys(("n_gaps", "baskets_prev_4w", "long_gaps", "running_campaigns",
                     "campaign_coupons", "campaign_products", "campaign_recipients",
                     "overlapping_campaigns", "prior_redeemed_campaigns",
                     "prior_same_type_received", "prior_same_type_redeemed",
                     "prior_redemptions_of_offered_coupons"), COUNT),
    **dict.fromkeys(("gap_survival_at_recency", "gap_survival_beyond_horizon",
                     "idle_window_rate", "covered_products_share",
                     "covered_share_of_own_products", "prior_same_type_redeem_rate"), SHARE),
    **dict.fromkeys(("spend_trend_4w_26w", "visit_trend_4w_26w", "overdue_ratio",
                     "recency_over_recent_gap", "campaign_redemption_rate", "poisson_no_visit",
                     "bgnbd_p_alive", "bgnbd_no_visit"), DECIMAL),
    "member_tier": TEXT,
    s.CAMPAIGN_TYPE: TEXT,
}
# WINDOWED stems not listed here: SHARE when the stem ends in "_share", else COUNT.
WINDOWED_UNITS: dict[str, str] = {"spend": MONEY, "avg_basket_spend": MONEY,
                                  "covered_spend": MONEY, "avg_basket_lines": DECIMAL,
                                  "mean_hour": DECIMAL}


def _words(slug: str) -> str:
    return slug.replace("_", " ")


def _window(suffix: str) -> str:
    if suffix == "all":
        return "in all history"
    weeks = int(suffix.removesuffix("w"))
    return f"in the last {weeks} week{'s' if weeks != 1 else ''}"


def _baskets_in_week(k: int) -> str:
    return f"baskets {7 * k + 1}-{7 * k + 7} days ago"


SLUG = r"([a-z0-9_]+)"
# Checked in order after EXACT; the window family last, so a department or demographic field
# whose name ends like a window still reads as one. Each family: pattern, phrase, unit.
FAMILIES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str],
                      Callable[[re.Match[str]], str]], ...] = (
    (re.compile(rf"dept_share_{SLUG}"),
     lambda m: f"share of spend in {_words(m[1])} in {LAST_52W}", lambda m: SHARE),
    (re.compile(rf"demo_{SLUG}"),
     lambda m: f"{DEMOGRAPHICS.get(m[1], _words(m[1]))} (demographics)", lambda m: DEMO),
    (re.compile(r"baskets_week_(\d+)"), lambda m: _baskets_in_week(int(m[1])), lambda m: COUNT),
    (re.compile(rf"running_campaigns_{SLUG}"),
     lambda m: f"received {_words(m[1])} campaigns running on the scoring date",
     lambda m: COUNT),
    (re.compile(rf"({'|'.join(WINDOWED)})_(\d+w|all)"),
     lambda m: f"{WINDOWED[m[1]]} {_window(m[2])}",
     lambda m: WINDOWED_UNITS.get(m[1], SHARE if m[1].endswith("_share") else COUNT)),
)


def _family(name: str) -> tuple[Callable[[re.Match[str]], str],
                                 Callable[[re.Match[str]], str], re.Match[str]] | None:
    """The first of ``FAMILIES`` whose pattern ``name`` matches: (phrase, unit, match)."""
    for pattern, phrase, family_unit in FAMILIES:
        match = pattern.fullmatch(name)
        if match:
            return phrase, family_unit, match
    return None


def describe(name: str) -> str:
    """A short plain-English phrase for the feature ``name``; KeyError for a name that is not
    a churn or coupon feature, so a new feature cannot reach marketers undescribed."""
    if name in EXACT:
        return EXACT[name]
    found = _family(name)
    if found:
        phrase, _, match = found
        return phrase(match)
    raise KeyError(f"no description for feature {name!r}: add it to features/glossary.py")


def glossary(names: Iterable[str]) -> dict[str, str]:
    """``describe`` for each of ``names``, for a model being served: a name it does not know
    (a model trained on a feature added since) reads as itself, with a warning, rather than
    failing the service. The tests hold every feature the models build to ``describe``."""
    phrases = {}
    for name in names:
        try:
            phrases[name] = describe(name)
        except KeyError as exc:
            logging.getLogger(__name__).warning("%s; it reads as its name", exc.args[0])
            phrases[name] = name
    return phrases


@functools.cache
def unit(name: str) -> str:
    """The unit of feature ``name``'s values (``MONEY``, ``DAYS``, ...); PLAIN for a name
    the glossary does not know."""
    if name in EXACT:
        return EXACT_UNITS.get(name, DAYS if "days" in name.split("_") else PLAIN)
    found = _family(name)
    if found:
        _, family_unit, match = found
        return family_unit(match)
    return PLAIN


def _plain(number: float) -> str:
    return f"{number:,.2f}".rstrip("0").rstrip(".")


def value_text(name: str, value: Any) -> str:
    """A household's ``value`` of feature ``name`` as a marketer reads it: ``$12.34``,
    ``177 days``, ``12%``, ``3`` (counts), ``0.57`` (ratios and probabilities), a category's
    text; missing: ``not on file`` for a demographic field, ``none`` otherwise."""
    kind = unit(name)
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return "not on file" if kind == DEMO else "none"
    if isinstance(value, str):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number) or kind in (TEXT, DEMO, PLAIN):
        return _plain(number)
    if kind == MONEY:
        return f"{'-' if number < 0 else ''}${abs(number):,.2f}"
    if kind == DAYS:
        days = f"{number:,.0f}" if number.is_integer() else f"{number:,.1f}"
        return f"{days} day{'' if abs(number) == 1 else 's'}"
    if kind == SHARE:
        return f"{number:.0%}"
    if kind == COUNT:
        return f"{round(number):,}"
    return f"{number:,.2f}"
