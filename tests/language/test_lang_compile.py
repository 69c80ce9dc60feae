"""compile_file / compile_source end to end: the fixtures, imports, and error collection."""

from __future__ import annotations

from circuitdsl.compiler import compile_file, compile_source
from circuitdsl.ir import AblationKind, FeatureKind, Hypothesis, MetricKind, NodeId, NodeKind, Port

from .conftest import FIXTURES


def test_induction_fixture(monkeypatch):
    monkeypatch.chdir(FIXTURES)
    r = compile_file("induction_native.circuit")
    assert r.diagnostics == ()
    h = r.hypothesis
    assert isinstance(h, Hypothesis) and h.name == "induction_native"
    assert h.model.shape.n_heads == 4 and h.model.shape.pos_embed == "learned"
    assert h.metric.kind is MetricKind.LOSS and h.ablation.kind is AblationKind.RESAMPLE
    ind = NodeId(NodeKind.HEAD, 1, 3)
    assert h.claim(ind).positions == ("end",) and h.claim(ind).feature.args == ("answer",)
    assert h.claim(ind).groups == ("induction",)
    prev = h.claim(NodeId(NodeKind.HEAD, 0, 1))
    assert prev.feature.kind is FeatureKind.TUPLE
    assert h.graph.edges[NodeId(NodeKind.POS), NodeId(NodeKind.HEAD, 0, 1)]["ports"] == frozenset({Port.Q, Port.K})
    assert list(h.edges) == sorted(h.edges)
    assert h.budget.sizes == (1, 2) and [str(e) for e in h.expects][0] == "recovered >= 0.8"
    assert dict(h.groups)["induction"] == (NodeId(NodeKind.HEAD, 1, 0), ind)


def test_smollm_fixture_with_import():
    r = compile_file(FIXTURES / "nm_smollm.circuit")
    assert r.hypothesis is not None, r.render()
    h = r.hypothesis
    assert [d.name for d in h.datasets] == ["clean", "corrupted"] and h.main_dataset == "clean"
    assert dict(h.datasets[1].args) == {"mode": "abc", "n": 32}
    assert h.ablation.kind is AblationKind.PAIRED and h.ablation.dataset == "corrupted"
    assert {d.code for d in r.diagnostics} == {"N301"}
    assert h.bootstrap == 200


def test_all_errors_of_a_file_are_reported_together():
    text = (
        "model smollm2-135m\ndataset d = fakegen()\nmetric los\n"
        "edge embed -> a9.12 -> out\nedge a3.0 -> a2.0\nnode a1.0 depends on field nope\nexpect recoverd > 1\n"
    )
    r = compile_source(text)
    assert r.hypothesis is None
    assert [d.code for d in r.diagnostics] == ["E214", "E201", "E303", "E208", "E211"]
    assert [d.span.line for d in r.diagnostics] == [3, 4, 5, 6, 7]


def test_duplicate_across_files_names_both(tmp_path):
    (tmp_path / "base.circuit").write_text("group g = a1.0\n")
    (tmp_path / "main.circuit").write_text('import "base.circuit"\nmodel tiny\ngroup g = a1.1\n')
    r = compile_file(tmp_path / "main.circuit")
    (dup,) = [d for d in r.diagnostics if d.code == "E301"]
    assert dup.span.file.endswith("main.circuit") and dup.related[0].span.file.endswith("base.circuit")
    assert "base.circuit" in r.render()


def test_diamond_import_is_read_once(tmp_path):
    (tmp_path / "d.circuit").write_text("dataset d = fakegen()\n")
    (tmp_path / "b.circuit").write_text('import "d.circuit"\n')
    (tmp_path / "c.circuit").write_text('import "d.circuit"\n')
    (tmp_path / "a.circuit").write_text(
        'import "b.circuit"\nimport "c.circuit"\nmodel smollm2-135m\nedge embed -> a1.0.q -> out\n'
    )
    r = compile_file(tmp_path / "a.circuit")
    assert r.hypothesis is not None, r.render()


def test_compile_source_never_raises_on_garbage():
    for text in [
        "",
        "\n\n",
        "#",
        "model",
        "edge -> ->",
        "node a0.1 depends on (",
        '"',
        "\x00",
        "model tiny\r\nedge a0.1 -> out\r\n",
    ]:
        r = compile_source(text)
        assert r.hypothesis is None and r.diagnostics
