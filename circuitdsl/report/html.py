"""`render_html(result, ...)`: one self-contained HTML page for a `circuitdsl check` result.

Everything is inline (CSS, SVG, matplotlib charts as base64 data URIs, one tiny script that marks
the page as rendered); opening the file needs no network. No torch: the model-dependent parts
arrive precomputed as `circuitdsl.report.extras.Extras`.
"""

from __future__ import annotations

import base64
import html
import math
import statistics
from pathlib import Path

from circuitdsl.atomic import write_text
from circuitdsl.draw import split_source
from circuitdsl.ir import Hypothesis, MetricKind, SplitKind, metric_unit
from circuitdsl.report.charts import dla_bars_svg, metric_histogram_svg
from circuitdsl.report.extras import Extras
from circuitdsl.report.highlight import highlight_circuit
from circuitdsl.report.svg import COLLAPSE_OVER, graph_svg, heatmap_svg
from circuitdsl.results import CheckResult

__all__ = ["render_html", "write_html", "SECTIONS"]

SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("graph", "Hypothesis graph"),
    ("scores", "Scores"),
    ("distribution", "Per-example metric"),
    ("worst", "Worst examples"),
    ("attention", "Attention patterns"),
    ("dla", "Direct logit attribution"),
    ("minimality", "Minimality"),
    ("completeness", "Completeness"),
    ("tests", "Tests"),
    ("source", "Source"),
    ("run", "Run details"),
)

_LOWER_IS_BETTER = {k.value for k in MetricKind if k.lower_is_better}


def _e(s) -> str:
    return html.escape(str(s), quote=True)


def _f(v: float | None, fmt: str = ".4g") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return '<span class="undef">undefined</span>'
    return format(v + 0.0, fmt)  # + 0.0 turns -0.0 into 0.0


