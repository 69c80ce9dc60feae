#!/usr/bin/env python
"""Benchmarks of the scrubbing engine against the floor, the reference and a peer (`make bench`).

    python benchmarks/run.py [--model tiny|smollm2-135m] [--n N] [--quick] [--batch-size B]

Sections (all timed in this one process with torch.set_num_threads(1), so ratios are comparable):
- floor: one plain forward pass over the N examples (T_fwd) and S, the mean number of distinct inputs
  the treeified hypothesis needs per example (x, its class draws and its other-inputs draws);
  floor = S x T_fwd. The engine's time for one scrub (fresh Engine: clean runs + the scrub) / floor.
- reference: benchmarks/reference.py (one full forward pass per treeified node), its logits checked
  equal to the engine's; the speedup.
- peer: transformer-lens' own `transformer_lens.patching.get_act_patch_attn_head_out_all_pos` against
  `circuitdsl.patching.head_sweep`: the same per-head activation-patching sweep, same model and data,
  results checked equal; the ratio.
- scaling: engine time against N, and against hypothesis size (claimed heads 1..dozens).
- memory: peak RSS of a subprocess per configuration during clean runs + one scrub (the high-water
  mark reset after loading the model) against N, unbounded (every clean
  activation and row in memory) and under 256 MiB budgets (clean cache spilled, root chunks), and
  against batch size.
- profile: the top entries of cProfile for one scrub.

Writes benchmarks/results/<model>-<stamp>.json and .png (atomically) and prints a table.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import os
import platform
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from circuitdsl.atomic import write_bytes

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

HYPOTHESES = {
    "tiny": [ROOT / "hypotheses" / "induction_refined.circuit"],
    "smollm2-135m": [ROOT / "hypotheses" / "ioi_smollm2.circuit", HERE / "ioi_smollm2_bench.circuit"],
}


# ---- loading ------------------------------------------------------------------------------------
def _with_n(h, n: int | None):
    """The hypothesis with every generator dataset's `n` set to n."""
    if n is None:
        return h
    specs = []
    for s in h.datasets:
        args = dict(s.args)
        if s.kind.value == "generator" or "n" in args:
            args["n"] = int(n)
        specs.append(dataclasses.replace(s, args=tuple(sorted(args.items()))))
    return dataclasses.replace(h, datasets=tuple(specs))


def load(model: str, n: int | None, hyp: str | None = None):
    from circuitdsl.backends.loader import load_backend
    from circuitdsl.compiler import compile_file
    from circuitdsl.engine import data as data_mod

    path = Path(hyp) if hyp else next(p for p in HYPOTHESES[model] if p.is_file())
    compiled = compile_file(str(path))
    if compiled.hypothesis is None:
        raise SystemExit(compiled.render("full"))
    h = _with_n(compiled.hypothesis, n)
    backend = load_backend(h.model)
    datasets = data_mod.materialise_all(h, backend.tokenizer)
    return path, h, backend, datasets


def _timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


def _max_rel(a, b) -> float:
    num = max(float((x.double() - y.double()).abs().max()) for x, y in zip(a, b, strict=True))
    den = max(float(y.double().abs().max()) for y in b)
    return num / max(den, 1e-12)


# ---- floor ----------------------------------------------------------------------------------------
def plain_forward(backend, ds, batch_size: int) -> float:
    import torch

    t = time.perf_counter()
    with torch.no_grad():
        for pool in ds.layouts().values():
            for i in range(0, len(pool), batch_size):
                backend.model(backend.tokens([ds.examples[j].tokens for j in pool[i : i + batch_size]]))
    return time.perf_counter() - t


