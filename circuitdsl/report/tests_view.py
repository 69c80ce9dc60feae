"""How the statistical tests of a check (SEMANTICS.md section 5) are shown: in the terminal (rich) and
as the HTML report's "Tests" section, with each null distribution drawn as a histogram and the observed
value marked. No torch."""

from __future__ import annotations

import html
import math

from rich.markup import escape

from circuitdsl.engine.stats import null_summary
from circuitdsl.results import CheckResult, Tests

__all__ = [
    "render_tests_text",
    "tests_section_html",
    "stability_html",
    "null_histogram_svg",
    "binomial_svg",
    "cost_line",
    "EXTREME",
]

EXTREME = {
    "closer_to_1": "at least as close to 1",
    "greater": "at least as large",
    "less": "at least as small",
}
"""When a null draw counts against the observed statistic, in words."""


def _g(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "undefined"
    return f"{v + 0.0:.{digits}g}"


def _p(v) -> str:
    return "undefined" if v is None else f"{v:.3g}"


def cost_line(t: Tests) -> str:
    per = f" = {t.rows / t.pass_nodes:,.0f} forward passes of one example" if t.pass_nodes and t.rows else ""
    return (
        f"tests cost {t.scrubs} scrubs, {t.block_runs:,} block runs and {t.rows:,} rows{per}, {t.seconds:.1f} s "
        "(one Engine: the clean activations and the row memo are shared with the check)"
    )


def _null_text(x) -> str:
    s = null_summary(x.null)
    if s["mean"] is None:
        return "no draw"
    return (
        f"mean {_g(s['mean'])}, sd {_g(s['sd'])}, 5-95% [{_g(s['q05'])}, {_g(s['q95'])}], "
        f"range [{_g(s['min'])}, {_g(s['max'])}]; extreme = {EXTREME.get(x.direction, x.direction)}"
    )


def render_tests_text(r: CheckResult, con) -> None:
    """The tests table (and the per-node minimality tests) of a check, printed with rich."""
    t = r.tests
    if t is None:
        return
    from rich.table import Table

    tab = Table(title=f"tests (SEMANTICS.md section 5): R = {t.r} null draws, seed {t.seed}")
    for c in ("test", "p", "observed", "null"):
        tab.add_column(c)
    for name in ("sufficiency", "necessity"):
        x = t.get(name)
        if x is None:
            continue
        what = "recovered" if name == "sufficiency" else "F(M \\ C)"
        obs = f"{what} {_g(x.observed)}" + (f" {x.unit}" if x.unit and x.unit != "recovered" else "")
        tab.add_row(
            name,
            _p(x.p),
            obs,
            (f"undefined: {x.undefined_reason}" if x.undefined_reason else f"{len(x.null)} draws: " + _null_text(x)),
        )
    e = t.equivalence
    if e is not None:
        if e.undefined_reason:
            tab.add_row("equivalence", "undefined", "", e.undefined_reason)
        else:
            tab.add_row(
                "equivalence",
                _p(e.p),
                f"m(scrubbed) > m(model) on {e.above} of {e.n}" + (f" ({e.ties} ties left out)" if e.ties else ""),
                f"exact binomial, eps {e.eps:g}: P(X >= {e.above} | {0.5 - e.eps:g}) = {_p(e.p_lower)}, "
                f"P(X <= {e.above} | {0.5 + e.eps:g}) = {_p(e.p_upper)}; small p supports equivalence",
            )
    m = t.minimality
    if m is not None:
        tab.add_row(
            "minimality",
            _p(m.p),
            f"{len(m.nodes)} nodes (largest Holm-adjusted p)",
            f"undefined: {m.undefined_reason}"
            if m.undefined_reason
            else "per node kind: removal cost of one random node of a random circuit; "
            + "; ".join(f"{k}: mean {_g(null_summary(v)['mean'])}" for k, v in m.null),
        )
    con.print(tab)
    if m is not None and m.nodes and not m.undefined_reason:
        mt = Table(title=f"minimality test per node: cost of removing v ({m.unit}; positive = removing v hurts)")
        for c in ("node", "cost", "p", "p (Holm)"):
            mt.add_column(c)
        for n in m.nodes:
            mt.add_row(escape(n.node), _g(n.observed), _p(n.p), _p(n.p_holm))
        con.print(mt)
    if t.random_circuits:
        con.print(f"random circuits: {t.random_circuits}")
    for name in ("sufficiency", "necessity"):
        x = t.get(name)
        for note in x.notes if x is not None else ():
            con.print(f"note: {name}: {escape(note)}")
    if t.scrubs:
        con.print(cost_line(t))


# ---- HTML ---------------------------------------------------------------------------------------------


def _e(s) -> str:
    return html.escape(str(s), quote=True)


def null_histogram_svg(null, observed: float | None, *, xlabel: str, title: str) -> str:
    """A histogram of the null draws with the observed statistic as a red line (matplotlib SVG text)."""
    from circuitdsl.report.charts import _figure, _svg

    vals = [v for v in null if v is not None and math.isfinite(v)]
    fig = _figure(6.4, 2.6)
    ax = fig.add_subplot(1, 1, 1)
    pts = vals + ([observed] if observed is not None and math.isfinite(observed) else [])
    if pts:
        lo, hi = min(pts), max(pts)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        pad = 0.03 * (hi - lo)
        bins = max(8, min(40, int(math.sqrt(max(1, len(vals))) * 2)))
        edges = [lo - pad + (hi - lo + 2 * pad) * i / bins for i in range(bins + 1)]
        if vals:
            ax.hist(vals, bins=edges, color="#8c959f", alpha=0.75, label=f"null ({len(vals)} draws)")
        if observed is not None and math.isfinite(observed):
            ax.axvline(observed, color="#cf222e", linewidth=2.2, label=f"observed {observed:.4g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("draws")
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False)
    return _svg(fig)


def binomial_svg(n: int, k: int, eps: float) -> str:
    """The two binomial nulls of the equivalence test (theta = 1/2 - eps and 1/2 + eps) with k marked."""
    from circuitdsl.engine.stats import log_binom_pmf
    from circuitdsl.report.charts import _figure, _svg

    fig = _figure(6.4, 2.6)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(n + 1))
    for theta, color in ((0.5 - eps, "#1f77b4"), (0.5 + eps, "#ff7f0e")):
        ax.plot(
            xs,
            [math.exp(log_binom_pmf(x, n, theta)) for x in xs],
            color=color,
            linewidth=1.6,
            label=f"Binomial({n}, {theta:g})",
        )
    ax.axvline(k, color="#cf222e", linewidth=2.2, label=f"observed {k}")
    ax.set_xlabel("examples with m(scrubbed, x) > m(model, x)")
    ax.set_ylabel("probability")
    ax.set_title("equivalence: the two one-sided nulls", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False)
    return _svg(fig)


