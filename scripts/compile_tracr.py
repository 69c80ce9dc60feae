#!/usr/bin/env python3
"""Compile RASP programs with tracr into circuitdsl native models: circuits whose truth is known.

tracr (Lindner et al. 2023) compiles a RASP program into transformer weights in which every head and
MLP computes one named intermediate value (an SOp) and reads only what that computation needs. This
script compiles a few programs of `tracr.compiler.lib` and writes, for each program NAME, under
hypotheses/tracr/:

    models/NAME/config.json        the native config (docs/NATIVE_MODELS.md), token names included
    models/NAME/model.safetensors  the weights, classic transformer-lens layout, float32
    models/NAME/tracr.json         what the compiler knows: the program, every residual direction and the
                                   SOp it belongs to, and for every head and MLP what it reads (per port)
                                   and writes
    data/NAME.jsonl                every input of the dataset (BOS at position 0), the program's output
                                   at each scored position, and the value of every intermediate SOp at
                                   every position (a list, `null` at BOS): the features of the hypothesis

The true hypotheses (hypotheses/tracr/NAME.circuit) are written by hand from tracr.json; the tests in
tests/tracr check them against the weights.

tracr brings jax, so it runs once, in a venv of its own; neither is a dependency of circuitdsl:

    python3 -m venv /tmp/tracr-venv
    /tmp/tracr-venv/bin/pip install tracr-pypi safetensors   # tracr-pypi 1.0.0, jax 0.10.2
    /tmp/tracr-venv/bin/python scripts/compile_tracr.py      # [--out DIR] [--only NAME ...]

Before writing anything it checks, on every row of each dataset, that the exported weights run by a
plain numpy forward pass (written from docs/NATIVE_MODELS.md, not tracr's code) give the same output
vectors as tracr's own compiled model (to 1e-4) and the RASP program's value at every scored position
(argmax), and that every intermediate SOp the dataset records is what rasp.evaluate gives.

Conversion (tracr's assembled model -> native): tracr's model is a stack of layers, each attention then
MLP, without LayerNorm, with zero biases (constants live in the residual direction `one`, which the
token embedding writes), attention logits scaled by 1/sqrt(key_size), masked causally only when
compiled with causal=True. Heads are padded with zero weights to the widest layer, MLPs to the widest
hidden layer, absent layers are zero. BOS is token 0 at position 0 and gets no position embedding (row 0
of W_pos is zero; the RASP index i is model position i + 1). The unembedding projects the residual onto
the output SOp's directions (one column per output value, in tracr's output encoding order); `W_U = eye`
is wrong whenever other directions sort before the output's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BOS, PAD = "BOS", "PAD"


@dataclass
class Program:
    name: str
    source: str
    """How the program is built from tracr.compiler.lib (for the record)."""
    build: Callable
    vocab: list
    max_seq_len: int
    causal: bool
    inputs: Callable[[], list[list]]
    """The dataset's inputs (RASP token values, without BOS)."""
    scored: Callable[[int], list[int]]
    """RASP indices scored in an input of length n."""
    description: str
    names: dict[str, str] = field(default_factory=dict)
    """Field names for SOps whose tracr name is a default one (`map`, `sequence_map`) or not an identifier."""


def _all(vocab, lengths):
    return [list(t) for n in lengths for t in itertools.product(vocab, repeat=n)]


def _sample(rows, k, seed):
    rng = random.Random(seed)
    return sorted(rng.sample(rows, k), key=lambda r: (len(r), r)) if len(rows) > k else rows


def _detect_inputs():
    # Strings over a..e of lengths 5 and 6, half of them containing "abc" (so that both answers occur at
    # most scored positions), drawn without repetition. d and e both make is_a, is_b, is_c false, so the
    # features of m0 are coarser than the input.
    rows = []
    for n, k in ((5, 40), (6, 60)):
        every = ["".join(t) for t in itertools.product("abcde", repeat=n)]
        rows += _sample([list(r) for r in every if "abc" in r], k, n) + _sample(
            [list(r) for r in every if "abc" not in r], k, n + 10
        )
    return sorted(rows, key=lambda r: (len(r), r))


