"""Edge attribution on the tiny model against an independent computation.

The reference here shares no code with circuitdsl.attribute or the backends: the tiny model's forward
pass is written below from docs/NATIVE_MODELS.md (attention only, no normalisation), with an additive
edit at any receiving port (a head's q, k or v input, or out's final residual). From it:

* exact edge patching: F(port input += delta_s) - F(model), delta_s = ablated_s - clean_s;
* EAP (the linear limit of the same patch): d/de F(port input += e * delta_s) at e = 0, by a central
  finite difference in float64 (no autograd);
* EAP-IG-inputs: the same derivative taken with the embeddings set to ablated + a (clean - ablated),
  averaged over a = k/m, k = 0..m-1 (the patch delta stays the clean-run difference).

F is the mean over examples of the loss at each example's scored position (hand-written here).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from circuitdsl.attribute import graph as agraph  # noqa: E402
from circuitdsl.attribute import scores  # noqa: E402
from circuitdsl.compiler import compile_source  # noqa: E402
from circuitdsl.ir import NodeKind, Port  # noqa: E402
from circuitdsl.models.shapes import TINY_DIR  # noqa: E402

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[2]
N = 24

SETUPS = {
    "zero": "ablate unclaimed by zero",
    "mean": "ablate unclaimed by mean",
    "paired": "dataset cor = induction(n = {n}, seed = 1, length = 12, layouts = 2)\nablate unclaimed by paired cor",
}


def _text(kind: str, metric: str = "loss") -> str:
    return (
        f"model tiny\ndataset ind = induction(n = {N}, seed = 0, length = 12, layouts = 2)\n"
        + SETUPS[kind].format(n=N)
        + f"\nmetric {metric}\n"
    )


# ---- the independent model -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def params():
    torch.set_num_threads(1)
    cfg = json.loads((TINY_DIR / "config.json").read_text())
    p = safetensors_torch.load_file(str(TINY_DIR / cfg["weights"]))
    return {k: v.double() for k, v in p.items()}, cfg


def _forward(P, cfg, tokens, *, adds=None, emb=None, senders=None):
    """Logits [B, T, V]. adds: {(L, 'q'|'k'|'v', h) or 'out': [B, T, D] added to that port's input};
    emb: (embed, pos) outputs to use instead of the model's; senders: dict filled with every sender's
    output: 'embed', 'pos' [B, T, D], (L, h) [B, T, D]."""
    adds = adds or {}
    T = tokens.shape[1]
    e = P["embed.W_E"][tokens]
    pos = P["pos_embed.W_pos"][:T].expand_as(e)
    if emb is not None:
        e, pos = emb
    if senders is not None:
        senders["embed"], senders["pos"] = e, pos
    x = e + pos
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    H = cfg["n_heads"]
    for L in range(cfg["n_layers"]):
        a = f"blocks.{L}.attn."
        results = []
        for h in range(H):
            qi, ki, vi = (x + adds.get((L, port, h), 0.0) for port in ("q", "k", "v"))
            q = qi @ P[a + "W_Q"][h] + P[a + "b_Q"][h]
            k = ki @ P[a + "W_K"][h] + P[a + "b_K"][h]
            v = vi @ P[a + "W_V"][h] + P[a + "b_V"][h]
            s = (q @ k.transpose(1, 2)) / math.sqrt(cfg["d_head"])
            z = s.masked_fill(mask, float("-inf")).softmax(-1) @ v
            r = z @ P[a + "W_O"][h]
            if senders is not None:
                senders[(L, h)] = r
            results.append(r)
        x = x + sum(results) + P[a + "b_O"]
    x = x + adds.get("out", 0.0)
    return x @ P["unembed.W_U"] + P["unembed.b_U"]


def _F(logits, exs):
    tot = 0.0
    for i, e in enumerate(exs):
        lp = torch.log_softmax(logits[i], -1)
        tot += float(sum(-lp[p, a] for p, a in zip(e.scored_positions, e.answers)) / len(e.answers))
    return tot / len(exs)


def _sender_key(v):
    return {NodeKind.EMBED: "embed", NodeKind.POS: "pos"}.get(v.kind, (v.layer, v.head))


class Reference:
    def __init__(self, params, setup):
        self.P, self.cfg = params
        ds = setup.ds
        self.exs = list(ds.examples)
        self.tokens = torch.tensor([e.tokens for e in self.exs])
        self.clean = {}
        self.F0 = _F(_forward(self.P, self.cfg, self.tokens, senders=self.clean), self.exs)
        if setup.mode == "zero":
            self.abl = {k: torch.zeros_like(v) for k, v in self.clean.items()}
        elif setup.mode == "paired":
            other = torch.tensor([e.tokens for e in setup.other.examples[: len(self.exs)]])
            self.abl = {}
            _forward(self.P, self.cfg, other, senders=self.abl)
        else:  # mean per layout (token length and named positions) and position
            self.abl = {}
            for k, v in self.clean.items():
                out = torch.empty_like(v)
                for lay in {e.layout for e in self.exs}:
                    rows = [i for i, e in enumerate(self.exs) if e.layout == lay]
                    out[rows] = v[rows].mean(0, keepdim=True)
                self.abl[k] = out

    def delta(self, sender):
        k = _sender_key(sender)
        return self.abl[k] - self.clean[k]

    def port(self, e):
        r = e.receiver
        return "out" if r.kind is NodeKind.OUT else (r.layer, e.port.value, r.head)

    def patched(self, e, eps, emb=None):
        return _F(
            _forward(self.P, self.cfg, self.tokens, adds={self.port(e): eps * self.delta(e.sender)}, emb=emb), self.exs
        )

    def exact(self, e):
        return self.patched(e, 1.0) - self.F0

    def eap(self, e, h=1e-4, emb=None):
        return (self.patched(e, h, emb) - self.patched(e, -h, emb)) / (2 * h)

    def eap_ig(self, e, steps):
        tot = 0.0
        for k in range(steps):
            a = k / steps
            emb = tuple(self.abl[n] + a * (self.clean[n] - self.abl[n]) for n in ("embed", "pos"))
            tot += self.eap(e, emb=emb)
        return tot / steps


def _setup(kind, metric="loss"):
    res = compile_source(_text(kind, metric), str(ROOT / "attr_test.circuit"))
    assert res.hypothesis is not None, res.render("full")
    return scores.prepare(res.hypothesis, batch_size=10)  # 10 does not divide N: chunks of unequal size


def _close(got, want, rtol, atol):
    bad = [(k, g, w) for k, g, w in zip(range(len(got)), got, want) if not abs(g - w) <= atol + rtol * abs(w)]
    assert not bad, f"{len(bad)} of {len(got)} differ, first: {bad[:3]}"


@pytest.fixture(scope="module", params=list(SETUPS))
def case(request, params):
    setup = _setup(request.param)
    return setup, Reference(params, setup)


# ---- the tests -------------------------------------------------------------------------------------------


def test_eap_equals_the_finite_difference_of_the_patch_for_every_edge(case):
    setup, ref = case
    att = scores.attribute(setup, "eap")
    got = att.edge_scores()
    edges = list(setup.graph.edges)
    assert len(edges) == 106  # 10 into out, 2 x 3 x 4 into layer 0, 6 x 3 x 4 into layer 1
    if setup.mode != "paired":  # every edge under paired; every other one elsewhere (time)
        edges = edges[setup.mode == "mean" :: 2]
    want = [ref.eap(e) for e in edges]
    _close([got[e] for e in edges], want, rtol=2e-3, atol=2e-6)
    assert att.f_model == pytest.approx(ref.F0, rel=1e-5)
    # something is being measured: most edges have a non-zero score (pos has none under mean ablation)
    assert sum(abs(w) > 1e-4 for w in want) > len(want) // 2


def test_exact_patching_equals_the_patched_forward_pass(case):
    setup, ref = case
    edges = [e for e in setup.graph.edges if e.receiver.kind is NodeKind.OUT or e.receiver.layer == 1][::3]
    edges += [e for e in setup.graph.edges if e.receiver.kind is NodeKind.HEAD and e.receiver.layer == 0]
    att = scores.exact_scores(setup, edges)
    got = att.edge_scores()
    _close([got[e] for e in edges], [ref.exact(e) for e in edges], rtol=2e-4, atol=2e-6)
    untouched = [e for e in setup.graph.edges if e not in set(edges)]
    assert all(math.isnan(got[e]) for e in untouched)


def test_eap_ig_equals_the_averaged_finite_differences(case):
    setup, ref = case
    steps = 3
    att = scores.attribute(setup, "eap-ig", steps=steps)
    got = att.edge_scores()
    ranked = agraph.rank(got, setup.graph.edges)
    edges = (
        ranked[:6] + ranked[40:43] + [e for e in ranked if e.sender.kind is NodeKind.HEAD and e.sender.layer == 0][:3]
    )
    _close([got[e] for e in edges], [ref.eap_ig(e, steps) for e in edges], rtol=3e-3, atol=3e-6)
    assert att.passes()["backward"] == pytest.approx(steps)


def test_eap_counts_two_forward_and_one_backward_pass():
    setup = _setup("paired")
    p = scores.attribute(setup, "eap").passes()
    assert (p["forward"], p["backward"]) == (2.0, 1.0)


def test_accuracy_is_refused_with_a_hint():
    res = compile_source(_text("zero", "accuracy"), "x.circuit")
    with pytest.raises(scores.AttributionError) as ei:
        scores.prepare(res.hypothesis)
    d = ei.value.diagnostics[0]
    assert d.code == "E941" and "margin" in d.hint


def test_positions_ablate_only_there(params):
    """With --positions A2, a sender is ablated only at A2: compare with the reference patch whose
    delta is zero elsewhere (exact and EAP)."""
    res = compile_source(_text("zero"), str(ROOT / "attr_test.circuit"))
    setup = scores.prepare(res.hypothesis, positions=["A2"], batch_size=N)
    ref = Reference(params, setup)
    for k, v in ref.abl.items():
        for i, e in enumerate(ref.exs):
            a2 = e.position("A2")
            m = torch.ones(v.shape[1], dtype=torch.bool)
            m[list(a2)] = False
            v[i, m] = ref.clean[k][i, m]
    edges = [
        e for e in setup.graph.edges if e.receiver.kind is NodeKind.OUT or (e.receiver.layer == 1 and e.port is Port.K)
    ]
    got = scores.attribute(setup, "eap").edge_scores()
    _close([got[e] for e in edges], [ref.eap(e) for e in edges], rtol=2e-3, atol=2e-6)
    ex = scores.exact_scores(setup, edges).edge_scores()
    _close([ex[e] for e in edges], [ref.exact(e) for e in edges], rtol=2e-4, atol=2e-6)


def test_written_circuit_lints_and_check_passes(tmp_path, capsys):
    """`attribute -o` on the tiny model writes a .circuit that lints and that `check` passes (exit 0)."""
    from circuitdsl.cli import main

    src = tmp_path / "setup.circuit"
    src.write_text(
        "model tiny\ndataset ind = induction(n = 64, seed = 0, length = 16, layouts = 2)\nmetric loss\n"
        "ablate unclaimed by resample\nset seed = 0\n"
    )
    out = tmp_path / "found.circuit"
    mib = tmp_path / "found_mib.json"
    rc = main(
        [
            "attribute",
            str(src),
            "--edges",
            "24",
            "-o",
            str(out),
            "--expect",
            "recovered >= 0.9",
            "--mib",
            str(mib),
            "--json",
            str(tmp_path / "s.json"),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    text = out.read_text()
    assert text.count("\nedge ") >= 1 and "expect recovered >= 0.9" in text
    assert main(["lint", str(out)]) == 0, capsys.readouterr()
    rc = main(["check", str(out), "--no-tests"])
    assert rc == 0, capsys.readouterr()
    m = json.loads(mib.read_text())
    assert sum(1 for v in m["edges"].values() if v["in_graph"]) >= 24
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["schema"] == "circuitdsl-attribution/1" and len(s["edges"]) == 106


def test_attribute_cli_refuses_bad_input_with_exit_2(tmp_path, capsys):
    from circuitdsl.cli import main

    src = tmp_path / "acc.circuit"
    src.write_text(
        "model tiny\ndataset ind = induction(n = 8, seed = 0, length = 12, layouts = 1)\nmetric accuracy\n"
        "ablate unclaimed by zero\n"
    )
    assert main(["attribute", str(src)]) == 2
    err = capsys.readouterr().err
    assert "E941" in err and "acc.circuit:3:" in err and "Traceback" not in err
    src.write_text(_text("zero"))
    assert main(["attribute", str(src), "--positions", "NOPE"]) == 2
    assert "E942" in capsys.readouterr().err
    assert main(["attribute", str(src), "--edges", "5"]) == 2  # --edges without -o


def test_tracr_hist_eap_ig_recovers_the_compiled_circuit_and_check_passes(tmp_path, capsys):
    """A model with an MLP: under zero ablation EAP-IG's top 6 edges are exactly the 6 edges of tracr's
    compiled hist program (hypotheses/tracr/hist.circuit), and the written file passes `check`."""
    import re

    from circuitdsl.cli import main

    tracr = ROOT / "hypotheses" / "tracr"
    truth = compile_source((tracr / "hist.circuit").read_text(), str(tracr / "hist.circuit")).hypothesis.edges
    assert len(truth) == 6
    text = (tracr / "hist.circuit").read_text()
    text = text.replace('"models/', f'"{tracr}/models/').replace('"data/', f'"{tracr}/data/')
    text = re.sub(r"^ablate .*$", "ablate unclaimed by zero", text, flags=re.M)
    src = tmp_path / "hist.circuit"
    src.write_text(text)
    out = tmp_path / "found.circuit"
    assert (
        main(
            [
                "attribute",
                str(src),
                "--method",
                "eap-ig",
                "--edges",
                "6",
                "-o",
                str(out),
                "--expect",
                "recovered >= 0.99",
            ]
        )
        == 0
    )
    found = compile_source(out.read_text(), str(out)).hypothesis
    assert set(found.edges) == set(truth)
    assert "MLPs are claimed like heads (1 of 1 in the circuit)" in out.read_text()
    capsys.readouterr()
    assert main(["check", str(out), "--no-tests"]) == 0, capsys.readouterr()