def _img(svg: str, alt: str) -> str:
    import base64

    uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img class="chart" alt="{_e(alt)}" src="{uri}">'


def tests_section_html(r: CheckResult) -> str:
    """The body of the report's Tests section."""
    t = r.tests
    if t is None:
        return (
            '<div class="needs">No statistical test was run. <code>circuitdsl check FILE --tests 100</code> (or '
            "<code>set tests.sufficiency = true</code> ...) runs them; docs/TESTS.md.</div>"
        )
    rows, charts = [], []
    for name in ("sufficiency", "necessity"):
        x = t.get(name)
        if x is None:
            continue
        s = null_summary(x.null)
        rows.append(
            f"<tr><th>{name}</th><td class='num strong'>{_e(_p(x.p))}</td><td class='num'>{_e(_g(x.observed))}</td>"
            f"<td class='num'>{len(x.null)}</td><td class='num'>{_e(_g(s['mean']))} ± {_e(_g(s['sd']))}</td>"
            f"<td class='what'>{_e(x.statistic)}; a null draw counts when it is {_e(EXTREME.get(x.direction, x.direction))}"
            + (f"; <b>undefined</b>: {_e(x.undefined_reason)}" if x.undefined_reason else "")
            + "</td></tr>"
        )
        if x.null and not x.undefined_reason:
            label = "recovered" if name == "sufficiency" else f"F(M \\ X) ({x.unit})"
            charts.append(
                _img(
                    null_histogram_svg(x.null, x.observed, xlabel=label, title=f"{name}: p = {_p(x.p)}"),
                    f"{name} null distribution",
                )
            )
    e = t.equivalence
    if e is not None:
        rows.append(
            f"<tr><th>equivalence</th><td class='num strong'>{_e(_p(e.p))}</td><td class='num'>{e.above} of {e.n}</td>"
            f"<td class='num'>exact</td><td class='num'>eps {e.eps:g}</td><td class='what'>examples where the scrubbed "
            f"metric is above the model's (ties left out: {e.ties}); p = max(P(X ≥ {e.above} | {0.5 - e.eps:g}), "
            f"P(X ≤ {e.above} | {0.5 + e.eps:g})) = max({_e(_p(e.p_lower))}, {_e(_p(e.p_upper))}); small p supports "
            "equivalence"
            + (f"; <b>undefined</b>: {_e(e.undefined_reason)}" if e.undefined_reason else "")
            + "</td></tr>"
        )
        if e.n:
            charts.append(_img(binomial_svg(e.n, e.above, e.eps), "equivalence nulls"))
    m = t.minimality
    node_table = ""
    if m is not None:
        rows.append(
            f"<tr><th>minimality</th><td class='num strong'>{_e(_p(m.p))}</td><td class='num'>{len(m.nodes)} nodes</td>"
            f"<td class='num'>{m.r} per kind</td><td class='num'></td><td class='what'>largest Holm-Bonferroni adjusted "
            "p over C's nodes: each node's removal cost against removing one random node of its kind from a random "
            "circuit" + (f"; <b>undefined</b>: {_e(m.undefined_reason)}" if m.undefined_reason else "") + "</td></tr>"
        )
        if m.nodes:
            trs = "".join(
                f"<tr><td><code>{_e(n.node)}</code></td><td>{_e(n.kind)}</td><td class='num'>{_e(_g(n.observed))}</td>"
                f"<td class='num'>{_e(_p(n.p))}</td><td class='num strong'>{_e(_p(n.p_holm))}</td></tr>"
                for n in m.nodes
            )
            node_table = (
                "<h3>minimality test per node</h3><table class='kt'><thead><tr><th>node</th><th>kind</th>"
                f"<th>cost ({_e(m.unit)}, + = removing it hurts)</th><th>p</th><th>p (Holm)</th></tr></thead>"
                f"<tbody>{trs}</tbody></table>"
            )
        for kind, null in m.null:
            if null:
                charts.append(
                    _img(
                        null_histogram_svg(
                            null,
                            None,
                            xlabel=f"cost of removing one random {kind} ({m.unit})",
                            title=f"minimality null, {kind}",
                        ),
                        f"minimality null {kind}",
                    )
                )
    table = (
        "<table class='scores'><thead><tr><th>test</th><th>p</th><th>observed</th><th>draws</th><th>null mean ± sd</th>"
        f"<th>meaning</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    extra = f"<p class='sub'>Random circuits: {_e(t.random_circuits)}.</p>" if t.random_circuits else ""
    cost = f"<p class='sub'>{_e(cost_line(t))}.</p>" if t.scrubs else ""
    return table + node_table + extra + "".join(charts) + cost


def stability_html(stab) -> str:
    """The spread of every score over the seeds of a circuitdsl.stability.Stability, and the expect clauses."""
    seeds = ", ".join(map(str, stab.seeds))
    trs = "".join(
        f"<tr><th>{_e(s.score)}</th><td class='num'>{_e(_g(s.mean))}</td><td class='num'>{_e(_g(s.sd))}</td>"
        f"<td class='num'>{_e(_g(s.min))}</td><td class='num'>{_e(_g(s.max))}</td><td class='num'>{len(s.defined)}/{len(s.values)}</td></tr>"
        for s in stab.scores
    )
    ex = "".join(
        f"<tr class='{'ok' if e.every_seed else 'bad'}'><td><code>expect {_e(e.clause)}</code></td>"
        f"<td class='num'>{e.held}/{len(e.passed)}</td></tr>"
        for e in stab.expects
    )
    what = "seeds and generated datasets" if stab.vary_data else "seeds"
    return (
        f"<h3>stability over {len(stab.seeds)} {what} ({_e(seeds)})</h3><p class='sub'>The rest of this report is seed "
        f"{stab.seeds[0]}.</p><table class='kt'><thead><tr><th>score</th><th>mean</th><th>sd</th><th>min</th><th>max</th>"
        f"<th>defined on</th></tr></thead><tbody>{trs}</tbody></table>"
        + (
            f"<table class='expects'><thead><tr><th>clause</th><th>holds on</th></tr></thead><tbody>{ex}</tbody></table>"
            if ex
            else ""
        )
    )
