"""A CheckResult built by hand (no torch), and a small real hypothesis on the embedded tiny model."""

from __future__ import annotations

from circuitdsl.results import (
    CheckResult,
    Completeness,
    ExampleRow,
    ExpectResult,
    KTrial,
    Minimality,
    NodeRemoval,
    Recovered,
)

SOURCE = """\
# tiny induction, small dataset for tests
model tiny
dataset ind = induction(n = 48, seed = 0, length = 16, layouts = 2)
metric loss
ablate unclaimed by resample

group prev_token = a0.0, a0.2
group induction = a1.0, a1.1, a1.2, a1.3

node embed depends on input
node pos depends on input
node prev_token depends on token at A1
node induction depends on field B

edge pos -> prev_token.q, prev_token.k
edge embed -> prev_token.v
edge prev_token -> induction.k
edge embed -> induction.q, induction.v
edge induction -> out

expect recovered >= 0.9
expect incompleteness <= 0.1
"""


def hand_result(
    *, recovered: float | None = 0.93, undefined: str | None = None, with_trials: bool = True
) -> CheckResult:
    rows = tuple(
        ExampleRow(
            f"ex{i:02d}",
            "A B C <b>&" if i == 3 else None,
            (5, 30, 46, 37, 5),
            0.3 + 0.01 * i,
            0.35 + 0.05 * (i % 5),
            5.0 + 0.1 * i,
            abs(0.05 + 0.05 * (i % 5) - 0.01 * i),
        )
        for i in range(20)
    )
    trials = (
        (
            KTrial(("a0.0",), "random", 2.8, 2.4, 0.4),
            KTrial(("a1.0", "a1.1"), "greedy", 1.5, 1.45, 0.05),
            KTrial((), "empty", 0.35, 0.37, 0.02),
        )
        if with_trials
        else ()
    )
    return CheckResult(
        name="tiny_test",
        source_path=None,
        model="tiny",
        metric="loss",
        ablation="resample",
        dataset="ind",
        seed=0,
        n=20,
        f_model=0.372,
        f_scrubbed=0.61,
        f_baseline=5.1,
        recovered=Recovered(
            recovered,
            None if recovered is None else recovered - 0.02,
            None if recovered is None else recovered + 0.02,
            1000,
            undefined,
        ),
        mean_abs_delta=0.12,
        median_abs_delta=0.1,
        p90_abs_delta=0.2,
        kl=0.07,
        kl_baseline=3.3,
        reused_class_of_one=3,
        class_draws=120,
        completeness=Completeness(
            (1, 2),
            8,
            3,
            trials,
            trials[0] if trials else None,
            2 * len(trials),
            None if with_trials else "completeness search disabled (--no-completeness)",
        ),
        minimality=Minimality(
            removals=(
                NodeRemoval("embed", 4.0, -3.6, 0.78, False),
                NodeRemoval("pos", 0.61, 0.0, -0.0, True),
                NodeRemoval("a0.0", 2.8, -2.4, 0.52, False),
                NodeRemoval("a0.2", 2.1, -1.7, 0.37, False),
                NodeRemoval("a1.0", 1.1, -0.7, 0.16, False),
                NodeRemoval("a1.1", 0.9, -0.5, 0.12, False),
                NodeRemoval("a1.2", 1.1, -0.7, 0.16, False),
                NodeRemoval("a1.3", 0.2, 0.4, -0.09, False),
            ),
            score=-0.09,
            joint_raw=-4.7,
            sum_single_raw=-9.2,
            redundancy_note="single removals overlap",
        ),
        expects=(
            ExpectResult(
                "recovered",
                ">=",
                0.9,
                recovered,
                recovered is not None and recovered >= 0.9,
                None if recovered is not None else f"undefined: {undefined}",
                21,
            ),
            ExpectResult("incompleteness", "<=", 0.1, 0.4, False, None, 22),
        ),
        examples=rows,
        timings=(("scrub", 1.5), ("total", 3.0)),
        notes=("numbers are loss under `ablate unclaimed by resample`",),
        cost=(("forward_passes", 12),),
    )
