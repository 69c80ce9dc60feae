"""Each compiler pass on its own: input text -> the pass's output (fixture pairs)."""

from __future__ import annotations

import pytest

from circuitdsl.compiler.claims import resolve_edges, resolve_nodes
from circuitdsl.compiler.load import load_source
from circuitdsl.compiler.passes import PASSES, run_passes
from circuitdsl.compiler.resolve import (
    check_duplicates,
    resolve_datasets,
    resolve_expects,
    resolve_groups,
    resolve_metric_ablation,
    resolve_model,
    resolve_settings,
)
from circuitdsl.compiler.validate import check_cycles, check_paths, note_gqa
from circuitdsl.ir import AblationKind, EdgeId, FeatureKind, MetricKind, NodeId, NodeKind, Port

HEAD = "model smollm2-135m\ndataset d = fakegen(n = 4)\n"


def _h(layer, head):
    return NodeId(NodeKind.HEAD, layer, head)


def upto(text: str, last):
    """Run the passes up to and including `last` on `text`."""
    unit = load_source(text, "t.circuit")
    assert not unit.diagnostics
    passes = PASSES[: PASSES.index(last) + 1]
    return run_passes(unit, passes)


def codes(unit):
    return [d.code for d in unit.diagnostics]


def test_passes_are_listed_once_in_order():
    assert len(set(PASSES)) == len(PASSES)
    assert (
        PASSES.index(resolve_model)
        < PASSES.index(resolve_groups)
        < PASSES.index(resolve_edges)
        < PASSES.index(check_paths)
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        (HEAD + "group g = a0.1\ngroup g = a0.2\n", ["E301"]),
        (HEAD + "model tiny\n", ["E301"]),
        (HEAD + "set seed = 1\nset seed = 2\n", ["E301"]),
        (HEAD + "group out = a0.1\n", ["E308"]),
        (HEAD + "group g = a0.1\ngroup h = a0.1\n", []),
    ],
)
def test_check_duplicates(text, expected):
    assert codes(upto(text, check_duplicates)) == expected


def test_resolve_model_registry_and_native_dir(tmp_path):
    u = upto(HEAD, resolve_model)
    assert u.model.shape.n_heads == 9 and u.model.resolved == "smollm2-135m"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(
        '{"num_hidden_layers": 4, "num_attention_heads": 8, "hidden_size": 64, "model_type": "gpt2"}'
    )
    u = run_passes(load_source('model "m"\n', str(tmp_path / "t.circuit")), (resolve_model,))
    assert (u.model.shape.n_layers, u.model.shape.pos_embed) == (4, "learned")
    assert codes(run_passes(load_source("dataset d = fakegen()\n", "t.circuit"), (resolve_model,))) == ["E502"]


@pytest.mark.parametrize(
    "decl, expected_codes, args",
    [
        ("dataset d = fakegen(n = 4, length = 9)", [], (("length", 9), ("n", 4))),
        ('dataset d = fakegen(mode = "b")', [], (("mode", "b"),)),
        ("dataset d = fakegen(n = 1.5)", ["E405"], None),
        ("dataset d = fakegen(nn = 1)", ["E403"], None),
        ("dataset d = nosuchgen()", ["E402"], None),
        ('dataset d = "nope.jsonl"', ["E404"], None),
    ],
)
def test_resolve_datasets(decl, expected_codes, args):
    u = upto("model smollm2-135m\n" + decl + "\n", resolve_datasets)
    assert codes(u) == expected_codes
    if args is not None:
        assert u.datasets[0].args == args and u.main_dataset == "d"
        assert u.schema("d")[1] == ("answer", "parity", "subject")


def test_resolve_datasets_jsonl_relative_to_file(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"prompt": [1, 2, 3], "answer": 4, "fields": {"k": 1}}\n')
    u = run_passes(load_source('model tiny\ndataset d = "p.jsonl"\n', str(tmp_path / "h.circuit")), (resolve_datasets,))
    assert u.datasets[0].source == str((tmp_path / "p.jsonl").resolve())


