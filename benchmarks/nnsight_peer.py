#!/usr/bin/env python
"""nnsight as the benchmark peer of `circuitdsl patch` (issue 16). Needs the `bench` extra:
`pip install -e .[bench]` (nnsight 0.8.1).

    python benchmarks/nnsight_peer.py [--n 32] [--layers 0..29] [--edge a16.0->a23.3] [--skip path,scrub]

Same model (SmolLM2-135M-Instruct), same data (IOI with its paired ABC corruption: row i of `abc` is
the corruption of row i of `ioi`, same template), same metric (mean logit difference answer - wrong
at the scored position), one torch thread, in one process. nnsight runs the plain Hugging Face model
(`AutoModelForCausalLM` from the backend's model directory); circuitdsl runs its own backend (the
transformer-lens bridge). Results are compared; a mismatch above 1e-5 exits 1.

1. Per-head activation patching, every head: nnsight as its users write it (one trace on the
   corrupted prompts saving each layer's `o_proj` input, the heads' concatenated outputs z; then one
   trace per head on the clean prompts, that head's slice of z replaced by the corrupted one: patching
   z_h is patching the head's output z_h W_O^h, o_proj having no bias) against
   `circuitdsl.patching.head_sweep`.
2. Path patching of one edge sender head -> receiver head's q, k or v: the sender's output delta
   (corrupted - clean) added to the receiver's port input only. nnsight: one trace on the clean
   prompts in which the receiver's q_proj (k_proj, v_proj) output slice is replaced by the projection
   of input_layernorm(resid + delta); against `circuitdsl.patching.path_sweep` restricted to the
   sender's layer.
3. One scrub as nnsight interventions: the zoo's IOI hypothesis' treeified computation is not a set of
   patches (each path is resampled separately), so the peer scrub is its one-layer case that both can
   state: every head outside a named set ablated to its paired-ABC output, everything else clean
   (`ablate unclaimed by paired abc` of a hypothesis whose claimed heads read the clean residual: the
   ABC outputs of the unclaimed heads added in one forward pass). circuitdsl computes it through
   `circuitdsl.engine.scrub.Engine`; nnsight patches every unclaimed head's z in one trace.

Prints figures and ratios; writes benchmarks/results/nnsight-<stamp>.json atomically.
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

from circuitdsl.atomic import write_bytes  # noqa: E402

try:
    import nnsight
except ImportError:  # the `bench` extra is not installed: main() says so
    nnsight = None


def ioi_pairs(tokenizer, n: int):
    from circuitdsl.engine import data as data_mod
    from circuitdsl.ir import DatasetKind, DatasetSpec

    args = tuple(sorted({"n": n, "seed": 0, "names": 8}.items()))
    clean = data_mod.materialise(DatasetSpec("ioi", DatasetKind.GENERATOR, "ioi", args), tokenizer)
    abc = data_mod.materialise(DatasetSpec("abc", DatasetKind.GENERATOR, "ioi_abc", args), tokenizer)
    return list(clean.examples), list(abc.examples)


def layouts(clean, corrupt):
    """(clean tokens, corrupt tokens, scored positions, answers, wrongs) per layout."""
    import torch

    by: dict = {}
    for i, e in enumerate(clean):
        by.setdefault(e.layout, []).append(i)
    out = []
    for rows in by.values():
        out.append(
            (
                torch.tensor([clean[i].tokens for i in rows]),
                torch.tensor([corrupt[i].tokens for i in rows]),
                list(clean[rows[0]].scored_positions),
                torch.tensor([clean[i].answers for i in rows]),
                torch.tensor([clean[i].wrongs for i in rows]),
            )
        )
    return out


def logit_diff_sum(logits, sc, ans, wr) -> float:
    lg = logits[:, sc, :]
    a = lg.gather(-1, ans.unsqueeze(-1)).squeeze(-1)
    w = lg.gather(-1, wr.unsqueeze(-1)).squeeze(-1)
    return float((a - w).double().mean(-1).sum())


# ---- nnsight ------------------------------------------------------------------------------------------
def nn_head_sweep(nm, groups, n_layers: int, n_heads: int, d_head: int, n: int, layer_list):
    """Per-head activation patching as nnsight interventions: one full forward pass per head."""
    out = [[float("nan")] * n_heads for _ in range(n_layers)]
    sums = {(L, H): 0.0 for L in layer_list for H in range(n_heads)}
    layers = nm.model.layers
    for ct, kt, sc, ans, wr in groups:
        with nm.trace(kt):
            zs = nnsight.save([layers[L].self_attn.o_proj.input for L in layer_list])
        z_of = dict(zip(layer_list, zs, strict=True))
        for L in layer_list:
            for H in range(n_heads):
                sl = slice(H * d_head, (H + 1) * d_head)
                with nm.trace(ct):
                    o = layers[L].self_attn.o_proj
                    z = o.input.clone()
                    z[:, :, sl] = z_of[L][:, :, sl]
                    o.input = z
                    logits = nm.lm_head.output.save()
                sums[(L, H)] += logit_diff_sum(logits, sc, ans, wr)
    for (L, H), s in sums.items():
        out[L][H] = s / n
    return out


def nn_path_edge(nm, hf, groups, sender, receiver, port: str, d_head: int, per_group: int, n: int) -> float:
    """Sender head's (corrupted - clean) output added to the receiver head's `port` input only."""
    import torch

    (Ls, Hs), (Lr, Hr) = sender, receiver
    layers = nm.model.layers
    W_O = hf.model.layers[Ls].self_attn.o_proj.weight  # [D, H * d_head]
    sl_s = slice(Hs * d_head, (Hs + 1) * d_head)
    idx = Hr if port == "q" else Hr // per_group
    sl_r = slice(idx * d_head, (idx + 1) * d_head)
    ln = hf.model.layers[Lr].input_layernorm
    W = getattr(hf.model.layers[Lr].self_attn, f"{port}_proj").weight

    def port_input(x):  # the receiver's projection of input_layernorm(x), written out (LlamaRMSNorm, no bias)
        var = x.pow(2).mean(-1, keepdim=True)
        return torch.nn.functional.linear(ln.weight * (x * torch.rsqrt(var + ln.variance_epsilon)), W)

    total = 0.0
    for ct, kt, sc, ans, wr in groups:
        with nm.trace(kt):
            zk = layers[Ls].self_attn.o_proj.input.save()
        with nm.trace(ct):
            zc = layers[Ls].self_attn.o_proj.input.save()
        delta = (zk[:, :, sl_s] - zc[:, :, sl_s]) @ W_O[:, sl_s].T  # [B, T, D]
        with nm.trace(ct):
            resid = layers[Lr].input
            p = getattr(layers[Lr].self_attn, f"{port}_proj")
            new = p.output.clone()
            new[:, :, sl_r] = port_input(resid + delta)[:, :, sl_r]
            p.output = new
            logits = nm.lm_head.output.save()
        total += logit_diff_sum(logits, sc, ans, wr)
    return total / n


def nn_ablate_heads(nm, groups, keep: set, n_layers: int, n_heads: int, d_head: int, n: int) -> float:
    """Every head not in `keep` patched to its output on the paired corrupted prompt, in one trace."""
    layers = nm.model.layers
    total = 0.0
    for ct, kt, sc, ans, wr in groups:
        with nm.trace(kt):
            zs = nnsight.save([layers[L].self_attn.o_proj.input for L in range(n_layers)])
        with nm.trace(ct):
            for L in range(n_layers):
                drop = [H for H in range(n_heads) if (L, H) not in keep]
                if not drop:
                    continue
                o = layers[L].self_attn.o_proj
                z = o.input.clone()
                for H in drop:
                    z[:, :, H * d_head : (H + 1) * d_head] = zs[L][:, :, H * d_head : (H + 1) * d_head]
                o.input = z
            logits = nm.lm_head.output.save()
        total += logit_diff_sum(logits, sc, ans, wr)
    return total / n


def scrub_hypothesis(keep: list[tuple[int, int]], n: int) -> str:
    """A .circuit file: the kept heads (identity features) read the clean residual through embed and
    every MLP; everything else paired-ABC ablated. Its scrub is the nnsight patch above when every kept
    head and MLP reads the clean residual directly (`wire`: each reads each earlier claimed node)."""
    heads = ", ".join(f"a{L}.{H}" for L, H in keep)
    return (
        f"model smollm2-135m\ndataset ioi = ioi(n = {n}, seed = 0, names = 8)\n"
        f"dataset abc = ioi_abc(n = {n}, seed = 0, names = 8)\nmetric logit_diff\nablate unclaimed by paired abc\n"
        f"group backbone = embed, m0..m29\ngroup kept = {heads}\nwire backbone, kept, out\nset seed = 0\n"
        "set treeify.shared_draws = true\n"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--layers", default=None, help="patched layers: 0..29, 3,17 or 0:30:3 (default: all)")
    ap.add_argument("--edge", default="a16.0->a23.3", help="path-patching edge sender->receiver (all of q, k, v)")
    ap.add_argument("--skip", default="", help="comma-separated: heads,path,scrub")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument(
        "--order",
        default="circuitdsl,nnsight,circuitdsl",
        help="the timed head sweeps, in order (on a loaded machine: circuitdsl,nnsight)",
    )
    a = ap.parse_args(argv)
    skip = {s for s in a.skip.split(",") if s}

    import torch

    torch.set_num_threads(1)
    if nnsight is None:
        print("nnsight is not installed: pip install -e .[bench]", file=sys.stderr)
        return 2
    from nnsight import NNsight
    from transformers import AutoModelForCausalLM

    from circuitdsl import patching

    backend = patching.boot_model("smollm2-135m")
    hf = AutoModelForCausalLM.from_pretrained(str(backend.model_dir), dtype=torch.float32).eval()
    nm = NNsight(hf)
    sh = backend.shape
    nL, nH, nKV = sh.n_layers, sh.n_heads, sh.n_kv_heads
    d_head = hf.config.hidden_size // nH
    if a.layers:
        if ":" in a.layers:  # start:stop:step, e.g. 0:30:3
            layer_list = list(range(*(int(x) for x in a.layers.split(":"))))
        elif ".." in a.layers:
            lo, hi = a.layers.split("..")
            layer_list = list(range(int(lo), int(hi) + 1))
        else:
            layer_list = [int(x) for x in a.layers.split(",")]
    else:
        layer_list = list(range(nL))
    clean, corrupt = ioi_pairs(backend.tokenizer, a.n)
    groups = layouts(clean, corrupt)
    n = len(clean)
    res: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "n": n,
        "layers": layer_list,
        "heads": len(layer_list) * nH,
        "nnsight": nnsight.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
        "layouts": len(groups),
    }
    dest = Path(a.out) / f"nnsight-{time.strftime('%Y%m%d-%H%M%S')}.json"

    def save():
        write_bytes(dest, (json.dumps(res, indent=2) + "\n").encode(), parents=True)

    ok = True
    with torch.inference_mode():
        # warm-up, untimed: one trace and one small sweep each (first calls pay one-off costs)
        nn_head_sweep(nm, groups[:1], nL, nH, d_head, n, [nL - 1])
        patching.head_sweep(backend, clean[:4], corrupt[:4], layers=[nL - 1])
    if "heads" not in skip:
        # the machine is shared and its load moves: circuitdsl, nnsight, circuitdsl again; the ratio is
        # nnsight's time over the mean of the two circuitdsl runs around it
        t_nn, t_cd = [], []
        for step in a.order.split(","):
            if step == "nnsight":
                with torch.inference_mode():
                    t = time.perf_counter()
                    theirs = nn_head_sweep(nm, groups, nL, nH, d_head, n, layer_list)
                    t_nn.append(time.perf_counter() - t)
            else:
                ours = patching.head_sweep(backend, clean, corrupt, layers=layer_list)
                t_cd.append(ours.seconds)
            print(
                f"  head sweep, {step}: {(t_nn if step == 'nnsight' else t_cd)[-1]:.1f} s (load {os.getloadavg()[0]:.1f})",
                file=sys.stderr,
                flush=True,
            )
        diff = max(abs(ours.patched[L][H] - theirs[L][H]) for L in layer_list for H in range(nH))
        mean_cd = sum(t_cd) / len(t_cd)
        res["head_sweep"] = {
            "nnsight_s": t_nn[0],
            "circuitdsl_s": t_cd,
            "ratio": t_nn[0] / mean_cd,
            "max_abs_diff": diff,
            "equal": diff <= a.tol,
            "clean": ours.clean,
            "corrupt": ours.corrupt,
            "load_end": os.getloadavg()[0],
        }
        ok &= diff <= a.tol
        save()
        print(
            f"head sweep ({len(layer_list) * nH} heads, N = {n}): nnsight {t_nn[0]:.1f} s, circuitdsl patch "
            f"{' and '.join(f'{x:.1f}' for x in t_cd)} s: {t_nn[0] / mean_cd:.2f}x; max |diff| {diff:.2e}"
        )
    if "path" not in skip:
        s, r = a.edge.split("->")
        Ls, Hs = (int(x) for x in s.strip().lstrip("a").split("."))
        Lr, Hr = (int(x) for x in r.strip().lstrip("a").split("."))
        res["path"] = {"edge": a.edge, "ports": {}}
        for port in ("q", "k", "v"):
            with torch.inference_mode():
                t = time.perf_counter()
                theirs = nn_path_edge(nm, hf, groups, (Ls, Hs), (Lr, Hr), port, d_head, nH // nKV, n)
                t_nn = time.perf_counter() - t
            recv = patching.Receiver(Lr, Hr, port)
            ours = patching.path_sweep(backend, clean, corrupt, [recv], layers=[Ls], include_mlps=False)
            diff = abs(ours.patched[Ls][Hs] - theirs)
            res["path"]["ports"][port] = {
                "nnsight": theirs,
                "circuitdsl": ours.patched[Ls][Hs],
                "max_abs_diff": diff,
                "nnsight_s": t_nn,
                "circuitdsl_s_layer": ours.seconds,
                "equal": diff <= a.tol,
            }
            ok &= diff <= a.tol
            print(
                f"path {a.edge}.{port}: nnsight {theirs:.6f} ({t_nn:.1f} s, one edge), circuitdsl {ours.patched[Ls][Hs]:.6f} "
                f"({ours.seconds:.1f} s, all {nH} heads of layer {Ls}); |diff| {diff:.2e}"
            )
        save()
    if "scrub" not in skip:
        from circuitdsl.compiler import compile_source
        from circuitdsl.engine import data as data_mod
        from circuitdsl.engine.scrub import Engine

        keep = [
            (23, 3),
            (20, 0),
            (29, 1),
            (29, 0),
            (19, 2),
            (17, 4),
            (8, 1),
            (14, 3),
            (15, 7),
            (16, 0),
            (23, 0),
            (23, 7),
            (5, 6),
            (9, 2),
            (18, 6),
        ]
        with torch.inference_mode():
            t = time.perf_counter()
            theirs = nn_ablate_heads(nm, groups, set(keep), nL, nH, d_head, n)
            t_nn = time.perf_counter() - t
        comp = compile_source(scrub_hypothesis(keep, a.n), "<peer>")
        h = comp.hypothesis
        t = time.perf_counter()
        ds = data_mod.materialise_all(h, backend.tokenizer)
        with torch.no_grad(), Engine(backend, ds, h.main_dataset, h.ablation, seed=0) as eng:
            out = eng.scrub(h)
            t_cd = time.perf_counter() - t
            from circuitdsl.engine import metrics

            ex = ds[h.main_dataset].examples
            ours = float(metrics.metric_values(h.metric.kind, out.logits, ex, eng.clean_logits()).mean())
        diff = abs(ours - theirs)
        res["scrub"] = {
            "kept_heads": len(keep),
            "nnsight": theirs,
            "circuitdsl": ours,
            "max_abs_diff": diff,
            "nnsight_s": t_nn,
            "circuitdsl_s": t_cd,
            "equal": diff <= a.tol,
        }
        ok &= diff <= a.tol
        save()
        print(
            f"scrub (15 heads kept, 255 ABC-patched): nnsight {theirs:.6f} ({t_nn:.1f} s), circuitdsl {ours:.6f} "
            f"({t_cd:.1f} s incl. clean runs); |diff| {diff:.2e}"
        )
    res["load_end"] = os.getloadavg()[0]
    save()
    print(f"wrote {dest}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
