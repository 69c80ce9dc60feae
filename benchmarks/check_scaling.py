#!/usr/bin/env python
"""The whole `circuitdsl check` against N: wall time, time per phase and peak memory (issue 16).

    python benchmarks/check_scaling.py [--file hypotheses/ioi_smollm2.circuit] [--n 256,128,64,32]

For each N the file is copied with every `n = ...` dataset argument set to N and checked in a fresh
process (`python -m circuitdsl check FILE --format json`, every score the file asks for: the scrub,
minimality and completeness), under `/usr/bin/time -v` for the peak RSS (model loading included: SmolLM2's
loader has a ~2.5 GB transient peak of its own). One torch thread (OMP_NUM_THREADS=1 and the engine's
own setting). Writes benchmarks/results/check-scaling-<stamp>.json (atomically, after each N) and prints
a table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from circuitdsl.atomic import write_bytes  # noqa: E402


def with_n(text: str, n: int) -> str:
    """The .circuit source with every dataset's `n = K` argument set to n."""
    return re.sub(r"\bn\s*=\s*\d+", f"n = {n}", text)


def run_one(path: Path, n: int, extra: list[str]) -> dict:
    src = with_n(path.read_text(), n)
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / path.name
        f.write_text(src)
        out = Path(d) / "out.json"
        env = dict(os.environ, OMP_NUM_THREADS="1")
        cmd = [
            "/usr/bin/time",
            "-v",
            sys.executable,
            "-m",
            "circuitdsl",
            "check",
            str(f),
            "--format",
            "json",
            "--json-out",
            str(out),
            *extra,
        ]
        load0 = os.getloadavg()
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        wall = time.perf_counter() - t
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
        row = {
            "n": n,
            "exit": p.returncode,
            "wall_s": wall,
            "peak_rss_mib": int(m.group(1)) / 1024 if m else None,
            "load_before": load0[0],
            "load_after": os.getloadavg()[0],
            "args": extra,
        }
        if out.is_file():
            try:
                r = json.loads(out.read_text())
                res = r[0] if isinstance(r, list) else r
                row["timings"] = res.get("timings")
                row["cost"] = res.get("cost")
                row["recovered"] = res.get("recovered")
                row["minimality_removals"] = len((res.get("minimality") or {}).get("removals") or [])
            except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
                row["parse_error"] = repr(e)
        else:
            row["stderr"] = p.stderr[-2000:]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file", default=str(ROOT / "hypotheses" / "ioi_smollm2.circuit"))
    ap.add_argument("--n", default="256,128,64,32")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("extra", nargs="*", help="more `circuitdsl check` arguments (after --)")
    a = ap.parse_args(argv)
    path = Path(a.file)
    res = {"file": str(path), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count(), "runs": []}
    dest = Path(a.out) / f"check-scaling-{time.strftime('%Y%m%d-%H%M%S')}.json"
    for n in (int(x) for x in a.n.split(",")):
        print(f"N = {n} ...", file=sys.stderr, flush=True)
        row = run_one(path, n, a.extra)
        res["runs"].append(row)
        write_bytes(dest, (json.dumps(res, indent=2) + "\n").encode(), parents=True)
        print(
            f"N = {n}: exit {row['exit']}, {row['wall_s']:.1f} s, peak RSS {row['peak_rss_mib']} MiB, load "
            f"{row['load_before']:.1f} -> {row['load_after']:.1f}; timings {row.get('timings')}",
            file=sys.stderr,
            flush=True,
        )
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
