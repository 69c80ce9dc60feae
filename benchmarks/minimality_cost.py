#!/usr/bin/env python
"""What one minimality removal costs inside a check against a fresh Engine's scrub of the same derived
hypothesis (issue 16).

    python benchmarks/minimality_cost.py [--file hypotheses/ioi_smollm2.circuit] [--full] [--removals 6] [--n N]

The check's way: one Engine (clean activations computed once), scrub(C), then scrub(C \\ {v}) for each
removal in turn, as `circuitdsl check`'s minimality does (search.minimality through engine.scrub). The
fresh way: for the same removals, a new Engine (clean runs, timed apart) and one scrub of C \\ {v}.
--full: C is M (every node claimed, every edge wired: the issue's near-full hypothesis, embed + every
MLP + every head under `wire`). Logits are compared (a shared engine must give the fresh engine's
numbers bitwise). Prints per-removal times and their ratio; writes benchmarks/results/minimality-<stamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from circuitdsl.atomic import write_bytes  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file", default=str(ROOT / "hypotheses" / "ioi_smollm2.circuit"))
    ap.add_argument(
        "--full", action="store_true", help="check M (every node and edge) instead of the file's hypothesis"
    )
    ap.add_argument("--removals", type=int, default=6, help="removals timed (spread over the removable nodes)")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--out", default=str(HERE / "results"))
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from run import load

    from circuitdsl.engine import derive, search
    from circuitdsl.engine.scrub import Engine

    path, h, backend, datasets = load("", a.n, a.file)
    if a.full:
        h = derive.full(h)
    nodes = search.removable_nodes(h)
    step = max(1, len(nodes) // max(1, a.removals))
    picked = list(nodes)[::step][: a.removals]
    res = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "file": str(path),
        "full": a.full,
        "n": len(datasets[h.main_dataset]),
        "claimed": len(h.claims),
        "edges": len(h.edges),
        "removable": len(nodes),
        "load_start": os.getloadavg()[0],
        "rows": [],
    }
    dest = Path(a.out) / f"minimality-{time.strftime('%Y%m%d-%H%M%S')}.json"
    kw = dict(seed=h.seed)
    with torch.no_grad():
        t = time.perf_counter()
        shared = Engine(backend, datasets, h.main_dataset, h.ablation, **kw)
        fp0 = shared.forward_passes
        res["clean_s"] = time.perf_counter() - t
        t = time.perf_counter()
        shared.scrub(h)
        res["scrub_c_s"] = time.perf_counter() - t
        print(
            f"clean runs {res['clean_s']:.1f} s, scrub(C) {res['scrub_c_s']:.1f} s; {len(nodes)} removable, timing {len(picked)}",
            file=sys.stderr,
            flush=True,
        )
        for v in picked:
            hv = derive.remove(h, {v})
            b0, _f0 = shared.block_runs, shared.forward_passes
            t = time.perf_counter()
            got = shared.scrub(hv)
            t_shared = time.perf_counter() - t
            blocks_shared = shared.block_runs - b0
            t = time.perf_counter()
            fresh = Engine(backend, datasets, h.main_dataset, h.ablation, **kw)
            t_build = time.perf_counter() - t
            t = time.perf_counter()
            ref = fresh.scrub(hv)
            t_fresh = time.perf_counter() - t
            blocks_fresh = fresh.block_runs
            fresh.close()
            same = all(torch.equal(x, y) for x, y in zip(got.logits, ref.logits, strict=True))
            row = {
                "node": v.name,
                "shared_s": t_shared,
                "fresh_build_s": t_build,
                "fresh_scrub_s": t_fresh,
                "ratio": t_shared / t_fresh,
                "block_runs_shared": blocks_shared,
                "block_runs_fresh": blocks_fresh,
                "bitwise_equal": same,
                "load": os.getloadavg()[0],
            }
            res["rows"].append(row)
            write_bytes(dest, (json.dumps(res, indent=2) + "\n").encode(), parents=True)
            print(
                f"  remove {v.name}: in the check {t_shared:.2f} s ({blocks_shared} block runs), fresh Engine "
                f"{t_build:.2f} s build + {t_fresh:.2f} s scrub ({blocks_fresh} block runs): {t_shared / t_fresh:.2f}x; "
                f"bitwise equal {same}",
                file=sys.stderr,
                flush=True,
            )
        shared.close()
    ts = sum(r["shared_s"] for r in res["rows"])
    tf = sum(r["fresh_scrub_s"] for r in res["rows"])
    res["ratio_total"] = ts / tf if tf else None
    res["forward_passes_clean"] = fp0
    res["load_end"] = os.getloadavg()[0]
    write_bytes(dest, (json.dumps(res, indent=2) + "\n").encode(), parents=True)
    print(
        f"{len(res['rows'])} removals: in the check {ts:.1f} s, fresh scrubs {tf:.1f} s: {res['ratio_total']:.2f}x; wrote {dest}"
    )
    return 0 if all(r["bitwise_equal"] for r in res["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
