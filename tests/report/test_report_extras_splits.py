"""compute_extras with a split head (issue 15 item 5): one attention pattern per head (its parts share it),
and the direct logit attribution of each part, checked against zeroing that part of the head's output in
the tiny model (no final norm: a last-layer head's direct effect is its whole effect)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from _build import SOURCE  # noqa: E402

from circuitdsl.compiler import compile_source  # noqa: E402
from circuitdsl.report import compute_extras  # noqa: E402

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("split_extras")
    base = compile_source(SOURCE, str(tmp / "probe.circuit")).hypothesis
    basis = np.random.default_rng(0).standard_normal((base.model.shape.d_model, 3))
    np.save(tmp / "basis.npy", basis)
    text = SOURCE.replace("group induction = a1.0, a1.1, a1.2, a1.3", "group induction = a1.0[s], a1.1, a1.2, a1.3")
    text = text.replace(
        "ablate unclaimed by resample\n", 'ablate unclaimed by resample\nsplit a1.0 by subspace s from "basis.npy"\n'
    )
    r = compile_source(text, str(tmp / "h.circuit"))
    assert r.hypothesis is not None, r.render("concise")
    q, _ = np.linalg.qr(basis)
    return r.hypothesis, compute_extras(r.hypothesis, None, n_attention=1, n_dla=16), q


def test_a_split_head_has_one_attention_pattern(setup):
    _, extras, _ = setup
    names = [a.head for a in extras.attention]
    assert "a1.0 (a1.0[s])" in names
    assert not any(n.startswith("a1.0[") for n in names)


def test_dla_of_each_part_is_its_removal_effect(setup):
    from circuitdsl.backends.loader import load_backend
    from circuitdsl.engine import data

    h, extras, q = setup
    parts = {x.head: x for x in extras.parts}
    assert set(parts) == {"a1.0[s]", "a1.0[~s]"}
    assert parts["a1.0[s]"].claimed and not parts["a1.0[~s]"].claimed
    assert {x.component for x in extras.parts} == {"a1.0"}
    whole = next(x for x in extras.heads if x.head == "a1.0")
    assert not whole.claimed  # only a part of it is
    for a, b, w in zip(parts["a1.0[s]"].values, parts["a1.0[~s]"].values, whole.values):
        assert a + b == pytest.approx(w, abs=1e-4)

    backend = load_backend(h.model)
    ds = data.materialise(h.dataset(h.main_dataset), None)
    first = ds.examples[:16]
    idx = [i for i, e in enumerate(first) if len(e.tokens) == len(first[0].tokens)]
    ex = [first[i] for i in idx]
    toks = torch.tensor([list(e.tokens) for e in ex])
    P = torch.tensor(q @ q.T, dtype=torch.float32)

    def logit_diff(hook_fn=None):
        from circuitdsl.backends.base import hooks

        with torch.no_grad(), hooks(backend.model, [("blocks.1.attn.hook_result", hook_fn)] if hook_fn else []):
            logits = backend.model(toks)
        return [float(logits[b, e.scored_positions[0], e.answers[0]] - logits[b, e.scored_positions[0], e.wrongs[0]])
                for b, e in enumerate(ex)]  # fmt: skip

    def without(inside: bool):
        def fn(x, hook):
            x = x.clone()
            proj = x[:, :, 0] @ P
            x[:, :, 0] = x[:, :, 0] - (proj if inside else x[:, :, 0] - proj)
            return x

        return fn

    clean = logit_diff()
    no_s, no_rest = logit_diff(without(True)), logit_diff(without(False))
    assert max(abs(v) for v in parts["a1.0[s]"].values) > 1e-3  # a real effect, not 0 = 0
    for k, i in enumerate(idx):
        assert parts["a1.0[s]"].values[i] == pytest.approx(clean[k] - no_s[k], abs=1e-4)
        assert parts["a1.0[~s]"].values[i] == pytest.approx(clean[k] - no_rest[k], abs=1e-4)


def test_the_dla_chart_shows_a_split_head_as_its_parts(setup):
    import base64
    import re

    from _build import hand_result

    from circuitdsl.report import render_html

    h, extras, _ = setup
    page = render_html(hand_result(), source_text=None, hypothesis=h, extras=extras)
    assert 'id="splits"' in page
    charts = [
        base64.b64decode(m).decode()
        for m in re.findall(r'alt="direct logit attribution bar chart" src="data:image/svg\+xml;base64,([^"]+)"', page)
    ]
    (chart,) = charts
    assert "a1.0[s] (claimed)" in chart
    # the unclaimed part is either among the largest unclaimed bars or counted in "other heads"; never the
    # whole head as well (its parts sum to it)
    assert not re.search(r">a1\.0<", chart)
