"""Deterministic synthetic retail data in the canonical schema (features/schema.py).

    growth data synth --households 2000 --products 5000 --weeks 53 --out data/synth

writes one ``<table>.parquet`` per table. The generative model (parameters in ``SynthModel``):

- products: ~12 departments with categories, types, brands and manufacturers; Zipf-like
  popularity; lognormal prices; a replenishment interval per product; periodic promotions
  (``retail_disc``).
- households: gamma-distributed visit rate (baskets/week), a basket size, department
  affinities, 1-3 usual stores, a set of favourite products bought again and again as a
  renewal process (gamma gaps around a per-(household, product) interval, snapped to the
  household's next basket), plus exploration lines drawn from popularity x affinity.
  Some households join late; some take a break of a few weeks and come back; ~25% churn
  with a hazard that is higher for infrequent shoppers, and their visit rate fades in the
  weeks before they stop.
- campaigns: types A/B/C, 4-8 weeks, coupons on related products, sent to a subset of
  households; redemption depends on a latent coupon affinity, visit rate, whether the
  household's favourites are covered and its department affinity. A redeemed coupon shows
  up as a transaction line with ``coupon_disc > 0`` on the redemption date.

Households are generated in fixed-size chunks, each with its own rng seeded by
(seed, chunk index), and appended to one transactions file, so memory stays flat and the
output is byte-identical for the same arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from features import schema as s
from features.sources import GrowthError

CHUNK_HOUSEHOLDS = 4096  # fixed, so output never depends on memory
DAY_S = 86_400
BASKET_ID_BASE = 30_000_000_000
PRIVATE_LABEL_MANUFACTURER = 69

# name, share of products, median replenishment interval (weeks), median price ($)
DEPARTMENTS: tuple[tuple[str, float, float, float], ...] = (
    ("GROCERY", 0.30, 3.0, 2.6),
    ("DRUG GM", 0.13, 8.0, 4.5),
    ("PRODUCE", 0.07, 1.5, 1.9),
    ("MEAT", 0.05, 2.5, 6.5),
    ("MEAT-PCKGD", 0.05, 3.0, 4.0),
    ("DELI", 0.05, 2.5, 4.2),
    ("PASTRY", 0.04, 2.0, 3.0),
    ("DAIRY", 0.06, 1.2, 2.4),
    ("FROZEN", 0.08, 3.5, 3.3),
    ("BEVERAGE", 0.07, 2.0, 3.6),
    ("NUTRITION", 0.05, 5.0, 3.8),
    ("SEAFOOD", 0.05, 4.0, 7.0),
)
KIDS_DEPARTMENTS = ("PASTRY", "DAIRY", "BEVERAGE")  # favoured by households with kids
PACKAGE_SIZES = ("12 OZ", "16 OZ", "1 LB", "2 LB", "6 CT", "12 CT", "1 GA", "64 OZ", "8 OZ")
CAMPAIGN_TYPES = ("Type A", "Type B", "Type C")
AGES = ("19-24", "25-34", "35-44", "45-54", "55-64", "65+")
INCOMES = ("Under 15K", "15-24K", "25-34K", "35-49K", "50-74K", "75-99K", "100-149K", "150K+")
HOUSEHOLD_SIZES = ("1", "2", "3", "4", "5+")
KIDS_COUNTS = ("0", "1", "2", "3+")
# Demographic column names are not part of the contract (demographics keeps extra columns).
AGE, INCOME, HOUSEHOLD_SIZE, KIDS_COUNT = "age", "income", "household_size", "kids_count"

# Share of baskets by hour of day and weekday (Monday first).
HOUR_WEIGHTS = np.array([0, 0, 0, 0, 0, .2, .5, 1, 2, 3.5, 5, 6, 6.5, 6, 6, 6.5, 7, 7.5, 6.5,
                         5, 3.5, 2, 1, .4])
WEEKDAY_WEIGHTS = np.array([.8, .75, .8, .85, 1.0, 1.15, 1.05])


@dataclass(frozen=True)
class SynthModel:
    zipf_exponent: float = 0.95  # product popularity ~ (rank + zipf_offset) ** -exponent
    zipf_offset: float = 5.0  # flattens the very top of the popularity curve
    price_sigma: float = 0.55  # lognormal spread of prices around the department median
    interval_sigma: float = 0.4  # lognormal spread of product replenishment intervals
    products_per_category: int = 40  # category count per department = products / this
    promo_share: float = 0.6  # products that go on promotion at all
    promo_period_weeks: tuple[int, int] = (6, 17)  # on promotion one week in every 6-16
    promo_depth: tuple[float, float] = (0.1, 0.35)  # retail discount as share of price
    visit_rate_mean: float = 0.75  # baskets per week, gamma across households
    visit_rate_shape: float = 1.4  # gamma shape (lower = more heterogeneous)
    explore_mean: float = 3.0  # exploration lines per basket (Poisson mean, mean household)
    favourites_mean: float = 9.0  # favourite products per household (2 + Poisson)
    favourite_gap_shape: float = 3.0  # gamma shape of gaps between repeat buys (CV 1/sqrt)
    favourite_interval_sigma: float = 0.35  # household spread around the product interval
    favourite_skip: float = 0.08  # chance a due repeat purchase does not happen
    late_join_share: float = 0.22  # households whose first week is after the start
    late_join_max: float = 0.65  # latest join, as a share of the period
    churn_share: float = 0.25  # target share of households that stop buying
    churn_rate_elasticity: float = 0.8  # hazard ~ visit_rate ** -elasticity
    decline_weeks: float = 8.0  # visit rate fades over this many weeks before churn
    decline_floor: float = 0.35  # ... down to this share of the usual rate
    pause_share: float = 0.2  # households that stop for a while and come back
    pause_weeks: tuple[float, float] = (2.0, 12.0)  # length of that break
    campaigns_per_year: int = 25
    campaign_weeks: tuple[int, int] = (4, 9)  # campaign length in weeks, [low, high)
    targeted_share: tuple[float, float, float] = (0.3, 0.1, 0.06)  # by type A, B, C
    coupons_per_campaign: tuple[tuple[int, int], ...] = ((25, 61), (8, 26), (4, 13))
    redeem_intercept: float = -3.5  # logit of redeeming a campaign for a typical household
    redeem_affinity: float = 1.1  # weight of the latent coupon affinity (standard normal)
    redeem_log_rate: float = 0.6  # weight of log(visit rate / mean)
    redeem_favourite: float = 1.2  # bonus when a favourite product is covered
    redeem_department: float = 0.5  # weight of department affinity for covered products
    redeem_type: tuple[float, float, float] = (0.4, 0.0, -0.2)  # by type A, B, C
    coupon_face_values: tuple[float, ...] = (0.25, 0.5, 0.55, 0.75, 1.0, 1.5, 2.0, 3.0)


MODEL = SynthModel()

# Smallest arguments generate accepts (the CLI's options use the same bounds).
MINIMUMS: dict[str, int] = {"households": 1, "products": 2 * len(DEPARTMENTS), "weeks": 1,
                            "seed": 0}
MAXIMUMS: dict[str, int] = {"households": 10_000_000, "products": 10_000_000, "weeks": 520,
                            "seed": 2**32 - 1}
MINIMUM_REASONS: dict[str, str] = {
    "products": f"two per department, {len(DEPARTMENTS)} departments",
    "seed": "numpy seeds are non-negative",
}


def _arrow_schema(table: str, extra: tuple[str, ...] = ()) -> pa.Schema:
    """Arrow schema for a canonical table, types from the schema's column kinds."""
    kinds = {"id": pa.int64(), "number": pa.float64(), "timestamp": pa.timestamp("us"),
             "day": pa.timestamp("us"), "category": pa.string()}
    fields = [pa.field(c.name, kinds[c.kind]) for c in s.TABLES[table].columns]
    return pa.schema(fields + [pa.field(name, pa.string()) for name in extra])


