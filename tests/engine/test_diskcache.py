"""The on-disk cache of clean activations (issue 17, engine/diskcache.py): a second check of the same file
reads the clean batches instead of running the model, with bitwise the same scores; anything the
activations depend on (weights, dataset, ablation dataset, code) misses; a damaged entry is recomputed
with a warning; the budget evicts; `--no-cache` neither reads nor writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from circuitdsl.compiler import compile_source
from circuitdsl.engine import diskcache

pytestmark = pytest.mark.engine

SRC = """model {model}
dataset ind = induction(n = 24, seed = {seed}, length = 16, layouts = 2)
dataset other = induction(n = 24, seed = {other}, length = 16, layouts = 2)
metric loss
ablate unclaimed by resample from other
group prev = a0.0, a0.2
node prev depends on nothing
edge embed, pos -> prev
edge prev -> a1.0.q, a1.0.k, a1.0.v
edge embed -> a1.0
edge a1.0 -> out
set bootstrap = 20
set completeness.sizes = [1]
set completeness.samples = 1
set completeness.greedy = 0
"""


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "act"
    monkeypatch.setenv(diskcache.DIR_ENV, str(d))
    monkeypatch.delenv(diskcache.OFF_ENV, raising=False)
    monkeypatch.delenv(diskcache.MIB_ENV, raising=False)
    return d


def _hyp(model="tiny", seed=0, other=1):
    return compile_source(SRC.format(model=model, seed=seed, other=other), "x.circuit").hypothesis


def _counted(monkeypatch, h) -> list[int]:
    """Count the backend's clean runs (the loader hands run_check this same backend object)."""
    from circuitdsl.backends.loader import load_backend

    b = load_backend(h.model)
    real = type(b).clean_run
    calls = [0]

    def clean_run(tokens):
        calls[0] += 1
        return real(b, tokens)

    monkeypatch.setattr(b, "clean_run", clean_run)
    return calls


