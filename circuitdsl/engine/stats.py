"""The statistics of SEMANTICS.md section 5, from numbers alone: p-values of null draws, Holm-Bonferroni,
exact binomial tails and the two one-sided binomial tests of equivalence, keyed random generators, and
the areas of a faithfulness curve (CPR, CMD). Pure Python and numpy; no torch, nothing is scrubbed here.
docs/TESTS.md says what each number means and why it is computed this way.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "Direction",
    "p_value",
    "holm",
    "log_binom_pmf",
    "binom_sf",
    "binom_cdf",
    "equivalence_p",
    "keyed_rng",
    "null_summary",
    "GRID",
    "grid_counts",
    "curve_areas",
    "TIE_RTOL",
]

TIE_RTOL = 1e-6
"""Two statistics within TIE_RTOL * (1 + |observed|) of each other are equal (a null draw equal to the
observed value counts as "at least as extreme"); this only absorbs float rounding."""

Direction = str
"""How a null draw can be at least as extreme as the observed statistic:
`greater` (null >= observed), `less` (null <= observed), or `closer_to_1` (|1 - null| <= |1 - observed|)."""

_DIRECTIONS = ("greater", "less", "closer_to_1")


def _as_extreme(observed: float, null: np.ndarray, direction: Direction) -> np.ndarray:
    if direction == "greater":
        a, b = null, observed
    elif direction == "less":
        a, b = -null, -observed
    elif direction == "closer_to_1":
        a, b = -np.abs(1.0 - null), -abs(1.0 - observed)
    else:
        raise ValueError(f"direction must be one of {_DIRECTIONS}, not {direction!r}")
    return a >= b - TIE_RTOL * (1.0 + abs(b))


def p_value(observed: float, null: Sequence[float | None], direction: Direction) -> float:
    """p = (1 + #null draws at least as extreme as `observed`) / (1 + R), R = len(null) (SEMANTICS.md
    section 5): never 0, and exactly uniform-or-conservative when `observed` is itself a draw of the null.
    Non-finite (or None: undefined) null draws are never at least as extreme (they count in R); a non-finite
    observed raises."""
    if not math.isfinite(observed):
        raise ValueError(f"the observed statistic is not finite: {observed!r}")
    arr = np.asarray(list(null), dtype=np.float64)
    ok = np.isfinite(arr)
    hits = int(np.count_nonzero(_as_extreme(float(observed), arr[ok], direction))) if ok.any() else 0
    return (1 + hits) / (1 + len(arr))


def holm(pvalues: Sequence[float]) -> tuple[float, ...]:
    """Holm-Bonferroni adjusted p-values, in the order given: with p_(1) <= ... <= p_(m),
    adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)). Rejecting where adj <= alpha controls the
    family-wise error rate at alpha. Ties keep their given order (the adjusted values do not depend on it)."""
    p = [float(x) for x in pvalues]
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return tuple(out)


def log_binom_pmf(k: int, n: int, theta: float) -> float:
    """log P(X = k) for X ~ Binomial(n, theta), from log-gamma (no overflow for large n)."""
    if k < 0 or k > n:
        return -math.inf
    if theta <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if theta >= 1.0:
        return 0.0 if k == n else -math.inf
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(theta)
        + (n - k) * math.log1p(-theta)
    )


def _logsumexp(xs: list[float]) -> float:
    finite = [x for x in xs if x != -math.inf]
    if not finite:
        return -math.inf
    top = max(finite)
    return top + math.log(math.fsum(math.exp(x - top) for x in finite))


def binom_sf(k: int, n: int, theta: float) -> float:
    """P(X >= k), X ~ Binomial(n, theta): the upper tail including k."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return min(1.0, math.exp(_logsumexp([log_binom_pmf(j, n, theta) for j in range(k, n + 1)])))


