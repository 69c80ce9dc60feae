"""The shipped tiny model: its files follow docs/NATIVE_MODELS.md and it really does induction.

The reference forward pass is the plain-torch one in scripts/train_tiny.py (written from
docs/NATIVE_MODELS.md); the native backend must agree with it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from circuitdsl.datasets.induction import TINY_N_CTX, TINY_VOCAB, induction, repeat  # noqa: E402
from circuitdsl.models.shapes import TINY_DIR, resolve_shape  # noqa: E402

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[2]


def _train_tiny():
    spec = importlib.util.spec_from_file_location("train_tiny", ROOT / "scripts" / "train_tiny.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("train_tiny", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    cfg = json.loads((TINY_DIR / "config.json").read_text())
    params = safetensors_torch.load_file(str(TINY_DIR / cfg["weights"]))
    return params, cfg, _train_tiny().reference_forward


def test_files_follow_the_native_format(tiny):
    params, cfg, _ = tiny
    assert cfg["format"] == "circuitdsl-native/1"
    assert (cfg["d_vocab"], cfg["n_ctx"]) == (TINY_VOCAB, TINY_N_CTX)
    assert cfg["d_mlp"] is None and cfg["attention"] == "causal" and cfg["positional"] == "learned"
    L, H, D, Dh, V = cfg["n_layers"], cfg["n_heads"], cfg["d_model"], cfg["d_head"], cfg["d_vocab"]
    expected = {
        "embed.W_E": (V, D),
        "pos_embed.W_pos": (cfg["n_ctx"], D),
        "unembed.W_U": (D, cfg["d_vocab_out"]),
        "unembed.b_U": (cfg["d_vocab_out"],),
    }
    for layer in range(L):
        a = f"blocks.{layer}.attn."
        expected |= {a + w: (H, D, Dh) for w in ("W_Q", "W_K", "W_V")}
        expected |= {a + b: (H, Dh) for b in ("b_Q", "b_K", "b_V")}
        expected |= {a + "W_O": (H, Dh, D), a + "b_O": (D,)}
    assert {k: tuple(v.shape) for k, v in params.items()} == expected
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in params.values())
    assert (TINY_DIR / cfg["weights"]).stat().st_size < 1_000_000
    name, shape = resolve_shape("tiny")
    assert (name, shape.n_layers, shape.n_heads, shape.has_mlp, shape.pos_embed) == ("tiny", L, H, False, "learned")


def test_induction_far_above_chance(tiny):
    params, cfg, forward = tiny
    exs = induction(tokenizer=None, n=256, seed=7, length=16, vocab=TINY_VOCAB, layouts=4, a1=-1)
    with torch.no_grad():
        logits = forward(params, cfg, torch.tensor([e.tokens for e in exs]))[:, -1]
    ans = torch.tensor([e.answers[0] for e in exs])
    wrong = torch.tensor([e.wrongs[0] for e in exs])
    acc = (logits.argmax(-1) == ans).float().mean().item()
    diff = (logits.gather(1, ans[:, None]) - logits.gather(1, wrong[:, None])).mean().item()
    assert acc > 0.95, acc  # chance is 1/48
    assert diff > 3.0, diff
    # without the induction mechanism (every layer-1 head zeroed) the answer is not predictable
    with torch.no_grad():
        ablated = forward(
            params, cfg, torch.tensor([e.tokens for e in exs]), head_scale={(1, h): 0.0 for h in range(4)}
        )[:, -1]
    assert (ablated.argmax(-1) == ans).float().mean().item() < 0.2


def test_repeat_loss_drops_on_the_second_copy(tiny):
    params, cfg, forward = tiny
    exs = repeat(tokenizer=None, n=128, seed=3, length=16, vocab=TINY_VOCAB)
    toks = torch.tensor([e.tokens for e in exs])
    with torch.no_grad():
        lp = forward(params, cfg, toks).log_softmax(-1)
    nll = -lp[:, :-1].gather(2, toks[:, 1:, None])[..., 0]
    first, second = nll[:, :15].mean().item(), nll[:, 16:31].mean().item()
    assert first > 3.0 and second < 0.5, (first, second)  # log(48) = 3.87


def test_reference_forward_matches_a_loop_implementation(tiny):
    """Check the vectorized reference against a per-position loop (guards the reference itself)."""
    params, cfg, forward = tiny
    toks = torch.tensor([[3, 17, 5, 3, 40, 17]])
    x = params["embed.W_E"][toks[0]] + params["pos_embed.W_pos"][:6]
    for layer in range(cfg["n_layers"]):
        a = f"blocks.{layer}.attn."
        out = torch.zeros_like(x)
        for p in range(6):
            for h in range(cfg["n_heads"]):
                q = x[p] @ params[a + "W_Q"][h] + params[a + "b_Q"][h]
                ks = x[: p + 1] @ params[a + "W_K"][h] + params[a + "b_K"][h]
                vs = x[: p + 1] @ params[a + "W_V"][h] + params[a + "b_V"][h]
                w = torch.softmax(ks @ q / cfg["d_head"] ** 0.5, 0)
                out[p] += (w @ vs) @ params[a + "W_O"][h]
        x = x + out + params[a + "b_O"]
    loop = x @ params["unembed.W_U"] + params["unembed.b_U"]
    torch.testing.assert_close(forward(params, cfg, toks)[0], loop, rtol=1e-5, atol=1e-5)


def test_native_backend_matches_reference(tiny):
    try:
        from circuitdsl.backends.native import load_native
    except ImportError as e:  # the backend is written in parallel
        pytest.skip(f"circuitdsl.backends.native.load_native is not available yet ({e})")
    params, cfg, forward = tiny
    model = load_native(TINY_DIR)
    exs = induction(tokenizer=None, n=32, seed=1, length=32, vocab=TINY_VOCAB, layouts=3, a1=-1)
    toks = torch.tensor([e.tokens for e in exs])
    with torch.no_grad():
        got = model(toks)
        ref = forward(params, cfg, toks)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
