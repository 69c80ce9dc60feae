"""What the statistical tests cost (SEMANTICS.md section 5; docs/TESTS.md): one plain check against the
same check with every test at R null draws, through one Engine.

    .venv/bin/python benchmarks/tests_bench.py                       # tiny refined induction, R = 100
    .venv/bin/python benchmarks/tests_bench.py hypotheses/ioi_smollm2.circuit --r 20 --no-completeness

Prints the wall and CPU time of each (model loading excluded: it is done once, before either), the ratios, each
test's scrubs and seconds, the rows computed in forward-pass equivalents, and the p-values; `--json PATH`
also writes them. Run with OMP_NUM_THREADS=1 for numbers comparable to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default=str(ROOT / "hypotheses" / "induction_refined.circuit"))
    ap.add_argument("--r", type=int, default=100, help="null draws per test (default 100)")
    ap.add_argument("--n", type=int, default=None, help="override the sample count of every generator dataset")
    ap.add_argument("--no-completeness", action="store_true", help="leave the completeness search out of both checks")
    ap.add_argument(
        "--tests", default="sufficiency,necessity,equivalence,minimality", help="which tests (comma-separated)"
    )
    ap.add_argument("--json", default=None, metavar="PATH")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from circuitdsl.backends.loader import load_backend
    from circuitdsl.engine.check import run_check
    from circuitdsl.ir import TestPlan
    from circuitdsl.testing import compile_hypothesis, with_sample_count

    path = Path(args.file).resolve()  # resolved before anything runs: a relative path once failed after the whole run
    h = compile_hypothesis(path)
    if args.n:
        h = with_sample_count(h, args.n)
    t = time.perf_counter()
    load_backend(h.model, "cpu")
    load_s = time.perf_counter() - t
    names = {x.strip() for x in args.tests.split(",") if x.strip()}
    none = TestPlan(sufficiency=False, necessity=False, equivalence=False, minimality=False, follow_expects=False)
    plan = TestPlan(
        sufficiency="sufficiency" in names,
        necessity="necessity" in names,
        equivalence="equivalence" in names,
        minimality="minimality" in names,
        r=args.r,
    )
    comp = not args.no_completeness

    cpu: list[float] = []

    def timed(p):
        t0, c0 = time.perf_counter(), time.process_time()
        r = run_check(h, completeness=comp, tests=p)
        cpu.append(time.process_time() - c0)  # this process's CPU seconds: less sensitive to a shared machine's load
        return r, time.perf_counter() - t0

    load0 = os.getloadavg()
    plain, t_plain = timed(none)
    load1 = os.getloadavg()
    tested, t_tests = timed(plan)
    load2 = os.getloadavg()
    T = tested.tests
    rows = {
        "file": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        "model": plain.model,
        "n": plain.n,
        "r": args.r,
        "completeness": comp,
        "model_load_s": round(load_s, 2),
        "plain_check_s": round(t_plain, 2),
        "check_with_tests_s": round(t_tests, 2),
        "ratio": round(t_tests / t_plain, 2),
        "plain_check_cpu_s": round(cpu[0], 2),
        "check_with_tests_cpu_s": round(cpu[1], 2),
        "cpu_ratio": round(cpu[1] / cpu[0], 2),
        "tests_s": round(T.seconds, 2),
        "test_scrubs": T.scrubs,
        "test_block_runs": T.block_runs,
        "test_rows": T.rows,
        "forward_pass_equivalents": round(T.rows / T.pass_nodes) if T.pass_nodes else None,
        "clean_forward_passes": dict(tested.cost)["forward_passes"],
        "clean_forward_passes_plain": dict(plain.cost)["forward_passes"],
        "per_test": {},
        "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread",
        # 1-minute load averages before the plain check, between the two, after: the machine is shared
        "load_1min": [round(x[0], 2) for x in (load0, load1, load2)],
        "cpus": os.cpu_count(),
    }
    for name in ("sufficiency", "necessity", "minimality"):
        x = T.get(name)
        if x is not None:
            rows["per_test"][name] = {
                "p": x.p,
                "scrubs": x.scrubs,
                "seconds": round(x.seconds, 2),
                "undefined": x.undefined_reason,
            }
    if T.equivalence is not None:
        e = T.equivalence
        rows["per_test"]["equivalence"] = {"p": e.p, "above": e.above, "n": e.n, "ties": e.ties, "scrubs": 0}
    rows["recovered"] = plain.recovered.value
    for k, v in rows.items():
        if k != "per_test":
            print(f"{k:28s} {v}")
    for k, v in rows["per_test"].items():
        print(f"  {k:12s} {v}")
    if args.json:
        from circuitdsl.results import write_json_atomic

        write_json_atomic(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
