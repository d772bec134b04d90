"""BG/NBD (Fader, Hardie & Lee 2005) as a churn feature: the chance of no visit in a horizon.

Fitted by maximum likelihood on the households active before a cutoff, from their own
histories only (no labels), so it is point-in-time like every other feature. Its smooth
extrapolation to long silences helps the trees where training cutoffs hold few examples.
Time is in weeks; a "transaction" is a distinct visit day.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln


def _neg_log_likelihood(log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                        t: np.ndarray) -> float:
    r, alpha, a, b = np.exp(log_params)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    still = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + t)
    dropped = np.where(
        x > 0,
        betaln(a + 1, b + np.maximum(x, 1) - 1) - betaln(a, b) - (r + x) * np.log(alpha + t_x),
        -np.inf)
    return float(-(common + np.logaddexp(still, dropped)).sum())


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``(r, alpha, a, b)`` from repeat visits ``x``, time of the last visit ``t_x`` and
    time observed ``t`` (both since the first visit, in weeks)."""
    res = minimize(_neg_log_likelihood, np.zeros(4), args=(x, t_x, t), method="L-BFGS-B",
                   bounds=[(-8.0, 8.0)] * 4)
    return np.exp(res.x)


def bgnbd_probabilities(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, t: np.ndarray,
                        horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """``(p_alive, p_no_visit)``: the chance the household is still a customer, and the
    chance it makes no visit in the next ``horizon`` weeks (dead, or alive but silent)."""
    r, alpha, a, b = params
    # p_alive = 1 / (1 + a / (b + x - 1) * ((alpha + t) / (alpha + t_x)) ** (r + x)), in log
    # space: after a long silence the power overflows, where the probability just nears 0
    log_odds = (np.log(a) - np.log(b + np.maximum(x, 1) - 1)
                + (r + x) * (np.log(alpha + t) - np.log(alpha + t_x)))
    p_alive = np.where(x > 0, expit(-log_odds), 1.0)
    silent = np.exp((r + x) * (np.log(alpha + t) - np.log(alpha + t + horizon)))
    return p_alive, 1.0 - p_alive * (1.0 - silent)
