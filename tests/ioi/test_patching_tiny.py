"""Patching sweeps on a tiny random Llama (GQA) bridge: fast checks against hand-written
transformer-lens hooks on the bridge itself (`model.model`), which the sweeps do not use."""

from __future__ import annotations

import math
import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformer_lens")

from circuitdsl import patching as P  # noqa: E402
from circuitdsl.datasets.core import Example  # noqa: E402

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def model(tiny_llama_dir):
    torch.set_num_threads(1)
    return P.boot_model(tiny_llama_dir)


def _pair(n=6, T=7, seed=0):
    rng = random.Random(seed)
    clean, corrupt = [], []
    for i in range(n):
        toks = [rng.randrange(3, 64) for _ in range(T)]
        bad = list(toks)
        bad[1], bad[3] = rng.randrange(3, 64), rng.randrange(3, 64)
        a, w = rng.sample(range(3, 64), 2)
        pos = {"A": 1, "B": 3, "END": T - 1}
        clean.append(Example.make(toks, a, wrongs=w, positions=pos, id=f"c{i}"))
        corrupt.append(Example.make(bad, a, wrongs=w, positions=pos, id=f"x{i}"))
    return clean, corrupt


def _ld(model, clean, hooks=()):
    toks = torch.tensor([e.tokens for e in clean])
    with torch.inference_mode(), model.model.hooks(fwd_hooks=list(hooks)):
        lg = model.model(toks)[:, -1]
    a = torch.tensor([e.answers[0] for e in clean])
    w = torch.tensor([e.wrongs[0] for e in clean])
    return float((lg.gather(1, a[:, None]) - lg.gather(1, w[:, None])).double().mean())


def _cache(model, examples, name):
    with torch.inference_mode():
        _, cache = model.model.run_with_cache(
            torch.tensor([e.tokens for e in examples]), names_filter=lambda n: n == name
        )
    return cache[name].clone()


def test_head_sweep_matches_manual_patch(model):
    clean, corrupt = _pair()
    r = P.head_sweep(model, clean, corrupt, positions=["END"], max_rows=1000)
    assert len(r.patched) == 4 and len(r.patched[0]) == 4
    assert r.clean == pytest.approx(_ld(model, clean), abs=1e-4)
    assert r.corrupt == pytest.approx(_ld(model, corrupt), abs=1e-4)
    for L, H in ((0, 1), (2, 3), (3, 0)):
        name = f"blocks.{L}.attn.hook_result"
        src = _cache(model, corrupt, name)

        def hook(act, hook, H=H, src=src):
            act[:, -1, H] = src[:, -1, H]
            return act

        assert r.patched[L][H] == pytest.approx(_ld(model, clean, [(name, hook)]), abs=1e-4)
    # some head matters in a random model with big weights
    assert max(abs(v - r.clean) for row in r.patched for v in row) > 1e-3
    assert not math.isnan(r.effect(r.patched[0][0]))


def test_results_do_not_depend_on_chunking(model):
    clean, corrupt = _pair()
    a = P.head_sweep(model, clean, corrupt, max_rows=1000)
    b = P.head_sweep(model, clean, corrupt, max_rows=1)
    for ra, rb in zip(a.patched, b.patched):
        assert ra == pytest.approx(rb, abs=1e-4)


def test_mlp_sweep_matches_manual_patch(model):
    clean, corrupt = _pair()
    r = P.mlp_sweep(model, clean, corrupt)
    name = "blocks.1.hook_mlp_out"
    src = _cache(model, corrupt, name)

    def hook(act, hook):
        act[:] = src
        return act

    assert r.patched[1][0] == pytest.approx(_ld(model, clean, [(name, hook)]), abs=1e-4)


def test_all_heads_of_last_layer_at_all_positions_reach_corrupt_when_last_layer_only_differs(model):
    # patching a head everywhere = patching its output; patching every head and MLP of every layer
    # reproduces the corrupted run; here: one head's patch equals adding its delta to attn_out
    clean, corrupt = _pair()
    r = P.head_sweep(model, clean, corrupt)
    name = "blocks.2.hook_attn_out"
    d = (
        _cache(model, corrupt, "blocks.2.attn.hook_result")[:, :, 1]
        - _cache(model, clean, "blocks.2.attn.hook_result")[:, :, 1]
    )

    def hook(act, hook):
        return act + d

    assert r.patched[2][1] == pytest.approx(_ld(model, clean, [(name, hook)]), abs=1e-4)


def test_path_sweep_matches_manual_q_patch(model):
    clean, corrupt = _pair()
    recv = P.parse_receiver("a2.1.q")
    r = P.path_sweep(model, clean, corrupt, recv, positions=["END"])
    assert all(math.isnan(v) for v in r.patched[2]) and all(math.isnan(v) for v in r.patched[3])
    assert math.isnan(r.mlp_patched[2])
    name = "blocks.0.attn.hook_result"
    d = _cache(model, corrupt, name)[:, :, 3] - _cache(model, clean, name)[:, :, 3]
    d[:, :-1] = 0

    def hook(act, hook):
        act[:, :, 1] = act[:, :, 1] + d
        return act

    assert r.patched[0][3] == pytest.approx(_ld(model, clean, [("blocks.2.hook_q_input", hook)]), abs=1e-4)
    # the MLP sender of layer 1
    mo = "blocks.1.hook_mlp_out"
    dm = _cache(model, corrupt, mo) - _cache(model, clean, mo)
    dm[:, :-1] = 0

    def hook_m(act, hook):
        act[:, :, 1] = act[:, :, 1] + dm
        return act

    assert r.mlp_patched[1] == pytest.approx(_ld(model, clean, [("blocks.2.hook_q_input", hook_m)]), abs=1e-4)


