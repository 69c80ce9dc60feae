"""compute_extras on the embedded tiny model (boots in well under a second)."""

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from _build import SOURCE, hand_result  # noqa: E402

from circuitdsl.compiler import compile_source  # noqa: E402
from circuitdsl.report import ExtrasError, compute_extras, render_html  # noqa: E402

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def hyp():
    return compile_source(SOURCE, "tests/report/tiny_test.circuit").hypothesis


@pytest.fixture(scope="module")
def extras(hyp):
    return compute_extras(hyp, None, n_attention=2, n_dla=32)


def test_attention_maps_of_claimed_heads_are_causal_distributions(extras, hyp):
    heads = [c.node.name for c in hyp.claims if c.node.kind.value == "head"]
    assert [a.head for a in extras.attention] == heads * 2
    assert len({a.example_id for a in extras.attention}) == 2
    for a in extras.attention:
        n = len(a.tokens)
        assert len(a.pattern) == n and all(len(row) == n for row in a.pattern)
        for q, row in enumerate(a.pattern):
            assert sum(row) == pytest.approx(1.0, abs=1e-5)
            assert all(v == 0.0 for v in row[q + 1 :])
        assert a.tokens[0].startswith("t")  # decoded with the tiny model's vocabulary
    # the previous-token heads attend to the previous token (the file's own measurement: 0.95+)
    a00 = next(a for a in extras.attention if a.head == "a0.0")
    prev = [a00.pattern[q][q - 1] for q in range(1, len(a00.tokens))]
    assert sum(prev) / len(prev) > 0.8


def _logit_diff(model, toks, e_list, hooks=()):
    from circuitdsl.backends.base import hooks as hooks_ctx

    with torch.no_grad(), hooks_ctx(model, list(hooks)):
        logits = model(toks)
    out = []
    for b, e in enumerate(e_list):
        p = e.scored_positions[0]
        out.append(float(logits[b, p, e.answers[0]] - logits[b, p, e.wrongs[0]]))
    return out


def test_dla_of_last_layer_heads_equals_their_removal_effect(extras, hyp):
    """In a model without a final norm, a last-layer head's direct effect is its whole effect: zeroing its
    output must move logit(answer) - logit(wrong) by exactly its DLA, example by example."""
    from circuitdsl.backends.loader import load_backend
    from circuitdsl.engine import data

    backend = load_backend(hyp.model)
    ds = data.materialise(hyp.dataset(hyp.main_dataset), None)
    ex = [e for e in ds.examples[:32] if len(e.tokens) == len(ds.examples[0].tokens)]
    idx = [i for i, e in enumerate(ds.examples[:32]) if len(e.tokens) == len(ds.examples[0].tokens)]
    toks = torch.tensor([list(e.tokens) for e in ex])
    clean = _logit_diff(backend.model, toks, ex)
    assert extras.direction == "logit(answer) - logit(wrong)"
    assert extras.n_dla_examples == 32
    by = {x.head: x for x in extras.heads}
    assert [x.head for x in extras.heads] == [f"a{L}.{H}" for L in range(2) for H in range(4)]
    assert {x.head for x in extras.heads if x.claimed} == {"a0.0", "a0.2", "a1.0", "a1.1", "a1.2", "a1.3"}
    for H in range(4):

        def zero(x, hook, H=H):
            x = x.clone()
            x[:, :, H] = 0
            return x

        ablated = _logit_diff(backend.model, toks, ex, [("blocks.1.attn.hook_result", zero)])
        for k, i in enumerate(idx):
            assert by[f"a1.{H}"].values[i] == pytest.approx(clean[k] - ablated[k], abs=1e-4)
    # the induction heads carry most of the logit difference; the total is the clean model's
    assert sum(by[f"a1.{H}"].mean for H in range(4)) > 0.5 * extras.total
    assert extras.total > 1.0
    assert extras.total == pytest.approx(sum(x.mean for x in extras.heads) + extras.rest)


def test_full_page_with_extras(extras, hyp):
    page = render_html(hand_result(), source_text=None, hypothesis=hyp, extras=extras)
    assert 'data-needs="model"' not in page
    assert page.count('class="heat"') == len(extras.attention)
    assert "direct logit attribution bar chart" in page
    assert "A1" in page  # named positions label the heatmaps


def test_bad_options_and_unloadable_model(hyp, tmp_path):
    with pytest.raises(ValueError, match="n_dla"):
        compute_extras(hyp, None, n_dla=0)
    import dataclasses

    from circuitdsl.ir import ModelRef

    bad = dataclasses.replace(hyp, model=ModelRef("x", str(tmp_path), hyp.model.shape))
    with pytest.raises(ExtrasError, match="cannot be loaded"):
        compute_extras(bad, None)
