"""`circuitdsl discover`: run patching sweeps and write a starting `.circuit` file to edit.

    circuitdsl discover --model smollm2-135m --dataset ioi --corrupt ioi_abc --n 16 \\
        --min-layer 12 -o hypotheses/draft.circuit [--json sweeps.json] [--from-json sweeps.json] [--force]

Three sweeps, each seeded by the previous one:
1. heads patched at END (or `--end`): heads whose patch moves the metric towards the corrupted
   run are the output heads (`movers`: name-mover-like, they write the answer at END);
2. path patching into the movers' queries at END: senders that steer the movers (`inhibition`:
   S-inhibition-like heads);
3. path patching into the inhibition heads' keys and values at S2 (or `--s2`): senders that tell
   them which name is duplicated (`duplicate`: induction / duplicate-token-like heads).
The file claims the three groups with their positions, edges between them, `embed -> ...` edges,
the paired ablation, and `expect` clauses left as comments. It never overwrites a file unless
`--force`, and is written atomically. `--from-json` rebuilds the file from a saved `--json` without
running the model. Exit: 0 written, 2 usage, dataset or model error.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitdsl.cli.exitcodes import ExitCode

__all__ = ["add_parser", "run", "Roles", "pick_roles", "render_circuit"]


def add_parser(sub, name: str, help: str):
    from circuitdsl.cli.patch import add_common_arguments

    p = sub.add_parser(name, help=help, description=help)
    add_common_arguments(p)
    p.set_defaults(positions=None)
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="the .circuit file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--json", metavar="PATH", default=None, help="also save the sweeps' numbers (reusable with --from-json)")
    p.add_argument("--from-json", metavar="PATH", default=None, help="build the file from saved sweeps; runs no model")
    p.add_argument("--min-layer", type=int, default=0, help="sweep only layers >= this (saves time; default 0)")
    p.add_argument("--top", type=int, default=4, help="at most this many heads per role (default 4)")
    p.add_argument("--threshold", type=float, default=0.05, help="smallest normalised effect kept (default 0.05)")
    p.add_argument("--end", default="END", help="the answer position (default END)")
    p.add_argument("--s2", default="S2", help="where duplicate information is read (default S2)")
    return p


@dataclass(frozen=True)
class Roles:
    movers: tuple[tuple[str, float], ...]
    inhibition: tuple[tuple[str, float], ...]
    duplicate: tuple[tuple[str, float], ...]


def _top(sweep: dict, k: int, threshold: float, heads_only: bool = True) -> tuple[tuple[str, float], ...]:
    out = []
    for r in sweep.get("ranked", []):
        if r["effect"] is None or r["effect"] < threshold or (heads_only and not r["node"].startswith("a")):
            continue
        out.append((r["node"], float(r["effect"])))
    return tuple(sorted(out, key=lambda t: -t[1])[:k])


def pick_roles(sweeps: dict, k: int, threshold: float) -> Roles:
    movers = _top(sweeps["heads_end"], k, threshold)
    taken = {n for n, _ in movers}
    inh = tuple(x for x in _top(sweeps.get("path_movers_q", {}), k + len(taken), threshold) if x[0] not in taken)[:k]
    taken |= {n for n, _ in inh}
    dup = tuple(x for x in _top(sweeps.get("path_inhibition_kv", {}), k + len(taken), threshold) if x[0] not in taken)[:k]
    return Roles(movers, inh, dup)


def _fmt_heads(heads) -> str:
    return ", ".join(n for n, _ in heads)


def _fmt_effects(heads) -> str:
    return ", ".join(f"{n} {e:+.2f}" for n, e in heads)


def render_circuit(sweeps: dict, roles: Roles, *, model: str, dataset: str, corrupt: str, n: int, seed: int,
                   end: str, s2: str) -> str:  # fmt: skip
    """The text of a starting .circuit file (docs/LANGUAGE.md syntax)."""
    h = sweeps["heads_end"]
    lines = [
        "# Starting hypothesis written by `circuitdsl discover`: edit it, then `circuitdsl check` it.",
        f"# Patching evidence ({h['metric']}, {dataset} <- {corrupt}, n={h['n']}): clean {h['clean']:.3f}, "
        f"corrupted {h['corrupt']:.3f}.",
        "# effect = (patched - clean) / (corrupted - clean).",
        f"# movers: heads patched at {end} ({_fmt_effects(roles.movers) or 'none above threshold'})",
    ]
    if roles.inhibition:
        lines.append(f"# inhibition: path patching into the movers' queries at {end} ({_fmt_effects(roles.inhibition)})")
    if roles.duplicate:
        lines.append(f"# duplicate: path patching into the inhibition heads' k/v at {s2} ({_fmt_effects(roles.duplicate)})")
    lines += [
        "",
        f"model {model}",
        f"dataset clean = {dataset}(n = {n}, seed = {seed})",
        f"dataset corrupt = {corrupt}(n = {n}, seed = {seed})",
        "metric logit_diff",
        "ablate unclaimed by paired corrupt",
        "",
    ]
    if not roles.movers:
        lines.append("# no head passed the threshold at the answer position: lower --threshold or sweep more layers")
        lines.append("")
        return "\n".join(lines)
    lines.append(f"group movers = {_fmt_heads(roles.movers)}")
    if roles.inhibition:
        lines.append(f"group inhibition = {_fmt_heads(roles.inhibition)}")
    if roles.duplicate:
        lines.append(f"group duplicate = {_fmt_heads(roles.duplicate)}")
    lines += ["", "node embed depends on input", f"node movers at {end} depends on input"]
    if roles.inhibition:
        lines.append(f"node inhibition at {end} depends on input")
    if roles.duplicate:
        lines.append(f"node duplicate at {s2} depends on input")
    lines += ["", "# Edges: who reads whom (edit the features above to state what each role computes)."]
    lines.append("edge movers -> out")
    lines.append("edge embed -> movers.k, movers.v")
    if roles.inhibition:
        lines.append("edge inhibition -> movers.q")
        lines.append("edge embed -> inhibition.q")
        if roles.duplicate:
            lines.append("edge duplicate -> inhibition.k, inhibition.v")
            lines.append("edge embed -> duplicate")
        else:
            lines.append("edge embed -> inhibition.k, inhibition.v")
    else:
        lines.append("edge embed -> movers.q")
    lines += [
        "",
        "# Claims to decide on before checking (uncomment and set the numbers):",
        "# expect recovered >= 0.8",
        "# expect recovered.lower >= 0.6",
        "# expect incompleteness <= 0.2",
        "",
    ]
    return "\n".join(lines)


def _run_sweeps(args) -> dict:
    from circuitdsl.cli.patch import SweepSpec, load_inputs, run_sweep

    model, clean, corrupt = load_inputs(args)
    n_layers = model.shape.n_layers
    if not 0 <= args.min_layer < n_layers:
        from circuitdsl.cli.patch import _Usage

        raise _Usage("E902", f"--min-layer must be in 0..{n_layers - 1}, not {args.min_layer}")
    layers = range(args.min_layer, n_layers)
    kw = dict(dataset=args.dataset, corruption=args.corrupt, max_rows=args.max_rows)
    sweeps: dict[str, Any] = {}
    end = run_sweep(model, clean, corrupt, SweepSpec("heads", (args.end,)), layers=layers, **kw)
    sweeps["heads_end"] = end.to_json()
    movers = _top(sweeps["heads_end"], args.top, args.threshold)
    if movers:
        recv = ",".join(f"{m}.q" for m, _ in movers)
        q = run_sweep(model, clean, corrupt, SweepSpec("path", (args.end,), recv), layers=layers, **kw)
        sweeps["path_movers_q"] = q.to_json()
        inh = [x for x in _top(sweeps["path_movers_q"], args.top, args.threshold) if x not in movers]
        if inh:
            recv = ",".join(f"{m}.k,{m}.v" for m, _ in inh)
            kv = run_sweep(model, clean, corrupt, SweepSpec("path", (args.s2,), recv), layers=layers, **kw)
            sweeps["path_inhibition_kv"] = kv.to_json()
    return sweeps


def run(args) -> int:
    from circuitdsl.cli.patch import _Usage, usage_error, write_atomic

    out = Path(args.output)
    if out.exists() and not args.force:
        return usage_error("E904", f"{out} exists: not overwriting it", "pass --force to replace it, or choose another -o")
    if args.top < 1:
        return usage_error("E902", f"--top must be >= 1, not {args.top}")
    from circuitdsl.cli.outputs import Output, refused

    if refused([Output("-o", args.output), Output("--json", None if args.from_json else args.json)], [args.from_json]):
        return int(ExitCode.USAGE)
    try:
        if args.from_json:
            try:
                sweeps = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise _Usage("E905", f"cannot read sweeps from {args.from_json}: {e}") from None
            if "heads_end" not in sweeps:
                raise _Usage("E905", f"{args.from_json} holds no `heads_end` sweep", "write it with `discover --json`")
        else:
            sweeps = _run_sweeps(args)
    except _Usage as e:
        return usage_error(e.code, e.message, e.hint)
    roles = pick_roles(sweeps, args.top, args.threshold)
    text = render_circuit(
        sweeps, roles, model=args.model, dataset=args.dataset, corrupt=args.corrupt, n=args.n, seed=args.seed,
        end=args.end, s2=args.s2,
    )  # fmt: skip
    if args.json and not args.from_json:
        write_atomic(args.json, (json.dumps(sweeps, indent=2) + "\n").encode())
    write_atomic(out, text.encode())
    for role in ("movers", "inhibition", "duplicate"):
        heads = getattr(roles, role)
        print(f"{role:>10}: {_fmt_effects(heads) or '-'}")
    print(f"wrote {out}", file=sys.stderr)
    return int(ExitCode.OK)
