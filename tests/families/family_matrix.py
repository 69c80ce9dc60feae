"""One family's row of the matrix: load it through circuitdsl (the model contract runs), and when it is
accepted, compare four scrubs with every engine shortcut off against plain-hook patching of the
Hugging Face model (hf_patching.py):

- identity: every edge claimed with the identity feature reproduces the model's logits;
- empty: the empty hypothesis under `paired D2` is the model on D2's row;
- head removal: removing one head's outgoing edges under `paired D2` is patching that head's output
  with D2's row;
- k/v port: removing one sender's edge into a shared key/value group's k port (every query head of the
  group) is patching that group's key input with the sender's D2 write only.

Errors are relative: max |engine - reference| / max |reference|, logits centred per position (the
bridge's unembedding is centred; every metric but `mse` ignores the per-position constant).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import hf_patching as ref
import torch
from family_specs import BY_NAME

TOLERANCE = 1e-4


@dataclass
class Row:
    family: str
    status: str
    """'exact', 'refused' or 'wrong' (accepted, but some check departs from the reference)."""
    errors: dict[str, float] = field(default_factory=dict)
    effects: dict[str, float] = field(default_factory=dict)
    """How far each intervention moves the model's logits (relative): a check must be able to fail."""
    diagnostic: str = ""
    seconds: float = 0.0
    contract_seconds: float = 0.0

    @property
    def max_error(self) -> float:
        return max(self.errors.values()) if self.errors else float("nan")


def _datasets(n: int = 4, length: int = 10, seed: int = 0):
    from circuitdsl.datasets.core import Dataset, Example

    def make(name, s):
        rng = random.Random(s)
        exs = []
        for i in range(n):
            toks = [rng.randrange(10, 5000) for _ in range(length)]
            a, w = rng.sample(range(10, 5000), 2)
            exs.append(Example.make(toks, a, wrongs=w, positions={"last": length - 1}, id=f"{name}-{i}"))
        return Dataset(name, tuple(exs), position_names=("last",))

    return {"D": make("D", seed), "D2": make("D2", seed + 1)}


def _hypothesis(model_dir, shape, ablation):
    from circuitdsl.engine import derive
    from circuitdsl.ir import Claim, DatasetKind, DatasetSpec, Hypothesis, Metric, MetricKind, ModelRef, make_graph
    from circuitdsl.models.shapes import resolve_shape

    resolved, shape = resolve_shape(str(model_dir))
    ds = (DatasetSpec("D", DatasetKind.GENERATOR, "test"), DatasetSpec("D2", DatasetKind.GENERATOR, "test"))
    claims = (Claim(derive.OUT),)
    h = Hypothesis(
        name="family",
        source_path=None,
        source_text="",
        model=ModelRef(str(model_dir), resolved, shape),
        datasets=ds,
        main_dataset="D",
        metric=Metric(MetricKind.LOGIT_DIFF),
        ablation=ablation,
        claims=claims,
        edges=(),
        groups=(),
        expects=(),
        seed=0,
        graph=make_graph(claims, ()),
    )
    return derive.full(h)


def _centred(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    return x - x.mean(-1, keepdim=True)


def _err(mine, theirs) -> float:
    a = torch.cat([_centred(t.cpu()) for t in mine])  # [examples x scored positions, V]
    b = _centred(theirs.cpu())
    return float((a - b).abs().max()) / max(float(b.abs().max()), 1e-12)


def run_family(name: str, model_dir, device: str = "cpu") -> Row:
    from circuitdsl.backends.base import BackendError
    from circuitdsl.backends.loader import evict, load_path

    fam = BY_NAME[name]
    t0 = time.perf_counter()
    try:
        b = load_path(model_dir, device)
    except BackendError as e:
        evict(model_dir, device)
        return Row(name, "refused", diagnostic=f"{e.code}: {e}", seconds=time.perf_counter() - t0)
    try:
        return _rows(name, fam, b, model_dir, t0)
    finally:
        evict(model_dir, device)


def _rows(name, fam, b, model_dir, t0) -> Row:
    from circuitdsl.engine import derive
    from circuitdsl.engine.scrub import Engine
    from circuitdsl.ir import Ablation, AblationKind, EdgeId, NodeId, NodeKind, Port

    row = Row(name, "exact", contract_seconds=b.contract.seconds if not b.contract.cached else 0.0)
    dsets = _datasets()
    ablation = Ablation(AblationKind.PAIRED, "D2")
    M = _hypothesis(model_dir, b.shape, ablation)
    hf = ref.load(model_dir)
    clean = torch.tensor([e.tokens for e in dsets["D"].examples])
    corrupt = torch.tensor([e.tokens for e in dsets["D2"].examples])
    last = clean.shape[1] - 1
    shape = b.shape
    base = ref.logits(hf, clean)[:, last]

    def effect(theirs):
        return _err([t[None] for t in base], theirs)

    with torch.no_grad(), Engine(b, dsets, "D", ablation, shortcuts=False, batch_size=16) as eng:
        row.errors["identity"] = _err(eng.scrub(M).logits, base)
        row.errors["empty"] = _err(eng.scrub(derive.empty(M)).logits, ref.logits(hf, corrupt)[:, last])
        errs = []
        for L, H in ((0, 1), (shape.n_layers - 1, shape.n_heads - 1)):
            got = eng.scrub(derive.remove(M, {NodeId(NodeKind.HEAD, L, H)})).logits
            theirs = ref.patch_head(hf, fam, clean, corrupt, L, H)[:, last]
            errs.append(_err(got, theirs))
            row.effects[f"head {L}.{H}"] = effect(theirs)
        row.errors["head removal"] = max(errs)
        sender, recv = (0, 2), 1
        members = shape.group_members(0)
        cut = {EdgeId(NodeId(NodeKind.HEAD, *sender), NodeId(NodeKind.HEAD, recv, h), Port.K) for h in members}
        Mk = derive._rebuild(M, "k edge", M.claims, tuple(e for e in M.edges if e not in cut))
        theirs = ref.patch_key_group(
            hf,
            fam,
            clean,
            corrupt,
            sender,
            recv,
            shape.kv_group(0),
            resid_scale=float(getattr(hf.config, "residual_multiplier", None) or 1.0),
        )
        row.errors["k/v port"] = _err(eng.scrub(Mk).logits, theirs[:, last])
        row.effects["k/v port"] = effect(theirs[:, last])
    if any(not e <= TOLERANCE for e in row.errors.values()):
        row.status = "wrong"
    row.seconds = time.perf_counter() - t0
    return row
