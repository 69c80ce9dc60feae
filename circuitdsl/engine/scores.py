"""Scores from per-example metric values (SEMANTICS.md section 4). numpy only.

Every function here takes the examples in the order the caller holds them and, given their ids,
first puts them in id order (Python string order, as the draw pools): the point values and the
bootstrap interval then do not depend on the dataset's row order (issue 18).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from circuitdsl.results import Recovered

__all__ = ["recovered", "abs_delta_stats", "undefined_reason", "gap_stats", "id_order", "FLOAT_TOL", "SE_MULTIPLE"]

FLOAT_TOL = 1e-6
"""|F(model) - F(baseline)| at or below FLOAT_TOL * max(1, |F(model)|, |F(baseline)|) is float noise:
nothing to recover (metrics are float64 computed from float32 logits)."""
SE_MULTIPLE = 2.0
"""recovered is undefined when |gap| is below this many standard errors of the per-example gap
m(model, x) - m(baseline, x), SE = sample sd / sqrt(n) (SEMANTICS.md section 4)."""
_BOOT_KEY = 0xB007


def id_order(ids: Sequence[str] | None, n: int) -> np.ndarray:
    """Indices that put n examples in id order (stable); the identity when ids is None."""
    if ids is None:
        return np.arange(n)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} examples")
    return np.asarray(sorted(range(n), key=lambda i: str(ids[i])), dtype=np.int64)


def _tolerance(f_model: float, f_base: float) -> float:
    return FLOAT_TOL * max(1.0, abs(f_model), abs(f_base))


def gap_stats(m_model: np.ndarray, m_base: np.ndarray) -> tuple[float, float]:
    """(F(model) - F(baseline), standard error of the mean per-example gap); the SE is NaN for n < 2."""
    m_model, m_base = np.asarray(m_model, dtype=np.float64), np.asarray(m_base, dtype=np.float64)
    gap = float(m_model.mean() - m_base.mean())
    n = len(m_model)
    if n < 2:
        return gap, math.nan
    return gap, float(np.std(m_model - m_base, ddof=1) / math.sqrt(n))


def undefined_reason(m_model: np.ndarray, m_base: np.ndarray) -> str | None:
    """Why recovered is undefined (SEMANTICS.md section 4), or None when the gap is distinguishable from 0."""
    gap, se = gap_stats(m_model, m_base)
    if abs(gap) <= _tolerance(float(np.mean(m_model)), float(np.mean(m_base))):
        return f"F(model) - F(baseline) = {gap:.3g}: nothing to recover (the baseline already matches the model)"
    if math.isnan(se):
        return f"F(model) - F(baseline) = {gap:.3g} on one example: its standard error is unknown"
    if abs(gap) < SE_MULTIPLE * se:
        return (
            f"F(model) - F(baseline) = {gap:.3g} is within {SE_MULTIPLE:g} standard errors ({se:.3g} each) of 0: "
            "the gap is not distinguishable from noise, so the ratio is meaningless"
        )
    return None


def recovered(
    m_model: np.ndarray,
    m_scrub: np.ndarray,
    m_base: np.ndarray,
    *,
    resamples: int,
    seed: int,
    ids: Sequence[str] | None = None,
) -> Recovered:
    """(F(scrubbed) - F(baseline)) / (F(model) - F(baseline)) with a percentile bootstrap 95% interval.

    ids: the examples' ids. The examples are put in id order first, and the bootstrap draws its
    resample indices (numpy, seeded by `seed`) over that order: permuting the examples changes nothing.
    """
    n = len(m_model)
    o = id_order(ids, n)
    m_model, m_scrub, m_base = (np.asarray(a, dtype=np.float64)[o] for a in (m_model, m_scrub, m_base))
    gap, se = gap_stats(m_model, m_base)
    se_out = None if math.isnan(se) else se
    reason = undefined_reason(m_model, m_base)
    if reason is not None:
        return Recovered(None, None, None, resamples, reason, gap, se_out)
    f_base = m_base.mean()
    value = float((m_scrub.mean() - f_base) / (m_model.mean() - f_base))
    if resamples <= 0:
        return Recovered(value, None, None, resamples, None, gap, se_out)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, _BOOT_KEY])
    idx = rng.integers(0, n, size=(resamples, n))
    fm, fs, fb = m_model[idx].mean(1), m_scrub[idx].mean(1), m_base[idx].mean(1)
    den = fm - fb
    ok = np.abs(den) > _tolerance(float(m_model.mean()), float(f_base))
    ratios = (fs[ok] - fb[ok]) / den[ok]
    # (the point gap is above the tolerance, so at most about half the resamples are left out here)
    if len(ratios) < 2:
        return Recovered(value, None, None, resamples, None, gap, se_out)
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return Recovered(value, float(lo), float(hi), resamples, None, gap, se_out)


def abs_delta_stats(m_model: np.ndarray, m_scrub: np.ndarray) -> tuple[float, float, float]:
    """Mean, median and 90th percentile (linear) over examples of |m(scrubbed, x) - m(model, x)|."""
    d = np.abs(np.asarray(m_scrub, dtype=np.float64) - np.asarray(m_model, dtype=np.float64))
    return float(d.mean()), float(np.median(d)), float(np.percentile(d, 90))
