"""Devices and dtypes (issue 12): everything the engine, the patching sweeps and the contract create
follows the model's device and dtype. The accelerator test runs where torch sees CUDA or MPS and says
why it skipped otherwise; the dtype test runs everywhere (a float64 model: any tensor created in
float32 would show as a dtype error or as float32 rounding)."""

from __future__ import annotations

import pytest
import torch
from family_matrix import TOLERANCE, _datasets, run_family

pytestmark = pytest.mark.engine


def _accelerator() -> str | None:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return None


def _engine_devices(eng) -> set:
    devs = set()
    for data in eng._layouts.values():
        devs |= {st.data.device.type for st in data.outputs.values() if st.data is not None}
        devs |= {m.device.type for m in data.masks.values()}
    return devs


def test_engine_and_patching_follow_the_accelerator(family_models):
    dev = _accelerator()
    if dev is None:
        pytest.skip("no accelerator here (torch sees no CUDA or MPS device); this test runs where one is present")
    from circuitdsl import patching as P
    from circuitdsl.backends.loader import evict

    for name in ("llama", "gptj", "pythia"):  # GQA; heads computed by circuitdsl; parallel blocks
        d = family_models(name)
        row = run_family(name, d, device=dev)  # engine on the accelerator, reference on the CPU
        assert row.status == "exact", (row.diagnostic, row.errors)
        assert all(e <= TOLERANCE for e in row.errors.values()), row.errors
    d = family_models("llama")
    ds = _datasets()
    cpu = P.head_sweep(P.boot_model(d, "cpu"), ds["D"].examples, ds["D2"].examples)
    acc_model = P.boot_model(d, dev)
    assert acc_model.device.type == dev
    acc = P.head_sweep(acc_model, ds["D"].examples, ds["D2"].examples)
    for a, b in zip(cpu.patched, acc.patched):
        assert a == pytest.approx(b, abs=1e-4)
    evict(d, "cpu")
    evict(d, dev)


def test_engine_follows_a_float64_model(family_models):
    """The contract and the engine on a float64 copy of a model: every row the engine computes is
    float64, and the scrubs agree with the float32 model's to float32 rounding."""
    from family_matrix import _hypothesis

    from circuitdsl.backends.contract import verify
    from circuitdsl.backends.loader import evict, load_path
    from circuitdsl.engine import derive
    from circuitdsl.engine.scrub import Engine
    from circuitdsl.ir import Ablation, AblationKind, NodeId, NodeKind

    d = family_models("phi")  # parallel blocks, LayerNorm
    ds = _datasets()
    ab = Ablation(AblationKind.PAIRED, "D2")
    b32 = load_path(d)
    M = _hypothesis(d, b32.shape, ab)
    hyps = [M, derive.empty(M), derive.remove(M, {NodeId(NodeKind.HEAD, 0, 1)})]
    with Engine(b32, ds, "D", ab, shortcuts=False) as eng:
        want = [eng.scrub(h).logits for h in hyps]
    evict(d)
    b64 = load_path(d, verify=False)
    try:
        b64.model.to(torch.float64)
        assert b64.dtype == torch.float64
        b64.contract = verify(b64, use_cache=False)
        assert b64.contract.passed, [f.describe() for f in b64.contract.failures]
        with Engine(b64, ds, "D", ab, shortcuts=False) as eng:
            got = [eng.scrub(h).logits for h in hyps]
            for data in eng._layouts.values():
                assert {st.data.dtype for st in data.outputs.values()} == {torch.float64}
        for g, w in zip(got, want):
            for x, y in zip(g, w):
                assert x.dtype == torch.float64
                assert torch.allclose(x.float() - x.float().mean(), y - y.mean(), atol=1e-4, rtol=0)
    finally:
        evict(d)


def test_a_bad_device_is_a_diagnostic_not_a_traceback():
    from circuitdsl.backends.base import BackendError
    from circuitdsl.backends.loader import check_device, load_path

    for bad in ("bogus", "cuda:99" if torch.cuda.is_available() else "cuda"):
        with pytest.raises(BackendError) as e:
            check_device(bad)
        assert e.value.code == "E510" and bad.split(":")[0] in str(e.value)
    with pytest.raises(BackendError, match="unknown device `bogus`"):
        load_path("tiny", "bogus")
