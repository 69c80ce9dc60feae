"""Edge attribution (circuitdsl attribute): speed against exact patching, and the validation figures.

    python benchmarks/attribute_bench.py speed [--file F] [--steps 5]     # tiny model by default
    python benchmarks/attribute_bench.py tiny                             # (a) top edges vs induction_refined
    python benchmarks/attribute_bench.py tracr                            # (b) edge ROC AUC on the tracr models
    python benchmarks/attribute_bench.py ioi [--random 120 --top 60]      # (c) Spearman vs exact patching, SmolLM2
    ... --json-dir DIR  writes each method's scores (circuitdsl-attribution/1) for `circuitdsl curve --scores`

Passes are rows through a whole forward / backward pass divided by N; exact patching runs single blocks
from the receiver's layer on (`run_from`), counted as forward-pass equivalents (block rows / (N x layers)).
Every figure printed is measured by this run; nothing is stored.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from circuitdsl.attribute import graph as agraph  # noqa: E402
from circuitdsl.attribute import output, scores  # noqa: E402
from circuitdsl.compiler import compile_file  # noqa: E402
from circuitdsl.ir import NodeKind  # noqa: E402


def _compile(path):
    res = compile_file(str(path))
    if res.hypothesis is None:
        sys.exit(res.render("full"))
    return res.hypothesis


def _dump(att, d, stem, in_graph=()):
    if d:
        from circuitdsl.results import write_json_atomic

        Path(d).mkdir(parents=True, exist_ok=True)
        write_json_atomic(str(Path(d) / f"{stem}.{att.method}.json"), output.to_json(att, in_graph=in_graph))


def _cost(att):
    p = att.passes()
    s = f"{p['forward']:.3g} fwd + {p['backward']:.3g} bwd"
    if p["blocks"]:
        s += f" + {p['blocks']:.3g} fwd-equiv. of blocks"
    return s


def _distinct(att, edges):
    """Scores of the edges, one per (sender, port) cell (the k/v edges of a GQA group share a cell)."""
    g = att.graph
    seen, out = set(), []
    for e in edges:
        c = g.cell(e)
        if c not in seen:
            seen.add(c)
            out.append(e)
    return out


TOL = 1e-6
"""|score| below TOL x the largest |score| counts as 0 (a tie): saturated softmaxes give gradients of 1e-13."""


def _abs(att, edges):
    sc = att.edge_scores()
    v = [abs(sc[e]) for e in edges]
    top = max(v) if v else 0.0
    return [x if x > TOL * top else 0.0 for x in v]


def _auc(att, truth, edges):
    return output.roc_auc(_abs(att, edges), [e in truth for e in edges])


def _prec_at(att, truth, edges):
    ranked = agraph.rank(att.edge_scores(), edges)
    k = len(truth)
    return sum(e in truth for e in ranked[:k]) / k


def cmd_speed(a):
    h = _compile(a.file)
    setup = scores.prepare(h, batch_size=a.batch_size)
    print(
        f"{a.file}: model {h.model.name}, N={setup.n}, {len(setup.graph.edges):,} edges "
        f"({len({setup.graph.cell(e) for e in setup.graph.edges}):,} distinct sender x port cells), torch threads {torch.get_num_threads()}"
    )
    t = time.perf_counter()
    with torch.no_grad():
        for lay in setup.layouts:
            for rows in scores._chunks(lay.rows, setup.batch_size):
                setup.backend.run(scores._tokens(setup, setup.ds, rows))
    t_fwd = time.perf_counter() - t
    print(f"  one plain forward pass over the data: {t_fwd:.2f} s")
    runs = [("eap", {}), ("eap-ig", {"steps": a.steps})]
    res = {}
    for m, kw in runs:
        att = scores.attribute(setup, m, **kw)
        res[m] = att
        print(
            f"  {m:7s}{'(' + str(kw['steps']) + ')' if kw else '   '}: {att.seconds:7.2f} s = {att.seconds / t_fwd:6.1f} forward passes of time; {_cost(att)}"
        )
    edges = list(setup.graph.edges)
    if a.exact_subset:
        rng = random.Random(0)
        edges = rng.sample(edges, min(a.exact_subset, len(edges)))
    att = scores.exact_scores(setup, edges)
    cells = len({setup.graph.cell(e) for e in edges})
    allc = len({setup.graph.cell(e) for e in setup.graph.edges})
    scale = allc / cells
    print(
        f"  exact  {'(all)' if scale == 1 else f'({cells} of {allc} cells)'}: {att.seconds:7.2f} s = {att.seconds / t_fwd:6.1f} "
        f"forward passes of time; {_cost(att)}"
        + ("" if scale == 1 else f"; every edge, extrapolated: {att.seconds * scale:.0f} s")
    )
    for m, r in res.items():
        print(f"  exact of every edge / {m}: {att.seconds * scale / r.seconds:.0f}x the time")


def cmd_tiny(a):
    path = ROOT / "hypotheses" / "induction_refined.circuit"
    h = _compile(path)
    setup = scores.prepare(h)
    truth = set(h.edges)
    edges = _distinct_all(setup)
    print(
        f"{path.name}: {len(truth)} claimed edges of {len(edges)}; N={setup.n}, ablation {h.ablation} (scored as {setup.mode})"
    )
    atts = [
        scores.attribute(setup, "eap"),
        scores.attribute(setup, "eap-ig", steps=a.steps),
        scores.exact_scores(setup),
    ]
    ex = atts[2].edge_scores()
    for att in atts:
        sc = att.edge_scores()
        rho = output.spearman([sc[e] for e in edges], [ex[e] for e in edges])
        top = agraph.rank(sc, edges)[: len(truth)]
        missing = sorted(str(e) for e in truth if e not in top)
        print(
            f"  {att.method:7s}: ROC AUC {_auc(att, truth, edges):.3f}, precision@{len(truth)} {_prec_at(att, truth, edges):.3f}, "
            f"Spearman with exact {rho:.3f}; claimed edges outside the top {len(truth)}: {', '.join(missing) or 'none'}"
        )
        _dump(att, a.json_dir, "tiny_induction", truth)
    vis = [e for e in edges if e.sender.kind is not NodeKind.POS]
    if setup.mode == "mean" and len(vis) < len(edges):
        t2 = truth & set(vis)
        print(
            f"  without pos (each layout's rows share their positions: pos's output is its own mean, so no method scores it): "
            f"{len(t2)} claimed of {len(vis)}"
        )
        for att in atts:
            print(
                f"  {att.method:7s}: ROC AUC {_auc(att, t2, vis):.3f}, precision@{len(t2)} {_prec_at(att, t2, vis):.3f}"
            )


def _distinct_all(setup):
    return list(setup.graph.edges)


def cmd_tracr(a):
    """Each tracr file's own setup, and the same with `ablate unclaimed by zero` (ACDC's tracr setting)."""
    import re

    from circuitdsl.compiler import compile_source

    for path in sorted((ROOT / "hypotheses" / "tracr").glob("*.circuit")):
        for abl in (None, "zero"):
            if abl is None:
                h = _compile(path)
            else:
                text = re.sub(r"^ablate .*$", f"ablate unclaimed by {abl}", path.read_text(), flags=re.M)
                res = compile_source(text, str(path))
                if res.hypothesis is None:
                    sys.exit(res.render("full"))
                h = res.hypothesis
            setup = scores.prepare(h)
            truth = set(h.edges)
            edges = _distinct(scores.attribute(setup, "eap"), setup.graph.edges)
            line = [
                f"{path.stem:16s} {len(truth):3d}/{len(edges):4d} edges, N={setup.n}, {h.metric.kind.value}, "
                f"{str(h.ablation) if abl is None else 'zero'} (as {setup.mode}):"
            ]
            for m, kw in (("eap", {}), ("eap-ig", {"steps": a.steps}), ("exact", {})):
                att = scores.attribute(setup, m, **kw)
                nz = sum(1 for x in _abs(att, edges) if x)
                line.append(f"{m} AUC {_auc(att, truth, edges):.3f} ({nz} non-zero)")
                _dump(att, a.json_dir, f"tracr_{path.stem}_{abl or 'file'}", truth)
            print("  " + ", ".join(line), flush=True)


def cmd_ioi(a):
    path = ROOT / "hypotheses" / "ioi_smollm2.circuit"
    h = _compile(path)
    if a.n:  # the same file with n = N in its dataset lines (a smaller run)
        import re

        from circuitdsl.compiler import compile_source

        h = compile_source(re.sub(r"\bn = \d+", f"n = {a.n}", path.read_text()), str(path)).hypothesis
    t = time.perf_counter()
    setup = scores.prepare(h, batch_size=a.batch_size)
    print(
        f"{path.name}: N={setup.n}, metric {setup.kind.value}, ablation {h.ablation}; model loaded in {time.perf_counter() - t:.1f} s; "
        f"{len(setup.graph.edges):,} edges, {len({setup.graph.cell(e) for e in setup.graph.edges}):,} distinct cells; "
        f"torch threads {torch.get_num_threads()}",
        flush=True,
    )
    eap = scores.attribute(setup, "eap")
    print(
        f"  eap: {eap.seconds:.1f} s ({_cost(eap)}); F(model) {eap.f_model:.3f}, F(baseline) {eap.f_baseline:.3f}",
        flush=True,
    )
    _dump(eap, a.json_dir, "ioi_smollm2", set(h.edges))
    ig = scores.attribute(setup, "eap-ig", steps=a.steps)
    print(f"  eap-ig({a.steps}): {ig.seconds:.1f} s ({_cost(ig)})", flush=True)
    _dump(ig, a.json_dir, "ioi_smollm2", set(h.edges))
    g = setup.graph
    cells = sorted({g.cell(e) for e in g.edges})
    rep = {}
    for e in g.edges:
        rep.setdefault(g.cell(e), e)
    uniq = [rep[c] for c in cells]
    rng = random.Random(0)
    rand = rng.sample(uniq, a.random)
    top = agraph.rank(eap.edge_scores(), uniq)[: a.top] + agraph.rank(ig.edge_scores(), uniq)[: a.top]
    subset = list(dict.fromkeys(top + rand))
    ex = scores.exact_scores(setup, subset)
    print(
        f"  exact patching of {len(subset)} edges ({a.top} top by |EAP| + {a.top} top by |EAP-IG| + {a.random} uniformly "
        f"random distinct cells, seed 0, overlaps once): {ex.seconds:.1f} s ({_cost(ex)}); "
        f"per edge {ex.seconds / len(subset):.2f} s -> every edge about {ex.seconds / len(subset) * len(cells) / 3600:.1f} h",
        flush=True,
    )
    xs = ex.edge_scores()
    est = [eap.edge_scores(), ig.edge_scores()]
    for name, part in (("all", subset), ("random", rand), ("top", list(dict.fromkeys(top)))):
        r = [output.spearman([sc[e] for e in part], [xs[e] for e in part]) for sc in est]
        print(f"  Spearman with exact on the {name} subset ({len(part)} edges): EAP {r[0]:.3f}, EAP-IG {r[1]:.3f}")
    truth = set(h.edges)
    if truth:
        print(
            f"  ROC AUC against the file's own circuit ({len(truth)} edges, all {len(g.edges):,}): "
            f"EAP {_auc(eap, truth, g.edges):.3f}, EAP-IG {_auc(ig, truth, g.edges):.3f}"
        )
    if a.json_dir:
        _dump(ex, a.json_dir, "ioi_smollm2_subset", truth)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("speed", "tiny", "tracr", "ioi"))
    p.add_argument("--file", default=str(ROOT / "hypotheses" / "induction_refined.circuit"))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--exact-subset", type=int, default=0, help="speed: exact-patch this many random edges and extrapolate"
    )
    p.add_argument("--random", type=int, default=120)
    p.add_argument("--top", type=int, default=60)
    p.add_argument("--json-dir", default=None)
    p.add_argument("--n", type=int, default=0, help="ioi: examples per dataset (default: the file's)")
    a = p.parse_args(argv)
    torch.manual_seed(0)
    {"speed": cmd_speed, "tiny": cmd_tiny, "tracr": cmd_tracr, "ioi": cmd_ioi}[a.what](a)


if __name__ == "__main__":
    main()
