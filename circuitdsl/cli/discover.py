"""`circuitdsl discover`: run patching sweeps and write a starting `.circuit` file to edit.

    circuitdsl discover --model smollm2-135m --dataset data/succ.jsonl --corrupt data/succ_shift.jsonl \
        -o draft.circuit [--end END] [--min-layer 12] [--top 6] [--no-backbone] [--roles] [--json sweeps.json]

For any behaviour (the default): one sweep patches each head's output at the answer position
(`--end`; default END or end where the dataset names one, else every position) with its paired
corruption; the heads whose patch moves the metric towards the corrupted run by at least
`--threshold` (at most `--top`) become `group heads`. The backbone (embeddings and every MLP) is
kept by default and said so (`--no-backbone` lets the MLPs be replaced like the other unclaimed
nodes); the claimed nodes are wired (`wire backbone, heads, out`: every forward edge among them).

`--roles` (IOI-shaped tasks, opt-in) runs three sweeps, each seeded by the previous one: movers
(heads at END), inhibition (path patching into the movers' queries at END), duplicate (path
patching into the inhibition heads' keys and values at `--s2`).

The datasets are written as the user gave them (a JSONL path relative to the written file, or the
generator with its n, seed and --arg values), with the paired ablation and `expect` clauses left as
comments; the file is linted once written (its diagnostics are printed). It never overwrites a file
unless `--force`, and is written atomically. `--from-json` rebuilds the file from a saved `--json`
without running the model. Exit: 0 written, 2 usage, dataset or model error.
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
    p.add_argument(
        "--json", metavar="PATH", default=None, help="also save the sweeps' numbers (reusable with --from-json)"
    )
    p.add_argument(
        "--from-json",
        metavar="PATH",
        default=None,
        help="build the file from saved sweeps (discover --json, or a `patch --json` head sweep); runs no model",
    )
    p.add_argument("--min-layer", type=int, default=0, help="sweep only layers >= this (saves time; default 0)")
    p.add_argument("--top", type=int, default=4, help="at most this many heads per role (default 4)")
    p.add_argument("--threshold", type=float, default=0.05, help="smallest normalised effect kept (default 0.05)")
    p.add_argument(
        "--end",
        default=None,
        help="the position heads are patched at (default: END or end if the dataset names it, else every position)",
    )
    p.add_argument(
        "--no-backbone",
        action="store_true",
        help="do not keep the embeddings and MLPs: let unclaimed MLPs be replaced like unclaimed heads",
    )
    p.add_argument(
        "--roles",
        action="store_true",
        help="IOI-shaped roles: movers, inhibition (path into movers.q), duplicate (path into inhibition.k/v at --s2)",
    )
    p.add_argument("--s2", default="S2", help="with --roles: where duplicate information is read (default S2)")
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
    dup = tuple(x for x in _top(sweeps.get("path_inhibition_kv", {}), k + len(taken), threshold) if x[0] not in taken)[
        :k
    ]
    return Roles(movers, inh, dup)


def _fmt_heads(heads) -> str:
    return ", ".join(n for n, _ in heads)


def _fmt_effects(heads) -> str:
    return ", ".join(f"{n} {e:+.2f}" for n, e in heads)


def _literal(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(str(v))


def dataset_lines(clean: str, corrupt: str, *, n: int | None, seed: int, gen_args: dict, out: Path) -> list[str]:
    """The `dataset` statements for the datasets as the user gave them: a JSONL file by its path
    relative to the written file, a generator with its n, seed and --arg values."""
    import os

    from circuitdsl.datasets.source import DEFAULT_N, is_file_arg

    lines = []
    for name, spec in (("clean", clean), ("corrupt", corrupt)):
        if is_file_arg(spec):
            rel = os.path.relpath(Path(spec).resolve(), out.resolve().parent)
            lines.append(f"dataset {name} = {json.dumps(Path(rel).as_posix())}")
        else:
            args = {"n": DEFAULT_N if n is None else n, "seed": seed, **gen_args}
            lines.append(f"dataset {name} = {spec}(" + ", ".join(f"{k} = {_literal(v)}" for k, v in args.items()) + ")")
    return lines


def backbone_members(shape) -> list[str]:
    """The embeddings and every MLP of a model: what the README's recipes keep."""
    members = ["embed"] + (["pos"] if shape.pos_embed == "learned" else [])
    if shape.has_mlp:
        members.append(f"m0..m{shape.n_layers - 1}" if shape.n_layers > 1 else "m0")
    return members


