"""`circuitdsl report RESULT.json -o REPORT.html [--circuit FILE]`: a self-contained HTML report.

From the JSON alone the report shows every score, the per-example distribution, the worst
examples, minimality and completeness; the graph and source come from `--circuit` (or from the
result's recorded source path when that file still exists). With `--circuit` the model is loaded
to add attention patterns and direct logit attribution (skip with `--no-model`).
Exit 0 when the report is written, 2 on a usage, language or model error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from circuitdsl.cli.exitcodes import ExitCode

__all__ = ["add_parser", "run"]


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("result", metavar="RESULT.json", help="the JSON written by `circuitdsl check --json`")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="the HTML file to write")
    p.add_argument(
        "--circuit", metavar="FILE", help="the .circuit file checked: draws the graph and computes the model's sections"
    )
    p.add_argument("--no-model", action="store_true", help="with --circuit: do not load the model (no attention/DLA)")
    p.add_argument(
        "--examples", type=int, default=2, metavar="N", help="examples to show attention patterns on (default 2)"
    )
    p.add_argument("--device", default="cpu", help="torch device for the model's sections (default cpu)")
    p.add_argument(
        "--pick",
        metavar="NAME|INDEX",
        default=None,
        help="when RESULT.json holds several results (`check A B --json-out`), the one to report: "
        "its hypothesis name or its 0-based index",
    )
    return p


def _one_result(data, pick: str | None, path: str):
    """The result object to report from what `check --json-out` (a list, one per file) or an older
    single-result file holds; (None, message) when it cannot be chosen."""
    if isinstance(data, dict):
        return data, None
    if not isinstance(data, list):
        return None, f"`{path}` is not a circuitdsl check result (a JSON {type(data).__name__})"
    items = [d for d in data if isinstance(d, dict)]
    if not items:
        return None, f"`{path}` holds no result (an empty list): the check it came from checked no file"
    names = [str(d.get("name", "?")) for d in items]
    if pick is None:
        if len(items) == 1:
            return items[0], None
        return None, (
            f"`{path}` holds {len(items)} results ({', '.join(names)}): choose one with --pick NAME or --pick INDEX"
        )
    if pick.isdigit() and int(pick) < len(items):
        return items[int(pick)], None
    if pick in names:
        return items[names.index(pick)], None
    return None, f"--pick {pick}: `{path}` holds {', '.join(names)} (indices 0..{len(items) - 1})"


def _err(msg: str) -> int:
    print(f"circuitdsl report: error: {msg}", file=sys.stderr)
    return int(ExitCode.USAGE)


def run(args) -> int:
    from circuitdsl.report.build import write_report
    from circuitdsl.results import CheckResult

    out = Path(args.output)
    if not out.parent.is_dir():
        return _err(f"folder `{out.parent}` does not exist")
    if args.examples < 0:
        return _err(f"--examples must be >= 0, got {args.examples}")
    from circuitdsl.cli.outputs import Output, refused

    if refused([Output("-o", args.output)], [args.result, args.circuit]):
        return int(ExitCode.USAGE)
    if args.circuit and not args.no_model:
        from circuitdsl.cli.common import device_diagnostic
        from circuitdsl.diagnostics import render

        bad = device_diagnostic(args.device)
        if bad is not None:
            print(render([bad]), file=sys.stderr)
            return int(ExitCode.USAGE)
    try:
        data = json.loads(Path(args.result).read_text(encoding="utf-8"))
    except OSError as e:
        return _err(f"cannot read `{args.result}`: {e.strerror or e}")
    except json.JSONDecodeError as e:
        return _err(f"`{args.result}` is not JSON: {e.msg} at line {e.lineno}, column {e.colno}")
    data, why = _one_result(data, args.pick, args.result)
    if data is None:
        return _err(why)
    try:
        result = CheckResult.from_json(data)
    except ValueError as e:
        return _err(f"`{args.result}`: {e}")
    except (KeyError, TypeError) as e:
        return _err(f"`{args.result}` is not a complete circuitdsl check result (missing or malformed {e})")

    hypothesis, source_text = None, None
    if args.circuit:
        from circuitdsl.cli.common import compile_reporting

        compiled = compile_reporting(args.circuit)
        if compiled.hypothesis is None:
            return int(ExitCode.USAGE)
        hypothesis = compiled.hypothesis
        source_text = hypothesis.source_text
        if hypothesis.model.name != result.model or hypothesis.name != result.name:
            print(
                f"circuitdsl report: warning: `{args.circuit}` ({hypothesis.name}, model {hypothesis.model.name}) does not look like "
                f"the file that produced `{args.result}` ({result.name}, model {result.model})",
                file=sys.stderr,
            )
    else:
        hypothesis, source_text = _from_recorded_source(result)
    model_sections = bool(args.circuit) and not args.no_model
    try:
        why = write_report(
            out,
            result,
            hypothesis,
            source_text=source_text,
            model_sections=model_sections,
            unavailable="--no-model was given." if args.circuit and args.no_model else None,
            device=args.device,
            n_attention=args.examples,
        )
    except OSError as e:
        return _err(f"cannot write `{out}`: {e.strerror or e}")
    parts = ["graph" if hypothesis is not None else None, "model sections" if model_sections and why is None else None]
    with_ = ", ".join(p for p in parts if p) or "scores only"
    print(f"wrote {out} ({out.stat().st_size // 1024} KB; {with_})")
    return int(ExitCode.OK)


def _from_recorded_source(result):
    """The hypothesis and source text from the result's recorded path, when it still exists and compiles
    (no torch: compiling only reads the model's shape). Else (None, None)."""
    if not result.source_path or not Path(result.source_path).is_file():
        return None, None
    from circuitdsl.compiler import compile_file

    try:
        compiled = compile_file(result.source_path)
    except Exception:  # a changed or broken file: the report still renders from the JSON
        return None, None
    if compiled.hypothesis is None:
        return None, Path(result.source_path).read_text(encoding="utf-8", errors="replace")
    return compiled.hypothesis, compiled.hypothesis.source_text
