"""Audiences for marketers: the best households of a propensity population, with a seeded
random control group to measure the campaign against.

Selection: drop ``exclude_household_ids`` and, with ``max_days_since_last_purchase``, the
households whose last purchase lies further back (or who have none), keep scores >=
``min_score`` (when given), take the ``top_n`` best (when given). Control: exactly
``round(control_fraction * size)`` of the selected households, drawn with
``numpy.random.default_rng(seed)`` — the same request gives the same holdout. Expected
responders (``expected_responders``): the sum of the treated households' probabilities:
expected churners for churn, expected responders (redeemers of the campaign's coupons) for
coupon.
Notes (``audience_notes``) say where the audience is not what was asked: fewer households
than ``top_n``, none at ``min_score`` (with the highest score), nobody left to contact, a
model that has seen the period it scores.

``growth audience`` builds the same audience from the bundle without a server
(``bundle_audience``), excluding the households of a file (``read_household_ids``: an earlier
audience, a suppression list), and writes it as the API would answer (``write_audience``).
"""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from features import schema as s
from features.sources import GrowthError
from serving.bundle import Bundle
from serving.propensity import Population, PropensityStore
from serving.recommend import RequestError
from serving.schemas import AudienceMember, AudienceRequest, AudienceResponse
from training.propensity.reasons import REASON_COLUMNS, VALUE_COLUMNS

SCORE, DECILE, CONTROL = "score", "decile", "control"  # audience columns growth readout reads
REASON_TEXTS = tuple(f"{c}_text" for c in REASON_COLUMNS)  # the reasons in plain English
RECENCY_COLUMN = "days_since_last_purchase"
# the reasons' values follow their texts: reason_1_text..3_text, then reason_1_value..3_value
CSV_COLUMNS = (s.HOUSEHOLD_ID, "rank", SCORE, DECILE, *REASON_COLUMNS, CONTROL, *REASON_TEXTS,
               *VALUE_COLUMNS, RECENCY_COLUMN)
FORMATS = {".csv": "csv", ".json": "json"}  # file suffix -> AudienceRequest.format


def build_audience(population: Population, req: AudienceRequest, version: int,
                   data_end: date | None = None) -> AudienceResponse:
    """``req``'s audience from ``population``, scored by version ``version`` of ``req.model``,
    trained on data before ``data_end``."""
    excluded = np.isin(population.household_ids,
                       np.asarray(req.exclude_household_ids or [], dtype=np.int64))
    lapsed = _lapsed(population, req)
    keep = ~excluded & ~lapsed
    if req.min_score is not None:
        keep &= population.probabilities >= req.min_score
    rows = np.flatnonzero(keep)[:req.top_n]  # population is best first
    size = len(rows)
    control = np.zeros(size, dtype=bool)
    control[np.random.default_rng(req.seed).permutation(size)[
        :round(req.control_fraction * size)]] = True
    probabilities = population.probabilities[rows]
    recency, values = population.days_since_purchase, population.reason_values
    members = [AudienceMember(household_id=h, rank=i + 1, score=p, decile=d,
                              reasons=population.reasons[r],
                              reason_values=values[r] if values else [], control=c,
                              days_since_last_purchase=recency[r] if recency else None)
               for i, (h, p, d, r, c) in enumerate(zip(
                   population.household_ids[rows].tolist(), probabilities.tolist(),
                   population.deciles[rows].tolist(), rows.tolist(), control.tolist(),
                   strict=True))]
    notes = audience_notes(population, req, excluded, keep, size, int(control.sum()),
                           version, data_end, lapsed)
    return AudienceResponse(model=req.model, model_version=version, campaign_id=req.campaign_id,
                            as_of=population.as_of, model_data_end=data_end, size=size,
                            treated=int(size - control.sum()), control=int(control.sum()),
                            expected_responders=float(probabilities[~control].sum()),
                            households=members, notes=notes,
                            reason_glossary=population.reason_glossary(
                                m.reasons for m in members))