@pytest.mark.parametrize(
    "text, metric, ablation, expected",
    [
        ("metric loss\nablate unclaimed by zero\n", MetricKind.LOSS, (AblationKind.ZERO, None), []),
        (
            "dataset e = fakegen()\nablate unclaimed by paired e\n",
            MetricKind.LOGIT_DIFF,
            (AblationKind.PAIRED, "e"),
            [],
        ),
        ("ablate unclaimed by mean over d\n", MetricKind.LOGIT_DIFF, (AblationKind.MEAN, "d"), []),
        (
            "metric acc\nablate unclaimed by resample from x\n",
            MetricKind.LOGIT_DIFF,
            (AblationKind.RESAMPLE_FROM, "x"),
            ["E214", "E207"],
        ),
    ],
)
def test_resolve_metric_ablation(text, metric, ablation, expected):
    u = upto(HEAD + text, resolve_metric_ablation)
    assert codes(u) == expected
    assert u.metric.kind is metric
    assert (u.ablation.kind, u.ablation.dataset) == ablation


def test_resolve_groups_nested_in_any_order():
    u = upto(HEAD + "group all = nm, a1.0\ngroup nm = a9.6, a9.0\n", resolve_groups)
    assert codes(u) == []
    assert dict(u.groups)["all"] == (_h(1, 0), _h(9, 0), _h(9, 6))
    assert codes(upto(HEAD + "group a = b\ngroup b = a\n", resolve_groups)) == ["E307"]
    assert codes(upto(HEAD + "group a = a9.9, nowhere\n", resolve_groups)) == ["E201", "E203"]


@pytest.mark.parametrize(
    "stmt, feature_kind, positions, expected",
    [
        ("node a1.0 depends on field parity", FeatureKind.FIELD, None, []),
        ("node a1.0 at end, prev depends on token at end", FeatureKind.TOKEN_AT, ("end", "prev"), []),
        ("node a1.0 depends on nothing", FeatureKind.CONSTANT, None, []),
        ("node a1.0", FeatureKind.IDENTITY, None, []),
        ("node a1.0 depends on (field parity, token at end)", FeatureKind.TUPLE, None, []),
        ("node a1.0 depends on field nope", None, None, ["E208"]),
        ("node a1.0 at nope", None, None, ["E209"]),
        ("node a1.0 depends on os.path:nothing_here", None, None, ["E210"]),
    ],
)
def test_resolve_nodes(stmt, feature_kind, positions, expected):
    u = upto(HEAD + stmt + "\n", resolve_nodes)
    assert codes(u) == expected
    if feature_kind is not None:
        (claim,) = u.claims
        assert claim.node == _h(1, 0) and claim.feature.kind is feature_kind and claim.positions == positions


def test_resolve_nodes_function_feature_imports_from_the_file_folder(tmp_path):
    (tmp_path / "feat_mod_x.py").write_text("def parity(example):\n    return len(example.tokens) % 2\n")
    u = run_passes(
        load_source(HEAD + "node a1.0 depends on feat_mod_x:parity\n", str(tmp_path / "h.circuit")),
        PASSES[: PASSES.index(resolve_nodes) + 1],
    )
    assert codes(u) == []
    assert u.claims[0].feature.args == ("feat_mod_x:parity", str((tmp_path / "feat_mod_x.py").resolve()))
    assert str(tmp_path) not in __import__("sys").path


def test_resolve_nodes_conflict():
    u = upto(
        HEAD + "group g = a1.0\nnode a1.0 depends on field parity\nnode g depends on field answer\n", resolve_nodes
    )
    assert codes(u) == ["E302"]
    assert u.diagnostics[0].related[0].span.line == 4


@pytest.mark.parametrize(
    "stmt, edges, expected",
    [
        ("edge embed -> a1.0.q", {EdgeId(NodeId(NodeKind.EMBED), _h(1, 0), Port.Q)}, []),
        ("edge embed -> a1.0", {EdgeId(NodeId(NodeKind.EMBED), _h(1, 0), p) for p in (Port.Q, Port.K, Port.V)}, []),
        (
            "edge a1.0 -> m1 -> out",
            {
                EdgeId(_h(1, 0), NodeId(NodeKind.MLP, 1), Port.IN),
                EdgeId(NodeId(NodeKind.MLP, 1), NodeId(NodeKind.OUT), Port.IN),
            },
            [],
        ),
        (
            "edge a1.0, a2.0 -> out.in",
            {EdgeId(_h(1, 0), NodeId(NodeKind.OUT), Port.IN), EdgeId(_h(2, 0), NodeId(NodeKind.OUT), Port.IN)},
            [],
        ),
        ("edge a2.0 -> a1.0.q", set(), ["E303"]),
        ("edge a1.0 -> a1.1.q", set(), ["E303"]),
        ("edge m2 -> a2.0.q", set(), ["E303"]),
        ("edge a1.0 -> embed", set(), ["E304"]),
        ("edge a1.0 -> m3.k", set(), ["E206"]),
        ("edge a1.0.q -> out", {EdgeId(_h(1, 0), NodeId(NodeKind.OUT), Port.IN)}, ["E206"]),
        ("edge a1.0 -> a2.0.x", set(), ["E206"]),
    ],
)
def test_resolve_edges(stmt, edges, expected):
    u = upto(HEAD + stmt + "\n", resolve_edges)
    assert codes(u) == expected
    assert set(u.edges) == edges
    assert {c.node for c in u.claims} >= {e.sender for e in edges} | {e.receiver for e in edges}