def _pct(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return '<span class="undef">undefined</span>'
    return f"{100 * v:.1f}%"


def _data_uri_svg(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _section(sid: str, title: str, body: str, sub: str = "") -> str:
    sub = f'<p class="sub">{sub}</p>' if sub else ""
    return f'<section id="{sid}" class="card"><h2>{_e(title)}</h2>{sub}{body}</section>'


def _needs_model(what: str, reason: str | None) -> str:
    why = (
        _e(reason)
        if reason
        else (
            "this report was made from the JSON result alone. Run "
            "<code>circuitdsl report RESULT.json -o REPORT.html --circuit FILE.circuit</code> to load the model and compute it."
        )
    )
    return f'<div class="needs" data-needs="model"><strong>{_e(what)} needs the model:</strong> {why}</div>'


# ---- sections ---------------------------------------------------------------------------------------


def failing_clauses(r: CheckResult) -> str:
    """`expect recovered >= 0.8 (line 21): 0.78; ...`: the clauses that failed, with their values."""
    out = []
    for x in r.expects:
        if x.passed:
            continue
        where = f" (line {x.line})" if x.line else ""
        value = _f(x.value) if x.value is not None else "undefined"
        out.append(f"expect {x.score} {x.op} {x.threshold:g}{where}: {value}")
    return "; ".join(out)


def _summary(r: CheckResult) -> str:
    badge = '<span class="badge pass">PASS</span>' if r.passed else '<span class="badge fail">FAIL</span>'
    if not r.expects:
        badge = '<span class="badge none">no expect clauses</span>'
    elif not r.passed:  # the title names the failing clauses (issue 17)
        badge += f' <span class="failing" style="font-size:15px;font-weight:600">{_e(failing_clauses(r))}</span>'
    rec = r.recovered
    gap = r.f_model - r.f_baseline
    if rec.value is None:
        head = (
            f"recovered is <strong>undefined</strong>: {_e(rec.undefined_reason or 'no reason given')} "
            f"(gap {_f(gap, '+.4g')} {_e(metric_unit(r.metric))}, standard error {_f(rec.gap_se)})"
        )
    else:
        interval = f" (95% interval {_pct(rec.lower)} to {_pct(rec.upper)})" if rec.lower is not None else ""
        head = (
            f"Scrubbed by this hypothesis, the model recovers <strong>{_pct(rec.value)}</strong>{interval} of the "
            f"{_e(r.metric)} gap between the baseline ({_f(r.f_baseline)}) and the model ({_f(r.f_model)}); "
            f"scrubbed: {_f(r.f_scrubbed)}, that is {_f(r.f_scrubbed - r.f_model, '+.4g')} from the model in raw units."
        )
    worst = r.completeness.worst
    tiles = [
        ("recovered", _pct(rec.value), f"[{_pct(rec.lower)}, {_pct(rec.upper)}]"),
        ("F(model)", _f(r.f_model), r.metric),
        ("F(scrubbed)", _f(r.f_scrubbed), r.metric),
        ("F(baseline)", _f(r.f_baseline), f"gap {_f(gap, '+.4g')}"),
        ("mean |Δm|", _f(r.mean_abs_delta), f"median {_f(r.median_abs_delta)}, p90 {_f(r.p90_abs_delta)}"),
        (
            "incompleteness",
            _f(worst.incompleteness) if worst else "—",
            ("K = {" + ", ".join(worst.nodes) + "}") if worst else _e(r.completeness.skipped or "not searched"),
        ),
        ("KL(model‖scrubbed)", _f(r.kl), f"baseline {_f(r.kl_baseline)} nats"),
    ]
    tiles_html = "".join(
        f'<div class="tile"><div class="tl">{_e(k)}</div><div class="tv">{v}</div><div class="ts">{s}</div></div>'
        for k, v, s in tiles
    )
    facts = (
        f"<span>model <b>{_e(r.model)}</b></span><span>dataset <b>{_e(r.dataset)}</b> (n = {r.n})</span>"
        f"<span>metric <b>{_e(r.metric)}</b>{' (lower is better)' if r.metric in _LOWER_IS_BETTER else ''}</span>"
        f"<span>ablation <b>{_e(r.ablation)}</b></span><span>seed <b>{r.seed}</b></span>"
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in r.notes)
    notes_html = f'<ul class="notes">{notes}</ul>' if notes else ""
    src = f' <span class="path">{_e(r.source_path)}</span>' if r.source_path else ""
    return (
        f'<header id="summary" class="card"><h1>{_e(r.name)} {badge}</h1><div class="facts">{facts}</div>'
        f'<p class="lead">{head}</p><div class="tiles">{tiles_html}</div>{notes_html}<p class="sub">source:{src or " —"}</p></header>'
    )


def _graph(r: CheckResult, h: Hypothesis | None) -> str:
    if h is None:
        body = (
            '<div class="needs" data-needs="circuit"><strong>The graph needs the .circuit file:</strong> the JSON result does '
            "not hold the hypothesis graph. Pass <code>--circuit FILE</code> (or keep the file at its recorded path).</div>"
        )
        return _section("graph", "Hypothesis graph", body)
    costs = {x.node: (x.fraction, x.raw, x.changed_nothing) for x in r.minimality.removals}
    svg = graph_svg(h, costs, uid="hg")
    sub = (
        "Claimed nodes in model order, grouped as in the file (dashed boxes). Each node is filled by its minimality cost: "
        "the fraction of F(model) − F(baseline) lost when its outgoing claimed edges are removed (C \\ {v}). "
        "Hover a node or edge for details; a dashed outline means removing the node changed no example."
    )
    if 'class="node collapsed"' in svg:
        sub += (
            f" To fit the page, each group of more than {COLLAPSE_OVER} nodes spread over several layers is drawn as one box (double outline), filled by "
            "the worst (largest) removal cost of its members; its tooltip lists every member's cost (so does the "
            "minimality table). One curve stands for all claimed edges between the box and another node on one port "
            "(hover it for the count); edges inside the box are not drawn."
        )
    if "data-rows=" in svg:
        sub += " The columns wrap: model order runs left to right, then on in the next row."
    if h.splits:
        sub += (
            " A split component's claimed parts are nodes of their own, drawn in the component's column in a dotted box "
            "captioned by the component and how it is split (listed below the graph)."
        )
    return _section("graph", "Hypothesis graph", f'<div class="scroll">{svg}</div>{_splits(h)}', sub)


def _splits(h: Hypothesis) -> str:
    """The file's `split` statements: each component, how it is split, the weights file (and its digest, so
    that a report names the exact weights it used) and its parts, claimed or not."""
    if not h.splits:
        return ""
    claimed = {c.node for c in h.claims}
    rows = []
    for s in h.splits:
        how = f"subspace <b>{_e(s.name)}</b>" if s.kind is SplitKind.SUBSPACE else "SAE"
        if s.kind is SplitKind.SAE:
            how += f", latents {_e(', '.join(str(i) for i in s.latents) or 'none named')}"
        parts = ", ".join(
            f'<code class="{"claimed" if p in claimed else "unclaimed"}">{_e(p.name)}</code>'
            + ("" if p in claimed else " (unclaimed)")
            for p in s.parts
        )
        rows.append(
            f'<tr data-split="{_e(s.node.name)}"><td><code>{_e(s.node.name)}</code></td><td>{how}</td>'
            f'<td><span class="path">{_e(split_source(s, h))}</span></td><td><code>{_e(s.digest or "—")}</code></td>'
            f"<td>{parts}</td></tr>"
        )
    return (
        '<h3 id="splits">Split components</h3><table class="splits"><thead><tr><th>component</th><th>split by</th>'
        "<th>weights (relative to the file)</th><th>digest (blake2b)</th><th>parts</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _scores(r: CheckResult) -> str:
    rec = r.recovered
    unit = metric_unit(r.metric)
    rows = [
        (
            "recovered",
            _f(rec.value, ".4f"),
            f"[{_f(rec.lower, '.4f')}, {_f(rec.upper, '.4f')}]",
            f"(F(scrubbed) − F(baseline)) / (F(model) − F(baseline)); bootstrap over examples, {rec.resamples} resamples"
            + (f"; undefined: {_e(rec.undefined_reason)}" if rec.undefined_reason else ""),
        ),
        (
            "standard error of the gap",
            _f(rec.gap_se),
            "",
            "sd / sqrt(n) of m(model, x) − m(baseline, x); recovered is undefined when |gap| is under 2 of them",
        ),
        ("F(model)", _f(r.f_model), "", f"mean {_e(r.metric)} of the unmodified model ({unit})"),
        ("F(scrubbed)", _f(r.f_scrubbed), "", f"mean {_e(r.metric)} under the hypothesis ({unit})"),
        ("F(baseline)", _f(r.f_baseline), "", f"mean {_e(r.metric)} with every sender ablated ({unit})"),
        ("F(model) − F(baseline)", _f(r.f_model - r.f_baseline, "+.4g"), "", "the gap a hypothesis can recover"),
        ("F(scrubbed) − F(model)", _f(r.f_scrubbed - r.f_model, "+.4g"), "", "what the hypothesis misses, raw"),
        ("mean_abs_delta", _f(r.mean_abs_delta), "", "mean over examples of |m(scrubbed, x) − m(model, x)|"),
        ("median_abs_delta", _f(r.median_abs_delta), "", "median of the same"),
        ("p90_abs_delta", _f(r.p90_abs_delta), "", "90th percentile of the same"),
        ("kl", _f(r.kl), "", f"mean KL(model ‖ scrubbed) at the scored positions (nats); baseline {_f(r.kl_baseline)}"),
        (
            "incompleteness",
            _f(r.completeness.worst.incompleteness) if r.completeness.worst else _f(None),
            "",
            "worst |F(C \\ K) − F(M \\ K)| found",
        ),
        ("minimality", _f(r.minimality.score), "", "smallest single-node removal cost, as a fraction of the gap"),
    ]
    trs = "".join(
        f"<tr><th>{_e(a)}</th><td class='num'>{b}</td><td class='num'>{c}</td><td class='what'>{d}</td></tr>"
        for a, b, c, d in rows
    )
    table = f'<table class="scores"><thead><tr><th>score</th><th>value</th><th>95% interval</th><th>meaning</th></tr></thead><tbody>{trs}</tbody></table>'
    ex = []
    for x in r.expects:
        ok = '<span class="badge pass">pass</span>' if x.passed else '<span class="badge fail">fail</span>'
        line = f'<a href="#L{x.line}">line {x.line}</a>' if x.line else ""
        ex.append(
            f'<tr class="{"ok" if x.passed else "bad"}"><td>{line}</td><td><code>expect {_e(x.score)} {_e(x.op)} {x.threshold:g}</code></td>'
            f'<td class="num">{_f(x.value, ".4f")}</td><td>{ok}</td><td>{_e(x.reason or "")}</td></tr>'
        )
    exp = (
        '<h3>expect clauses</h3><table class="expects"><thead><tr><th></th><th>clause</th><th>value</th><th>result</th><th>reason</th></tr>'
        f"</thead><tbody>{''.join(ex)}</tbody></table>"
        if ex
        else '<p class="sub">The file makes no <code>expect</code> claims.</p>'
    )
    sub = f"metric <b>{_e(r.metric)}</b>, ablation <b>{_e(r.ablation)}</b>, dataset <b>{_e(r.dataset)}</b> (n = {r.n}). Raw numbers are in {unit}."
    return _section("scores", "Scores", table + exp, sub)


def _distribution(r: CheckResult) -> str:
    if not r.examples:
        return _section("distribution", "Per-example metric", "<p>The result holds no per-example rows.</p>")
    svg = metric_histogram_svg(
        [x.m_model for x in r.examples],
        [x.m_scrubbed for x in r.examples],
        [x.m_baseline for x in r.examples],
        metric=r.metric,
    )
    deltas = [x.abs_delta for x in r.examples]
    close = sum(1 for d in deltas if d <= 0.1 * max(1e-12, abs(r.f_model - r.f_baseline)))
    body = (
        f'<img class="chart" alt="histogram of the per-example metric" src="{_data_uri_svg(svg)}">'
        f'<p class="sub">|m(scrubbed, x) − m(model, x)|: mean {_f(r.mean_abs_delta)}, median {_f(statistics.median(deltas))}, '
        f"p90 {_f(r.p90_abs_delta)}, max {_f(max(deltas))}. On {close} of {len(deltas)} examples the scrubbed metric is "
        "within 10% of |F(model) − F(baseline)| of the model's.</p>"
    )
    return _section(
        "distribution",
        "Per-example metric",
        body,
        "The distribution of m(x) per example under the model, the scrubbed hypothesis and the baseline (dashed: means). "
        "A hypothesis can match the mean while being wrong on many examples.",
    )


def _token_chips(tokens, strings) -> str:
    chips = []
    n = len(tokens)
    for i, t in enumerate(tokens):
        label = strings[i] if strings else str(t)
        cls = "tok last" if i == n - 1 else "tok"
        chips.append(f'<span class="{cls}" title="position {i}, token id {t}">{_e(label)}</span>')
    return "".join(chips)


def _worst(r: CheckResult, extras: Extras | None, k: int = 10) -> str:
    rows = sorted(r.examples, key=lambda x: -x.abs_delta)[:k]
    if not rows:
        return _section("worst", "Worst examples", "<p>The result holds no per-example rows.</p>")
    trs = []
    for x in rows:
        strings = extras.tokens_of(x.id) if extras else None
        text = f'<div class="text">{_e(x.text)}</div>' if x.text else ""
        trs.append(
            f'<tr><td><code>{_e(x.id)}</code></td><td class="toks">{text}{_token_chips(x.tokens, strings)}</td>'
            f'<td class="num">{_f(x.m_model)}</td><td class="num">{_f(x.m_scrubbed)}</td><td class="num">{_f(x.m_baseline)}</td>'
            f'<td class="num strong">{_f(x.abs_delta)}</td></tr>'
        )
    decoded = "decoded with the model's vocabulary" if extras else "as token ids (pass --circuit to decode them)"
    body = (
        '<table class="worst"><thead><tr><th>id</th><th>tokens</th><th>m(model)</th><th>m(scrubbed)</th><th>m(baseline)</th>'
        f"<th>|Δm|</th></tr></thead><tbody>{''.join(trs)}</tbody></table>"
    )
    return _section(
        "worst",
        "Worst examples",
        body,
        f"The {len(rows)} examples where the scrubbed metric is furthest from the model's; tokens {decoded}; "
        "the last position is outlined.",
    )


def _attention(extras: Extras | None, reason: str | None) -> str:
    if extras is None:
        return _section("attention", "Attention patterns", _needs_model("Attention patterns", reason))
    if not extras.attention:
        return _section("attention", "Attention patterns", "<p>The hypothesis claims no attention heads.</p>")
    blocks = []
    by_ex: dict[str, list] = {}
    for a in extras.attention:
        by_ex.setdefault(a.example_id, []).append(a)
    for ex_id, maps in by_ex.items():
        first = maps[0]
        marks: dict[int, str] = {}
        for name, idx in first.positions:
            for i in idx:
                marks[i] = (marks[i] + "," + name) if i in marks else name
        cell = 12 if len(first.tokens) <= 24 else max(4, int(290 / len(first.tokens)))

        def claimed_rows(a, first=first):
            """The query rows where a head claimed only at some positions is claimed (None: everywhere)."""
            if not a.claimed_at:
                return None
            at = set(a.claimed_at)
            return sorted({i for name, idx in first.positions if name in at for i in idx})

        heats = "".join(
            f"<figure>{heatmap_svg(a.pattern, a.tokens, title=a.head + ((' @ ' + ', '.join(a.claimed_at)) if a.claimed_at else ''), marks=marks, cell=cell, claimed_rows=claimed_rows(a), claimed_at=a.claimed_at or ())}</figure>"
            for a in maps
        )
        blocks.append(
            f'<h3>example <code>{_e(ex_id)}</code> <span class="sub">({_e(first.role)})</span></h3><div class="heats">{heats}</div>'
        )
    notes = "".join(f"<p class='sub'>{_e(n)}</p>" for n in extras.notes if "attention" in n)
    return _section(
        "attention",
        "Attention patterns",
        "".join(blocks) + notes,
        "Rows are query positions, columns key positions; darker blue is more attention. Named positions "
        "of the dataset are labelled; hover a cell for its weight. For a head claimed only at some positions, "
        "the claimed query rows are outlined and labelled clean (the hypothesis keeps its output there) and the "
        "other rows are greyed and labelled scrubbed (its output there is replaced per the ablation); "
        "every pattern is the clean run's.",
    )


def _dla(extras: Extras | None, reason: str | None) -> str:
    if extras is None:
        return _section("dla", "Direct logit attribution", _needs_model("Direct logit attribution", reason))
    # a split head is shown as its parts (claimed or not), never also whole: the parts sum to the head
    split_heads = {x.component for x in extras.parts}
    claimed = [x for x in extras.heads if x.claimed] + [x for x in extras.parts if x.claimed]
    unclaimed = [x for x in extras.heads if not x.claimed and x.head not in split_heads]
    unclaimed += [x for x in extras.parts if not x.claimed]
    top_un = sorted(unclaimed, key=lambda x: -abs(x.mean))[: min(6, len(unclaimed))]
    rest_un = sum(x.mean for x in unclaimed) - sum(x.mean for x in top_un)
    labels, values, spreads, kinds = [], [], [], []

    def q(vals):
        s = sorted(vals)
        return (s[int(0.1 * (len(s) - 1))], s[int(math.ceil(0.9 * (len(s) - 1)))]) if s else None

    for x in claimed:
        labels.append(f"{x.head} (claimed)")
        values.append(x.mean)
        spreads.append(q(x.values))
        kinds.append("claimed")
    for x in top_un:
        labels.append(f"{x.head}")
        values.append(x.mean)
        spreads.append(q(x.values))
        kinds.append("unclaimed")
    if len(unclaimed) > len(top_un):
        labels.append(f"{len(unclaimed) - len(top_un)} other heads")
        values.append(rest_un)
        spreads.append(None)
        kinds.append("unclaimed")
    labels += ["embeddings, MLPs, biases", "total (clean model)"]
    values += [extras.rest, extras.total]
    spreads += [None, None]
    kinds += ["rest", "total"]
    svg = dla_bars_svg(labels, values, spreads, kinds, direction=extras.direction)
    claimed_sum = sum(x.mean for x in claimed)
    share = f"{100 * claimed_sum / extras.total:.0f}%" if abs(extras.total) > 1e-9 else "undefined"
    notes = "".join(f"<p class='sub'>{_e(n)}</p>" for n in extras.notes if "attention" not in n)
    body = (
        f'<img class="chart" alt="direct logit attribution bar chart" src="{_data_uri_svg(svg)}">'
        f'<p class="sub">The claimed heads write {claimed_sum:+.3f} of the clean {_e(extras.direction)} of '
        f"{extras.total:+.3f} directly ({share}); the rest arrives through unclaimed heads, the embeddings, MLPs and biases, "
        f"or indirectly. Averaged over the first {extras.n_dla_examples} examples.</p>{notes}"
    )
    return _section(
        "dla",
        "Direct logit attribution",
        body,
        "Each head's output at the scored positions projected on the unembedding direction "
        f"{_e(extras.direction)} (red: claimed heads; grey: the largest unclaimed heads).",
    )


def _minimality(r: CheckResult) -> str:
    m = r.minimality
    if getattr(m, "skipped", None):
        return _section(
            "minimality", "Minimality", f'<p class="undef">Not run: {_e(m.skipped)}. The graph is left uncoloured.</p>'
        )
    if not m.removals:
        return _section(
            "minimality", "Minimality", "<p>No claimed node could be removed (none has outgoing claimed edges).</p>"
        )
    mx = max([abs(x.fraction) for x in m.removals if x.fraction is not None] + [1e-12])
    trs = []
    for x in sorted(m.removals, key=lambda x: -(x.fraction if x.fraction is not None else -1e9)):
        w = 0 if x.fraction is None else abs(x.fraction) / mx * 100
        cls = "neg" if (x.fraction or 0) < 0 else "pos"
        trs.append(
            f'<tr><th>{_e(x.node)}</th><td class="num">{_f(x.f_without)}</td><td class="num">{_f(x.raw, "+.4g")}</td>'
            f'<td class="num">{_f(x.fraction, "+.3f")}</td><td class="barcell"><span class="bar {cls}" style="width:{w:.1f}%"></span></td>'
            f"<td>{'changed no example' if x.changed_nothing else ''}</td></tr>"
        )
    extra = (
        f'<p class="sub">Removing every claimed head/MLP together: {_f(m.joint_raw, "+.4g")} raw; the single removals sum to '
        f"{_f(m.sum_single_raw, '+.4g')}.</p>"
    )
    if m.redundancy_note:
        extra += f'<div class="callout">{_e(m.redundancy_note)}</div>'
    body = (
        '<table class="mini"><thead><tr><th>node v</th><th>F(C \\ {v})</th><th>F(C) − F(C \\ {v})</th><th>fraction of gap</th>'
        f"<th></th><th></th></tr></thead><tbody>{''.join(trs)}</tbody></table>{extra}"
    )
    return _section(
        "minimality",
        "Minimality",
        body,
        f"minimality score (smallest fraction): {_f(m.score, '+.3f')}. A node whose removal costs little may be unnecessary; "
        "redundant backup heads can each look removable on their own.",
    )


def _completeness(r: CheckResult) -> str:
    c = r.completeness
    budget = (
        f"sizes {list(c.sizes)}{f' (searched as {list(c.searched_sizes)})' if c.searched_sizes and c.searched_sizes != c.sizes else ''}, {c.samples} random samples per size, {c.greedy_steps} greedy steps; "
        f"{len(c.trials)} subsets K tried, {c.scrubs} scrubs"
    )
    if c.skipped:
        return _section(
            "completeness", "Completeness", f'<div class="needs">Not searched: {_e(c.skipped)}</div>', budget
        )
    if not c.trials:
        return _section("completeness", "Completeness", "<p>No subset K was evaluated.</p>", budget)
    worst = ""
    if c.worst:
        worst = (
            f'<div class="callout">Worst K found: <b>{{{_e(", ".join(c.worst.nodes))}}}</b> ({_e(c.worst.how)}): '
            f"F(C \\ K) = {_f(c.worst.f_c_minus_k)}, F(M \\ K) = {_f(c.worst.f_m_minus_k)}, "
            f"incompleteness <b>{_f(c.worst.incompleteness)}</b>.</div>"
        )
    trs = []
    for t in sorted(c.trials, key=lambda t: -t.incompleteness):
        is_worst = c.worst is not None and t.nodes == c.worst.nodes and t.how == c.worst.how
        k = "{" + ", ".join(t.nodes) + "}" if t.nodes else "∅"
        trs.append(
            f'<tr class="{"worstrow" if is_worst else ""}"><td><code>{_e(k)}</code></td><td>{_e(t.how)}</td>'
            f'<td class="num">{_f(t.f_c_minus_k)}</td><td class="num">{_f(t.f_m_minus_k)}</td><td class="num strong">{_f(t.incompleteness)}</td></tr>'
        )
    body = (
        worst
        + '<table class="kt"><thead><tr><th>K</th><th>found by</th><th>F(C \\ K)</th><th>F(M \\ K)</th><th>|difference|</th>'
        f"</tr></thead><tbody>{''.join(trs)}</tbody></table>"
    )
    return _section(
        "completeness",
        "Completeness",
        body,
        "incompleteness(K) = |F(C \\ K) − F(M \\ K)|: knocking out K should hurt the hypothesis as much as the full model. "
        f"Budget: {budget}.",
    )


def _tests(r: CheckResult, stability=None) -> str:
    from circuitdsl.report.tests_view import stability_html, tests_section_html

    body = tests_section_html(r) + (stability_html(stability) if stability is not None else "")
    return _section(
        "tests",
        "Tests",
        body,
        "More than chance? (SEMANTICS.md section 5; docs/TESTS.md.) p = (1 + null draws at least as extreme) / "
        "(1 + R). The histograms show each null distribution with the observed value in red.",
    )


def _source(r: CheckResult, source_text: str | None, h: Hypothesis | None) -> str:
    if source_text is None:
        return _section(
            "source", "Source", '<div class="needs" data-needs="circuit">The .circuit source was not available.</div>'
        )
    marks = {x.line: x.passed for x in r.expects if x.line}
    rows = []
    for i, line in enumerate(highlight_circuit(source_text), start=1):
        mark = ""
        if i in marks:
            mark = '<span class="ok">✓</span>' if marks[i] else '<span class="bad">✗</span>'
        rows.append(
            f'<tr id="L{i}"><td class="ln">{i}</td><td class="mk">{mark}</td><td class="code">{line or " "}</td></tr>'
        )
    path = r.source_path or (h.source_path if h else None)
    return _section(
        "source",
        "Source",
        f'<div class="scroll"><table class="src">{"".join(rows)}</table></div>',
        f"{_e(path or '')} — expect lines are marked ✓ (holds) or ✗ (fails).",
    )


def _run(r: CheckResult) -> str:
    tim = "".join(f"<tr><th>{_e(k)}</th><td class='num'>{v:.2f} s</td></tr>" for k, v in r.timings)
    cost = "".join(f"<tr><th>{_e(k)}</th><td class='num'>{v}</td></tr>" for k, v in r.cost)
    draws = f"{r.reused_class_of_one} of {r.class_draws} class draws found a class holding only x itself (x reused)"
    body = (
        f'<div class="two"><table class="small"><thead><tr><th colspan="2">timings</th></tr></thead><tbody>{tim}</tbody></table>'
        f'<table class="small"><thead><tr><th colspan="2">cost</th></tr></thead><tbody>{cost}</tbody></table></div>'
        f'<p class="sub">{_e(draws)}. Schema {_e(r.schema)}.</p>'
    )
    return _section("run", "Run details", body)


# ---- page -------------------------------------------------------------------------------------------

_CSS = """
:root{--fg:#1d2127;--mute:#5f6b7a;--line:#e3e6ea;--bg:#f5f6f8;--pass:#1a7f37;--fail:#cf222e}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 -apple-system,"Segoe UI",Roboto,"DejaVu Sans",Helvetica,Arial,sans-serif}
nav{position:sticky;top:0;z-index:5;background:#24292f;padding:6px 16px;display:flex;flex-wrap:wrap;gap:2px 14px}
nav a{color:#d0d7de;text-decoration:none;font-size:13px}nav a:hover{color:#fff}
main{max-width:1180px;margin:0 auto;padding:14px 16px 40px}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 18px;margin:14px 0}
h1{margin:0 0 6px;font-size:22px}h2{margin:0 0 4px;font-size:17px}h3{margin:14px 0 6px;font-size:14px}
.sub{color:var(--mute);margin:2px 0 10px;font-size:13px}.lead{font-size:15px;margin:10px 0}
.badge{display:inline-block;border-radius:12px;padding:1px 10px;font-size:12px;font-weight:700;vertical-align:middle;color:#fff}
.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}.badge.none{background:#8c959f}
.facts{display:flex;flex-wrap:wrap;gap:4px 16px;color:var(--mute)}.facts b{color:var(--fg)}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px;margin:8px 0}
.tile{border:1px solid var(--line);border-radius:8px;padding:8px 10px}.tl{color:var(--mute);font-size:12px}
.tv{font-size:20px;font-weight:650;font-variant-numeric:tabular-nums}.ts{color:var(--mute);font-size:11.5px}
.notes{margin:8px 0;padding-left:18px;color:#3b4552}.path{font-family:ui-monospace,monospace}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
thead th{font-size:12px;color:var(--mute);font-weight:600}
td.num{text-align:right;white-space:nowrap;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
td.what{color:var(--mute);font-size:12.5px}.strong{font-weight:700}
tr.bad td{background:#fff1f0}tr.ok td{background:#f0fff4}tr.worstrow td{background:#fff8c5}
.undef{color:#9a6700;font-style:italic}
.needs{background:#f6f8fa;border:1px dashed #afb8c1;border-radius:8px;padding:10px 12px;color:#3b4552}
.callout{background:#fff8c5;border:1px solid #eed888;border-radius:8px;padding:8px 12px;margin:8px 0}
.scroll{overflow-x:auto}
img.chart{max-width:100%;height:auto;display:block;margin:4px 0}
svg.graph text{font-family:inherit}svg.graph .grp{fill:#fafbfc;stroke:#8c959f;stroke-dasharray:5,4}
svg.graph .grp-label{font-size:12px;fill:#57606a;font-style:italic}svg.graph .split-label{font-size:10px}
svg.graph .node rect{stroke:#444c56;stroke-width:1.2}svg.graph .nname{font-size:13px;font-weight:700;text-anchor:middle}
svg.graph .nfeat{font-size:10.5px;text-anchor:middle}svg.graph .ncost{font-size:10.5px;text-anchor:middle;font-variant-numeric:tabular-nums}
svg.graph .edge{fill:none;stroke-width:1.8;opacity:.9}svg.graph .port{font-size:11px;font-weight:700}
svg.graph .colcap{font-size:12px;fill:#57606a;text-anchor:middle}
svg.legend .tick{font-size:11px;fill:#57606a;text-anchor:middle}svg.legend .tickl{font-size:11px;fill:#57606a}
svg.graph .pin{font-size:9px;font-weight:700}
.heats{display:flex;flex-wrap:wrap;gap:6px}.heats figure{margin:0}
svg.heat .htitle{font-size:12px;font-weight:700}svg.heat .hlab{font-size:9px;fill:#57606a;font-family:ui-monospace,monospace}
svg.heat .hlab.m{fill:#1d2127;font-weight:700}svg.heat .hrow{font-size:9px;font-family:ui-monospace,monospace}svg.heat .hrow.clean{fill:#d4701c;font-weight:700}svg.heat .hrow.scrubbed{fill:#8c959f}
.toks{line-height:1.9}.tok{display:inline-block;font-family:ui-monospace,monospace;font-size:11.5px;background:#eef1f4;
border-radius:4px;padding:0 4px;margin:0 2px 0 0}.tok.last{outline:1.5px solid #cf222e}.text{margin-bottom:3px}
table.mini .barcell{width:28%}.bar{display:inline-block;height:10px;border-radius:2px}.bar.pos{background:#f46d43}.bar.neg{background:#92c5de}
table.src{font:12.5px/1.5 ui-monospace,SFMono-Regular,Menlo,monospace;width:auto;min-width:100%}
table.src td{border:0;padding:0 8px}table.src .ln{color:#8c959f;text-align:right;user-select:none}
table.src .code{white-space:pre}table.src tr:target td{background:#fff8c5}
.mk .ok{color:var(--pass);font-weight:700}.mk .bad{color:var(--fail);font-weight:700}
.src .c{color:#6e7781;font-style:italic}.src .s{color:#0a3069}.src .n{color:#0550ae}.src .k{color:#cf222e;font-weight:600}
.src .m{color:#8250df;font-weight:600}.src .g{color:#116329;font-weight:600}.src .p{color:#953800}.src .o{color:#57606a}
.two{display:flex;gap:18px;flex-wrap:wrap}.two table{width:auto;min-width:260px}
"""

_SCRIPT = """
(function(){
  var errors = [];
  window.addEventListener('error', function(e){ errors.push(String(e.message)); document.body.setAttribute('data-errors', errors.join(' | ')); });
  function check(){
    var ids = %s, missing = [];
    ids.forEach(function(id){ var el = document.getElementById(id); if(!el || !el.querySelector('h1,h2')) missing.push(id); });
    var imgs = document.querySelectorAll('img'), broken = [];
    imgs.forEach(function(im, i){ if(!(im.complete && im.naturalWidth > 0)) broken.push(im.alt || ('img' + i)); });
    var body = document.body;
    body.setAttribute('data-sections', String(ids.length - missing.length));
    body.setAttribute('data-images', String(imgs.length - broken.length) + '/' + imgs.length);
    body.setAttribute('data-svgs', String(document.querySelectorAll('svg').length));
    body.setAttribute('data-rendered', (missing.length || broken.length) ? ('missing: ' + missing.concat(broken).join(',')) : 'ok');
  }
  if (document.readyState === 'complete') check(); else window.addEventListener('load', check);
})();
"""


def render_html(
    result: CheckResult,
    *,
    source_text: str | None,
    hypothesis: Hypothesis | None = None,
    extras: Extras | None = None,
    extras_unavailable: str | None = None,
    stability=None,
) -> str:
    """The whole report as one HTML string. `extras` (from `circuitdsl.report.extras.compute_extras`)
    fills the attention and DLA sections; without it they say they need the model (and why, when
    `extras_unavailable` is given). `hypothesis` draws the graph; `source_text` is shown highlighted;
    `stability` (a circuitdsl.stability.Stability of which `result` is one seed) adds its spread to the Tests section."""
    import json

    r = result
    if source_text is None and hypothesis is not None:
        source_text = hypothesis.source_text
    parts = [
        _summary(r),
        _graph(r, hypothesis),
        _scores(r),
        _distribution(r),
        _worst(r, extras),
        _attention(extras, extras_unavailable),
        _dla(extras, extras_unavailable),
        _minimality(r),
        _completeness(r),
        _tests(r, stability),
        _source(r, source_text, hypothesis),
        _run(r),
    ]
    nav = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title in SECTIONS)
    status = "pass" if r.passed else "fail"
    script = _SCRIPT % json.dumps([sid for sid, _ in SECTIONS])
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="circuitdsl report">'
        f"<title>{_e(r.name)} — circuitdsl report ({status}{': ' + _e(failing_clauses(r)) if not r.passed and r.expects else ''})</title><style>{_CSS}</style></head>"
        f'<body data-rendered="no" data-status="{status}"><nav>{nav}</nav><main>{"".join(parts)}</main>'
        f"<script>{script}</script></body></html>\n"
    )


def write_html(path, result: CheckResult, **kwargs) -> Path:
    """Render and write the report to `path` atomically (temp file in the same folder + os.replace)."""
    path = Path(path)
    text = render_html(result, **kwargs)
    return write_text(path, text)