def render_generic(sweeps: dict, heads, *, model: str, datasets: list[str], end: str | None, backbone: list[str] | None,
                   note: str = "") -> str:  # fmt: skip
    """A starting .circuit file for any behaviour: the top heads at the answer position, the backbone kept."""
    h = sweeps["heads_end"]
    where = f"at {end}" if end else "at every position"
    lines = [
        "# Starting hypothesis written by `circuitdsl discover`: edit it, then `circuitdsl check` it.",
        f"# Patching evidence ({h['metric']}, {h['dataset']} <- {h['corruption']}, n={h['n']}): clean {h['clean']:.3f}, "
        f"corrupted {h['corrupt']:.3f}.",
        "# effect = (patched - clean) / (corrupted - clean).",
        f"# heads: each head's output patched {where} ({_fmt_effects(heads) or 'none above threshold'})",
    ]
    if backbone:
        lines.append(
            f"# backbone: {', '.join(backbone)} kept (never replaced); `discover --no-backbone` leaves them out."
        )
    else:
        lines.append("# no backbone: every unclaimed MLP is replaced like an unclaimed head.")
    if note:
        lines.append(f"# {note}")
    lines += ["", f"model {model}", *datasets, "metric logit_diff", "ablate unclaimed by paired corrupt", ""]
    if not heads:
        lines.append(f"# no head passed the threshold {where}: lower --threshold or sweep more layers")
    else:
        lines.append(f"group heads = {_fmt_heads(heads)}")
    if backbone:
        lines.append(f"group backbone = {', '.join(backbone)}")
    lines.append("")
    if heads:
        lines.append(f"node heads {'at ' + end + ' ' if end else ''}depends on input")
    members = (["backbone"] if backbone else []) + (["heads"] if heads else [])
    if backbone:
        lines += ["", "# Every forward edge among the claimed nodes (edit to state who reads whom)."]
        lines.append(f"wire {', '.join(members)}, out")
    elif heads:
        lines += ["", "edge embed -> heads -> out", "edge embed -> out"]
    else:
        lines += ["", "edge embed -> out"]
    if backbone and any(m.startswith("m") for m in backbone):
        lines += ["",
                  "# A wired MLP backbone gives millions of claimed paths; the shared-draw approximation keeps the",
                  "# treeified check tractable (every report says so; docs/SEMANTICS.md).",
                  "set treeify.shared_draws = true"]  # fmt: skip
    lines += [
        "",
        "# Claims to decide on before checking (uncomment and set the numbers):",
        "# expect recovered >= 0.8",
        "# expect recovered.lower >= 0.6",
        "# expect incompleteness <= 0.2",
        "",
    ]
    return "\n".join(lines)