def binom_cdf(k: int, n: int, theta: float) -> float:
    """P(X <= k), X ~ Binomial(n, theta): the lower tail including k."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return min(1.0, math.exp(_logsumexp([log_binom_pmf(j, n, theta) for j in range(0, k + 1)])))


def equivalence_p(k: int, n: int, eps: float) -> tuple[float, float, float]:
    """The two one-sided binomial tests of equivalence (TOST) for k successes in n trials, margin eps:
    H0- : theta <= 1/2 - eps, rejected for large k, p- = P(X >= k | theta = 1/2 - eps);
    H0+ : theta >= 1/2 + eps, rejected for small k, p+ = P(X <= k | theta = 1/2 + eps).
    Returns (p-, p+, max of the two): a small max supports 1/2 - eps < theta < 1/2 + eps."""
    if not 0.0 < eps < 0.5:
        raise ValueError(f"the equivalence margin must be in (0, 0.5), not {eps!r}")
    if n < 1:
        raise ValueError("the equivalence test needs at least one untied example")
    if not 0 <= k <= n:
        raise ValueError(f"k = {k} is not within 0..{n}")
    lo = binom_sf(k, n, 0.5 - eps)
    hi = binom_cdf(k, n, 0.5 + eps)
    return lo, hi, max(lo, hi)


def keyed_rng(seed: int, *key: object) -> np.random.Generator:
    """A numpy Generator keyed like every other draw (SEMANTICS.md appendix): seeded by the first 16
    bytes of blake2b(f"{seed}\\x1ftests\\x1f{key[0]}\\x1f{key[1]}..."), read as a big-endian integer.
    The same (seed, key) gives the same stream in any process and on any machine."""
    text = "\x1f".join([str(int(seed)), "tests", *(str(k) for k in key)])
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def null_summary(null: Sequence[float | None]) -> dict[str, float | None]:
    """mean, sd (ddof 1), min, 5th, 50th, 95th percentile and max of the finite null draws (None where empty)."""
    arr = np.asarray([x for x in null if x is not None and math.isfinite(x)], dtype=np.float64)
    if not len(arr):
        return {k: None for k in ("mean", "sd", "min", "q05", "median", "q95", "max")}
    q05, med, q95 = (float(x) for x in np.percentile(arr, [5, 50, 95]))
    return {
        "mean": float(arr.mean()),
        "sd": float(arr.std(ddof=1)) if len(arr) > 1 else None,
        "min": float(arr.min()),
        "q05": q05,
        "median": med,
        "q95": q95,
        "max": float(arr.max()),
    }


GRID: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
"""Fractions of all edges of the model graph at which a faithfulness curve is evaluated (SEMANTICS.md
section 5, as MIB)."""


def grid_counts(n_edges: int, grid: Sequence[float] = GRID) -> tuple[int, ...]:
    """k = floor(fraction * n_edges) per grid point, as MIB's `int(pct * n)` (computed exactly:
    1000 * fraction is an integer for every point of GRID, so no float rounding can move k)."""
    out = []
    for frac in grid:
        milli = round(frac * 1000)
        out.append(n_edges * milli // 1000 if abs(milli - frac * 1000) < 1e-9 else int(frac * n_edges))
    return tuple(out)


def curve_areas(grid: Sequence[float], f: Sequence[float | None]) -> dict[str, float | None]:
    """Areas of a faithfulness curve f over the grid, by trapezoids:
    `cpr` = sum (x2 - x1) (f1 + f2) / 2 and `cmd` = the same of |1 - f|, with x the fraction of edges
    (MIB's leaderboard numbers: a curve at 1 everywhere has CPR 0.999 on GRID), and `cpr_log` /
    `cmd_log` with x = ln(fraction), divided by ln(last / first) so that f = 1 everywhere gives 1.
    Any undefined point (None or not finite) makes every area undefined (None)."""
    xs = [float(x) for x in grid]
    if len(xs) != len(f) or len(xs) < 2:
        raise ValueError("the curve needs one value per grid point and at least two points")
    if any(b <= a for a, b in zip(xs, xs[1:])) or xs[0] <= 0:
        raise ValueError("grid fractions must be positive and increasing")
    if any(v is None or not math.isfinite(v) for v in f):
        return {"cpr": None, "cmd": None, "cpr_log": None, "cmd_log": None}
    vals = [float(v) for v in f]  # type: ignore[arg-type]

    def area(x: list[float], y: list[float]) -> float:
        return math.fsum((x2 - x1) * (y1 + y2) / 2 for x1, x2, y1, y2 in zip(x, x[1:], y, y[1:]))

    dev = [abs(1.0 - v) for v in vals]
    lx = [math.log(x) for x in xs]
    span = lx[-1] - lx[0]
    return {
        "cpr": area(xs, vals),
        "cmd": area(xs, dev),
        "cpr_log": area(lx, vals) / span,
        "cmd_log": area(lx, dev) / span,
    }