def distinct_inputs(engine, h) -> tuple[float, int]:
    """S: the mean (and max) number of distinct inputs per example the treeified hypothesis needs."""
    from circuitdsl.engine.treeify import treeify
    from circuitdsl.ir import AblationKind, NodeKind

    tree = treeify(h)
    counts = []
    for data in engine._layouts.values():
        x_in, _, _ = engine._inputs(tree, data)
        sets = [{("x", j)} for j in range(len(data.pool))]
        for i, key in enumerate(tree.order):
            t = tree.nodes[key]
            xs = x_in[tree.input_draw_of[i]]
            ab = None
            if t.node.kind not in (NodeKind.EMBED, NodeKind.POS) and engine.ablation.kind in (
                AblationKind.RESAMPLE,
                AblationKind.RESAMPLE_FROM,
                AblationKind.PAIRED,
            ):
                ab = engine._abl_rows(tree, np.asarray([i]), data, xs[None, :])[0]
            tag = "x" if engine.ablation.kind is AblationKind.RESAMPLE else "other"
            for j in range(len(data.pool)):
                sets[j].add(("x", int(xs[j])))
                if ab is not None:
                    sets[j].add((tag, int(ab[j])))
        counts += [len(s) for s in sets]
    return sum(counts) / len(counts), max(counts)


def engine_scrub(backend, datasets, h, batch_size: int, **budgets):
    from circuitdsl.engine.scrub import Engine

    t = time.perf_counter()
    eng = Engine(backend, datasets, h.main_dataset, h.ablation, seed=h.seed, batch_size=batch_size, **budgets)
    t_clean = time.perf_counter() - t
    out = eng.scrub(h)
    return eng, out, t_clean, time.perf_counter() - t


