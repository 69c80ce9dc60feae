"""What bounds the engine's memory: clean activations spilled to disk past a budget give bit-identical
scrubs under every ablation (and the spill files are removed with the engine); roots scrubbed a chunk at
a time, with the row memo bounded between chunks, agree with one chunk per layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common import engine, max_rel, setup
from reference import reference_scrub  # benchmarks/reference.py (see conftest.py)
from test_reference import hypotheses

from circuitdsl.engine.spill import SpillDir, SpilledHeads, SpilledRows, SpilledTensor
from circuitdsl.ir import Ablation, AblationKind

pytestmark = pytest.mark.engine

ABLATIONS = [
    Ablation(),
    Ablation(AblationKind.RESAMPLE_FROM, "D2"),
    Ablation(AblationKind.PAIRED, "D2"),
    Ablation(AblationKind.MEAN),
    Ablation(AblationKind.MEAN, "D2"),
    Ablation(AblationKind.ZERO),
]


@pytest.mark.parametrize("ablation", ABLATIONS, ids=str)
@pytest.mark.parametrize("which", ["native_mlp", "hf_llama"])
def test_spilled_cache_gives_identical_scrubs(request, which, ablation):
    model_dir = request.getfixturevalue(which)
    h0, b, dsets = setup(model_dir, n=12, lengths=[5, 6])
    h = hypotheses(model_dir, b.has_pos, b.shape.has_mlp)
    held = engine(b, dsets, ablation, batch_size=5)
    with engine(b, dsets, ablation, batch_size=5, clean_bytes=0) as spilled:
        assert held.clean_spilled == 0 and held.clean_held > 0
        assert spilled.clean_held == 0 and spilled.clean_spilled > 0
        where = spilled._spill.path
        assert any(where.iterdir())
        for hh in (h, h0):  # the hypothesis and the empty one (every sender ablated)
            a, z = held.scrub(hh), spilled.scrub(hh)
            assert all(torch.equal(x, y) for x, y in zip(a.logits, z.logits, strict=True))
        assert all(torch.equal(x, y) for x, y in zip(held.clean_logits(), spilled.clean_logits(), strict=True))
    assert not where.exists()
    with pytest.raises(RuntimeError, match="closed"):
        spilled.scrub(h)


def test_budget_spills_only_what_does_not_fit(native_mlp):
    _, b, dsets = setup(native_mlp, n=12, lengths=[5, 6])
    probe = engine(b, dsets, Ablation())
    total = probe.clean_held
    # room for one of the two layouts' clean activations, not both
    eng = engine(b, dsets, Ablation(), clean_bytes=total * 3 // 4)
    assert eng.clean_held > 0 and eng.clean_spilled > 0
    assert eng.clean_held <= total * 3 // 4
    eng.close()


def test_spilled_rows_read_what_was_written(tmp_path):
    d = SpillDir(tmp_path)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(9, 3, 4, generator=gen)
    t = SpilledTensor.create(d, "t", tuple(x.shape), x.dtype)
    t.write(0, x[:4])
    t.write(4, x[4:])
    for idx in ([0], [8, 0, 8], [3, 4, 5, 1], list(range(9)), []):
        assert torch.equal(t[torch.tensor(idx, dtype=torch.long)], x[idx])
    assert torch.equal(t.rows(2, 7), x[2:7])
    r = torch.randn(5, 3, 2, 4, generator=gen)  # [B, P, H, D]
    hs = SpilledHeads.create(d, "r", tuple(r.shape), r.dtype)
    hs.write(0, r[:2])
    hs.write(2, r[2:])
    for h in range(2):
        idx = torch.tensor([4, 0, 0, 2])
        assert torch.equal(hs[idx, :, h], r[idx, :, h])
    assert torch.equal(hs.rows(1, 4), r[1:4]) and hs.shape == r.shape
    with pytest.raises(IndexError):
        t[torch.tensor([9])]
    with pytest.raises(ValueError):
        t.write(0, torch.zeros(1, 3, 5))
    d.close()
    assert not d.path.exists()


def test_spilled_rows_large_random_gathers(tmp_path):
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((200, 7)).astype(np.float32))
    rows = SpilledRows(tmp_path / "f.bin", 200, (7,), torch.float32)
    rows.write(0, x)
    idx = rng.integers(0, 200, size=1000)
    assert torch.equal(rows.read(idx), x[torch.from_numpy(idx)])


@pytest.mark.parametrize("ablation", [Ablation(), Ablation(AblationKind.PAIRED, "D2")], ids=str)
def test_root_chunks_agree_and_bound_the_rows_held(hf_llama, ablation):
    _, b, dsets = setup(hf_llama, n=14, lengths=[5, 6])
    h = hypotheses(hf_llama, b.has_pos, b.shape.has_mlp)
    whole = engine(b, dsets, ablation, batch_size=4, root_chunk=0)
    a = whole.scrub(h)
    one_chunk_rows = a.rows_computed
    chunked = engine(b, dsets, ablation, batch_size=4, root_chunk=2, cache_bytes=1)
    z = chunked.scrub(h)
    assert max_rel(a.logits, z.logits) < 1e-5
    assert max_rel(z.logits, reference_scrub(b, dsets, "D", h, ablation, h.seed)) < 1e-5
    # the memo was emptied between chunks: what is held at the end is one chunk's rows, not the layout's
    assert chunked.memo_flushes > 0
    assert chunked.memo_bytes() < whole.memo_bytes()
    assert z.rows_computed >= one_chunk_rows  # rows shared across chunks were recomputed after a flush


def test_a_spill_directory_that_cannot_be_written_is_a_diagnostic(native_mlp, tmp_path):
    from circuitdsl.diagnostics import CircuitError

    _, b, dsets = setup(native_mlp, n=12, lengths=[5, 6])
    with pytest.raises(CircuitError) as info:
        engine(b, dsets, Ablation(), clean_bytes=0, spill_dir=str(tmp_path / "missing" / "dir"))
    (d,) = info.value.diagnostics
    assert d.code == "E530" and "missing" in d.message and "CIRCUITDSL_SPILL_DIR" in d.hint
