"""engine/scores.py with hand-computed answers: recovered, its undefined rule (SEMANTICS v3 section 4),
its bootstrap (keyed by example ids: row order changes nothing) and the per-example deltas.

numpy only: these run without torch (scripts/mutation.py runs them with --noconftest)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from circuitdsl.engine.scores import abs_delta_stats, gap_stats, recovered, undefined_reason

A = np.asarray


def test_recovered_point_value_by_hand():
    # F(model) = 3, F(scrubbed) = 2, F(baseline) = 0  ->  2 / 3
    r = recovered(A([2.0, 4.0]), A([1.0, 3.0]), A([0.0, 0.0]), resamples=1000, seed=0)
    assert r.value == pytest.approx(2 / 3, abs=1e-15)
    # the gap and its standard error are reported beside the ratio: d = [2, 4], sd = sqrt(2), se = sd / sqrt(2) = 1
    assert r.gap == pytest.approx(3.0) and r.gap_se == pytest.approx(1.0)
    assert r.undefined_reason is None


def test_recovered_orientation_baseline_and_model():
    mm, mb = A([5.0, 7.0, 6.0]), A([1.0, 2.0, 0.0])
    assert recovered(mm, mm, mb, resamples=0, seed=0).value == pytest.approx(1.0)  # scrubbed = model
    assert recovered(mm, mb, mb, resamples=0, seed=0).value == pytest.approx(0.0)  # scrubbed = baseline
    # scrubbed halfway (per example), for a metric where lower is better (loss): still 0.5
    ms = (mm + mb) / 2
    assert recovered(-mm, -ms, -mb, resamples=0, seed=0).value == pytest.approx(0.5)
    # (F(s) - F(b)) / (F(m) - F(b)) with F(m)=6, F(b)=1, F(s)=2 -> 0.2, not (F(m)-F(s))/... nor its inverse
    assert recovered(mm, A([2.0, 2.0, 2.0]), mb, resamples=0, seed=0).value == pytest.approx(0.2)


def test_bootstrap_interval_by_hand():
    # Two examples: a resample is (0,0) -> 1/2, (1,1) -> 3/4, or mixed -> 2/3. Each pure resample has
    # probability 1/4, so the 2.5% and 97.5% percentiles are exactly 1/2 and 3/4.
    r = recovered(A([2.0, 4.0]), A([1.0, 3.0]), A([0.0, 0.0]), resamples=1000, seed=0)
    assert r.lower == 0.5 and r.upper == 0.75 and r.resamples == 1000


def test_bootstrap_interval_is_the_percentile_interval():
    rng = np.random.default_rng(1)
    mm, ms, mb = rng.normal(3, 1, 40), rng.normal(2, 1, 40), rng.normal(0, 1, 40)
    ids = [str(i) for i in range(40)]  # string order: "0", "1", "10", "11", ...
    r = recovered(mm, ms, mb, resamples=2000, seed=7, ids=ids)
    assert r.lower < r.value < r.upper
    # the percentile interval of the ratio of means, computed the slow way with the same resample indices
    order = sorted(range(40), key=lambda i: ids[i])
    idx = np.random.default_rng([7, 0xB007]).integers(0, 40, size=(2000, 40))
    mm_o, ms_o, mb_o = mm[order], ms[order], mb[order]
    ratios = [(ms_o[i].mean() - mb_o[i].mean()) / (mm_o[i].mean() - mb_o[i].mean()) for i in idx]
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    assert r.lower == pytest.approx(lo, abs=1e-12) and r.upper == pytest.approx(hi, abs=1e-12)


def test_no_interval_without_resamples_or_with_one_example():
    r = recovered(A([2.0, 4.0]), A([1.0, 3.0]), A([0.0, 0.0]), resamples=0, seed=0)
    assert r.value == pytest.approx(2 / 3) and r.lower is None and r.upper is None


def test_bootstrap_keyed_by_example_ids_row_order_changes_nothing():
    """Issue 18: shuffling a dataset's rows moved recovered.lower. With ids, a permutation is bitwise invisible."""
    rng = np.random.default_rng(3)
    n = 64
    mm, ms, mb = rng.normal(3, 1, n), rng.normal(2, 1.5, n), rng.normal(0, 1, n)
    ids = [f"ex-{i:03d}" for i in range(n)]
    r0 = recovered(mm, ms, mb, resamples=500, seed=0, ids=ids)
    for k in range(3):
        p = np.random.default_rng(100 + k).permutation(n)
        r = recovered(mm[p], ms[p], mb[p], resamples=500, seed=0, ids=[ids[i] for i in p])
        assert (r.value, r.lower, r.upper, r.gap, r.gap_se) == (r0.value, r0.lower, r0.upper, r0.gap, r0.gap_se)
    # without ids the order of the arrays is the order (and a permutation may move the interval)
    assert recovered(mm, ms, mb, resamples=500, seed=0, ids=ids) == r0