def programs() -> list[Program]:
    from tracr.compiler import lib
    from tracr.rasp import rasp

    return [
        Program(
            name="hist",
            source="lib.make_hist()",
            build=lambda: lib.make_hist(),
            vocab=["a", "b", "c"],
            max_seq_len=5,
            causal=False,
            inputs=lambda: _all("abc", (4, 5)),
            scored=lambda n: list(range(n)),
            description="hist[i] = how many tokens equal token i (tracr lib.make_hist); bidirectional",
        ),
        Program(
            name="sort_unique",
            source="lib.make_sort_unique(rasp.tokens, rasp.tokens)",
            build=lambda: lib.make_sort_unique(rasp.tokens, rasp.tokens),
            vocab=[1, 2, 3, 4, 5, 6],
            max_seq_len=5,
            causal=False,
            inputs=lambda: _sample([list(p) for n in (3, 4) for p in itertools.permutations(range(1, 7), n)], 240, 1),
            scored=lambda n: list(range(n)),
            description="sort[i] = the i-th smallest token, for distinct tokens (tracr lib.make_sort_unique); bidirectional",
        ),
        Program(
            name="count_less_freq",
            source="lib.make_count_less_freq(2)",
            build=lambda: lib.make_count_less_freq(2),
            vocab=["a", "b", "c", "d"],
            max_seq_len=6,
            causal=False,
            inputs=lambda: _sample(_all("abcd", (5, 6)), 240, 2),
            scored=lambda n: list(range(n)),
            description="count_less_freq[i] = how many positions hold a token that occurs at most twice "
            "(tracr lib.make_count_less_freq(2)); bidirectional",
        ),
        Program(
            name="detect_pattern",
            source='lib.detect_pattern(rasp.tokens, "abc")',
            build=lambda: lib.detect_pattern(rasp.tokens, "abc"),
            vocab=["a", "b", "c", "d", "e"],
            max_seq_len=6,
            causal=True,
            inputs=_detect_inputs,
            scored=lambda n: list(range(2, n)),
            description='detect[i] = whether "abc" ends at position i (tracr lib.detect_pattern(tokens, "abc")); causal',
            names={
                "sequence_map": "a_then_b",
                "shift_by(1)": "b_before",
                "shift_by(2)": "a_two_before",
                "detect_pattern(abc)": "detect",
            },
        ),
    ]


# --------------------------------------------------------------------------------------------------
# Compiling


def _sops(expr) -> list:
    """Every SOp of the program (the output included), children before parents, tokens/indices excluded."""
    from tracr.rasp import rasp

    out, seen = [], set()

    def walk(e):
        if id(e) in seen:
            return
        seen.add(id(e))
        for c in e.children:
            walk(c)
        if isinstance(e, rasp.SOp) and e.label not in (rasp.tokens.label, rasp.indices.label):
            out.append(e)

    walk(expr)
    return out


def _field_names(prog: Program, sink) -> dict[str, str]:
    """tracr label (`hist_17`) -> dataset field name (`hist`). Boolean maps of a token get `is_<t>`."""
    from tracr.rasp import rasp

    names = {}
    for e in _sops(sink):
        name = prog.names.get(e.name, e.name)
        if isinstance(e, rasp.Map) and e.name == "map" and e.inner is rasp.tokens:
            true = [t for t in prog.vocab if e.f(t) is True]
            if len(true) == 1 and all(e.f(t) in (True, False) for t in prog.vocab):
                name = f"is_{true[0]}"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise SystemExit(f"{prog.name}: SOp {e.label!r} needs a field name (add it to Program.names)")
        names[e.label] = name
    if len(set(names.values())) != len(names):
        raise SystemExit(f"{prog.name}: two SOps share a field name: {names}")
    return names


def compile_program(prog: Program):
    """(assembled model, craft model, module names, sink expr, field names) for one program."""
    from tracr.compiler import (
        assemble,
        basis_inference,
        craft_graph_to_model,
        craft_model_to_transformer,
        expr_to_craft_graph,
        nodes,
        rasp_to_graph,
    )
    from tracr.craft import bases
    from tracr.rasp import rasp

    # The steps of tracr.compiler.compiling.compile_rasp_to_model, kept apart so that the craft model
    # (which block computes which SOp) stays available.
    sink_expr = prog.build()
    extracted = rasp_to_graph.extract_rasp_graph(sink_expr)
    graph, sources, sink = extracted.graph, extracted.sources, extracted.sink
    basis_inference.infer_bases(graph, sink, set(prog.vocab), prog.max_seq_len)
    expr_to_craft_graph.add_craft_components_to_rasp_graph(
        graph, bos_dir=bases.BasisDirection(rasp.tokens.label, BOS), mlp_exactness=100
    )
    craft = craft_graph_to_model.craft_graph_to_model(graph, sources)
    model = craft_model_to_transformer.craft_model_to_transformer(
        craft_model=craft,
        graph=graph,
        sink=sink,
        max_seq_len=prog.max_seq_len,
        causal=prog.causal,
        compiler_bos=BOS,
        compiler_pad=PAD,
    )
    _, module_names = assemble._get_model_config_and_module_names(craft)
    assert sink[nodes.EXPR] is sink_expr or sink[nodes.EXPR].label == sink_expr.label
    return model, craft, module_names, sink_expr, _field_names(prog, sink_expr)


