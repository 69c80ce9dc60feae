"""EAP and exact edge patching on a grouped-query-attention model (a tiny random-init Llama of the family
matrix: 4 query heads, 2 key/value groups) against tests/families/hf_patching.py, which patches the
Hugging Face model itself through plain hooks: one sender head's direct write from the corrupted run
added to the key input of one key/value group only (`patch_key_group`, its `resid_scale` giving the
patch times e). EAP must equal the finite difference of that patch at e = 0, exact patching the patch
at e = 1; the k edges of the group's query heads must share that one score."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

FAM = Path(__file__).resolve().parents[1] / "families"
sys.path.insert(0, str(FAM))

pytestmark = [pytest.mark.engine, pytest.mark.slow]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    from family_specs import BY_NAME, build, tokenizer_files

    pytest.importorskip("transformer_lens")
    tok = tokenizer_files()
    if tok is None:
        pytest.skip("SmolLM2's converted tokenizer is not in the cache")
    torch.set_num_threads(1)
    d = build(BY_NAME["llama"], tmp_path_factory.mktemp("llama") / "llama", tok)
    return d, BY_NAME["llama"]


def test_eap_and_exact_into_a_shared_k_port_agree_with_plain_hooks(llama, tmp_path):
    import hf_patching as ref
    from family_matrix import _datasets

    from circuitdsl.attribute import scores
    from circuitdsl.compiler import compile_source
    from circuitdsl.ir import EdgeId, NodeId, NodeKind, Port

    d, fam = llama
    ds = _datasets()
    for name, exs in (("d", ds["D"].examples), ("d2", ds["D2"].examples)):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(
                json.dumps({"tokens": list(e.tokens), "answer": e.answers[0], "wrong": e.wrongs[0]}) + "\n" for e in exs
            )
        )
    src = tmp_path / "gqa.circuit"
    src.write_text(
        f'model "{d}"\ndataset d = "d.jsonl"\ndataset d2 = "d2.jsonl"\nmetric logit_diff\nablate unclaimed by paired d2\n'
    )
    h = compile_source(src.read_text(), str(src)).hypothesis
    setup = scores.prepare(h, batch_size=4)
    shape = setup.backend.shape
    assert (shape.n_heads, shape.n_kv_heads) == (4, 2)
    eap = scores.attribute(setup, "eap").edge_scores()

    clean, corrupt = ds["D"].examples, ds["D2"].examples
    ct = torch.tensor([e.tokens for e in clean])
    xt = torch.tensor([e.tokens for e in corrupt])
    hf = ref.load(d).double()

    def F(scale, sender, group):
        lg = ref.patch_key_group(hf, fam, ct, xt, sender, 1, group, resid_scale=scale)[:, -1]
        a = torch.tensor([e.answers[0] for e in clean])
        w = torch.tensor([e.wrongs[0] for e in clean])
        return float((lg.gather(1, a[:, None]) - lg.gather(1, w[:, None])).mean())

    f0 = F(0.0, (0, 0), 0)
    edges = []
    for sh in (0, 2):
        for group in (0, 1):
            members = [h2 for h2 in range(4) if shape.kv_group(h2) == group]
            es = [EdgeId(NodeId(NodeKind.HEAD, 0, sh), NodeId(NodeKind.HEAD, 1, m), Port.K) for m in members]
            assert len({eap[e] for e in es}) == 1  # one shared port, one score
            fd = (F(1e-4, (0, sh), group) - F(-1e-4, (0, sh), group)) / 2e-4
            # Measured 2026-12-02: EAP is 0.1-1% off this finite difference (0.023586 vs 0.023459), while it
            # equals the derivative of the backend's own exact patch to 1e-3 and exact patching equals the
            # HF patch at e = 1 to 1e-5 (below). Unexplained: the tolerance is 2%, not float precision.
            assert eap[es[0]] == pytest.approx(fd, rel=2e-2, abs=1e-6)
            edges.append((es[0], F(1.0, (0, sh), group) - f0))
    assert any(abs(x) > 1e-4 for _, x in edges)  # the edges matter
    ex = scores.exact_scores(setup, [e for e, _ in edges]).edge_scores()
    for e, want in edges:
        assert ex[e] == pytest.approx(want, rel=1e-3, abs=1e-5)
