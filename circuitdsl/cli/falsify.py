"""`circuitdsl falsify FILE [--max-examples N] [--seed S] [--threshold T] [--n N] [--device D]`.

Searches the dataset family of FILE's main dataset for inputs on which the scrubbed model departs
from the real one by at least the threshold (circuitdsl.falsify), shrinks the first one found and
prints it with its per-example scores, beside the largest departure seen. The report goes to stdout;
diagnostics to stderr. Exit: 0 no input reached the threshold, 1 a counterexample was found,
2 a usage, language, dataset or model error.
"""

from __future__ import annotations

import sys

from circuitdsl.cli.exitcodes import ExitCode

__all__ = ["add_parser", "run"]


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("file", metavar="FILE", help="a .circuit file")
    p.add_argument("--max-examples", type=int, default=50, help="inputs generated per search run (default 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of the search and of the scrub's draws (default 0)")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="|m(scrubbed) - m(model)| that makes an input a counterexample, in the metric's raw units "
        "(default: half of |F(model) - F(baseline)| on the file's dataset)",
    )
    p.add_argument("--n", type=int, default=None, help="override the sample count of the file's generator datasets")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the on-disk cache of clean activations (docs/CLI.md); results do not depend on it",
    )
    return p


def run(args) -> int:
    from circuitdsl.cli.common import compile_reporting
    from circuitdsl.diagnostics import CircuitError, Diagnostic, render

    bad = None
    if args.max_examples < 1:
        bad = f"--max-examples must be a positive integer, not {args.max_examples}"
    elif args.threshold is not None and not args.threshold > 0:
        bad = f"--threshold must be a positive number, not {args.threshold}"
    elif args.n is not None and args.n < 1:
        bad = f"--n must be a positive integer, not {args.n}"
    if bad:
        print(render([Diagnostic("E902", bad)]), file=sys.stderr)
        return int(ExitCode.USAGE)
    from circuitdsl.cli.common import device_diagnostic

    bad_device = device_diagnostic(args.device)
    if bad_device is not None:
        print(render([bad_device]), file=sys.stderr)
        return int(ExitCode.USAGE)
    compiled = compile_reporting(args.file)
    if compiled.hypothesis is None:
        return int(ExitCode.USAGE)
    h = compiled.hypothesis
    from circuitdsl.falsify import falsify
    from circuitdsl.testing import with_sample_count

    if args.n is not None:
        h = with_sample_count(h, args.n)
    try:
        cx = falsify(
            h,
            max_examples=args.max_examples,
            seed=args.seed,
            threshold=args.threshold,
            device=args.device,
            cache=not args.no_cache,
        )
    except CircuitError as e:
        print(render(e.diagnostics, "full", dict(compiled.sources)), file=sys.stderr)
        return int(ExitCode.USAGE)
    print(cx.render())
    return int(ExitCode.CLAIM_FAILED if cx.found else ExitCode.OK)
