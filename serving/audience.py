"""Audiences for marketers: the best households of a propensity population, with a seeded
random control group to measure the campaign against.

Selection: drop ``exclude_household_ids``, keep scores >= ``min_score`` (when given), take
the ``top_n`` best (when given). Control: exactly ``round(control_fraction * size)`` of the
selected households, drawn with ``numpy.random.default_rng(seed)`` — the same request gives
the same holdout. Expected responders: the sum of the treated households' probabilities.

``growth audience`` builds the same audience from the bundle without a server
(``bundle_audience``), excluding the households of a file (``read_household_ids``: an earlier
audience, a suppression list), and writes it as the API would answer (``write_audience``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from features import schema as s
from features.sources import GrowthError
from serving.bundle import Bundle
from serving.propensity import Population, PropensityStore
from serving.schemas import AudienceMember, AudienceRequest, AudienceResponse
from training.propensity.reasons import REASON_COLUMNS

SCORE, DECILE, CONTROL = "score", "decile", "control"  # audience columns growth readout reads
CSV_COLUMNS = (s.HOUSEHOLD_ID, "rank", SCORE, DECILE, *REASON_COLUMNS, CONTROL)
FORMATS = {".csv": "csv", ".json": "json"}  # file suffix -> AudienceRequest.format


def build_audience(population: Population, req: AudienceRequest, version: int
                   ) -> AudienceResponse:
    keep = np.ones(len(population.household_ids), dtype=bool)
    if req.exclude_household_ids:
        keep &= ~np.isin(population.household_ids,
                         np.asarray(req.exclude_household_ids, dtype=np.int64))
    if req.min_score is not None:
        keep &= population.probabilities >= req.min_score
    rows = np.flatnonzero(keep)[:req.top_n]  # population is best first
    size = len(rows)
    control = np.zeros(size, dtype=bool)
    control[np.random.default_rng(req.seed).permutation(size)[
        :round(req.control_fraction * size)]] = True
    probabilities = population.probabilities[rows]
    members = [AudienceMember(household_id=h, rank=i + 1, score=p, decile=d,
                              reasons=population.reasons[r], control=c)
               for i, (h, p, d, r, c) in enumerate(zip(
                   population.household_ids[rows].tolist(), probabilities.tolist(),
                   population.deciles[rows].tolist(), rows.tolist(), control.tolist(),
                   strict=True))]
    return AudienceResponse(model=req.model, model_version=version, campaign_id=req.campaign_id,
                            as_of=population.as_of, size=size, treated=int(size - control.sum()),
                            control=int(control.sum()),
                            expected_responders=float(probabilities[~control].sum()),
                            households=members)


def to_csv(audience: AudienceResponse) -> str:
    """One row per household: household_id, rank, score, decile, reason_1..3, control."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for m in audience.households:
        reasons = (m.reasons + [""] * len(REASON_COLUMNS))[:len(REASON_COLUMNS)]
        writer.writerow([m.household_id, m.rank, repr(m.score), m.decile, *reasons,
                         int(m.control)])
    return out.getvalue()


def bundle_audience(bundle: Bundle, req: AudienceRequest) -> AudienceResponse:
    """What ``POST /audience`` answers for ``req`` when serving ``bundle``; a request the
    bundle cannot answer (an unknown campaign) raises the service's ``RequestError``."""
    if not bundle.has(req.model):
        raise GrowthError(f"bundle {bundle.tag} has no {req.model} model: "
                          f"{bundle.missing(req.model)}")
    store = PropensityStore(req.model, bundle.path / req.model, bundle.versions[req.model])
    return build_audience(store.population(req.campaign_id), req, store.version)


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


def read_household_ids(path: Path) -> list[int]:
    """The ids in ``path``: the ``household_id`` column of a parquet or CSV file (an audience
    this command or the API wrote, a suppression list), or one id per line of a text file.
    Blank lines are skipped; anything else that is not an id is an error naming the line."""
    if path.suffix.lower() == ".parquet":
        frame = pd.read_parquet(path)
        if s.HOUSEHOLD_ID not in frame.columns:
            raise GrowthError(f"{path}: no column {s.HOUSEHOLD_ID!r} (columns: "
                              f"{', '.join(map(str, frame.columns))})")
        ids = frame[s.HOUSEHOLD_ID]
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
        if s.HOUSEHOLD_ID not in first:
            raise GrowthError(f"{path}, line {line}: expected a {s.HOUSEHOLD_ID!r} column "
                              f"or one id per line, got {','.join(first)!r}")
        column = first.index(s.HOUSEHOLD_ID)
        rows = rows[1:]
    return [parse_household_id(row[column] if column < len(row) else "", f"{path}, line {line}")
            for line, row in rows]


def write_audience(audience: AudienceResponse, fmt: str, out: Path) -> None:
    """``out`` holds what the API answers in format ``fmt`` (csv or json)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_csv(audience) if fmt == "csv" else audience.model_dump_json())