def render_circuit(sweeps: dict, roles: Roles, *, model: str, dataset: str, corrupt: str, n: int | None, seed: int,
                   end: str, s2: str, datasets: list[str] | None = None, backbone: list[str] | None = None) -> str:  # fmt: skip
    """The text of a starting .circuit file with IOI-shaped roles (docs/LANGUAGE.md syntax)."""
    h = sweeps["heads_end"]
    lines = [
        "# Starting hypothesis written by `circuitdsl discover --roles`: edit it, then `circuitdsl check` it.",
        f"# Patching evidence ({h['metric']}, {dataset} <- {corrupt}, n={h['n']}): clean {h['clean']:.3f}, "
        f"corrupted {h['corrupt']:.3f}.",
        "# effect = (patched - clean) / (corrupted - clean).",
        f"# movers: heads patched at {end} ({_fmt_effects(roles.movers) or 'none above threshold'})",
    ]
    if roles.inhibition:
        lines.append(
            f"# inhibition: path patching into the movers' queries at {end} ({_fmt_effects(roles.inhibition)})"
        )
    if roles.duplicate:
        lines.append(
            f"# duplicate: path patching into the inhibition heads' k/v at {s2} ({_fmt_effects(roles.duplicate)})"
        )
    if backbone:
        lines.append(
            f"# backbone: {', '.join(backbone)} kept (never replaced); `discover --no-backbone` leaves them out."
        )
    if datasets is None:
        datasets = [
            f"dataset clean = {dataset}(n = {n}, seed = {seed})",
            f"dataset corrupt = {corrupt}(n = {n}, seed = {seed})",
        ]
    lines += [
        "",
        f"model {model}",
        *datasets,
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
    if backbone:
        lines.append(f"group backbone = {', '.join(backbone)}")
    lines += ["", "node embed depends on input", f"node movers at {end} depends on input"]
    if roles.inhibition:
        lines.append(f"node inhibition at {end} depends on input")
    if roles.duplicate:
        lines.append(f"node duplicate at {s2} depends on input")
    if backbone:
        groups = (
            ["backbone", "movers"]
            + (["inhibition"] if roles.inhibition else [])
            + (["duplicate"] if roles.duplicate else [])
        )
        lines += ["", "# Every forward edge among the claimed nodes (edit to state who reads whom).",
                  f"wire {', '.join(groups)}, out"]  # fmt: skip
        if any(m.startswith("m") for m in backbone):
            lines += ["set treeify.shared_draws = true"]
    else:
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


def _answer_position(clean, asked: str | None) -> str | None:
    """--end, or END / end where the dataset names it, or None (every position)."""
    names = {k for k, _ in clean[0].positions}
    if asked:
        if asked not in names:
            from circuitdsl.cli.patch import _Usage

            raise _Usage("E903", f"--end {asked}: the dataset names no position `{asked}`",
                         f"it names: {', '.join(sorted(names)) or 'none'} (leave --end out to patch every position)")  # fmt: skip
        return asked
    return next((p for p in ("END", "end") if p in names), None)


def _run_sweeps(args) -> dict:
    from circuitdsl.cli.patch import SweepSpec, load_inputs, run_sweep

    model, clean, corrupt = load_inputs(args)
    n_layers = model.shape.n_layers
    if not 0 <= args.min_layer < n_layers:
        from circuitdsl.cli.patch import _Usage

        raise _Usage("E902", f"--min-layer must be in 0..{n_layers - 1}, not {args.min_layer}")
    end = _answer_position(clean, args.end if args.end or not args.roles else "END")
    layers = range(args.min_layer, n_layers)
    kw = dict(dataset=args.dataset, corruption=args.corrupt, max_rows=args.max_rows)
    sweeps: dict[str, Any] = {"end": end}
    res = run_sweep(
        model, clean, corrupt, SweepSpec("heads", tuple(x for x in (end,) if x is not None)), layers=layers, **kw
    )
    sweeps["heads_end"] = res.to_json()
    if not args.roles:
        return sweeps
    movers = _top(sweeps["heads_end"], args.top, args.threshold)
    if movers:
        recv = ",".join(f"{m}.q" for m, _ in movers)
        assert end is not None  # (--roles asks for END: _answer_position raised E903 where there is none)
        q = run_sweep(model, clean, corrupt, SweepSpec("path", (end,), recv), layers=layers, **kw)
        sweeps["path_movers_q"] = q.to_json()
        inh = [x for x in _top(sweeps["path_movers_q"], args.top, args.threshold) if x not in movers]
        if inh:
            recv = ",".join(f"{m}.k,{m}.v" for m, _ in inh)
            kv = run_sweep(model, clean, corrupt, SweepSpec("path", (args.s2,), recv), layers=layers, **kw)
            sweeps["path_inhibition_kv"] = kv.to_json()
    return sweeps


def run(args) -> int:
    from circuitdsl.cli.patch import _parse_args_kv, _Usage, usage_error, write_atomic
    from circuitdsl.diagnostics import CircuitError, render

    out = Path(args.output)
    if out.exists() and not args.force:
        return usage_error(
            "E904", f"{out} exists: not overwriting it", "pass --force to replace it, or choose another -o"
        )
    if args.top < 1:
        return usage_error("E902", f"--top must be >= 1, not {args.top}")
    from circuitdsl.cli.outputs import Output, refused

    if refused([Output("-o", args.output), Output("--json", "" if args.from_json else args.json)], [args.from_json]):
        return int(ExitCode.USAGE)
    try:
        gen_args = _parse_args_kv(args.arg)
        if args.from_json:
            try:
                sweeps = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise _Usage("E905", f"cannot read sweeps from {args.from_json}: {e}") from None
            if isinstance(sweeps, dict) and sweeps.get("kind") == "heads" and "ranked" in sweeps:
                # a `circuitdsl patch --json` head sweep: no need to sweep again
                pos = sweeps.get("positions") or []
                sweeps = {"end": pos[0] if len(pos) == 1 else None, "heads_end": sweeps}
            if not isinstance(sweeps, dict) or "heads_end" not in sweeps:
                raise _Usage("E905", f"{args.from_json} holds no `heads_end` sweep", "write it with `discover --json`")
        else:
            sweeps = _run_sweeps(args)
        from circuitdsl.models.shapes import ShapeError, resolve_shape

        try:
            shape = resolve_shape(args.model)[1]
        except ShapeError as e:
            raise _Usage("E501", str(e), e.hint) from None
    except _Usage as e:
        return usage_error(e.code, e.message, e.hint)
    except CircuitError as e:
        print(render(e.diagnostics, "full"), file=sys.stderr)
        return int(ExitCode.USAGE)
    backbone = None if args.no_backbone else backbone_members(shape)
    datasets = dataset_lines(args.dataset, args.corrupt, n=args.n, seed=args.seed, gen_args=gen_args, out=out)
    roles_mode = args.roles or "path_movers_q" in sweeps
    end = sweeps.get("end", args.end or "END") if not args.end else args.end
    if roles_mode:
        roles = pick_roles(sweeps, args.top, args.threshold)
        text = render_circuit(sweeps, roles, model=args.model, dataset=args.dataset, corrupt=args.corrupt, n=args.n,
                              seed=args.seed, end=end or "END", s2=args.s2, datasets=datasets, backbone=backbone)  # fmt: skip
    else:
        heads = _top(sweeps["heads_end"], args.top, args.threshold)
        text = render_generic(sweeps, heads, model=args.model, datasets=datasets, end=end, backbone=backbone)
    if args.json and not args.from_json:
        write_atomic(args.json, (json.dumps(sweeps, indent=2) + "\n").encode())
    write_atomic(out, text.encode())
    if roles_mode:
        for role in ("movers", "inhibition", "duplicate"):
            print(f"{role:>10}: {_fmt_effects(getattr(roles, role)) or '-'}")
    else:
        print(f"     heads: {_fmt_effects(heads) or '-'}")
    print(
        f"  backbone: {', '.join(backbone) + ' (kept; --no-backbone to leave it out)' if backbone else 'none (--no-backbone)'}"
    )
    print(f"wrote {out}", file=sys.stderr)
    return _lint_written(out)


def _lint_written(out: Path) -> int:
    """Lint the written file: its diagnostics printed; an error in it would be discover's bug (exit 3)."""
    from circuitdsl.compiler import compile_file

    compiled = compile_file(out)
    if compiled.diagnostics:
        print(compiled.render("full"), file=sys.stderr)
    if compiled.hypothesis is None:
        print(f"circuitdsl discover: the file written does not lint (a circuitdsl bug): {out}", file=sys.stderr)
        return int(ExitCode.INTERNAL)
    print(f"lint: {out} OK", file=sys.stderr)
    return int(ExitCode.OK)