def test_bootstrap_depends_on_the_seed():
    rng = np.random.default_rng(3)
    mm, ms, mb = rng.normal(3, 1, 30), rng.normal(2, 1.5, 30), rng.normal(0, 1, 30)
    a = recovered(mm, ms, mb, resamples=300, seed=0)
    b = recovered(mm, ms, mb, resamples=300, seed=1)
    assert a.value == b.value and (a.lower, a.upper) != (b.lower, b.upper)


def test_ids_must_match_the_examples():
    with pytest.raises(ValueError):
        recovered(A([1.0, 2.0]), A([1.0, 2.0]), A([0.0, 0.0]), resamples=10, seed=0, ids=["a"])


def test_gap_stats_by_hand():
    gap, se = gap_stats(A([1.0, 2.0, 3.0, 6.0]), A([0.0, 0.0, 0.0, 0.0]))
    # d = [1, 2, 3, 6]: mean 3, sample variance (4 + 1 + 0 + 9) / 3 = 14/3, se = sqrt(14/3) / 2
    assert gap == pytest.approx(3.0) and se == pytest.approx(math.sqrt(14 / 3) / 2)
    gap, se = gap_stats(A([1.0]), A([0.5]))
    assert gap == pytest.approx(0.5) and math.isnan(se)


def _alternating(n: int, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """m_model - m_base = gap +- 1 alternating (sample sd sqrt(n / (n - 1)))."""
    d = gap + np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    return d, np.zeros(n)


def _se(n: int) -> float:
    return math.sqrt(n / (n - 1)) / math.sqrt(n)


def test_undefined_rule_uses_the_standard_error_large_n():
    # issue 11, point 6: a gap of 2.6 standard errors at n = 4096 is a real gap (it was "undefined")
    n = 4096
    mm, mb = _alternating(n, 2.6 * _se(n))
    assert undefined_reason(mm, mb) is None
    r = recovered(mm, mm * 0.5, mb, resamples=50, seed=0)
    assert r.value == pytest.approx(0.5) and r.gap_se == pytest.approx(_se(n))


def test_undefined_rule_uses_the_standard_error_small_n():
    # ... and one of 0.3 standard errors at n = 16 is noise (it was "defined")
    n = 16
    mm, mb = _alternating(n, 0.3 * _se(n))
    why = undefined_reason(mm, mb)
    assert why is not None and "standard error" in why
    r = recovered(mm, mm * 0.5, mb, resamples=50, seed=0)
    assert r.value is None and r.lower is None and r.upper is None and r.undefined_reason == why
    assert r.gap == pytest.approx(0.3 * _se(n)) and r.gap_se == pytest.approx(_se(n))


def test_undefined_rule_threshold_is_two_standard_errors():
    n = 100
    se = _se(n)
    assert undefined_reason(*_alternating(n, 1.99 * se)) is not None
    assert undefined_reason(*_alternating(n, 2.01 * se)) is None
    assert undefined_reason(*_alternating(n, -1.99 * se)) is not None
    assert undefined_reason(*_alternating(n, -2.01 * se)) is None


def test_undefined_when_nothing_to_recover():
    m = A([1.0, 2.0, 3.0])
    r = recovered(m, m, m.copy(), resamples=100, seed=0)
    assert r.value is None and "nothing to recover" in r.undefined_reason
    assert r.gap == 0.0
    # below float tolerance even though the per-example gap has no spread (se = 0)
    r = recovered(m + 1e-9, m, m, resamples=100, seed=0)
    assert r.value is None and "nothing to recover" in r.undefined_reason
    # a constant gap well above tolerance with no spread is perfectly defined
    r = recovered(m + 0.5, m + 0.25, m, resamples=100, seed=0)
    assert r.value == pytest.approx(0.5) and r.gap_se == 0.0 and r.lower == pytest.approx(0.5)


def test_undefined_with_one_example():
    r = recovered(A([3.0]), A([2.0]), A([0.0]), resamples=100, seed=0)
    assert r.value is None and "one example" in r.undefined_reason and r.gap == pytest.approx(3.0)


def test_abs_delta_stats_by_hand():
    mean, med, p90 = abs_delta_stats(A([0.0, 1.0, 2.0, 3.0, 4.0]), A([1.0, 1.0, 0.0, 7.0, 4.0]))
    # |delta| = [1, 0, 2, 4, 0]: mean 7/5, median 1, p90 (linear) = 2 + 0.6 * (4 - 2) = 3.2
    assert (mean, med) == (pytest.approx(1.4), pytest.approx(1.0)) and p90 == pytest.approx(3.2)


def test_float_tolerance_scales_with_the_metric():
    z = np.zeros(3)
    # |gap| <= 1e-6 * max(1, |F(model)|, |F(baseline)|) is float noise ...
    assert "nothing to recover" in undefined_reason(z + 1e-6, z)  # exactly at the tolerance
    assert undefined_reason(z + 1.5e-6, z) is None  # just above it (no spread: se = 0)
    # ... relative to the size of F: at F = 10 the tolerance is 1e-5
    assert "nothing to recover" in undefined_reason(z + 10 + 5e-6, z + 10)
    assert undefined_reason(z + 10 + 2e-5, z + 10) is None


def test_a_gap_of_exactly_two_standard_errors_is_defined():
    # d = [3, 1]: gap 2, sd sqrt(2), se = sqrt(2) / sqrt(2) = 1: not *below* two standard errors
    gap, se = gap_stats(A([3.0, 1.0]), A([0.0, 0.0]))
    assert (gap, se) == (2.0, 1.0)
    assert undefined_reason(A([3.0, 1.0]), A([0.0, 0.0])) is None
    assert undefined_reason(A([3.0, 0.9]), A([0.0, 0.0])) is not None


def test_bootstrap_needs_two_usable_resamples():
    mm, ms, mb = A([2.0, 4.0, 3.0]), A([1.0, 3.0, 2.0]), A([0.0, 0.0, 0.0])
    r = recovered(mm, ms, mb, resamples=1, seed=0)
    assert r.value == pytest.approx(2 / 3) and (r.lower, r.upper) == (None, None)
    r = recovered(mm, ms, mb, resamples=2, seed=0)
    assert r.lower is not None and r.lower <= r.upper


def _big(gap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F near 1e9 (float tolerance 1e3): 16 examples whose per-example gap is `gap` +- 400."""
    d = gap + np.where(np.arange(16) % 2 == 0, 400.0, -400.0)
    mb = np.full(16, 1e9)
    return mb + d, mb + d / 2, mb


def test_bootstrap_leaves_out_resamples_whose_gap_is_float_noise():
    # gap 1100, se ~ 103: defined; resamples whose mean gap is <= ~1000 (about 16%) are left out
    mm, ms, mb = _big(1100.0)
    r = recovered(mm, ms, mb, resamples=400, seed=0)
    idx = np.random.default_rng([0, 0xB007]).integers(0, 16, size=(400, 16))
    den = mm[idx].mean(1) - mb[idx].mean(1)
    tol = 1e-6 * mm.mean()
    keep = np.abs(den) > tol
    assert 0.05 < 1 - keep.mean() < 0.3
    ratios = (ms[idx].mean(1)[keep] - mb[idx].mean(1)[keep]) / den[keep]
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    assert (r.lower, r.upper) == (pytest.approx(lo, abs=1e-9), pytest.approx(hi, abs=1e-9))
