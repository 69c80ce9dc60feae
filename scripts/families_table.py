"""Print the README's supported-models table: the family matrix of tests/families, run now.

    python scripts/families_table.py [--json OUT] [--device cpu] [FAMILY ...]

Every family's tiny random-init model is built in a temporary folder, loaded through circuitdsl (the
model contract runs), and compared with plain-hook patching of the Hugging Face model
(tests/families/family_matrix.py). A row says `exact` with the largest relative error of its four checks, or
`refused` with the contract's reason. The exit status is 1 when a family does neither (`wrong`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "families"))


def _reason(diag: str) -> str:
    """The check and layer of a refusal, and the known cause when the contract gave one."""
    m = re.search(r"(check \d \([a-z ]+\) failed at [^:]+)", diag)
    where = m.group(1) if m else diag[:120]
    cause = ""
    if "post-norm" in diag:
        cause = "post-norm: heads do not add up to what the layer writes"
        if "across all heads" in diag:
            cause += "; q/k norms across heads"
    return f"{where}" + (f" — {cause}" if cause else "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("families", nargs="*", help="families to run (default: all)")
    p.add_argument("--json", default=None, help="also write the rows as JSON")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)

    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from family_matrix import run_family
    from family_specs import BY_NAME, FAMILIES, build, tokenizer_files

    names = args.families or [f.name for f in FAMILIES]
    tok = tokenizer_files()
    rows = []
    with tempfile.TemporaryDirectory(prefix="circuitdsl-families-") as tmp:
        if tok is None:
            from circuitdsl.models.smollm2 import load_tokenizer

            tok = Path(tmp) / "tokenizer"
            load_tokenizer(None).hf.save_pretrained(str(tok))
        for n in names:
            d = build(BY_NAME[n], Path(tmp) / n, tok)
            r = run_family(n, d, args.device)
            rows.append(r)
            print(f"{n}: {r.status}", file=sys.stderr)
    print("| family | config | parallel blocks | grouped k/v | circuitdsl | max error / reason |")
    print("|---|---|---|---|---|---|")
    bad = 0
    for r in rows:
        f = BY_NAME[r.family]
        par = "yes" if "parallel" in f.tags else ""
        gqa = "yes" if "gqa" in f.tags else ""
        if r.status == "exact":
            what = f"{r.max_error:.0e} (identity, empty, head removal, k/v port)"
        elif r.status == "refused":
            what = _reason(r.diagnostic)
        else:
            bad += 1
            what = "WRONG: " + ", ".join(f"{k} {v:.1e}" for k, v in r.errors.items())
        note = f" ({f.notes})" if f.notes and r.status == "exact" else ""
        print(f"| {f.label} | `{f.name}` | {par} | {gqa} | **{r.status}** | {what}{note} |")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in rows], indent=1, default=str), encoding="utf-8")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