def test_path_sweep_gqa_kv_patched_once_per_group(model):
    clean, corrupt = _pair()
    # 4 query heads, 2 key/value heads: heads 0 and 1 share k/v group 0
    one = P.path_sweep(model, clean, corrupt, P.parse_receiver("a3.0.k"), include_mlps=False)
    both = P.path_sweep(model, clean, corrupt, P.parse_receiver("a3.0.k,a3.1.k"), include_mlps=False)
    other = P.path_sweep(model, clean, corrupt, P.parse_receiver("a3.2.k"), include_mlps=False)
    for L in range(3):
        assert one.patched[L] == pytest.approx(both.patched[L], abs=1e-6)
    assert any(abs(a - b) > 1e-5 for a, b in zip(one.patched[1], other.patched[1]))


def test_hooks_removed_after_sweeps_and_errors(model):
    clean, corrupt = _pair()
    P.head_sweep(model, clean, corrupt, positions=["A"])

    def boom(done, total):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        P.path_sweep(model, clean, corrupt, P.parse_receiver("a3.1"), progress=boom)
    assert all(not hp.fwd_hooks for hp in model.model.hook_dict.values())
    assert _ld(model, clean) == pytest.approx(P.mean_logit_diff(model, clean), abs=1e-5)


def test_bad_inputs_are_patching_errors(model):
    clean, corrupt = _pair()
    with pytest.raises(P.PatchingError, match="unknown position `NOPE`"):
        P.head_sweep(model, clean, corrupt, positions=["NOPE"])
    with pytest.raises(P.PatchingError, match="differ in size"):
        P.head_sweep(model, clean, corrupt[:-1])
    short = [Example.make(e.tokens[:-1], e.answers, wrongs=e.wrongs, positions={"END": 5}) for e in corrupt]
    with pytest.raises(P.PatchingError, match="layout"):
        P.head_sweep(model, clean, short)
    with pytest.raises(P.PatchingError, match="bad receiver"):
        P.parse_receiver("a2.1.z")
    with pytest.raises(P.PatchingError, match="heads 0..3"):
        P.parse_receiver("a2.7.q", 4, 4)


def test_json_and_ranking(model):
    clean, corrupt = _pair()
    r = P.head_sweep(model, clean, corrupt, dataset="d", corruption="x")
    j = r.to_json()
    assert j["kind"] == "heads" and len(j["effect"]) == 4
    eff = [abs(e["effect"]) for e in j["ranked"]]
    assert eff == sorted(eff, reverse=True) and len(eff) == 16


def test_runs_from_a_layer_call_only_the_later_blocks(model):
    # the bridge's own start_at_layer runs every block; sweeps call blocks L.. directly instead, with
    # the arguments each block received in the clean run, and must get the same logits
    from circuitdsl.backends.protocol import Site

    clean, _ = _pair(n=4, T=7)
    toks = torch.tensor([e.tokens for e in clean])
    n = model.shape.n_layers
    with torch.inference_mode():
        full, cache = model.run(toks, capture=[(Site.RESID_PRE, L) for L in range(n)])
        assert all(model.block_args.store.get((L, 7)) is not None for L in range(n))
        calls = []
        handles = [
            blk.register_forward_pre_hook(lambda m, a, i=i: calls.append(i)) for i, blk in enumerate(model.model.blocks)
        ]
        try:
            for L in range(n):
                calls.clear()
                got = P._from_layer(model, cache[(Site.RESID_PRE, L)].repeat(3, 1, 1), L, {}, [2, 6])
                assert calls == list(range(L, n))
                assert torch.allclose(got, full.repeat(3, 1, 1)[:, [2, 6]], atol=1e-5)
        finally:
            for hd in handles:
                hd.remove()


def test_lean_run_from_equals_a_plain_run_and_restores_the_bridge_flags(model):
    # sweeps ask the bridge for lean blocks (per-head results and split q/k/v inputs only where an
    # edit needs them): the same logits to float rounding, a Q_INPUT edit still lands, and the flags
    # are back on afterwards (the engine's captures need them)
    from circuitdsl.backends.protocol import Site

    clean, corrupt = _pair(n=4, T=7)
    toks = torch.tensor([e.tokens for e in clean])
    with torch.inference_mode():
        full, cache = model.run(toks, capture=[(Site.RESID_PRE, 1)])

        def bump(act):
            act = act.clone()
            act[:, :, 1] += 0.5
            return act

        for site in (Site.RESULT, Site.Q_INPUT, Site.V_INPUT, Site.MLP_OUT):
            edits = {(site, 2): bump}
            plain = model.run_from(1, cache[(Site.RESID_PRE, 1)], edits=edits, positions=[6])
            lean = model.run_from(1, cache[(Site.RESID_PRE, 1)], edits=edits, positions=[6], lean=True)
            assert torch.allclose(plain, lean, atol=1e-5), site
            assert not torch.allclose(plain, full[:, [6]], atol=1e-3), site  # the edit changed something
    assert model.model.cfg.use_attn_result and model.model.cfg.use_split_qkv_input
    assert all(b.attn.config.use_attn_result and b.attn.config.use_split_qkv_input for b in model.model.blocks)