def _lapsed(population: Population, req: AudienceRequest) -> np.ndarray:
    """The households ``max_days_since_last_purchase`` leaves out (none without it)."""
    limit = req.max_days_since_last_purchase
    if limit is None:
        return np.zeros(len(population.household_ids), dtype=bool)
    if not population.days_since_purchase:
        raise RequestError("max_days_since_last_purchase", (
            f"the {req.model} model's scores do not record days since the last purchase; "
            "leave it out"))
    return np.array([d is None or d > limit for d in population.days_since_purchase])


def audience_notes(population: Population, req: AudienceRequest, excluded: np.ndarray,
                   keep: np.ndarray, size: int, control: int, version: int,
                   data_end: date | None, lapsed: np.ndarray | None = None) -> list[str]:
    """Why the audience is not what ``req`` asked for, if it is not. ``excluded`` marks the
    population's households ``exclude_household_ids`` names, ``keep`` those the selection
    allows; ``size`` are selected and ``control`` of them held out; the model (``version``)
    was trained on data before ``data_end``."""
    notes = []
    allowed = int(keep.sum())
    none_scores = req.min_score is not None and allowed == 0  # its own note below
    if req.top_n is not None and allowed < req.top_n and not none_scores:
        why = [f"{len(keep):,} households are scored"]
        if excluded.any():
            why.append(f"exclude_household_ids removes {int(excluded.sum()):,}")
        if lapsed is not None and (lapsed & ~excluded).any():
            why.append(f"max_days_since_last_purchase {req.max_days_since_last_purchase} "
                       f"removes {int((lapsed & ~excluded).sum()):,} more")
        if req.min_score is not None:
            why.append(f"{allowed:,} of the rest score at least min_score {req.min_score:g}")
        notes.append(f"{allowed:,} households, fewer than top_n {req.top_n:,}: "
                     + "; ".join(why))
    if none_scores:
        left = population.probabilities[~excluded]
        notes.append(f"no household scores at least min_score {req.min_score:g}"
                     + (f"; the highest score is {left.max():.4f}" if len(left) else
                        "; every scored household is excluded"))
    if size and control == size:
        notes.append(f"control_fraction {req.control_fraction:g} holds out all {size:,} "
                     f"selected households (round({req.control_fraction:g} x {size:,}) = "
                     f"{size:,}): none is left to contact")
    if data_end is not None and data_end > population.as_of:
        notes.append(f"{req.model} v{version} was trained on data before {data_end}, which "
                     f"covers {population.as_of}: it may have seen the outcomes it scores "
                     "here (in-sample), fine for targeting but not for judging the model")
    return notes


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(text: str) -> str:
    """``text`` safe to open in a spreadsheet: a cell starting like a formula gets a leading
    ``'`` (OWASP's CSV-injection advice). Reason names are slugs today, but a bundled model's
    feature names, which the reasons and their fallback texts repeat, come from an artifact."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def to_csv(audience: AudienceResponse) -> str:
    """One row per household: household_id, rank, score, decile, reason_1..3, control,
    reason_1_text..reason_3_text (the reasons in plain English), reason_1_value..reason_3_value
    (the household's value of each; empty from a bundle without them) and
    days_since_last_purchase (empty when unknown). Text cells go through :func:`text_cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for m in audience.households:
        reasons = (m.reasons + [""] * len(REASON_COLUMNS))[:len(REASON_COLUMNS)]
        values = (m.reason_values + [""] * len(VALUE_COLUMNS))[:len(VALUE_COLUMNS)]
        writer.writerow([m.household_id, m.rank, repr(m.score), m.decile,
                         *map(text_cell, reasons), int(m.control),
                         *(text_cell(audience.reason_glossary.get(r, r)) for r in reasons),
                         *map(text_cell, values),
                         "" if m.days_since_last_purchase is None
                         else m.days_since_last_purchase])
    return out.getvalue()


def bundle_audience(bundle: Bundle, req: AudienceRequest) -> AudienceResponse:
    """What ``POST /audience`` answers for ``req`` when serving ``bundle``; a request the
    bundle cannot answer (an unknown campaign, one starting before the data) raises the
    service's ``RequestError``."""
    if not bundle.has(req.model):
        raise GrowthError(f"bundle {bundle.tag} has no {req.model} model: "
                          f"{bundle.missing(req.model)}")
    store = PropensityStore.of(bundle, req.model)
    return build_audience(store.population(req.campaign_id), req, store.version,
                          store.data_end)


def parse_household_id(value: str, where: str) -> int:
    """``value`` as a household id; else GrowthError saying ``where`` it stands."""
    number = s.parse_id(value)
    if number is None:
        raise GrowthError(f"{where}: expected a household id (an integer 0..{s.MAX_ID}), "
                          f"got {value!r}")
    return number


def csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The rows of a CSV file that are not blank, each with the line it starts on, cells
    stripped; a file that is not UTF-8 text or not CSV is a GrowthError naming it."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GrowthError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, line = [], 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((line, [cell.strip() for cell in row]))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise GrowthError(f"{path}, line {line}: not CSV ({exc})") from None
    return rows


def read_audience_json(path: Path) -> AudienceResponse:
    """A JSON audience as ``growth audience`` or ``POST /audience`` writes it; anything else
    is a GrowthError naming the file and the first field that is wrong."""
    try:
        return AudienceResponse.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "the file"
        raise GrowthError(f"{path}: not an audience as POST /audience answers it: {where}: "
                          f"{first['msg']}") from None


def read_household_ids(path: Path) -> list[int]:
    """The ids in ``path``: the ``household_id`` column of a parquet or CSV file (an audience
    this command or the API wrote, a suppression list; the column name matched as the data
    contract matches names, ignoring case and surrounding spaces), the households of a JSON
    audience, or one id per line of a text file. Blank lines are skipped; anything else that
    is not an id is an error naming the line."""
    if path.suffix.lower() == ".json":
        return [m.household_id for m in read_audience_json(path).households]
    if path.suffix.lower() == ".parquet":
        frame = pd.read_parquet(path)
        named = [c for c in frame.columns if s.column_key(str(c)) == s.HOUSEHOLD_ID]
        if not named:
            raise GrowthError(f"{path}: no column {s.HOUSEHOLD_ID!r} (columns: "
                              f"{_shown(', '.join(map(str, frame.columns)))})")
        ids = frame[named[0]]
        if not pd.api.types.is_integer_dtype(ids):
            raise GrowthError(f"{path}: column {s.HOUSEHOLD_ID!r} must hold integer household "
                              f"ids, found {ids.dtype}")
        bad = np.flatnonzero(~ids.between(0, s.MAX_ID).fillna(False).to_numpy(bool))
        if len(bad):
            parse_household_id(str(ids.iloc[bad[0]]), f"{path}, row {bad[0] + 1}")
        return ids.astype("int64").tolist()
    rows = csv_rows(path)
    if not rows:
        return []
    column = 0  # a text file: one id per line
    line, first = rows[0]
    if not first[0].lstrip("-").isdigit():  # a header line
        keys = [s.column_key(cell) for cell in first]
        if s.HOUSEHOLD_ID not in keys:
            raise GrowthError(f"{path}, line {line}: expected a {s.HOUSEHOLD_ID!r} column "
                              f"or one id per line, got {_shown(','.join(first))!r}")
        column = keys.index(s.HOUSEHOLD_ID)
        rows = rows[1:]
    return [parse_household_id(row[column] if column < len(row) else "", f"{path}, line {line}")
            for line, row in rows]


def _shown(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for an error message."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def write_audience(audience: AudienceResponse, fmt: str, out: Path) -> None:
    """``out`` holds what the API answers in format ``fmt`` (csv or json)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_csv(audience) if fmt == "csv" else audience.model_dump_json())