# ---- peer: per-head activation patching -----------------------------------------------------------
def _corrupt_for(model: str, h, backend, datasets, n: int):
    """Clean and corrupted examples, paired row by row with the same layout."""
    from circuitdsl.engine import data as data_mod
    from circuitdsl.ir import DatasetKind, DatasetSpec

    main = h.main_dataset
    spec = next(s for s in h.datasets if s.name == main)
    ds = datasets[main]
    if spec.source == "ioi":
        args = dict(spec.args)
        args["n"] = n
        clean = data_mod.materialise(dataclasses.replace(spec, args=tuple(sorted(args.items()))), backend.tokenizer)
        abc = data_mod.materialise(
            DatasetSpec("abc", DatasetKind.GENERATOR, "ioi_abc", tuple(sorted(args.items()))), backend.tokenizer
        )
        return list(clean.examples), list(abc.examples), "ioi_abc (paired)"
    # otherwise: the next example of the same layout (a rotation within each layout)
    clean, corrupt = [], []
    for pool in ds.layouts().values():
        take = list(pool[: max(2, n * len(pool) // len(ds))])
        clean += [ds.examples[i] for i in take]
        corrupt += [ds.examples[take[(k + 1) % len(take)]] for k in range(len(take))]
    return (
        clean[:n] if len(clean) > n else clean,
        corrupt[:n] if len(corrupt) > n else corrupt,
        "next example of the layout",
    )


def _warm_up(model, tokens, tlp) -> None:
    """One patch of one head, untimed: transformer-lens' first call pays one-off costs (imports,
    index tables) that would otherwise be charged to the sweep."""
    import pandas as pd
    import torch

    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        tlp.generic_activation_patch(
            model,
            tokens,
            cache,
            lambda lg: lg[:, -1].sum(),
            patch_setter=tlp.layer_head_vector_patch_setter,
            activation_name="z",
            index_df=pd.DataFrame({"layer": [0], "head": [0]}),
        )


def tl_head_sweep(model, clean, corrupt) -> tuple[list[list[float]], float]:
    """transformer-lens' own per-head patching (z of one head at all positions, one forward pass per
    head), corrupted -> clean, metric: mean logit difference. Per layout, weighted by its size."""
    import torch
    from transformer_lens import patching as tlp

    by_layout: dict = {}
    for i, e in enumerate(clean):
        by_layout.setdefault(e.layout, []).append(i)
    nL, nH = int(model.cfg.n_layers), int(model.cfg.n_heads)
    total = torch.zeros(nL, nH, dtype=torch.float64)
    _warm_up(model, torch.tensor([clean[0].tokens]), tlp)
    t = time.perf_counter()
    for rows in by_layout.values():
        ct = torch.tensor([clean[i].tokens for i in rows])
        kt = torch.tensor([corrupt[i].tokens for i in rows])
        sc = list(clean[rows[0]].scored_positions)
        ans = torch.tensor([clean[i].answers for i in rows])
        wr = torch.tensor([clean[i].wrongs for i in rows])

        def metric(logits, sc=sc, ans=ans, wr=wr):
            lg = logits[:, sc, :]
            a = lg.gather(-1, ans.unsqueeze(-1)).squeeze(-1)
            w = lg.gather(-1, wr.unsqueeze(-1)).squeeze(-1)
            return (a - w).double().mean(-1).mean()

        with torch.no_grad():
            _, kcache = model.run_with_cache(kt)
            # transformer-lens patches "clean" activations into a "corrupted" run: here the
            # corrupted cache goes into the clean run, as circuitdsl.patching does
            res = tlp.get_act_patch_attn_head_out_all_pos(model, ct, kcache, metric)
        total += res.double() * len(rows)
    return (total / len(clean)).tolist(), time.perf_counter() - t


def peer(model_name: str, h, backend, datasets, n: int) -> dict:
    import torch

    from circuitdsl import patching

    clean, corrupt, how = _corrupt_for(model_name, h, backend, datasets, n)
    model = backend.model
    ours = patching.head_sweep(backend, clean, corrupt)  # through the backend interface; the peer gets the raw model
    try:
        theirs, t_tl = tl_head_sweep(model, clean, corrupt)
        err = None
    except Exception as e:  # report, do not hide: the peer may not run on this model
        theirs, t_tl, err = None, None, f"{type(e).__name__}: {e}"
    out = {
        "n": len(clean),
        "corruption": how,
        "heads": int(model.cfg.n_layers) * int(model.cfg.n_heads),
        "circuitdsl_patching_s": ours.seconds,
        "transformer_lens_patching_s": t_tl,
        "error": err,
    }
    if theirs is not None:
        a = torch.tensor(ours.patched, dtype=torch.float64)
        b = torch.tensor(theirs, dtype=torch.float64)
        out["max_abs_diff"] = float((a - b).abs().max())
        out["equal"] = bool(out["max_abs_diff"] <= 1e-4 * max(1.0, float(b.abs().max())))
        out["speedup_vs_tl"] = t_tl / ours.seconds
    return out


# ---- scaling --------------------------------------------------------------------------------------
def sized_hypothesis(h, shape, k: int):
    """k claimed heads spread over the layers, each depending on the hypothesis' first non-identity
    feature (or the input), in three stages by layer as in a real circuit (say previous-token ->
    induction -> output heads): embed -> each head (q, k, v), each head of a stage -> the next stage's
    heads' q, each head -> out. (Every earlier head into every later head would make the treeified
    hypothesis exponential in the number of distinct layers: causal scrubbing resamples each path.)"""
    from circuitdsl.ir import IDENTITY, Claim, EdgeId, FeatureKind, NodeId, NodeKind, Port, make_graph

    feat = next(
        (c.feature for c in h.claims if c.feature.kind is not FeatureKind.IDENTITY and c.node.kind is NodeKind.HEAD),
        IDENTITY,
    )
    allh = [NodeId(NodeKind.HEAD, L, H) for L in range(shape.n_layers) for H in range(shape.n_heads)]
    step = max(1, len(allh) // k)
    heads = sorted(allh[::step][:k], key=lambda v: v.sort_key())
    emb, out = NodeId(NodeKind.EMBED), NodeId(NodeKind.OUT)
    claims = (Claim(emb, IDENTITY),) + tuple(Claim(v, feat) for v in heads) + (Claim(out, IDENTITY),)
    edges = set()
    stages = [heads[i * len(heads) // 3 : (i + 1) * len(heads) // 3] for i in range(3)] if len(heads) >= 3 else [heads]
    stages = [st for st in stages if st]
    for v in heads:
        edges |= {EdgeId(emb, v, p) for p in (Port.Q, Port.K, Port.V)}
        edges.add(EdgeId(v, out, Port.IN))
    for a, b in zip(stages, stages[1:]):
        edges |= {EdgeId(u, v, Port.Q) for u in a for v in b if u.layer < v.layer}
    edges = tuple(sorted(edges, key=lambda e: (e.sender.sort_key(), e.receiver.sort_key(), e.port.value)))
    return dataclasses.replace(
        h, name=f"{k} heads", claims=claims, edges=edges, graph=make_graph(claims, edges), expects=()
    )


def scaling(model: str, h, backend, ns, sizes, batch_size: int) -> dict:
    from circuitdsl.engine import data as data_mod
    from circuitdsl.engine.treeify import treeify

    by_n = []
    for n in ns:
        hn = _with_n(h, n)
        ds = data_mod.materialise_all(hn, backend.tokenizer)
        _, out, t_clean, t = engine_scrub(backend, ds, hn, batch_size)
        t_fwd = plain_forward(backend, ds[hn.main_dataset], batch_size)
        by_n.append({"n": n, "engine_s": t, "clean_s": t_clean, "forward_s": t_fwd, "rows": out.rows_computed})
    ds = data_mod.materialise_all(h, backend.tokenizer)
    by_size = []
    for k in sizes:
        hk = sized_hypothesis(h, backend.shape, k)
        eng, out, t_clean, t = engine_scrub(backend, ds, hk, batch_size)
        by_size.append(
            {
                "heads": k,
                "claimed_nodes": len(hk.claims),
                "edges": len(hk.edges),
                "treeified_nodes": len(treeify(hk).nodes),
                "engine_s": t,
                "scrub_s": t - t_clean,
                "rows": out.rows_computed,
                "block_runs": eng.block_runs,
            }
        )
    return {"by_n": by_n, "by_size": by_size}


# ---- memory ---------------------------------------------------------------------------------------
BUDGETS = {
    # what holds memory beyond the model: clean activations (clean_bytes), the row memo between root
    # chunks and scrubs (cache_bytes), the rows of one root chunk (root_chunk roots)
    "unbounded": {"clean_bytes": 1 << 50, "cache_bytes": 1 << 50, "root_chunk": 0},
    "default": {},
    "256MiB": {"clean_bytes": 256 << 20, "cache_bytes": 256 << 20},
}


def _proc_status() -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of this process, bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    return out


def memprobe(args) -> None:
    """Child process: load, scrub once, print RSS figures (bytes). Loading the model has a transient peak
    of its own (~3 GiB for SmolLM2: the GGUF/HF/bridge copies); the peak RSS high-water mark is reset after
    loading (Linux: /proc/self/clear_refs), so `peak_rss` is the peak during clean runs + the scrub."""
    import gc

    import torch

    torch.set_num_threads(1)
    _, h, backend, datasets = load(args.model, args.n, args.hypothesis)
    gc.collect()
    load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    loaded = _proc_status().get("VmRSS", load_peak)
    eng, _, _, t = engine_scrub(backend, datasets, h, args.batch_size, **BUDGETS[args.budget])
    peak = _proc_status().get("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "loaded_rss": loaded,
                "load_peak_rss": load_peak,
                "peak_rss": peak,
                "peak_reset_after_load": reset,
                "engine_s": t,
                "clean_in_memory": eng.clean_held,
                "clean_spilled": eng.clean_spilled,
                "memo_flushes": eng.memo_flushes,
                "memo_peak_bytes": eng.memo_peak_bytes,
            }
        )
    )
    eng.close()


def memory(model: str, hyp: str, configs) -> list[dict]:
    out = []
    for n, bs, budget in configs:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--_memprobe",
            "--model",
            model,
            "--n",
            str(n),
            "--batch-size",
            str(bs),
            "--hypothesis",
            hyp,
            "--budget",
            budget,
        ]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        line = next((ln for ln in reversed(p.stdout.splitlines()) if ln.startswith("{")), None)
        if p.returncode != 0 or line is None:
            out.append({"n": n, "batch_size": bs, "budget": budget, "error": p.stderr[-500:]})
            continue
        r = json.loads(line)
        out.append({"n": n, "batch_size": bs, "budget": budget, **r, "scrub_rss": r["peak_rss"] - r["loaded_rss"]})
        print(
            f"  memory N={n} batch {bs} {budget}: peak RSS {r['peak_rss'] / 2**20:.0f} MiB", file=sys.stderr, flush=True
        )
    return out


# ---- profile --------------------------------------------------------------------------------------
def profile(backend, datasets, h, batch_size: int, top: int = 12) -> list[dict]:
    pr = cProfile.Profile()
    pr.enable()
    engine_scrub(backend, datasets, h, batch_size)
    pr.disable()
    st = pstats.Stats(pr, stream=io.StringIO())
    rows = []
    for (fn, line, name), (_cc, nc, tt, ct, _) in st.stats.items():
        rows.append({"function": f"{Path(fn).name}:{line}({name})", "calls": nc, "tottime_s": tt, "cumtime_s": ct})
    rows.sort(key=lambda r: -r["tottime_s"])
    return rows[:top]


# ---- output ---------------------------------------------------------------------------------------
def _atomic_write(path: Path, data: bytes) -> None:
    write_bytes(path, data, parents=True)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    sc = res.get("scaling") or {}
    if sc.get("by_n"):
        ns = [r["n"] for r in sc["by_n"]]
        ax[0].plot(ns, [r["engine_s"] for r in sc["by_n"]], "o-", label="engine (clean runs + scrub)")
        ax[0].plot(ns, [r["forward_s"] for r in sc["by_n"]], "s--", label="one plain forward pass")
        ax[0].set(xlabel="N examples", ylabel="seconds", title="time against N")
        ax[0].legend()
    if sc.get("by_size"):
        ks = [r["edges"] for r in sc["by_size"]]
        ax[1].plot(ks, [r["scrub_s"] for r in sc["by_size"]], "o-")
        for r in sc["by_size"]:
            ax[1].annotate(f"{r['heads']}h", (r["edges"], r["scrub_s"]), fontsize=8)
        ax[1].set(
            xlabel="claimed edges (labels: claimed heads)",
            ylabel="scrub seconds (clean runs excluded)",
            title="time against hypothesis size",
        )
    mem = [r for r in res.get("memory") or [] if "peak_rss" in r]
    if mem:
        bs0 = res["batch_size"]
        for budget in dict.fromkeys(r.get("budget", "default") for r in mem):
            rows = sorted(
                (r for r in mem if r.get("budget", "default") == budget and r["batch_size"] == bs0),
                key=lambda r: r["n"],
            )
            if len(rows) > 1:
                ax[2].plot(
                    [r["n"] for r in rows],
                    [r["peak_rss"] / 2**20 for r in rows],
                    "o-",
                    label=f"budget {budget}, batch {bs0}",
                )
        loaded = [r["loaded_rss"] / 2**20 for r in mem]
        ax[2].axhline(sum(loaded) / len(loaded), color="grey", ls="--", lw=1, label="RSS after loading the model")
        ns = sorted({r["n"] for r in mem if r["batch_size"] == bs0})
        ax[2].set_xscale("log", base=2)
        ax[2].set_xticks(ns, [str(n) for n in ns])
        ax[2].minorticks_off()
        ax[2].set(xlabel="N examples", ylabel="peak RSS during clean runs + scrub (MiB)", title="memory against N")
        ax[2].legend(fontsize=8)
    fig.suptitle(f"circuitdsl benchmarks: {res['model']}, {res['hypothesis']}, {res['date']}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    _atomic_write(path, buf.getvalue())


def table(res: dict) -> str:
    L = []
    f = res["floor"]
    L.append(
        f"model {res['model']}  hypothesis {res['hypothesis']}  N={res['n']}  batch {res['batch_size']}  ({res['machine']})"
    )
    L.append(f"{'plain forward over N':40s} {f['forward_s']:9.3f} s")
    L.append(f"{'S (distinct inputs per example)':40s} {f['S_mean']:9.2f}   (max {f['S_max']})")
    L.append(f"{'floor = S x forward':40s} {f['floor_s']:9.3f} s")
    L.append(
        f"{'engine: clean runs + one scrub':40s} {f['engine_s']:9.3f} s   = {f['engine_over_floor']:.3f} x floor"
        f"  (= {f['engine_s'] / f['forward_s']:.2f} forward passes; clean runs {f['clean_s']:.3f} s)"
    )
    r = res.get("reference")
    if r:
        L.append(
            f"{'reference (full forward per tnode)':40s} {r['reference_s']:9.3f} s   speedup {r['speedup']:.1f}x, max rel diff {r['max_rel_diff']:.2e}"
        )
    p = res.get("peer")
    if p:
        if p.get("error"):
            L.append(f"peer: transformer-lens patching failed: {p['error']}")
        else:
            L.append(
                f"{'per-head patching sweep, N=' + str(p['n']):40s} circuitdsl.patching {p['circuitdsl_patching_s']:.2f} s, "
                f"transformer_lens.patching {p['transformer_lens_patching_s']:.2f} s: {p['speedup_vs_tl']:.2f}x; max |diff| {p['max_abs_diff']:.2e}"
            )
    sc = res.get("scaling") or {}
    for r in sc.get("by_n", []):
        L.append(f"  N={r['n']:<5d} engine {r['engine_s']:8.3f} s   forward {r['forward_s']:8.3f} s   rows {r['rows']}")
    for r in sc.get("by_size", []):
        L.append(
            f"  {r['heads']:3d} heads {r['edges']:4d} edges {r['treeified_nodes']:4d} tnodes: scrub {r['scrub_s']:8.3f} s, rows {r['rows']}, block runs {r['block_runs']}"
        )
    for r in res.get("memory") or []:
        if "peak_rss" in r:
            L.append(
                f"  memory N={r['n']:<5d} batch {r['batch_size']:<4d} budget {r.get('budget', 'default'):9s} peak RSS {r['peak_rss'] / 2**20:8.1f} MiB "
                f"(RSS after load {r['loaded_rss'] / 2**20:.1f} MiB; clean in memory {r.get('clean_in_memory', 0) / 2**20:.0f} MiB, "
                f"spilled {r.get('clean_spilled', 0) / 2**20:.0f} MiB; {r.get('engine_s', 0):.1f} s)"
            )
        else:
            L.append(
                f"  memory N={r['n']} batch {r['batch_size']} budget {r.get('budget')}: failed {r['error'][-200:]}"
            )
    if res.get("profile"):
        L.append("profile (one fresh scrub, top by own time):")
        for r in res["profile"]:
            L.append(f"  {r['tottime_s']:7.3f} s own {r['cumtime_s']:7.3f} s cum {r['calls']:7d}x  {r['function']}")
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=tuple(HYPOTHESES), default="tiny")
    ap.add_argument(
        "--n", type=int, default=None, help="examples (default: 512 tiny, 64 smollm2-135m; --quick: 64 / 16)"
    )
    ap.add_argument("--quick", action="store_true", help="small sizes, for CI")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--hypothesis", default=None, help="a .circuit file (default per model)")
    ap.add_argument(
        "--peer-n", type=int, default=None, help="examples for the patching comparison (default 8 smollm2, 64 tiny)"
    )
    ap.add_argument(
        "--skip", default="", help="comma-separated sections to skip: reference,peer,scaling,memory,profile"
    )
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--_memprobe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--replot", metavar="JSON", default=None, help="redraw the PNG of a results JSON (no run)")
    ap.add_argument("--budget", choices=tuple(BUDGETS), default="default", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if args._memprobe:
        memprobe(args)
        return 0
    if args.replot:
        src = Path(args.replot)
        plot(json.loads(src.read_text()), src.with_suffix(".png"))
        print(f"wrote {src.with_suffix('.png')}")
        return 0
    small = args.model == "tiny"
    n = args.n or ((64 if small else 16) if args.quick else (512 if small else 64))
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    path, h, backend, datasets = load(args.model, n, args.hypothesis)
    ds = datasets[h.main_dataset]
    res: dict = {
        "model": args.model,
        "hypothesis": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        "n": len(ds),
        "batch_size": args.batch_size,
        "quick": args.quick,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        "torch": torch.__version__,
    }
    outdir = Path(args.out)
    base = outdir / f"{args.model}{'-quick' if args.quick else ''}-{time.strftime('%Y%m%d-%H%M%S')}"

    def say(m: str) -> None:  # progress on stderr; the JSON so far is rewritten after every section
        _atomic_write(base.with_suffix(".json"), (json.dumps(res, indent=2) + "\n").encode())
        print(m, file=sys.stderr, flush=True)

    # warm up (first calls allocate), then time
    plain_forward(backend, ds, args.batch_size)
    say("floor and engine...")
    t_fwd = plain_forward(backend, ds, args.batch_size)
    eng, out, t_clean, t_eng = engine_scrub(backend, datasets, h, args.batch_size)
    s_mean, s_max = distinct_inputs(eng, h)
    res["floor"] = {
        "forward_s": t_fwd,
        "S_mean": s_mean,
        "S_max": s_max,
        "floor_s": s_mean * t_fwd,
        "engine_s": t_eng,
        "clean_s": t_clean,
        "engine_over_floor": t_eng / (s_mean * t_fwd),
        "rows": out.rows_computed,
        "block_runs": eng.block_runs,
        "memo_bytes": eng.memo_bytes(),
        "cache_budget_bytes": eng.cache_bytes,
    }
    say(
        f"engine {t_eng:.2f} s = {res['floor']['engine_over_floor']:.3f} x floor ({s_mean:.2f} x forward {t_fwd:.2f} s)"
    )
    if "reference" not in skip:
        say("reference...")
        from reference import reference_scrub

        ref, t_ref = _timed(reference_scrub, backend, datasets, h.main_dataset, h, h.ablation, h.seed)
        res["reference"] = {
            "reference_s": t_ref,
            "speedup": t_ref / t_eng,
            "max_rel_diff": _max_rel(out.logits, ref),
            "equal": _max_rel(out.logits, ref) < 1e-5,
        }
        say(f"reference {t_ref:.2f} s, speedup {t_ref / t_eng:.1f}x")
    if "peer" not in skip:
        say("peer...")
        res["peer"] = peer(
            args.model,
            h,
            backend,
            datasets,
            args.peer_n or ((16 if small else 4) if args.quick else (64 if small else 8)),
        )
    if "scaling" not in skip:
        say("scaling...")
        if args.quick:
            ns, sizes = [n // 2, n], [1, 2, 4]
        else:
            ns = [64, 128, 256, 512, 1024] if small else [16, 32, 64]
            sizes = [1, 2, 4, 8] if small else [1, 2, 4, 8, 16, 32]
        res["scaling"] = scaling(args.model, h, backend, ns, sizes, args.batch_size)
    if "memory" not in skip:
        say("memory...")
        bs = args.batch_size
        if args.quick:
            configs = [(n, 8, "256MiB"), (n, bs, "256MiB")]
        else:
            ns = [n // 4, n // 2, n, 2 * n, 4 * n] if small else [n // 2, n, 2 * n, 4 * n, 8 * n]
            # unbounded stops at 2N: on SmolLM2 it holds ~27 MB of clean activations per example and row
            configs = [(m, bs, "unbounded") for m in ns[:-2]] + [(m, bs, "256MiB") for m in ns]
            configs += [(n, b, "256MiB") for b in (8, 2 * bs) if b != bs]
        res["memory"] = memory(args.model, str(path), configs)
        say("memory done")
    if "profile" not in skip:
        say("profile...")
        res["profile"] = profile(backend, datasets, h, args.batch_size)
    res["complete"] = True
    _atomic_write(base.with_suffix(".json"), (json.dumps(res, indent=2) + "\n").encode())
    plot(res, base.with_suffix(".png"))
    print(table(res))
    print(f"wrote {base.with_suffix('.json')} and {base.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