def _write(out_dir: Path, table: str, columns: dict[str, object],
           extra: tuple[str, ...] = ()) -> int:
    schema = _arrow_schema(table, extra)
    data = pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in schema},
                    schema=schema)
    pq.write_table(data, out_dir / f"{table}.parquet")
    return data.num_rows


def _ranges(counts: np.ndarray) -> np.ndarray:
    """0..n-1 within each group of ``counts`` (concatenated)."""
    starts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum())) - np.repeat(starts, counts)


@dataclass
class _Products:
    ids: np.ndarray
    department: np.ndarray  # department index
    category: np.ndarray  # global category index
    price: np.ndarray
    interval: np.ndarray  # replenishment interval, weeks
    dept_mass: np.ndarray  # popularity mass per department
    by_dept: np.ndarray  # product indexes sorted by department
    dept_cum: np.ndarray  # department index + cumulative popularity within it, by_dept order
    dept_end: np.ndarray  # end offset of each department in by_dept
    by_category: np.ndarray
    category_start: np.ndarray
    category_count: np.ndarray
    popularity: np.ndarray
    promo_period: np.ndarray  # 0 = never on promotion
    promo_phase: np.ndarray
    promo_depth: np.ndarray
    table: dict[str, object]


def _make_products(rng: np.random.Generator, n: int, m: SynthModel) -> _Products:
    n_dept = len(DEPARTMENTS)
    ids = 25_000 + np.cumsum(1 + rng.integers(0, 400, n))
    dept = rng.choice(n_dept, size=n, p=np.array([d[1] for d in DEPARTMENTS]))
    dept[:n_dept] = np.arange(n_dept)  # every department has products
    popularity = (rng.permutation(n) + m.zipf_offset) ** -m.zipf_exponent
    price = np.array([d[3] for d in DEPARTMENTS])[dept] * rng.lognormal(0, m.price_sigma, n)
    price = np.maximum(np.round(price, 2), 0.25)
    interval = np.array([d[2] for d in DEPARTMENTS])[dept] * rng.lognormal(0, m.interval_sigma,
                                                                          n)
    interval = np.clip(interval, 0.5, 26.0)

    dept_count = np.bincount(dept, minlength=n_dept)
    n_cat = np.maximum(1, np.round(dept_count / m.products_per_category)).astype(np.int64)
    cat_offset = np.cumsum(n_cat) - n_cat
    category = cat_offset[dept] + (rng.random(n) * n_cat[dept]).astype(np.int64)
    n_types = 1 + rng.integers(0, 6, int(n_cat.sum()))
    ptype = (rng.random(n) * n_types[category]).astype(np.int64)
    national = rng.random(n) < 0.7
    n_manuf = max(5, n // 8)
    cat_manuf = rng.integers(0, n_manuf, int(n_cat.sum()))
    manufacturer = np.where(national, 100 + (cat_manuf[category] + rng.integers(0, 4, n))
                            % n_manuf, PRIVATE_LABEL_MANUFACTURER)
    size = rng.integers(0, len(PACKAGE_SIZES), n)
    size_missing = rng.random(n) < 0.1
    promo_period = np.where(rng.random(n) < m.promo_share,
                            rng.integers(*m.promo_period_weeks, n), 0)
    promo_phase = (rng.random(n) * np.maximum(promo_period, 1)).astype(np.int64)
    promo_depth = rng.uniform(*m.promo_depth, n)

    by_dept = np.argsort(dept, kind="stable")
    dept_mass = np.bincount(dept, weights=popularity, minlength=n_dept)
    dept_end = np.cumsum(dept_count)
    within = np.cumsum(popularity[by_dept]) - np.repeat(np.cumsum(dept_mass) - dept_mass,
                                                        dept_count)
    dept_cum = dept[by_dept] + within / dept_mass[dept[by_dept]]
    dept_cum[dept_end - 1] = np.arange(1, n_dept + 1)
    by_category = np.argsort(category, kind="stable")
    category_count = np.bincount(category, minlength=int(n_cat.sum()))

    names = [d[0] for d in DEPARTMENTS]
    cat_names = [f"{names[d]} C{c - cat_offset[d]:03d}"
                 for d, c in zip(dept, category, strict=True)]
    table = {
        s.PRODUCT_ID: ids,
        s.MANUFACTURER_ID: manufacturer,
        s.DEPARTMENT: [names[d] for d in dept],
        s.BRAND: np.where(national, "National", "Private").tolist(),
        s.PRODUCT_CATEGORY: cat_names,
        s.PRODUCT_TYPE: [f"{c} T{t}" for c, t in zip(cat_names, ptype, strict=True)],
        s.PACKAGE_SIZE: [None if miss else PACKAGE_SIZES[k] for k, miss in
                         zip(size, size_missing, strict=True)],
    }
    return _Products(ids, dept, category, price, interval, dept_mass, by_dept, dept_cum,
                     dept_end, by_category, np.cumsum(category_count) - category_count,
                     category_count, popularity, promo_period, promo_phase, promo_depth,
                     table)


def _sample_products(rng: np.random.Generator, p: _Products, dept_cdf: np.ndarray,
                     rows: np.ndarray) -> np.ndarray:
    """Draw one product per entry of ``rows``: department from that household's CDF
    (``dept_cdf[row]``), then a product within the department by popularity."""
    u = rng.random(len(rows))
    dept = np.zeros(len(rows), dtype=np.int64)
    for j in range(dept_cdf.shape[1] - 1):
        dept += u >= dept_cdf[rows, j]
    pos = np.searchsorted(p.dept_cum, dept + rng.random(len(rows)), side="right")
    return p.by_dept[np.minimum(pos, p.dept_end[dept] - 1)]


def _check_arguments(**values: int) -> None:
    """GrowthError naming the first argument of :func:`generate` outside its range."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise GrowthError(f"{name} must be a whole number, got {value!r}")
        if value < MINIMUMS[name]:
            why = f" ({MINIMUM_REASONS[name]})" if name in MINIMUM_REASONS else ""
            raise GrowthError(f"{name} must be at least {MINIMUMS[name]}{why}, got {value}")
        if value > MAXIMUMS[name]:
            raise GrowthError(f"{name} must be at most {MAXIMUMS[name]:,}, got {value:,}")


def generate(out_dir: Path, households: int = 2000, products: int = 5000, weeks: int = 53,
             seed: int = 0, start_date: str = "2017-01-01") -> dict[str, int]:
    """Write a synthetic data folder (one parquet file per canonical table) to ``out_dir``.

    Deterministic: the same arguments give byte-identical files. Returns row counts per
    table, keyed by table name. About 200 transaction lines per household per 52 weeks.
    """
    _check_arguments(households=households, products=products, weeks=weeks, seed=seed)
    try:
        start_day = np.datetime64(date.fromisoformat(start_date), "D")
    except (TypeError, ValueError) as exc:
        raise GrowthError(f"start_date must be a date as YYYY-MM-DD, got {start_date!r}") from exc
    m = MODEL
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0])
    n_dept = len(DEPARTMENTS)
    total_days = 7 * weeks
    span_s = total_days * DAY_S
    start_us = start_day.astype("datetime64[us]").astype(np.int64)
    start_weekday = int((start_day.astype(np.int64) + 3) % 7)  # 1970-01-01 was a Thursday

    prod = _make_products(rng, products, m)
    counts = {s.PRODUCTS: _write(out_dir, s.PRODUCTS, prod.table)}

    # --- households: traits for everyone, drawn up front ---------------------------------
    H = households
    hh_ids = np.arange(1, H + 1, dtype=np.int64)
    size = rng.choice(5, H, p=[.28, .34, .16, .13, .09])
    kids = np.where(size >= 2, np.clip(size - 1 - (rng.random(H) < 0.3), 0, 3),
                    (size == 1) & (rng.random(H) < 0.15))
    age = rng.choice(len(AGES), H, p=[.06, .18, .22, .25, .16, .13])
    income = rng.choice(len(INCOMES), H, p=[.08, .1, .12, .2, .22, .12, .1, .06])
    rate = rng.gamma(m.visit_rate_shape, m.visit_rate_mean / m.visit_rate_shape, H)
    rate = np.clip(rate * np.where(age >= 4, 1.15, 1.0), 0.04, 6.0)
    rel_rate = rate / m.visit_rate_mean
    size_factor = np.array([0.7, 0.95, 1.1, 1.25, 1.4])[size]
    explore = (m.explore_mean * size_factor * rel_rate ** -0.25
               * rng.lognormal(-0.1, 0.45, H))
    n_fav = 2 + rng.poisson(m.favourites_mean * size_factor * rel_rate ** 0.3)
    coupon_affinity = rng.normal(0, 0.9, H) - 0.15 * (income - 3.5)
    affinity = rng.gamma(0.9, 1.0, (H, n_dept))
    kids_cols = [i for i, d in enumerate(DEPARTMENTS) if d[0] in KIDS_DEPARTMENTS]
    affinity[:, kids_cols] *= np.where(kids > 0, 1.5, 1.0)[:, None]
    dept_weight = affinity * prod.dept_mass
    dept_share = dept_weight / dept_weight.sum(1, keepdims=True)
    join = np.where(rng.random(H) < m.late_join_share,
                    rng.random(H) * m.late_join_max * weeks, 0.0)
    hazard_mult = np.clip((rate / np.median(rate)) ** -m.churn_rate_elasticity, 0.15, 6.0)
    hazard = -np.log1p(-m.churn_share) / weeks * hazard_mult / hazard_mult.mean()
    churn_at = join + 1.5 + rng.exponential(1.0, H) / hazard
    churner = churn_at < weeks
    end = np.minimum(churn_at, weeks)
    pause_at = np.where(rng.random(H) < m.pause_share, join + rng.random(H) * (weeks - join),
                        np.inf)
    pause_end = pause_at + rng.uniform(*m.pause_weeks, H)
    n_stores = max(8, H // 180)
    store_ids = 300 + np.cumsum(1 + rng.integers(0, 5, n_stores))
    store_pop = (np.arange(n_stores) + 1.0) ** -0.8
    hh_stores = rng.choice(n_stores, (H, 3), p=store_pop / store_pop.sum())
    store_w = np.array([0.75, 0.2, 0.05]) * (np.arange(3) < rng.choice(
        [1, 2, 3], H, p=[.5, .35, .15])[:, None])
    store_cdf = np.cumsum(store_w / store_w.sum(1, keepdims=True), axis=1)

    has_demo = rng.random(H) < 0.32
    has_demo[0] = True
    counts[s.DEMOGRAPHICS] = _write(out_dir, s.DEMOGRAPHICS, {
        s.HOUSEHOLD_ID: hh_ids[has_demo],
        AGE: [AGES[i] for i in age[has_demo]],
        INCOME: [INCOMES[i] for i in income[has_demo]],
        HOUSEHOLD_SIZE: [HOUSEHOLD_SIZES[i] for i in size[has_demo]],
        KIDS_COUNT: [KIDS_COUNTS[i] for i in kids[has_demo]],
    }, extra=(AGE, INCOME, HOUSEHOLD_SIZE, KIDS_COUNT))

    # --- campaigns, coupons and who receives them ---------------------------------------
    n_camp = max(3, round(m.campaigns_per_year * weeks / 52))
    ctype = rng.choice(3, n_camp, p=[.2, .4, .4])
    ctype[rng.permutation(n_camp)[:3]] = [0, 1, 2]
    length = np.minimum(7 * rng.integers(*m.campaign_weeks, n_camp), total_days)
    cstart = (rng.random(n_camp) * (total_days - length + 1)).astype(np.int64)
    order = np.argsort(cstart, kind="stable")
    ctype, length, cstart = ctype[order], length[order], cstart[order]
    cend = cstart + length - 1  # inclusive last day
    campaign_ids = np.arange(1, n_camp + 1, dtype=np.int64)
    counts[s.CAMPAIGN_DESCRIPTIONS] = _write(out_dir, s.CAMPAIGN_DESCRIPTIONS, {
        s.CAMPAIGN_ID: campaign_ids,
        s.CAMPAIGN_TYPE: [CAMPAIGN_TYPES[t] for t in ctype],
        s.START_DATE: (start_day + cstart).astype("datetime64[us]"),
        s.END_DATE: (start_day + cend).astype("datetime64[us]"),
    })

    n_coupons = np.array([rng.integers(*m.coupons_per_campaign[t]) for t in ctype])
    coupon_campaign = np.repeat(np.arange(n_camp), n_coupons)
    n_cp = len(coupon_campaign)
    coupon_upc = 10_000_000_000 + np.cumsum(1 + rng.integers(0, 1000, n_cp))
    anchor_w = prod.popularity ** 0.6
    anchor = rng.choice(products, n_cp, p=anchor_w / anchor_w.sum())
    cover = 1 + np.minimum(rng.poisson(2.5, n_cp), 11)
    cp_coupon = np.repeat(np.arange(n_cp), cover)
    cat = prod.category[anchor[cp_coupon]]
    cp_product = prod.by_category[prod.category_start[cat] + (
        rng.random(len(cp_coupon)) * prod.category_count[cat]).astype(np.int64)]
    cp_product[_ranges(cover) == 0] = anchor
    _, first = np.unique(cp_coupon * products + cp_product, return_index=True)
    cp_coupon, cp_product = cp_coupon[first], cp_product[first]  # sorted by coupon, product
    coupon_prod_count = np.bincount(cp_coupon, minlength=n_cp)
    coupon_prod_start = np.cumsum(coupon_prod_count) - coupon_prod_count
    counts[s.COUPONS] = _write(out_dir, s.COUPONS, {
        s.COUPON_UPC: coupon_upc[cp_coupon], s.PRODUCT_ID: prod.ids[cp_product],
        s.CAMPAIGN_ID: campaign_ids[coupon_campaign[cp_coupon]]})
    # (campaign, product) -> coupon lookup, and each campaign's department mix
    cprod_key, first = np.unique(coupon_campaign[cp_coupon] * products + cp_product,
                                 return_index=True)
    cprod_coupon = cp_coupon[first]
    camp_dept = np.zeros((n_camp, n_dept))
    np.add.at(camp_dept, (coupon_campaign[cp_coupon], prod.department[cp_product]), 1.0)
    camp_dept /= camp_dept.sum(1, keepdims=True)
    camp_coupon_start = np.cumsum(n_coupons) - n_coupons

    target_w = np.minimum(rel_rate ** 0.35 / np.mean(rel_rate ** 0.35), 3.0)
    pair_hh, pair_c = [], []
    for c in range(n_camp):
        p_target = np.array(m.targeted_share)[ctype[c]] * target_w * (join * 7 <= cstart[c])
        hit = np.flatnonzero(rng.random(H) < p_target)
        pair_hh.append(hit)
        pair_c.append(np.full(len(hit), c))
    pair_hh, pair_c = np.concatenate(pair_hh), np.concatenate(pair_c)
    order = np.lexsort((pair_c, pair_hh))
    pair_hh, pair_c = pair_hh[order], pair_c[order]
    counts[s.CAMPAIGNS] = _write(out_dir, s.CAMPAIGNS, {
        s.HOUSEHOLD_ID: hh_ids[pair_hh], s.CAMPAIGN_ID: campaign_ids[pair_c]})

    # --- transactions and redemptions, household chunk by chunk -------------------------
    hour_p = HOUR_WEIGHTS / HOUR_WEIGHTS.sum()
    keep_wd = WEEKDAY_WEIGHTS / WEEKDAY_WEIGHTS.max()
    face = np.array(m.coupon_face_values)
    redemptions: list[tuple[np.ndarray, ...]] = []
    n_lines = 0
    n_baskets = 0
    tx_schema = _arrow_schema(s.TRANSACTIONS)
    with pq.ParquetWriter(out_dir / f"{s.TRANSACTIONS}.parquet", tx_schema) as writer:
        for chunk, h0 in enumerate(range(0, H, CHUNK_HOUSEHOLDS)):
            crng = np.random.default_rng([seed, 1, chunk])
            hh = np.arange(h0, min(h0 + CHUNK_HOUSEHOLDS, H))
            n_h = len(hh)
            c_join, c_end = join[hh], end[hh]
            c_span = c_end - c_join

            # baskets: Poisson arrivals thinned by weekday, breaks and the pre-churn fade
            n_cand = crng.poisson(rate[hh] * c_span / keep_wd.mean())
            b_hh = np.repeat(np.arange(n_h), n_cand)
            t = c_join[b_hh] + crng.random(len(b_hh)) * c_span[b_hh]
            day = np.minimum((t * 7).astype(np.int64), total_days - 1)
            fade_from = churn_at[hh][b_hh] - m.decline_weeks
            fade = np.clip(1 - (t - fade_from) / m.decline_weeks * (1 - m.decline_floor),
                           m.decline_floor, 1.0)
            paused = (t >= pause_at[hh][b_hh]) & (t < pause_end[hh][b_hh])
            keep_p = (keep_wd[(start_weekday + day) % 7] * np.where(churner[hh][b_hh], fade, 1.0)
                      * np.where(paused, 0.05, 1.0))
            keep = crng.random(len(b_hh)) < keep_p
            b_hh, day = b_hh[keep], day[keep]
            lonely = np.flatnonzero(np.bincount(b_hh, minlength=n_h) == 0)  # >= 1 basket each
            t_lonely = c_join[lonely] + crng.random(len(lonely)) * np.minimum(c_span[lonely], 2)
            b_hh = np.concatenate([b_hh, lonely])
            day = np.concatenate([day, np.minimum((t_lonely * 7).astype(np.int64),
                                                  total_days - 1)])
            nb = len(b_hh)
            sec = (day * DAY_S + crng.choice(24, nb, p=hour_p) * 3600
                   + crng.integers(0, 3600, nb))
            order = np.lexsort((sec, b_hh))
            b_hh, sec = b_hh[order], sec[order]
            b_key = b_hh * span_s + sec
            slot = (crng.random(nb)[:, None] >= store_cdf[hh][b_hh]).sum(1)
            b_store = store_ids[hh_stores[hh][b_hh, np.minimum(slot, 2)]]

            # favourites: renewal process per (household, product), snapped to next basket
            hh_cdf = np.cumsum(dept_share[hh], axis=1)
            f_hh = np.repeat(np.arange(n_h), n_fav[hh])
            f_key = np.unique(f_hh * products + _sample_products(crng, prod, hh_cdf, f_hh))
            f_hh, f_prod = f_key // products, f_key % products
            interval = prod.interval[f_prod] * crng.lognormal(0, m.favourite_interval_sigma,
                                                              len(f_prod))
            n_ev = np.ceil(c_span[f_hh] / interval * 1.4 + 3).astype(np.int64)
            ev = np.repeat(np.arange(len(f_prod)), n_ev)
            gap = crng.gamma(m.favourite_gap_shape, 1 / m.favourite_gap_shape, len(ev))
            first = np.cumsum(n_ev) - n_ev
            gap[first] = crng.random(len(first))  # stationary start
            gap *= interval[ev]
            cum = np.cumsum(gap)
            t_ev = c_join[f_hh[ev]] + cum - np.repeat(cum[first] - gap[first], n_ev)
            ok = (t_ev < c_end[f_hh[ev]]) & (crng.random(len(ev)) >= m.favourite_skip)
            ev, t_ev = ev[ok], t_ev[ok]
            ev_hh = f_hh[ev]
            pos = np.searchsorted(b_key, ev_hh * span_s + (t_ev * 7 * DAY_S).astype(np.int64))
            ok = pos < nb
            ok[ok] = b_hh[pos[ok]] == ev_hh[ok]
            fav_basket, fav_prod = pos[ok], f_prod[ev[ok]]

            # exploration: popularity x department affinity, at least one line per basket
            n_explore = crng.poisson(explore[hh][b_hh])
            empty = np.bincount(fav_basket, minlength=nb) == 0
            n_explore[empty & (n_explore == 0)] = 1
            ex_basket = np.repeat(np.arange(nb), n_explore)
            ex_prod = _sample_products(crng, prod, hh_cdf, b_hh[ex_basket])
            l_basket = np.concatenate([fav_basket, ex_basket])
            l_prod = np.concatenate([fav_prod, ex_prod])
            qty = 1.0 + (crng.random(len(l_prod)) < 0.12) * (1 + crng.poisson(0.5, len(l_prod)))
            l_key, inverse = np.unique(l_basket * products + l_prod, return_inverse=True)
            l_qty = np.bincount(inverse, weights=qty)

            # redemptions of the campaigns these households received
            lo_p, hi_p = np.searchsorted(pair_hh, [h0, h0 + n_h])
            r_hh, r_c = pair_hh[lo_p:hi_p] - h0, pair_c[lo_p:hi_p]
            n_pairs = len(r_hh)
            lo = np.searchsorted(b_key, r_hh * span_s + cstart[r_c] * DAY_S)
            in_window = np.searchsorted(b_key, r_hh * span_s + (cend[r_c] + 1) * DAY_S) - lo
            f_count = np.bincount(f_hh, minlength=n_h)
            pe = np.repeat(np.arange(n_pairs), f_count[r_hh])
            fe = (np.cumsum(f_count) - f_count)[r_hh[pe]] + _ranges(f_count[r_hh])
            look = r_c[pe] * products + f_prod[fe]
            j = np.minimum(np.searchsorted(cprod_key, look), len(cprod_key) - 1)
            covered = cprod_key[j] == look
            overlap = np.bincount(pe[covered], minlength=n_pairs)
            pick = np.lexsort((crng.random(int(covered.sum())), pe[covered]))
            hit_pe, hit_first = np.unique(pe[covered][pick], return_index=True)
            hit_coupon = np.full(n_pairs, -1)
            hit_prod = np.full(n_pairs, -1)
            hit_coupon[hit_pe] = cprod_coupon[j[covered][pick][hit_first]]
            hit_prod[hit_pe] = f_prod[fe[covered][pick][hit_first]]
            dept_match = n_dept * (dept_share[hh][r_hh] * camp_dept[r_c]).sum(1)
            logit = (m.redeem_intercept + m.redeem_affinity * coupon_affinity[hh][r_hh]
                     + m.redeem_log_rate * np.log(rel_rate[hh][r_hh])
                     + m.redeem_favourite * (overlap > 0)
                     + m.redeem_department * np.log(dept_match)
                     + np.array(m.redeem_type)[ctype[r_c]])
            redeem = (crng.random(n_pairs) < 1 / (1 + np.exp(-logit))) & (in_window > 0)
            rp = np.flatnonzero(redeem)
            n_red = np.minimum(1 + crng.poisson(0.5, len(rp)), n_coupons[r_c[rp]])
            rr = np.repeat(rp, n_red)
            coupon = camp_coupon_start[r_c[rr]] + (crng.random(len(rr))
                                                   * n_coupons[r_c[rr]]).astype(np.int64)
            product = cp_product[coupon_prod_start[coupon] + (
                crng.random(len(rr)) * coupon_prod_count[coupon]).astype(np.int64)]
            lead = (_ranges(n_red) == 0) & (hit_coupon[rr] >= 0)
            coupon[lead], product[lead] = hit_coupon[rr[lead]], hit_prod[rr[lead]]
            _, first = np.unique(rr * n_cp + coupon, return_index=True)
            first.sort()
            rr, coupon, product = rr[first], coupon[first], product[first]
            basket = lo[rr] + (crng.random(len(rr)) * in_window[rr]).astype(np.int64)
            redemptions.append((hh_ids[h0 + r_hh[rr]], coupon_upc[coupon],
                                campaign_ids[r_c[rr]], sec[basket] // DAY_S))

            # coupon lines: discount an existing line of that product, or add one
            disc = np.minimum(crng.choice(face, len(rr)), np.round(0.8 * prod.price[product], 2))
            c_key, inverse = np.unique(basket * products + product, return_inverse=True)
            c_disc = np.bincount(inverse, weights=disc)
            j = np.minimum(np.searchsorted(l_key, c_key), len(l_key) - 1)
            exists = l_key[j] == c_key
            l_coupon = np.zeros(len(l_key))
            l_coupon[j[exists]] = c_disc[exists]
            l_key = np.concatenate([l_key, c_key[~exists]])
            l_qty = np.concatenate([l_qty, np.ones(int((~exists).sum()))])
            l_coupon = np.concatenate([l_coupon, c_disc[~exists]])
            order = np.argsort(l_key, kind="stable")
            l_key, l_qty, l_coupon = l_key[order], l_qty[order], l_coupon[order]
            l_basket, l_prod = l_key // products, l_key % products
            l_match = np.where((l_coupon > 0) & (crng.random(len(l_key)) < 0.3),
                               np.round(np.minimum(l_coupon, 0.5), 2), 0.0)

            # prices and promotions
            gross = np.round(l_qty * prod.price[l_prod], 2)
            week = sec[l_basket] // (7 * DAY_S)
            period = prod.promo_period[l_prod]
            promo = (period > 0) & ((week + prod.promo_phase[l_prod]) % np.maximum(period, 1)
                                    == 0)
            retail = np.where(promo, np.round(gross * prod.promo_depth[l_prod], 2), 0.0)
            columns = {
                s.HOUSEHOLD_ID: hh_ids[h0 + b_hh[l_basket]],
                s.BASKET_ID: BASKET_ID_BASE + n_baskets + l_basket,
                s.PRODUCT_ID: prod.ids[l_prod],
                s.QUANTITY: l_qty,
                s.SALES_VALUE: np.round(gross - retail, 2),
                s.TRANSACTION_TIMESTAMP: (start_us + sec[l_basket] * 1_000_000).astype(
                    "datetime64[us]"),
                s.STORE_ID: b_store[l_basket],
                s.RETAIL_DISC: retail,
                s.COUPON_DISC: l_coupon,
                s.COUPON_MATCH_DISC: l_match,
            }
            writer.write_table(pa.table({f.name: pa.array(columns[f.name], type=f.type)
                                         for f in tx_schema}, schema=tx_schema))
            n_lines += len(l_key)
            n_baskets += nb
    counts[s.TRANSACTIONS] = n_lines

    r_hh_id, r_upc, r_camp, r_day = (np.concatenate(col) for col in zip(*redemptions, strict=True))
    order = np.lexsort((r_upc, r_day, r_camp, r_hh_id))
    counts[s.COUPON_REDEMPTIONS] = _write(out_dir, s.COUPON_REDEMPTIONS, {
        s.HOUSEHOLD_ID: r_hh_id[order], s.COUPON_UPC: r_upc[order],
        s.CAMPAIGN_ID: r_camp[order],
        s.REDEMPTION_DATE: (start_day + r_day[order]).astype("datetime64[us]")})
    return counts
