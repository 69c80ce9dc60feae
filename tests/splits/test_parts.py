"""circuitdsl.splits: basis and SAE loading, the part maps, and the engine's refusal (E602) of splits it
does not scrub yet. Expected values are computed by hand or with plain numpy, not with the code under test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from circuitdsl.compiler.splits import split_parts  # noqa: E402
from circuitdsl.diagnostics import CircuitError  # noqa: E402
from circuitdsl.ir import NodeId, NodeKind, Split, SplitKind  # noqa: E402
from circuitdsl.splits import parts as parts_mod  # noqa: E402
from circuitdsl.splits.basis import load_basis  # noqa: E402
from circuitdsl.splits.sae import SAEWeights, encode_numpy, load_sae, save_sae  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_SPLITS = ROOT / "tests" / "language" / "golden" / "splits"
HEAD = NodeId(NodeKind.HEAD, 1, 0)
MLP = NodeId(NodeKind.MLP, 0)


def _subspace(path: Path, name: str = "s") -> Split:
    return Split(HEAD, SplitKind.SUBSPACE, str(path), split_parts(HEAD, SplitKind.SUBSPACE, name), name, (), "d0")


def _sae_split(path: Path, latents: tuple[int, ...]) -> Split:
    return Split(MLP, SplitKind.SAE, str(path), split_parts(MLP, SplitKind.SAE, "", latents), "", latents, "d0")


def test_a_2d_subspace_of_4d_by_hand(tmp_path):
    # span{e0 + e1, e2}: the projection of x = (1, 3, 5, 7) is (2, 2, 5, 0), the complement (-1, 1, 0, 7)
    np.save(tmp_path / "b.npy", np.array([[1.0, 0], [1, 0], [0, 2], [0, 0]], np.float32))
    split = _subspace(tmp_path / "b.npy")
    x = torch.tensor([[1.0, 3.0, 5.0, 7.0]], dtype=torch.float64)
    got = parts_mod.part_outputs(split, x)
    inner, outer = split.parts
    assert inner.name == "a1.0[s]" and outer.name == "a1.0[~s]"
    assert torch.allclose(got[inner], torch.tensor([[2.0, 2.0, 5.0, 0.0]], dtype=torch.float64))
    assert torch.allclose(got[outer], torch.tensor([[-1.0, 1.0, 0.0, 7.0]], dtype=torch.float64))


def test_the_basis_is_orthonormalised_and_its_span_kept(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((16, 3))
    np.save(tmp_path / "b.npy", a)
    q = load_basis(tmp_path / "b.npy")
    assert q.shape == (16, 3)
    assert np.allclose(q.T @ q, np.eye(3), atol=1e-12)
    # same span: projecting a's columns onto q's span changes nothing
    assert np.allclose(q @ (q.T @ a), a, atol=1e-10)


def test_safetensors_basis(tmp_path):
    from safetensors.numpy import save_file

    save_file({"basis": np.eye(8, 2, dtype=np.float32)}, str(tmp_path / "b.safetensors"))
    assert np.allclose(load_basis(tmp_path / "b.safetensors"), np.eye(8, 2))
    save_file(
        {"a": np.eye(8, 2, dtype=np.float32), "b": np.eye(8, 2, dtype=np.float32)}, str(tmp_path / "two.safetensors")
    )
    with pytest.raises(CircuitError) as e:
        load_basis(tmp_path / "two.safetensors")
    assert e.value.diagnostics[0].code == "E704"


@pytest.mark.parametrize(
    "name, array, code",
    [
        ("nan.npy", np.array([[np.nan], [1.0]]), "E704"),
        ("vec.npy", np.ones(4), "E705"),
        ("rank.npy", np.array([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]]), "E706"),
        ("zero.npy", np.zeros((4, 1)), "E706"),
    ],
)
def test_bad_bases_are_refused_with_a_code(tmp_path, name, array, code):
    np.save(tmp_path / name, array)
    with pytest.raises(CircuitError) as e:
        load_basis(tmp_path / name)
    assert e.value.diagnostics[0].code == code and e.value.diagnostics[0].hint


def test_not_an_npy_file(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"hello")
    with pytest.raises(CircuitError) as e:
        load_basis(tmp_path / "x.npy")
    assert "not an npy file" in e.value.diagnostics[0].message


def _random_sae(arch: str, d_in: int = 6, d_sae: int = 5, seed: int = 0) -> SAEWeights:
    rng = np.random.default_rng(seed)
    return SAEWeights(
        arch,
        d_in,
        d_sae,
        "blocks.0.hook_mlp_out",
        True,
        rng.standard_normal((d_in, d_sae)).astype(np.float32),
        rng.standard_normal(d_sae).astype(np.float32) * 0.1,
        rng.standard_normal((d_sae, d_in)).astype(np.float32),
        rng.standard_normal(d_in).astype(np.float32) * 0.1,
        np.full(d_sae, 0.3, np.float32) if arch == "jumprelu" else None,
        2 if arch == "topk" else None,
    )


def test_sae_encode_by_hand():
    # one latent reading x0 - b0, bias -1: relu((x - b_dec) @ W_enc + b_enc)
    sae = SAEWeights(
        "standard", 2, 2, "h", True,
        np.array([[1.0, -1.0], [0.0, 0.0]], np.float32), np.array([-1.0, 0.0], np.float32),
        np.eye(2, dtype=np.float32), np.array([0.5, 0.0], np.float32),
    )  # fmt: skip
    x = np.array([[3.0, 9.0], [0.0, 1.0]])
    # row 0: x - b_dec = (2.5, 9): pre = (2.5 - 1, -2.5) -> (1.5, 0); row 1: (-0.5, 1): pre = (-1.5, 0.5) -> (0, 0.5)
    assert np.allclose(encode_numpy(sae, x), [[1.5, 0.0], [0.0, 0.5]])
    assert np.allclose(parts_mod.encode(sae, torch.tensor(x)).numpy(), [[1.5, 0.0], [0.0, 0.5]])
    jr = SAEWeights(**{**sae.__dict__, "architecture": "jumprelu", "threshold": np.array([2.0, 0.4], np.float32)})
    assert np.allclose(encode_numpy(jr, x), [[0.0, 0.0], [0.0, 0.5]])  # 1.5 < 2.0 is cut, 0.5 > 0.4 kept


@pytest.mark.parametrize("arch", ["standard", "jumprelu", "topk"])
def test_sae_parts_sum_to_the_output_and_match_numpy(tmp_path, arch):
    sae = _random_sae(arch)
    save_sae(tmp_path / "sae", sae)
    split = _sae_split(tmp_path / "sae", (1, 3))
    x = torch.tensor(np.random.default_rng(5).standard_normal((3, 4, 6)))
    got = parts_mod.part_outputs(split, x)
    names = [p.name for p in split.parts]
    assert names == ["m0[f1]", "m0[f3]", "m0[rest]", "m0[err]"]
    total = sum(got[p] for p in split.parts)
    assert torch.allclose(total, x, atol=1e-10)
    a = encode_numpy(sae, x.numpy())
    w, b = sae.W_dec.astype(np.float64), sae.b_dec.astype(np.float64)
    assert np.allclose(got[split.parts[0]].numpy(), a[..., 1:2] * w[1], atol=1e-6)
    assert np.allclose(got[split.parts[1]].numpy(), a[..., 3:4] * w[3], atol=1e-6)
    rest = b + a[..., [0, 2, 4]] @ w[[0, 2, 4]]
    assert np.allclose(got[split.parts[2]].numpy(), rest, atol=1e-6)
    assert np.allclose(got[split.parts[3]].numpy(), x.numpy() - (a @ w + b), atol=1e-6)
    if arch == "topk":
        assert ((a > 0).sum(-1) <= 2).all()


def test_float32_parts_sum_to_1e5():
    x = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(0))
    split = _sae_split(GOLDEN_SPLITS / "sae_m0", (3,))
    total = sum(parts_mod.part_outputs(split, x).values())
    assert torch.allclose(total, x, rtol=1e-5, atol=1e-5)


def test_sae_round_trip_keeps_every_field(tmp_path):
    sae = _random_sae("jumprelu")
    save_sae(tmp_path / "s", sae)
    back = load_sae(tmp_path / "s")
    for f in ("architecture", "d_in", "d_sae", "hook_name", "apply_b_dec_to_input", "k"):
        assert getattr(back, f) == getattr(sae, f)
    for f in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"):
        assert np.array_equal(getattr(back, f), getattr(sae, f))
    assert json.loads((tmp_path / "s" / "cfg.json").read_text())["normalize_activations"] == "none"


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda d: (d / "cfg.json").unlink(), "has no cfg.json"),
        (lambda d: (d / "cfg.json").write_text("[1]"), "not a JSON object"),
        (lambda d: (d / "cfg.json").write_text(json.dumps({"architecture": "gated", "d_in": 6, "d_sae": 5})), "gated"),
        (lambda d: (d / "sae_weights.safetensors").unlink(), "has no sae_weights"),
        (lambda d: (d / "cfg.json").write_text(json.dumps({"d_in": 7, "d_sae": 5})), "W_enc has shape"),
        (lambda d: (d / "cfg.json").write_text(json.dumps({"architecture": "topk", "d_in": 6, "d_sae": 5})), "k in"),
    ],
)
def test_bad_saes_are_refused_e709(tmp_path, edit, needle):
    save_sae(tmp_path / "s", _random_sae("standard"))
    edit(tmp_path / "s")
    with pytest.raises(CircuitError) as e:
        load_sae(tmp_path / "s")
    d = e.value.diagnostics[0]
    assert d.code == "E709" and needle in d.message, d.message


SPLIT_FILE = """\
model tiny
dataset ind = induction(n = 8, seed = 0, length = 16, layouts = 1)
metric loss
split a1.1 by subspace s from "b.npy"
edge embed -> a1.1[s] -> out
"""


def test_check_scores_a_split_file_and_names_its_parts(tmp_path, capsys):
    """`check` on a file with a split: the parts are named verbatim in the terminal report (rich markup
    would read `[s]` as strikethrough and drop it) and the split, with its digest, is in the notes."""
    from circuitdsl.cli import main

    np.save(tmp_path / "b.npy", np.eye(64, 2, dtype=np.float32))
    f = tmp_path / "split.circuit"
    f.write_text(SPLIT_FILE + "expect recovered <= 2\n")
    out = tmp_path / "r.json"
    rc = main(["check", str(f), "--no-completeness", "--json-out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "a1.1[s]" in text and "split a1.1 by subspace `s`" in text
    res = json.loads(out.read_text())[0]
    assert any(n.startswith("split a1.1 by subspace `s`") and "a1.1[~s]" in n for n in res["notes"])
    assert [x["node"] for x in res["minimality"]["removals"]] == ["embed", "a1.1[s]"]


def test_check_refuses_mean_ablation_of_sae_parts_before_loading(tmp_path, capsys):
    """E602: the engine keeps means of whole components only; an SAE's parts under `mean` are refused."""
    from circuitdsl.cli import main

    d = tmp_path / "sae"
    sae = _random_sae("standard", d_in=64, d_sae=8)
    save_sae(d, SAEWeights(**{**sae.__dict__, "hook_name": "hook_embed"}))
    f = tmp_path / "mean.circuit"
    f.write_text(
        "model tiny\ndataset ind = induction(n = 8, seed = 0, length = 16, layouts = 1)\nmetric loss\n"
        'ablate unclaimed by mean\nsplit embed by sae "sae" latents 1\nedge embed[f1] -> a1.1 -> out\n'
    )
    out = tmp_path / "r.json"
    rc = main(["check", str(f), "--json-out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "E602" in err and "mean.circuit:5:1" in err and "Traceback" not in err and "loading model" not in err
    assert not out.exists()
