"""Lint knows parallel blocks from the model's config (SEMANTICS.md section 1): in GPT-J, GPT-NeoX/Pythia
(use_parallel_residual), Phi, Falcon and Cohere the MLP of layer L reads only layers < L, so an edge from
a head of layer L into MLP L is an error (E303); in sequential blocks it is fine."""

from __future__ import annotations

import json

import pytest

from circuitdsl.compiler import compile_source
from circuitdsl.models.shapes import is_parallel, shape_from_config

SRC = """model "{d}"
dataset d = induction(n = 8, seed = 0, length = 8, layouts = 1)
metric logit_diff
edge embed -> a0.1
edge a0.1 -> m0
edge m0 -> out
"""


@pytest.mark.parametrize(
    "name, parallel",
    [
        ("gptj", True),
        ("phi", True),
        ("pythia", True),
        ("gpt_neox", False),
        ("falcon", True),
        ("cohere", True),
        ("llama", False),
        ("gpt2", False),
    ],
)
def test_head_into_its_own_layers_mlp(family_models, name, parallel):
    d = family_models(name)
    cfg = json.loads((d / "config.json").read_text())
    assert is_parallel(cfg) is parallel and shape_from_config(cfg).parallel_attn_mlp is parallel
    r = compile_source(SRC.format(d=d), str(d / "h.circuit"))
    codes = [x.code for x in r.diagnostics]
    if parallel:
        assert "E303" in codes, r.render()
        e303 = next(x for x in r.diagnostics if x.code == "E303")
        assert "a0.1 -> m0" in e303.message and "heads of layer L" not in (e303.hint or "")
    else:
        assert "E303" not in codes, r.render()


def test_configs_without_torch():
    """The rules on plain config dicts, as the compiler sees them (no model needed)."""
    assert is_parallel({"model_type": "gpt_neox"}) and not is_parallel(
        {"model_type": "gpt_neox", "use_parallel_residual": False}
    )
    assert (
        is_parallel({"model_type": "phi"})
        and is_parallel({"model_type": "gptj"})
        and is_parallel({"model_type": "codegen"})
    )
    assert not is_parallel({"model_type": "stablelm"}) and is_parallel(
        {"model_type": "stablelm", "use_parallel_residual": True}
    )
    assert is_parallel({"model_type": "falcon"}) and not is_parallel({"model_type": "falcon", "parallel_attn": False})
    assert not is_parallel({"model_type": "llama"}) and not is_parallel({"model_type": "phi3"})
    gptj = shape_from_config(
        {"model_type": "gptj", "n_layer": 2, "n_head": 4, "n_embd": 64, "n_positions": 64, "rotary_dim": 16}
    )
    assert gptj.pos_embed == "rotary" and gptj.parallel_attn_mlp
    neo = shape_from_config({"model_type": "gpt_neo", "num_layers": 2, "num_heads": 4, "hidden_size": 64})
    assert neo.pos_embed == "learned" and neo.n_heads == 4 and neo.n_layers == 2
    mq = shape_from_config({"model_type": "gpt_bigcode", "n_layer": 2, "n_head": 4, "n_embd": 64, "multi_query": True})
    assert mq.n_kv_heads == 1
