"""Scores from per-example metric values (SEMANTICS.md section 4). numpy only."""

from __future__ import annotations

import numpy as np

from circuitdsl.results import Recovered

__all__ = ["recovered", "abs_delta_stats", "undefined_reason", "UNDEFINED_ABS", "UNDEFINED_REL"]

UNDEFINED_ABS = 1e-6
"""|F(model) - F(baseline)| below this (raw units) leaves nothing to recover."""
UNDEFINED_REL = 0.05
"""... or below this fraction of the standard deviation over examples of m(model, x) - m(baseline, x):
the gap is then noise relative to the per-example spread, and the ratio is meaningless."""


def undefined_reason(m_model: np.ndarray, m_base: np.ndarray) -> str | None:
    gap = float(m_model.mean() - m_base.mean())
    spread = float(np.std(m_model - m_base))
    if abs(gap) < UNDEFINED_ABS:
        return f"F(model) - F(baseline) = {gap:.3g}: nothing to recover (the baseline already matches the model)"
    if abs(gap) < UNDEFINED_REL * spread:
        return (f"F(model) - F(baseline) = {gap:.3g} is under {UNDEFINED_REL:g} x the per-example spread ({spread:.3g}): "
                "the ratio would be dominated by noise")
    return None


def recovered(m_model: np.ndarray, m_scrub: np.ndarray, m_base: np.ndarray, *, resamples: int, seed: int) -> Recovered:
    reason = undefined_reason(m_model, m_base)
    if reason is not None:
        return Recovered(None, None, None, resamples, reason)
    value = float((m_scrub.mean() - m_base.mean()) / (m_model.mean() - m_base.mean()))
    n = len(m_model)
    if resamples <= 0 or n < 2:
        return Recovered(value, None, None, resamples)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xB007])
    idx = rng.integers(0, n, size=(resamples, n))
    fm, fs, fb = m_model[idx].mean(1), m_scrub[idx].mean(1), m_base[idx].mean(1)
    den = fm - fb
    ok = np.abs(den) > UNDEFINED_ABS
    ratios = (fs[ok] - fb[ok]) / den[ok]
    if len(ratios) < max(2, resamples // 2):
        return Recovered(value, None, None, resamples, None)
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return Recovered(value, float(lo), float(hi), resamples)


def abs_delta_stats(m_model: np.ndarray, m_scrub: np.ndarray) -> tuple[float, float, float]:
    d = np.abs(m_scrub - m_model)
    return float(d.mean()), float(np.median(d)), float(np.percentile(d, 90))
