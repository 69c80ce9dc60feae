"""Train the embedded `tiny` model: a 2-layer attention-only transformer that does induction.

The model has no LayerNorm and no MLP, learned absolute positions and causal attention; its
parameters use the classic transformer-lens names of docs/NATIVE_MODELS.md, and it is written
to circuitdsl/models/tiny/{config.json, model.safetensors}.

Training data (next-token loss at every position, sequences of n_ctx tokens from a vocabulary of
d_vocab ids): uniformly random tokens in which either a random segment is repeated once
(`... r ... r ...`) or a few bigrams `A B` occur a second time (`... A B ... A B ...`). Only the
repeated tokens are predictable, and only by induction: a previous-token head in layer 0 writes
"my previous token was A" at B1, and an induction head in layer 1 whose query is A attends there
(K-composition) and copies B.

    .venv/bin/python scripts/train_tiny.py            # train (seed 0, 4000 steps, 1 thread), evaluate, write
    .venv/bin/python scripts/train_tiny.py --analyze  # measure the heads of the shipped model

The shipped files come from the default command (about 90 s on one core); rerunning it gives
bit-identical weights (checked). Other `--threads` values may change the float rounding.
Final numbers: induction accuracy 1.000, logit_diff 4.84, loss 0.377 nats at the end; on `repeat`
(length 12) loss 4.03 nats on the first copy and 0.27 on the second.

`reference_forward` is the plain-torch forward pass the tests check the native backend against.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "circuitdsl" / "models" / "tiny"

CONFIG = {
    "format": "circuitdsl-native/1",
    "n_layers": 2,
    "n_heads": 4,
    "d_model": 64,
    "d_head": 16,
    "d_mlp": None,
    "act_fn": None,
    "attention": "causal",
    "positional": "learned",
    "n_ctx": 32,
    "d_vocab": 48,
    "d_vocab_out": 48,
    "weights": "model.safetensors",
    "input_vocab": [f"t{i}" for i in range(48)],
    "output_vocab": [f"t{i}" for i in range(48)],
    "description": (
        "circuitdsl's embedded induction model: 2 layers x 4 heads, attention-only, no LayerNorm, "
        "learned positions, trained by scripts/train_tiny.py on random tokens with repeated segments "
        "and repeated bigrams (A B ... A -> B)."
    ),
}


# --------------------------------------------------------------------------- the model


def init_params(cfg: dict, gen: torch.Generator) -> dict[str, torch.Tensor]:
    d, h, dh, v, vo, n = cfg["d_model"], cfg["n_heads"], cfg["d_head"], cfg["d_vocab"], cfg["d_vocab_out"], cfg["n_ctx"]

    def rnd(*shape, std):
        return (torch.randn(*shape, generator=gen) * std).requires_grad_(True)

    def zeros(*shape):
        return torch.zeros(*shape).requires_grad_(True)

    p = {"embed.W_E": rnd(v, d, std=0.1), "pos_embed.W_pos": rnd(n, d, std=0.1)}
    for L in range(cfg["n_layers"]):
        for w in ("W_Q", "W_K", "W_V"):
            p[f"blocks.{L}.attn.{w}"] = rnd(h, d, dh, std=1 / math.sqrt(d))
        for b in ("b_Q", "b_K", "b_V"):
            p[f"blocks.{L}.attn.{b}"] = zeros(h, dh)
        p[f"blocks.{L}.attn.W_O"] = rnd(h, dh, d, std=1 / math.sqrt(h * dh))
        p[f"blocks.{L}.attn.b_O"] = zeros(d)
    p["unembed.W_U"] = rnd(d, vo, std=1 / math.sqrt(d))
    p["unembed.b_U"] = zeros(vo)
    return p


def reference_forward(
    params: dict[str, torch.Tensor],
    cfg: dict,
    tokens: torch.Tensor,
    *,
    head_scale: dict[tuple[int, int], float] | None = None,
    cache: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Logits [batch, pos, d_vocab_out] of a native model, written from docs/NATIVE_MODELS.md.

    `head_scale` multiplies a head's result (0.0 = zero-ablate it); `cache`, if given, receives
    `blocks.L.attn.hook_pattern` [batch, head, q, k] and `blocks.L.attn.hook_result` [batch, pos, head, d].
    """
    T = tokens.shape[1]
    x = params["embed.W_E"][tokens]
    if cfg.get("positional", "learned") == "learned":
        x = x + params["pos_embed.W_pos"][:T]
    causal = cfg.get("attention", "causal") == "causal"
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    for L in range(cfg["n_layers"]):
        a = f"blocks.{L}.attn."
        q = torch.einsum("bpd,hde->bphe", x, params[a + "W_Q"]) + params[a + "b_Q"]
        k = torch.einsum("bpd,hde->bphe", x, params[a + "W_K"]) + params[a + "b_K"]
        v = torch.einsum("bpd,hde->bphe", x, params[a + "W_V"]) + params[a + "b_V"]
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(cfg["d_head"])
        if causal:
            scores = scores.masked_fill(mask, float("-inf"))
        pattern = scores.softmax(-1)
        z = torch.einsum("bhqk,bkhe->bqhe", pattern, v)
        result = torch.einsum("bqhe,hed->bqhd", z, params[a + "W_O"])
        if head_scale:
            scale = torch.ones(cfg["n_heads"], dtype=result.dtype)
            for (l, h), s in head_scale.items():
                if l == L:
                    scale[h] = s
            result = result * scale[None, None, :, None]
        if cache is not None:
            cache[a + "hook_pattern"] = pattern.detach()
            cache[a + "hook_result"] = result.detach()
        x = x + result.sum(2) + params[a + "b_O"]
        if cfg.get("d_mlp"):
            m = f"blocks.{L}.mlp."
            pre = x @ params[m + "W_in"] + params[m + "b_in"]
            act = torch.relu(pre) if cfg["act_fn"] == "relu" else torch.nn.functional.gelu(pre)
            x = x + act @ params[m + "W_out"] + params[m + "b_out"]
    return x @ params["unembed.W_U"] + params["unembed.b_U"]