def test_resolve_edges_group_port_reaches_every_member():
    u = upto(HEAD + "group g = a2.0, a2.1\nedge a1.0 -> g.k\n", resolve_edges)
    assert set(u.edges) == {EdgeId(_h(1, 0), _h(2, 0), Port.K), EdgeId(_h(1, 0), _h(2, 1), Port.K)}
    assert all(c.groups == ("g",) for c in u.claims if c.node.layer == 2)


def test_parallel_attention_mlp_reads_only_earlier_layers(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(
        '{"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64, "model_type": "gptj"}'
    )
    text = 'model "m"\ndataset d = fakegen()\nedge a1.0 -> m1\nedge a0.0 -> m1\n'
    u = run_passes(load_source(text, str(tmp_path / "h.circuit")), PASSES[: PASSES.index(resolve_edges) + 1])
    assert codes(u) == ["E303"]
    assert {e.sender for e in u.edges} == {_h(0, 0)}


def test_check_cycles_sees_rejected_edges():
    u = upto(HEAD + "edge a1.0 -> a2.0\nedge a2.0 -> a1.0\n", check_cycles)
    assert codes(u) == ["E303", "E305"]


@pytest.mark.parametrize(
    "stmts, expected",
    [
        ("edge embed -> a1.0.q -> out", []),
        ("edge embed -> a1.0.q -> out\nedge a2.0 -> out", ["W301"]),
        ("edge embed -> a1.0.q -> out\nedge embed -> a2.0.q", ["W302"]),
        ("edge embed -> a1.0.q", ["W303"]),
        ("node a3.0\nedge embed -> a1.0.q -> out", ["W301", "W302"]),
    ],
)
def test_check_paths(stmts, expected):
    assert codes(upto(HEAD + stmts + "\n", check_paths)) == expected


def test_note_gqa_once_per_head():
    u = upto(HEAD + "edge embed -> a1.0.k, a1.0.v\nedge embed -> a1.0.q -> out\nedge a0.0 -> a1.4.v\n", note_gqa)
    notes = [d for d in u.diagnostics if d.code == "N301"]
    assert [n.message.split("`")[1] for n in notes] == ["a1.0", "a1.4"]
    assert "a1.1, a1.2" in notes[0].message and "a1.3, a1.5" in notes[1].message


def test_gqa_note_absent_without_gqa(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 8}')
    u = run_passes(
        load_source('model "m"\ndataset d = fakegen()\nedge embed -> a1.0.k -> out\n', str(tmp_path / "h.circuit"))
    )
    assert "N301" not in codes(u)


@pytest.mark.parametrize(
    "stmt, settings, expected",
    [
        ("set seed = 3", (("seed", 3),), []),
        ("set completeness.sizes = [1, 3]", (("completeness.sizes", (1, 3)),), []),
        ("set bootstrap = 0", (), ["E213"]),
        ("set seed = 1.5", (), ["E213"]),
        ("set sed = 1", (), ["E212"]),
    ],
)
def test_resolve_settings(stmt, settings, expected):
    u = run_passes(load_source(HEAD + stmt + "\n", "t.circuit"), (resolve_settings,))
    assert codes(u) == expected and u.settings == settings


def test_resolve_expects():
    u = run_passes(load_source(HEAD + "expect recovered.upper < 2\nexpect kll <= 1\n", "t.circuit"), (resolve_expects,))
    assert codes(u) == ["E211"]
    assert [str(e) for e in u.expects] == ["recovered.upper < 2"]
