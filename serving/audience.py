"""Audiences for marketers: the best households of a propensity population, with a seeded
random control group to measure the campaign against.

Selection: drop ``exclude_household_ids``, keep scores >= ``min_score`` (when given), take
the ``top_n`` best (when given). Control: exactly ``round(control_fraction * size)`` of the
selected households, drawn with ``numpy.random.default_rng(seed)`` — the same request gives
the same holdout. Expected responders: the sum of the treated households' probabilities.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from serving.propensity import Population
from serving.schemas import AudienceMember, AudienceRequest, AudienceResponse
from training.propensity.reasons import REASON_COLUMNS

CSV_COLUMNS = ("household_id", "rank", "score", "decile", *REASON_COLUMNS, "control")


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