def to_native(prog: Program, model, out_label: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The native config and the state dict (classic transformer-lens layout) of a compiled model."""
    cfg = model.model_config
    p = {k: {kk: np.asarray(vv, dtype=np.float64) for kk, vv in v.items()} for k, v in model.params.items()}
    labels = list(model.residual_labels)
    d_model = len(labels)
    H, dh, L = cfg.num_heads, cfg.key_size, cfg.num_layers
    W_E = p["token_embed"]["embeddings"]
    W_pos = p["pos_embed"]["embeddings"]
    in_map = model.input_encoder.encoding_map
    in_vocab = [None] * len(in_map)
    for tok, i in in_map.items():
        in_vocab[i] = str(tok)
    out_map = model.output_encoder.encoding_map
    out_vocab = [None] * len(out_map)
    for val, i in out_map.items():
        out_vocab[i] = str(val)
    out_index = {str(v): i for v, i in out_map.items()}
    # tracr's unembedding: the residual projected onto the output SOp's directions, in the output
    # encoder's order (the argmax index is the output token id).
    W_U = np.zeros((d_model, len(out_vocab)))
    sink_name = None
    for j, lab in enumerate(labels):
        name, _, val = lab.partition(":")
        if val and val in out_index and name == out_label:
            W_U[j, out_index[val]] = 1.0
            sink_name = name
    if sink_name is None or (W_U.sum(0) != 1).any():
        raise SystemExit(f"{prog.name}: cannot find the output directions of {out_label} in {labels}")
    sd: dict[str, np.ndarray] = {
        "embed.W_E": W_E,
        "pos_embed.W_pos": W_pos,
        "unembed.W_U": W_U,
        "unembed.b_U": np.zeros(len(out_vocab)),
    }
    d_mlp = None
    for layer in range(L):
        a = f"transformer/layer_{layer}/attn"
        for k, n in (("query", "Q"), ("key", "K"), ("value", "V")):
            w = p[f"{a}/{k}"]["w"].reshape(d_model, H, dh).transpose(1, 0, 2)
            sd[f"blocks.{layer}.attn.W_{n}"] = w
            sd[f"blocks.{layer}.attn.b_{n}"] = p[f"{a}/{k}"]["b"].reshape(H, dh)
        sd[f"blocks.{layer}.attn.W_O"] = p[f"{a}/linear"]["w"].reshape(H, dh, d_model)
        sd[f"blocks.{layer}.attn.b_O"] = p[f"{a}/linear"]["b"]
        m = f"transformer/layer_{layer}/mlp"
        if f"{m}/linear_1" in p:
            sd[f"blocks.{layer}.mlp.W_in"] = p[f"{m}/linear_1"]["w"]
            sd[f"blocks.{layer}.mlp.b_in"] = p[f"{m}/linear_1"]["b"]
            sd[f"blocks.{layer}.mlp.W_out"] = p[f"{m}/linear_2"]["w"]
            sd[f"blocks.{layer}.mlp.b_out"] = p[f"{m}/linear_2"]["b"]
            d_mlp = sd[f"blocks.{layer}.mlp.W_in"].shape[1]
    for k, v in sd.items():
        if k.split(".")[-1].startswith("b_") and np.abs(v).max() != 0:
            raise SystemExit(f"{prog.name}: bias {k} is not zero; tracr models keep constants in `one`")
    config = {
        "format": "circuitdsl-native/1",
        "n_layers": L,
        "n_heads": H,
        "d_model": d_model,
        "d_head": dh,
        "d_mlp": d_mlp,
        "act_fn": "relu" if d_mlp else None,
        "attention": "causal" if prog.causal else "bidirectional",
        "positional": "learned",
        "n_ctx": W_pos.shape[0],
        "d_vocab": len(in_vocab),
        "d_vocab_out": len(out_vocab),
        "weights": "model.safetensors",
        "input_vocab": in_vocab,
        "output_vocab": out_vocab,
        "description": f"tracr {prog.source}: {prog.description}. Compiled by scripts/compile_tracr.py "
        f"(tracr-pypi 1.0.0); BOS is token 0 at position 0; see tracr.json beside this file.",
    }
    return config, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


# --------------------------------------------------------------------------------------------------
# An independent forward pass (docs/NATIVE_MODELS.md), in numpy, float64


def native_forward(cfg: dict, sd: dict[str, np.ndarray], tokens: list[int]) -> np.ndarray:
    """Logits [pos, d_vocab_out] of the native model on one token sequence."""
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    P = len(tokens)
    x = sd["embed.W_E"][tokens] + sd["pos_embed.W_pos"][:P]
    for layer in range(cfg["n_layers"]):
        b = f"blocks.{layer}"
        q = np.einsum("pd,hde->hpe", x, sd[f"{b}.attn.W_Q"]) + sd[f"{b}.attn.b_Q"][:, None]
        k = np.einsum("pd,hde->hpe", x, sd[f"{b}.attn.W_K"]) + sd[f"{b}.attn.b_K"][:, None]
        v = np.einsum("pd,hde->hpe", x, sd[f"{b}.attn.W_V"]) + sd[f"{b}.attn.b_V"][:, None]
        s = np.einsum("hqe,hke->hqk", q, k) / np.sqrt(cfg["d_head"])
        if cfg["attention"] == "causal":
            s = np.where(np.tril(np.ones((P, P), dtype=bool)), s, -np.inf)
        s = s - s.max(-1, keepdims=True)
        a = np.exp(s)
        a = a / a.sum(-1, keepdims=True)
        z = np.einsum("hqk,hke->hqe", a, v)
        x = x + np.einsum("hqe,hed->qd", z, sd[f"{b}.attn.W_O"]) + sd[f"{b}.attn.b_O"]
        if cfg["d_mlp"]:
            h = np.maximum(x @ sd[f"{b}.mlp.W_in"] + sd[f"{b}.mlp.b_in"], 0.0)
            x = x + h @ sd[f"{b}.mlp.W_out"] + sd[f"{b}.mlp.b_out"]
    return x @ sd["unembed.W_U"] + sd["unembed.b_U"]


# --------------------------------------------------------------------------------------------------
# What each node reads and writes (from the weights)


def node_names(cfg: dict) -> list[str]:
    out = ["embed", "pos"]
    for layer in range(cfg["n_layers"]):
        out += [f"a{layer}.{h}" for h in range(cfg["n_heads"])]
        if cfg["d_mlp"]:
            out.append(f"m{layer}")
    return out


def reads_writes(cfg: dict, sd: dict[str, np.ndarray]) -> tuple[dict[str, set[int]], dict[tuple[str, str], set[int]]]:
    """writes[node] = residual dims it can write; reads[(node, port)] = residual dims the port reads."""

    def nz_rows(m):  # [d_model, ...] -> dims with a nonzero row
        return {int(i) for i in np.nonzero(np.abs(m.reshape(m.shape[0], -1)).max(1))[0]}

    writes = {"embed": nz_rows(sd["embed.W_E"].T), "pos": nz_rows(sd["pos_embed.W_pos"].T)}
    reads: dict[tuple[str, str], set[int]] = {("out", "in"): nz_rows(sd["unembed.W_U"])}
    for layer in range(cfg["n_layers"]):
        b = f"blocks.{layer}"
        for h in range(cfg["n_heads"]):
            writes[f"a{layer}.{h}"] = nz_rows(sd[f"{b}.attn.W_O"][h].T)
            for port, w in (("q", "W_Q"), ("k", "W_K"), ("v", "W_V")):
                reads[(f"a{layer}.{h}", port)] = nz_rows(sd[f"{b}.attn.{w}"][h])
        if cfg["d_mlp"]:
            writes[f"m{layer}"] = nz_rows(sd[f"{b}.mlp.W_out"].T)
            reads[(f"m{layer}", "in")] = nz_rows(sd[f"{b}.mlp.W_in"])
    return writes, reads


def _layer(n: str) -> tuple[int, int]:
    """(layer, 0 for a head / 1 for an MLP); embeddings first."""
    if n in ("embed", "pos"):
        return (-1, 0)
    if n.startswith("a"):
        return (int(n[1:].split(".")[0]), 0)
    return (int(n[1:]), 1)


def upstream(s: str, r: str) -> bool:
    if r == "out":
        return True
    ls, lr = _layer(s), _layer(r)
    if r.startswith("a"):
        return ls[0] < lr[0]
    return ls[0] < lr[0] or (ls[0] == lr[0] and ls[1] == 0)


def true_edges(cfg: dict, sd: dict[str, np.ndarray]) -> list[tuple[str, str, str]]:
    """(sender, receiver, port) where the sender writes a direction the port reads, pruned to the
    nodes on a path from an embedding to `out`."""
    writes, reads = reads_writes(cfg, sd)
    edges = {
        (s, r, p) for (r, p), dims in reads.items() for s, w in writes.items() if upstream(s, r) and s != r and w & dims
    }
    while True:  # keep only nodes that reach `out` and are reached from an embedding
        senders = {s for s, _, _ in edges}
        receivers = {r for _, r, _ in edges}
        keep = {
            e for e in edges if (e[1] == "out" or e[1] in senders) and (e[0] in ("embed", "pos") or e[0] in receivers)
        }
        if keep == edges:
            break
        edges = keep
    order = {n: i for i, n in enumerate(node_names(cfg) + ["out"])}
    return sorted(edges, key=lambda e: (order[e[1]], "qkvin".index(e[2]), order[e[0]]))


# --------------------------------------------------------------------------------------------------


def _jsonable(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return int(f) if f.is_integer() else f
    if v is None or isinstance(v, str):
        return v
    raise TypeError(f"unexpected SOp value {v!r}")


def build(prog: Program, out_dir: Path) -> dict:
    from tracr.rasp import rasp

    model, craft, module_names, sink_expr, fields = compile_program(prog)
    config, sd = to_native(prog, model, sink_expr.label)
    labels = list(model.residual_labels)
    in_id = {tok: i for i, tok in enumerate(config["input_vocab"])}
    out_id = {val: i for i, val in enumerate(config["output_vocab"])}
    sops = _sops(sink_expr)

    rows = []
    worst = 0.0
    for inp in prog.inputs():
        toks = [in_id[BOS]] + [in_id[str(t)] for t in inp]
        value = rasp.evaluate(sink_expr, inp)
        scored = prog.scored(len(inp))
        mine = native_forward(config, sd, toks)
        theirs, decoded = _tracr_output(model, [BOS, *inp], config, sink_expr.label)
        worst = max(worst, float(np.abs(mine - theirs).max()))
        if not np.allclose(mine, theirs, atol=1e-4):
            raise SystemExit(
                f"{prog.name}: the native forward differs from tracr's on {inp}: {np.abs(mine - theirs).max()}"
            )
        answers = []
        for i in scored:
            if value[i] is None:
                raise SystemExit(f"{prog.name}: scored position {i} of {inp} has no value")
            a = out_id[str(value[i])]
            if int(np.argmax(mine[i + 1])) != a or decoded[i + 1] != value[i]:
                raise SystemExit(
                    f"{prog.name}: the compiled model is wrong at {i} on {inp}: {mine[i + 1]} vs {value[i]}"
                )
            answers.append(a)
        row = {
            "id": "".join(map(str, inp)),
            "tokens": toks,
            "scored": [i + 1 for i in scored],
            "answer": answers,
            "input": " ".join(map(str, inp)),
        }
        for e in sops:
            row[fields[e.label]] = [None] + [_jsonable(v) for v in rasp.evaluate(e, inp)]
        rows.append(row)

    writes, reads = reads_writes(config, sd)
    sop_of = {}
    for j, lab in enumerate(labels):
        name = lab.partition(":")[0]
        sop_of[j] = fields.get(name, name if name in ("one", "tokens", "indices") else f"({name})")
    node_info = {}
    for n in node_names(config):
        w = sorted({sop_of[j] for j in writes[n]})
        r = {p: sorted({sop_of[j] for j in reads[(n, p)]}) for (nn, p) in reads if nn == n}
        if w or any(r.values()):
            node_info[n] = {"writes": w, "reads": r}
    node_info["out"] = {"reads": {"in": sorted({sop_of[j] for j in reads[("out", "in")]})}}
    edges = true_edges(config, sd)
    blocks = []
    for mname, blk in zip(module_names, craft.blocks):
        layer = int(mname.split("layer_")[1].split("/")[0])
        if mname.endswith("mlp"):
            blocks.append(
                {
                    "node": f"m{layer}",
                    "writes": sorted({fields.get(d.name, f"({d.name})") for d in blk.snd.output_space.basis}),
                }
            )
        else:
            for h, head in enumerate(blk.as_multi().heads()):
                blocks.append(
                    {
                        "node": f"a{layer}.{h}",
                        "writes": sorted({fields.get(d.name, f"({d.name})") for d in head.w_ov.output_space.basis}),
                    }
                )
    record = {
        "program": f"tracr.compiler.lib: {prog.source}",
        "description": prog.description,
        "compiler": "tracr-pypi 1.0.0 (jax 0.10.2), mlp_exactness 100, by scripts/compile_tracr.py",
        "vocab": [str(v) for v in prog.vocab],
        "max_seq_len": prog.max_seq_len,
        "causal": prog.causal,
        "fields": {fields[e.label]: {"tracr_label": e.label, "rasp": type(e).__name__} for e in sops},
        "output": fields[sink_expr.label],
        "residual": [{"direction": lab, "sop": sop_of[j]} for j, lab in enumerate(labels)],
        "blocks": blocks,
        "nodes": node_info,
        "edges": [f"{s} -> {r}.{p}" if r != "out" and not r.startswith("m") else f"{s} -> {r}" for s, r, p in edges],
        "max_abs_diff_vs_tracr": worst,
    }

    mdir = out_dir / "models" / prog.name
    mdir.mkdir(parents=True, exist_ok=True)
    from safetensors.numpy import save_file

    save_file(sd, str(mdir / "model.safetensors"), metadata={"source": f"tracr {prog.source}"})
    (mdir / "model.safetensors").chmod(0o644)
    (mdir / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (mdir / "tracr.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    ddir = out_dir / "data"
    ddir.mkdir(parents=True, exist_ok=True)
    with open(ddir / f"{prog.name}.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, separators=(", ", ": ")) + "\n")
    n_params = sum(int(v.size) for v in sd.values())
    return {
        "name": prog.name,
        "rows": len(rows),
        "params": n_params,
        "bytes": (mdir / "model.safetensors").stat().st_size,
        "shape": f"{config['n_layers']} layers x {config['n_heads']} heads, d_model {config['d_model']}, "
        f"d_head {config['d_head']}, d_mlp {config['d_mlp']}, vocab {config['d_vocab']} -> {config['d_vocab_out']}",
        "edges": record["edges"],
        "max_abs_diff_vs_tracr": worst,
    }


def _tracr_output(model, inp: list, config: dict, out_label: str) -> tuple[np.ndarray, list]:
    """tracr's own model: the final residual projected onto the output directions [pos, d_vocab_out],
    and its decoded output."""
    import jax
    import jax.numpy as jnp

    fwd = _JITTED.setdefault(id(model), jax.jit(model.forward))  # model.apply retraces on every call
    out = fwd(model.params, jnp.array([model.input_encoder.encode(inp)]))
    resid = np.asarray(out.transformer_output.output, dtype=np.float64)[0]
    decoded = [inp[0]] + model.output_encoder.decode(np.asarray(out.unembedded_output)[0].tolist())[1:]
    labels = list(model.residual_labels)
    cols = [labels.index(f"{out_label}:{val}") for val in config["output_vocab"]]
    return resid[:, cols], decoded


_JITTED: dict = {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out", default=str(ROOT / "hypotheses" / "tracr"), help="output folder (default hypotheses/tracr)"
    )
    ap.add_argument("--only", nargs="*", default=None, help="program names to compile (default all)")
    args = ap.parse_args(argv)
    out_dir = Path(args.out)
    for prog in programs():
        if args.only and prog.name not in args.only:
            continue
        s = build(prog, out_dir)
        print(
            f"{s['name']}: {s['shape']}; {s['params']} parameters, {s['bytes']} bytes; {s['rows']} rows; "
            f"native vs tracr max |diff| {s['max_abs_diff_vs_tracr']:.1e}"
        )
        for e in s["edges"]:
            print(f"    {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
