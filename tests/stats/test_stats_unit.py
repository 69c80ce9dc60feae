"""circuitdsl.engine.stats against hand computations and independent brute force (no torch, no scipy needed)."""

from __future__ import annotations

import hashlib
import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from circuitdsl.engine import stats

# ---- p = (1 + #null at least as extreme) / (1 + R) ---------------------------------------------------


def test_p_value_hand():
    null = [0.1, 0.95, 1.2, 0.5]
    # distances to 1: 0.9, 0.05, 0.2, 0.5; observed 0.9 is at distance 0.1: one draw (0.95) is closer
    assert stats.p_value(0.9, null, "closer_to_1") == pytest.approx(2 / 5)
    assert stats.p_value(0.9, null, "greater") == pytest.approx(3 / 5)  # 0.95, 1.2
    assert stats.p_value(0.9, null, "less") == pytest.approx(3 / 5)  # 0.1, 0.5
    assert stats.p_value(5.0, null, "greater") == pytest.approx(1 / 5)  # nothing beats it: never 0
    assert stats.p_value(-5.0, null, "greater") == 1.0


def test_p_value_counts_ties_and_over_recovery():
    assert stats.p_value(0.5, [0.5], "greater") == 1.0  # a draw equal to the observed value counts
    assert stats.p_value(0.5, [0.5 + 1e-12], "less") == 1.0  # within float rounding it is a tie
    # a random circuit recovering 1.05 is closer to 1 than C at 0.9; one at 1.2 is not
    assert stats.p_value(0.9, [1.05, 1.2], "closer_to_1") == pytest.approx(2 / 3)


def test_p_value_nonfinite_draws_count_in_r_only():
    assert stats.p_value(0.9, [math.nan, math.inf, 0.95], "closer_to_1") == pytest.approx(2 / 4)
    with pytest.raises(ValueError):
        stats.p_value(math.nan, [0.1], "greater")
    with pytest.raises(ValueError):
        stats.p_value(0.1, [0.1], "sideways")


def test_p_value_is_uniform_when_the_observed_is_a_null_draw():
    """Under the null, P(p <= a) <= a: the +1 makes the test exact for exchangeable draws."""
    rng = np.random.default_rng(0)
    R, trials = 19, 4000
    ps = np.array([stats.p_value(float(x[0]), x[1:], "greater") for x in rng.normal(size=(trials, R + 1))])
    for a in (0.05, 0.1, 0.25, 0.5):
        assert abs(np.mean(ps <= a) - a) < 0.025


# ---- Holm-Bonferroni -----------------------------------------------------------------------------------


def test_holm_hand():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> running max 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx((0.03, 0.06, 0.06, 0.02))
    assert stats.holm([0.5, 0.9]) == pytest.approx((1.0, 1.0))
    assert stats.holm([]) == ()
    assert stats.holm([0.2]) == (0.2,)