def _scores(r) -> str:
    """The result's JSON without what measures the run rather than the hypothesis (times, work done)."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("timings", "cost", "seconds")}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return json.dumps(strip(json.loads(json.dumps(r.to_json()))), sort_keys=True)


def _entries(d: Path) -> list[Path]:
    return sorted(d.glob(f"*/*{diskcache.SUFFIX}"))


def _check(h, **kw):
    from circuitdsl.engine.check import run_check

    return run_check(h, minimality=False, completeness=False, **kw)


def test_a_second_check_reads_the_cache_runs_no_clean_pass_and_scores_bitwise_the_same(monkeypatch, cache_dir):
    h = _hyp()
    calls = _counted(monkeypatch, h)
    cold = _check(h)
    n_cold = calls[0]
    assert n_cold == 4  # 2 layouts of the dataset + 2 of the ablation dataset, one batch each
    assert len(_entries(cache_dir)) == 4
    assert dict(cold.cost)["clean_batches_written"] == 4 and dict(cold.cost)["clean_batches_cached"] == 0
    warm = _check(h)
    assert calls[0] == n_cold  # no clean run the second time
    assert dict(warm.cost)["clean_batches_cached"] == 4 and dict(warm.cost)["forward_equiv.clean_run"] == 0
    assert _scores(warm) == _scores(cold)
    # and the same as a check that never saw the cache
    assert _scores(_check(h, cache=False)) == _scores(cold)


def test_an_edited_hypothesis_keeps_the_entries(monkeypatch, cache_dir):
    h = _hyp()
    _check(h)
    h2 = compile_source(SRC.format(model="tiny", seed=0, other=1) + "set seed = 3\n", "x.circuit").hypothesis
    calls = _counted(monkeypatch, h2)
    r = _check(h2)
    assert calls[0] == 0 and dict(r.cost)["clean_batches_cached"] == 4


def test_changed_dataset_or_ablation_dataset_or_code_misses(monkeypatch, cache_dir):
    _check(_hyp())
    h = _hyp(seed=5)  # the main dataset changes: its 2 batches miss, the ablation dataset's hit
    calls = _counted(monkeypatch, h)
    _check(h)
    assert calls[0] == 2
    h = _hyp(other=7)  # the ablation dataset changes
    calls[0] = 0
    _check(h)
    assert calls[0] == 2
    monkeypatch.setattr(diskcache, "code_digest", lambda: "another version of the backends")
    calls[0] = 0
    _check(_hyp())
    assert calls[0] == 4


def test_changed_model_weights_miss(tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    from circuitdsl.backends import loader
    from circuitdsl.models.shapes import TINY_DIR

    d = tmp_path / "tinycopy"
    shutil.copytree(TINY_DIR, d)
    h = _hyp(model=f'"{d}"')
    cold = _check(h)
    calls = _counted(monkeypatch, h)
    _check(h)
    assert calls[0] == 0
    w = load_file(str(d / "model.safetensors"))
    name = sorted(k for k in w if w[k].ndim == 2)[0]
    w[name] = w[name].clone()
    w[name][0, 0] += 1e-3  # same file size, other content
    save_file(w, str(d / "model.safetensors"))
    loader.evict(d)
    h = _hyp(model=f'"{d}"')
    calls = _counted(monkeypatch, h)
    changed = _check(h)
    assert calls[0] == 4
    assert _scores(changed) != _scores(cold)


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_a_damaged_entry_is_detected_warned_and_recomputed(monkeypatch, cache_dir, capsys, damage):
    h = _hyp()
    cold = _check(h)
    victim = _entries(cache_dir)[0]
    blob = bytearray(victim.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0x40
    elif damage == "truncate":
        blob = blob[: len(blob) // 3]
    else:
        blob = bytearray(b"not an entry at all")
    victim.write_bytes(bytes(blob))
    capsys.readouterr()
    calls = _counted(monkeypatch, h)
    warm = _check(h)
    assert calls[0] == 1  # only the damaged batch is recomputed
    err = capsys.readouterr().err
    assert "damaged" in err and victim.name in err
    assert _scores(warm) == _scores(cold)
    # rewritten whole: a third check reads it
    calls[0] = 0
    _check(h)
    assert calls[0] == 0


def test_the_budget_evicts_least_recently_used(tmp_path):
    import torch

    from circuitdsl.backends.base import CleanCache

    def part(seed):
        g = torch.Generator().manual_seed(seed)
        t = torch.randn(2, 3, 64, generator=g)
        return CleanCache(t, None, (t,), (t[:, :, None, :].clone(),), (), (), t, None)

    one = len(diskcache._encode(part(0), [torch.zeros(1)] * 2)) + 64
    c = diskcache.ActivationCache(tmp_path / "c", budget=3 * one, model="m")
    keys = [c.key(torch.tensor([[i, 1, 2], [3, 4, 5]]), [(2,), (2,)]) for i in range(4)]
    import os
    import time

    for i, k in enumerate(keys[:3]):
        c.put(k, part(i), [torch.zeros(1)] * 2)
        os.utime(c.path(k), (time.time() - 100 + i, time.time() - 100 + i))  # entry i used at t0 + i
    assert c.get(keys[0], 2, 3, "cpu") is not None  # entry 0 is now the most recently used
    c.put(keys[3], part(3), [torch.zeros(1)] * 2)
    left = {p.stem for p in c.root.glob(f"*/*{diskcache.SUFFIX}")}
    assert left == {keys[0], keys[2], keys[3]} and c.evicted == 1
    assert sum(p.stat().st_size for p in c.root.glob(f"*/*{diskcache.SUFFIX}")) <= c.budget
    got = c.get(keys[3], 2, 3, "cpu")
    assert got is not None and torch.equal(got[0].embed, part(3).embed)
    # an entry over the whole budget is not written
    small = diskcache.ActivationCache(tmp_path / "s", budget=one // 2, model="m")
    small.put(keys[0], part(0), [torch.zeros(1)] * 2)
    assert small.writes == 0 and not list(small.root.glob("*/*"))


def test_a_budget_from_the_environment_bounds_a_check(monkeypatch, cache_dir):
    h = _hyp()
    _check(h)
    sizes = sorted(p.stat().st_size for p in _entries(cache_dir))
    shutil.rmtree(cache_dir)
    monkeypatch.setenv(diskcache.MIB_ENV, str((sizes[-1] + sizes[-2] + 100) / 2**20))  # room for two entries
    _check(h)
    assert len(_entries(cache_dir)) == 2
    monkeypatch.setenv(diskcache.MIB_ENV, "0")  # 0: off
    shutil.rmtree(cache_dir)
    _check(h)
    assert not cache_dir.exists()


def test_no_cache_on_the_command_line_neither_reads_nor_writes(monkeypatch, cache_dir, tmp_path, capsys):
    from circuitdsl.cli import main

    f = tmp_path / "x.circuit"
    f.write_text(SRC.format(model="tiny", seed=0, other=1))
    h = _hyp()
    calls = _counted(monkeypatch, h)
    assert main(["check", str(f), "--no-cache", "--only", "scores", "--no-tests"]) in (0, 1)
    assert calls[0] == 4 and not cache_dir.exists()  # nothing written
    _check(h)  # fill the cache
    calls[0] = 0
    assert main(["check", str(f), "--no-cache", "--only", "scores", "--no-tests"]) in (0, 1)
    assert calls[0] == 4  # nothing read
    calls[0] = 0
    assert main(["check", str(f), "--only", "scores", "--no-tests"]) in (0, 1)
    assert calls[0] == 0  # and without --no-cache the cache is read
    monkeypatch.setenv(diskcache.OFF_ENV, "1")
    assert main(["check", str(f), "--only", "scores", "--no-tests"]) in (0, 1)
    assert calls[0] == 4


def test_curve_and_falsify_use_the_cache_unless_told_not_to(cache_dir):
    from circuitdsl.engine.curves import engine_for
    from circuitdsl.falsify import Falsifier

    h = _hyp()
    with engine_for(h, seed=0, cache=False):
        pass
    Falsifier(h, cache=False).dataset_scores()
    assert not cache_dir.exists()
    with engine_for(h, seed=0) as (engine, _, _):
        assert engine.disk_cache is not None and engine.disk_cache.writes == 4
    before = Falsifier(h, cache=False).dataset_scores()
    fz = Falsifier(h)
    assert [a.tolist() for a in fz.dataset_scores()] == [a.tolist() for a in before]
    assert len(_entries(cache_dir)) == 4


def test_a_cached_batch_still_lets_the_bridge_call_blocks_alone(hf_llama, tmp_path, monkeypatch):
    """A clean run also records the arguments each block is called with (BlockArgs); a batch read from the
    cache records them too, or every block run of the scrub falls back to running the model from layer 0
    (a warm SmolLM2 check was 2x slower than a cold one before this)."""
    import torch
    from common import setup
    from helpers import EMBED, OUT, e, head, hyp, qkv

    from circuitdsl.engine.scrub import Engine
    from circuitdsl.ir import Ablation

    _, b, dsets = setup(hf_llama, n=6, length=7)
    h = hyp(hf_llama, [], [*qkv(EMBED, head(1, 0)), e(head(1, 0), OUT)])
    c = diskcache.ActivationCache(tmp_path / "c", budget=1 << 30, model="llama")
    n = b.shape.n_layers
    with torch.no_grad():
        b.block_args.clear()
        cold = Engine(b, dsets, "D", Ablation(), disk_cache=c).scrub(h).logits
        b.block_args.clear()  # as in a fresh process
        fallbacks = [0]
        real = type(b)._fallback_block

        def counted(layer, resid):
            fallbacks[0] += 1
            return real(b, layer, resid)

        monkeypatch.setattr(b, "_fallback_block", counted)
        eng = Engine(b, dsets, "D", Ablation(), disk_cache=c)
        assert c.hits == 1 and b.block_args.has(7, range(n))
        warm = eng.scrub(h).logits
    assert fallbacks[0] == 0
    assert all(torch.equal(x, y) for x, y in zip(cold, warm, strict=True))
