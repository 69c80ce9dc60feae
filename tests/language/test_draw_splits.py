"""Drawing split components (issue 15 item 5): each claimed part is a box of its own, and the parts of one
split sit together in a cluster captioned by the component and how it is split (subspace name; SAE
directory and latents), nested in a group's cluster when the parts are in that group."""

from __future__ import annotations

import re

from circuitdsl.draw import split_caption, to_dot, view, write_drawing

from .test_lang_splits import _compile

BODY = (
    'split a1.0 by subspace s from "splits/s2.npy"\n'
    'split m0 by sae "splits/sae_m0" latents 5, 3\n'
    "group readers = a1.1, m0[f3], m0[f5]\n"
    "edge embed -> m0[f3], m0[f5], m0[err] -> a1.1 -> out\n"
    "edge embed -> a1.0[s].q, a1.0[~s] -> out\n"
)


def _subgraphs(dot: str) -> dict[str, list[str]]:
    """label of each `subgraph cluster...` -> the node names declared directly inside it (nested ones apart)."""
    out: dict[str, list[str]] = {}
    stack: list[str] = []
    for line in dot.splitlines():
        s = line.strip()
        if s.startswith("subgraph cluster"):
            stack.append("")
        elif s.startswith("label=") and stack and stack[-1] == "":
            stack[-1] = re.match(r'label="((?:[^"\\]|\\.)*)"', s).group(1)
            out[stack[-1]] = []
        elif s == "}" and stack:
            stack.pop()
        elif stack and re.match(r'^"[^"]+" \[label=', s):
            out[stack[-1]].append(s.split('"')[1])
    return out


def test_parts_are_boxes_clustered_by_their_split(tmp_path):
    r, _ = _compile(tmp_path, BODY)
    assert r.ok, r.render("concise")
    h = r.hypothesis
    v = view(h)
    keys = {b.key for b in v.boxes}
    assert {"a1.0[s]", "a1.0[~s]", "m0[f3]", "m0[f5]", "m0[err]"} <= keys
    assert "a1.0" not in keys and "m0" not in keys
    captions = dict(v.splits)
    assert captions == {
        "a1.0 split by subspace s": ("a1.0[s]", "a1.0[~s]"),
        "m0 split by SAE splits/sae_m0, latents 3, 5": ("m0[f3]", "m0[f5]", "m0[err]"),
    }
    sub = _subgraphs(to_dot(h))
    assert sub["a1.0 split by subspace s"] == ["a1.0[s]", "a1.0[~s]"]
    # m0's parts in the group `readers` are drawn inside that group's cluster, in a split cluster of their own;
    # m0[err] (in no group) in a second cluster with the same caption outside it
    sae = "m0 split by SAE splits/sae_m0, latents 3, 5"
    assert sub["readers"] == ["a1.1"]
    assert sorted(sub[sae]) in (["m0[f3]", "m0[f5]"], ["m0[err]"])
    dot = to_dot(h)
    assert dot.count(f'label="{sae}"') == 2
    inside = dot[dot.index('label="readers"') :]
    assert inside.index(f'label="{sae}"') < inside.index('"m0[f3]"') < inside.index("}")


def test_caption_of_a_split_outside_the_file_folder_is_its_absolute_path(tmp_path):
    r, root = _compile(tmp_path, BODY)
    (s_sub, s_sae) = r.hypothesis.splits
    assert split_caption(s_sub, r.hypothesis) == "a1.0 split by subspace s"
    import dataclasses

    elsewhere = dataclasses.replace(r.hypothesis, source_path=str(tmp_path / "other" / "deep" / "h.circuit"))
    assert split_caption(s_sae, elsewhere) == f"m0 split by SAE {(root / 'splits' / 'sae_m0').resolve()}, latents 3, 5"


def test_matplotlib_drawing_of_parts(tmp_path):
    r, _ = _compile(tmp_path, BODY)
    out = tmp_path / "g.png"
    assert write_drawing(r.hypothesis, out, use_graphviz=False) == "matplotlib"
    assert out.stat().st_size > 1000