def load_tiny(directory: Path = OUT_DIR) -> tuple[dict[str, torch.Tensor], dict]:
    """The shipped weights and config, read with plain safetensors."""
    from safetensors.torch import load_file

    cfg = json.loads((directory / "config.json").read_text())
    return load_file(str(directory / cfg["weights"])), cfg


# --------------------------------------------------------------------------- training data


def sample_batch(gen: torch.Generator, batch: int, n_ctx: int, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens with one repeated segment (40%) or 1-4 repeated bigrams (60%).

    Returns (tokens, predictable): predictable[b, p] says that token p+1 can be predicted from
    the context by induction (token p and p+1 occurred together earlier).
    """
    toks = torch.randint(0, vocab, (batch, n_ctx), generator=gen)
    pred = torch.zeros(batch, n_ctx, dtype=torch.bool)

    def ri(lo: int, hi: int) -> int:  # inclusive
        return int(torch.randint(lo, hi + 1, (1,), generator=gen))

    for b in range(batch):
        if torch.rand(1, generator=gen).item() < 0.4:
            r = ri(2, n_ctx // 2)
            start = ri(0, n_ctx - 2 * r)
            dst = start + r + ri(0, n_ctx - 2 * r - start)
            toks[b, dst : dst + r] = toks[b, start : start + r]
            pred[b, dst : dst + r - 1] = True
        else:
            for _ in range(ri(1, 4)):
                i = ri(0, n_ctx - 4)
                j = ri(i + 2, n_ctx - 2)
                toks[b, j : j + 2] = toks[b, i : i + 2]
                pred[b, j] = True
    return toks, pred


# --------------------------------------------------------------------------- evaluation


def _datasets(n: int = 512):
    sys.path.insert(0, str(ROOT))
    from circuitdsl.datasets.induction import induction, repeat

    ind = induction(tokenizer=None, n=n, seed=1234, length=16, vocab=CONFIG["d_vocab"], layouts=4, a1=-1)
    rep = repeat(tokenizer=None, n=n, seed=1234, length=12, vocab=CONFIG["d_vocab"])
    return ind, rep


@torch.no_grad()
def evaluate(params, cfg, head_scale=None) -> dict[str, float]:
    """Induction accuracy / logit diff / loss at the end, and repeat loss on each copy."""
    ind, rep = _datasets()
    toks = torch.tensor([e.tokens for e in ind])
    logits = reference_forward(params, cfg, toks, head_scale=head_scale)[:, -1]
    ans = torch.tensor([e.answers[0] for e in ind])
    wrong = torch.tensor([e.wrongs[0] for e in ind])
    lp = logits.log_softmax(-1)
    out = {
        "induction_acc": (logits.argmax(-1) == ans).float().mean().item(),
        "induction_logit_diff": (logits.gather(1, ans[:, None]) - logits.gather(1, wrong[:, None])).mean().item(),
        "induction_loss": -lp.gather(1, ans[:, None]).mean().item(),
    }
    rtoks = torch.tensor([e.tokens for e in rep])
    L = rtoks.shape[1] // 2
    rlp = reference_forward(params, cfg, rtoks, head_scale=head_scale).log_softmax(-1)
    nll = -rlp[:, :-1].gather(2, rtoks[:, 1:, None])[..., 0]  # nll[:, p] predicts token p+1
    out["repeat_loss_first_half"] = nll[:, : L - 1].mean().item()
    out["repeat_loss_second_half"] = nll[:, L : 2 * L - 1].mean().item()
    return out


def train(seed: int, steps: int, batch: int, lr: float, threads: int) -> dict[str, torch.Tensor]:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = CONFIG
    params = init_params(cfg, gen)
    opt = torch.optim.AdamW(params.values(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * (0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    )
    t0 = time.time()
    for step in range(steps):
        toks, pred = sample_batch(gen, batch, cfg["n_ctx"], cfg["d_vocab"])
        logits = reference_forward(params, cfg, toks)
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), toks[:, 1:], reduction="none")
        # every position (keeps the unpredictable ones calibrated) + the predictable ones again
        loss = nll.mean() + nll[pred[:, :-1]].mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps - 1:
            print(
                f"step {step:5d}  train loss {nll.mean().item():.4f}  on predictable {nll[pred[:, :-1]].mean().item():.4f}  ({time.time() - t0:.0f}s)",
                flush=True,
            )
    return {k: v.detach().clone().contiguous() for k, v in params.items()}


def save(params: dict[str, torch.Tensor], cfg: dict, directory: Path = OUT_DIR) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.float() for k, v in sorted(params.items())}, str(directory / cfg["weights"]))
    (directory / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


# --------------------------------------------------------------------------- analysis
# Measurements of the shipped model used to write hypotheses/induction_*.circuit. Everything
# below runs on the tiny model's 2-layer attention-only structure, by components: the residual
# stream read by a layer-1 head is embed + pos + sum of layer-0 head results + b_O of layer 0.


def _layer0(params, cfg, toks):
    cache: dict[str, torch.Tensor] = {}
    reference_forward(params, cfg, toks, cache=cache)
    emb = params["embed.W_E"][toks]
    pos = params["pos_embed.W_pos"][: toks.shape[1]].expand_as(emb)
    return emb, pos, cache["blocks.0.attn.hook_result"], cache


def _head(params, cfg, L, H, q_in, k_in, v_in):
    """Output [N, T, d_model] of head L.H given its three input streams [N, T, d_model]."""
    a = f"blocks.{L}.attn."
    q = q_in @ params[a + "W_Q"][H] + params[a + "b_Q"][H]
    k = k_in @ params[a + "W_K"][H] + params[a + "b_K"][H]
    v = v_in @ params[a + "W_V"][H] + params[a + "b_V"][H]
    T = q.shape[1]
    s = (q @ k.transpose(1, 2)) / math.sqrt(cfg["d_head"])
    s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    return (s.softmax(-1) @ v) @ params[a + "W_O"][H]


class MiniScrubber:
    """Causal scrubbing (SEMANTICS.md section 3) for a 2-layer attention-only native model.

    An independent, small re-implementation used to try hypotheses before writing them down.
    claims: {node: feature}, node in {"embed", "pos", "a0.H", "a1.H"}; feature: a function of an
    Example (hashable value) or None for `input`. edges: set of (sender, receiver, port) with port
    in {"q", "k", "v", "in"} and receiver "out" for the output. Unclaimed senders are resampled
    (one other-inputs draw per treeified node). Draws are made within the example's layout.
    at: {node: position name}: the node is claimed only there (elsewhere its output is unclaimed).
    """

    def __init__(self, params, cfg, examples, claims, edges, seed=0, at=None):
        self.p, self.cfg, self.ex = params, cfg, examples
        self.at = {}
        for node, pname in (at or {}).items():
            m = torch.zeros(len(examples), len(examples[0].tokens), 1, dtype=torch.bool)
            for i, e in enumerate(examples):
                m[i, list(e.position(pname))] = True
            self.at[node] = m
        self.toks = torch.tensor([e.tokens for e in examples])
        self.claims, self.edges = claims, set(edges)
        self.g = torch.Generator().manual_seed(seed)
        self.layout_of = [e.layout for e in examples]
        self.by_layout: dict = {}
        for i, e in enumerate(examples):
            self.by_layout.setdefault(e.layout, []).append(i)
        self._class_cache: dict = {}

    def _pick(self, pool):
        return pool[int(torch.randint(len(pool), (1,), generator=self.g))]

    def draw_other(self, idx):
        return torch.tensor([self._pick(self.by_layout[self.layout_of[i]]) for i in idx.tolist()])

    def draw_class(self, idx, node):
        f = self.claims[node]
        if f is None:
            return idx
        if node not in self._class_cache:
            groups: dict = {}
            for i, e in enumerate(self.ex):
                groups.setdefault((e.layout, f(e)), []).append(i)
            self._class_cache[node] = {i: groups[(e.layout, f(e))] for i, e in enumerate(self.ex)}
        cls = self._class_cache[node]
        return torch.tensor([self._pick(cls[i]) for i in idx.tolist()])

    def clean(self, node, idx):
        toks = self.toks[idx]
        if node == "embed":
            return self.p["embed.W_E"][toks]
        if node == "pos":
            return self.p["pos_embed.W_pos"][: toks.shape[1]].expand(len(idx), -1, -1)
        L, H = (int(x) for x in node[1:].split("."))
        senders = self.senders(L)
        ins = sum(self.clean(s, idx) for s in senders) + self.bias(L)
        return _head(self.p, self.cfg, L, H, ins, ins, ins)

    def senders(self, L):
        out = ["embed", "pos"]
        for l in range(L):
            out += [f"a{l}.{h}" for h in range(self.cfg["n_heads"])]
        return out

    def bias(self, L):
        return sum(self.p[f"blocks.{l}.attn.b_O"] for l in range(L)) if L else 0.0

    def scrub(self, node, idx, ports):
        """Output of treeified `node` on inputs idx; ports: the receiver's ports to fill."""
        L = self.cfg["n_layers"] if node == "out" else int(node[1:].split(".")[0])
        senders = self.senders(L)
        x_r = self.draw_other(idx)
        unclaimed = {s: None for s in senders}
        streams = {}
        for port in ports:
            total = self.bias(L)
            for s in senders:
                if (s, node, port) in self.edges:
                    x_s = self.draw_class(idx, s)
                    claimed = self.clean(s, x_s) if s in ("embed", "pos") else self.scrub(s, x_s, "qkv")
                    if s in self.at:  # claimed only at its positions: unclaimed (x_r) elsewhere
                        if unclaimed[s] is None:
                            unclaimed[s] = self.clean(s, x_r)
                        claimed = torch.where(self.at[s][idx], claimed, unclaimed[s])
                    total = total + claimed
                else:
                    if unclaimed[s] is None:
                        unclaimed[s] = self.clean(s, x_r)
                    total = total + unclaimed[s]
            streams[port] = total
        if node == "out":
            return streams["in"] @ self.p["unembed.W_U"] + self.p["unembed.b_U"]
        Lh, H = (int(x) for x in node[1:].split("."))
        return _head(self.p, self.cfg, Lh, H, streams["q"], streams["k"], streams["v"])

    def logits(self):
        idx = torch.arange(len(self.ex))
        return self.scrub("out", idx, ["in"])

    def baseline_logits(self):
        idx = torch.arange(len(self.ex))
        return reference_forward(self.p, self.cfg, self.toks[self.draw_other(idx)])


def _metric(logits_last, examples, kind):
    ans = torch.tensor([e.answers[0] for e in examples])
    if kind == "logit_diff":
        wrong = torch.tensor([e.wrongs[0] for e in examples])
        return (logits_last.gather(1, ans[:, None]) - logits_last.gather(1, wrong[:, None]))[:, 0]
    return -logits_last.log_softmax(-1).gather(1, ans[:, None])[:, 0]  # loss


@torch.no_grad()
def recovered(params, cfg, examples, claims, edges, metric="loss", seed=0, at=None):
    s = MiniScrubber(params, cfg, examples, claims, edges, seed, at)
    m_model = _metric(reference_forward(params, cfg, s.toks)[:, -1], examples, metric).mean()
    m_scrub = _metric(s.logits()[:, -1], examples, metric).mean()
    m_base = _metric(s.baseline_logits()[:, -1], examples, metric).mean()
    return {
        "model": m_model.item(),
        "scrubbed": m_scrub.item(),
        "baseline": m_base.item(),
        "recovered": ((m_scrub - m_base) / (m_model - m_base)).item(),
    }


@torch.no_grad()
def analyze(params, cfg) -> None:
    ind, rep = _datasets()
    toks = torch.tensor([e.tokens for e in ind])
    _, _, _, cache = _layer0(params, cfg, toks)
    reference_forward(params, cfg, toks, cache=cache)
    T = toks.shape[1]
    b1 = torch.tensor([e.position("B1")[0] for e in ind])
    a1 = torch.tensor([e.position("A1")[0] for e in ind])
    ar = torch.arange(len(ind))
    print("attention scores (induction dataset, 512 examples, 4 layouts)")
    print("head   prev-token  B1->A1   end->B1  end->A1  end->self")
    for L in range(cfg["n_layers"]):
        pat = cache[f"blocks.{L}.attn.hook_pattern"]
        for H in range(cfg["n_heads"]):
            prev = torch.stack([pat[:, H, p, p - 1] for p in range(1, T)]).mean().item()
            print(
                f"a{L}.{H}   {prev:9.3f}  {pat[ar, H, b1, a1].mean().item():7.3f}  {pat[ar, H, T - 1, b1].mean().item():8.3f}"
                f"  {pat[ar, H, T - 1, a1].mean().item():7.3f}  {pat[:, H, T - 1, T - 1].mean().item():8.3f}"
            )
    base = evaluate(params, cfg)
    print("\nclean:", json.dumps({k: round(v, 3) for k, v in base.items()}))
    print("zero-ablating one head:")
    for L in range(cfg["n_layers"]):
        for H in range(cfg["n_heads"]):
            m = evaluate(params, cfg, head_scale={(L, H): 0.0})
            print(f"  a{L}.{H}: " + json.dumps({k: round(v, 3) for k, v in m.items()}))
    print("\nresample-ablating one head (mini scrubber, every other edge claimed with `input`):")
    nodes = ["embed", "pos"] + [f"a{L}.{H}" for L in range(cfg["n_layers"]) for H in range(cfg["n_heads"])]
    for drop in nodes[2:]:
        claims = {n: None for n in nodes}
        edges = _all_edges(cfg, exclude_sender=drop)
        r = recovered(params, cfg, list(ind), claims, edges, "loss")
        print(
            f"  without {drop}: loss {r['scrubbed']:.3f} (model {r['model']:.3f}, baseline {r['baseline']:.3f}), recovered {r['recovered']:.3f}"
        )


def _all_edges(cfg, exclude_sender=None):
    edges = set()
    nodes = ["embed", "pos"] + [f"a{L}.{H}" for L in range(cfg["n_layers"]) for H in range(cfg["n_heads"])]
    for s in nodes:
        if s == exclude_sender:
            continue
        Ls = -1 if s in ("embed", "pos") else int(s[1])
        for r in nodes[2:]:
            if int(r[1]) > Ls:
                edges |= {(s, r, p) for p in "qkv"}
        edges.add((s, "out", "in"))
    return edges


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--analyze", action="store_true", help="measure the heads of the model in --out")
    args = ap.parse_args(argv)
    if args.analyze:
        torch.set_num_threads(args.threads)
        params, cfg = load_tiny(args.out)
        analyze(params, cfg)
        return 0
    params = train(args.seed, args.steps, args.batch, args.lr, args.threads)
    metrics = evaluate(params, CONFIG)
    print("final:", json.dumps({k: round(v, 4) for k, v in metrics.items()}))
    save(params, CONFIG, args.out)
    print(f"wrote {args.out / 'config.json'} and {args.out / CONFIG['weights']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