def _step_down(p, alpha):
    """Holm's procedure as written: reject H_(1..i) while p_(j) <= alpha / (m - j + 1)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    rejected = set()
    for j, i in enumerate(order):
        if p[i] <= alpha / (len(p) - j):
            rejected.add(i)
        else:
            break
    return rejected


def test_holm_adjusted_values_reproduce_the_step_down_procedure():
    rng = np.random.default_rng(1)
    for _ in range(300):
        p = list(rng.uniform(0, 0.2, size=rng.integers(1, 8)))
        adj = stats.holm(p)
        for alpha in (0.01, 0.05, 0.1):
            assert {i for i, a in enumerate(adj) if a <= alpha} == _step_down(p, alpha)


# ---- binomial tails and the equivalence test -------------------------------------------------------------


def _brute_tail(k, n, theta, upper):
    t = Fraction(theta)
    js = range(k, n + 1) if upper else range(0, k + 1)
    return float(sum(math.comb(n, j) * t**j * (1 - t) ** (n - j) for j in js))


@pytest.mark.parametrize("n", [1, 2, 7, 30, 61])
@pytest.mark.parametrize("theta", [0.4, 0.5, 0.6, 0.13])
def test_binomial_tails_against_an_exact_rational_sum(n, theta):
    for k in range(-1, n + 2):
        assert stats.binom_sf(k, n, theta) == pytest.approx(
            _brute_tail(max(k, 0), n, theta, True) if k <= n else 0.0, rel=1e-12, abs=1e-300
        )
        assert stats.binom_cdf(k, n, theta) == pytest.approx(
            _brute_tail(min(k, n), n, theta, False) if k >= 0 else 0.0, rel=1e-12, abs=1e-300
        )


def test_binomial_tail_large_n_does_not_overflow():
    # n = 5000: math.comb and floats would overflow a naive product; the log-space sum does not
    assert stats.binom_sf(2600, 5000, 0.5) == pytest.approx(_brute_tail(2600, 5000, 0.5, True), rel=1e-9)


def test_binomial_against_scipy_when_installed():
    st = pytest.importorskip("scipy.stats")
    for n, k, th in [(128, 46, 0.4), (128, 46, 0.6), (512, 260, 0.45)]:
        assert stats.binom_sf(k, n, th) == pytest.approx(st.binom.sf(k - 1, n, th), rel=1e-9)
        assert stats.binom_cdf(k, n, th) == pytest.approx(st.binom.cdf(k, n, th), rel=1e-9)


def test_equivalence_p_hand():
    lo, hi, p = stats.equivalence_p(1, 1, 0.1)
    assert (lo, hi, p) == pytest.approx((0.4, 1.0, 1.0))
    # 5 of 10 at eps 0.1: P(X >= 5 | 0.4) and P(X <= 5 | 0.6) are equal by symmetry
    lo, hi, p = stats.equivalence_p(5, 10, 0.1)
    assert lo == pytest.approx(_brute_tail(5, 10, 0.4, True), rel=1e-12)
    assert lo == pytest.approx(hi, rel=1e-12) and p == max(lo, hi)
    # a balanced large sample supports equivalence; a lopsided one does not
    assert stats.equivalence_p(500, 1000, 0.1)[2] < 1e-9
    assert stats.equivalence_p(300, 1000, 0.1)[2] > 0.99
    with pytest.raises(ValueError):
        stats.equivalence_p(1, 0, 0.1)
    with pytest.raises(ValueError):
        stats.equivalence_p(1, 2, 0.5)


# ---- keyed draws -------------------------------------------------------------------------------------------


def test_keyed_rng_is_the_documented_blake2b_key():
    digest = hashlib.blake2b(b"7\x1ftests\x1fcircuit\x1f3", digest_size=16).digest()
    want = np.random.default_rng(int.from_bytes(digest, "big")).integers(1 << 30, size=5)
    assert list(stats.keyed_rng(7, "circuit", 3).integers(1 << 30, size=5)) == list(want)
    assert list(stats.keyed_rng(7, "circuit", 4).integers(1 << 30, size=5)) != list(want)
    assert list(stats.keyed_rng(8, "circuit", 3).integers(1 << 30, size=5)) != list(want)


def test_null_summary():
    s = stats.null_summary([1.0, 2.0, 3.0, None, math.nan])
    assert s["mean"] == 2.0 and s["sd"] == 1.0 and s["min"] == 1.0 and s["max"] == 3.0 and s["median"] == 2.0
    assert stats.null_summary([])["mean"] is None


# ---- faithfulness curves -----------------------------------------------------------------------------------


def test_grid_counts_as_mib():
    assert stats.grid_counts(106) == (0, 0, 0, 1, 2, 5, 10, 21, 53, 106)
    assert stats.grid_counts(1000) == (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
    assert stats.grid_counts(32491) == tuple(int(p * 32491) for p in stats.GRID)  # MIB's GPT-2 edge count


def test_curve_areas_hand():
    f = [0, 0, 0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.0]
    a = stats.curve_areas(stats.GRID, f)
    # trapezoids over the fraction, segment by segment (docs/TESTS.md)
    assert a["cpr"] == pytest.approx(0.0005 + 0.003 + 0.015 + 0.035 + 0.085 + 0.285 + 0.5)
    assert a["cmd"] == pytest.approx(0.001 + 0.003 + 0.0045 + 0.007 + 0.015 + 0.015 + 0.015 + 0.015)
    assert a["cpr"] + a["cmd"] == pytest.approx(0.999)  # for 0 <= f <= 1 the two areas add up to the x range
    ones = stats.curve_areas(stats.GRID, [1.0] * 10)
    assert (ones["cpr"], ones["cmd"], ones["cpr_log"], ones["cmd_log"]) == pytest.approx((0.999, 0, 1, 0))
    # log x: a curve that is 1 only on the last segment covers ln(1/0.5) / ln(1000) of the range
    step = stats.curve_areas(stats.GRID, [0.0] * 9 + [1.0])
    assert step["cpr_log"] == pytest.approx(math.log(2) / 2 / math.log(1000))
    assert stats.curve_areas(stats.GRID, [1.0] * 9 + [None])["cpr"] is None


def test_curve_area_against_numpy_trapezoid():
    rng = np.random.default_rng(3)
    for _ in range(20):
        f = rng.uniform(-0.5, 1.5, size=10)
        a = stats.curve_areas(stats.GRID, list(f))
        assert a["cpr"] == pytest.approx(float(np.trapezoid(f, stats.GRID)))
        assert a["cmd"] == pytest.approx(float(np.trapezoid(np.abs(1 - f), stats.GRID)))
        assert a["cpr_log"] == pytest.approx(float(np.trapezoid(f, np.log(stats.GRID))) / math.log(1000))


def test_all_grid_points_are_distinct_and_increasing():
    assert all(b > a for a, b in itertools.pairwise(stats.GRID)) and stats.GRID[-1] == 1.0
