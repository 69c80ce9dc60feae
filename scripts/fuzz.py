"""Fuzz the command line with mutated and hostile inputs, as the test suites of ruff and Black do.

    python scripts/fuzz.py --files 10000 --datasets 200 --seed 0 [--jobs 1] [--out DIR] [--keep]

`.circuit` files (mutations of the repository's hypotheses, golden files and fixtures) go through
`lint`, `lint --format json`, `fmt --check` and `fmt` (on a copy); JSONL datasets go through
`check` on the embedded `tiny` model. The hostile part: nesting thousands deep, integers of 5,000+
digits, long and odd paths (NUL, 5,000 characters, folders, devices), NUL bytes, invalid UTF-8, CRLF
and lone CR, a BOM, every character `str.splitlines` breaks at (`\\f \\v \\x1c-\\x1e \\x85 U+2028
U+2029`), files of a megabyte and lines of 100,000 characters, thousands of errors, and a feature
module that prints when it is imported.

What must hold for every run (a breach is a *finding*, listed with the file that caused it):
- no traceback anywhere, no exception escaping `circuitdsl.cli.main`, no exit 3 (internal error);
- exit codes only as documented: lint 0/2, fmt --check 0/1/2, fmt 0/2, check 0/1/2;
- `--format json` prints exactly one JSON document on stdout, whatever a feature module prints;
- bounded output (under 2 MB per run: the diagnostic cap), time (under --time-limit) and memory
  (the worker runs under an address-space limit; a MemoryError or a killed worker is an OOM);
- `fmt` keeps every comment and string character for character (checked by a scanner written here,
  independent of circuitdsl's), and formatting its own output changes nothing;
- a JSONL diagnostic points at the JSONL file.

Runs go to worker processes (in-process calls of `circuitdsl.cli.main` with file descriptors 1 and
2 captured), so 10,000 files take minutes, not hours; a worker that dies is restarted and the run it
was on is recorded. The summary prints the counts (runs, tracebacks, OOMs, timeouts, findings) and the
maxima (time, RSS, output size) with the case that reached each. Not part of the default test run:
tests/fuzz/test_fuzz_smoke.py runs a small seeded subset of it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

LINE_BREAKERS = ["\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
"""Characters `str.splitlines` ends a line at that `\\n`-only readers (lark, JSON) do not."""
ODD = ["\x00", "\r", "\t", "\ufeff", "\u200b", "\u202e", "\U0001f600", "é", "\x7f", "\\", '"', "#", "(", ")", "[",
       "]", ",", "->", ".", "..", "=", ">=", "\n", "  "] + LINE_BREAKERS  # fmt: skip

ALLOWED = {"lint": {0, 2}, "lint-json": {0, 2}, "fmt-check": {0, 1, 2}, "fmt": {0, 2}, "check": {0, 1, 2}}
OUTPUT_LIMIT = 2_000_000
"""Bytes of stdout + stderr one run may print (a 1 MB file with an error per line prints ~50 of them)."""


@dataclass
class Case:
    id: str
    kind: str  # circuit | dataset
    path: str  # the .circuit file to run
    mutations: list[str] = field(default_factory=list)


@dataclass
class Run:
    case: str
    command: str
    code: int | None
    seconds: float
    rss_mb: float
    out_bytes: int
    findings: list[str]
    rewrote: bool = False
    """fmt changed the file (its comments and strings were then compared with the original's)"""


# ------------------------------------------------------------------------------------------------
# generating inputs


def _seeds() -> tuple[list[str], list[str]]:
    """(valid hypotheses, every seed: those and the golden files of every diagnostic)."""
    texts = []
    for folder in ("hypotheses", "tests/language/golden", "tests/language/fixtures", "tests/plugin/example/hypotheses"):
        for p in sorted((REPO / folder).rglob("*.circuit")):
            try:
                texts.append(p.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                pass
    texts.append(TINY_CIRCUIT.format(data="induction(n = 8, seed = 0, length = 10, layouts = 1)"))
    from circuitdsl.compiler import compile_source

    valid = [t for t in texts if compile_source(t).hypothesis is not None]
    return valid or texts, texts


TINY_CIRCUIT = """# a small hypothesis on the embedded model
model tiny
dataset d = {data}
metric loss
group prev = a0.0, a0.2  # previous-token heads
node prev depends on token at A1
node a1.0 depends on input
edge embed -> prev.v  # values from the embedding
edge pos -> prev.q, prev.k
edge prev -> a1.0.k
edge embed -> a1.0.q, a1.0.v
edge a1.0 -> out
set bootstrap = 20
set completeness.sizes = [1]
expect recovered >= -100
"""


def _insert(rng: random.Random, text: str, piece: str) -> str:
    i = rng.randrange(len(text) + 1)
    return text[:i] + piece + text[i:]


def _in_comment(rng: random.Random, text: str, piece: str) -> str:
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    lines[i] = lines[i] + "  # note" + piece + "after " + piece + " end"
    return "\n".join(lines)


def _in_string(rng: random.Random, text: str, piece: str) -> str:
    spots = [i for i, c in enumerate(text) if c == '"']
    if not spots:
        return text + f'\nimport "x{piece}y.circuit"\n'
    i = rng.choice(spots) + 1
    return text[:i] + piece + text[i:]


def _digits(rng: random.Random) -> str:
    return "9" * rng.choice([19, 20, 400, 4300, 4301, 5000, 20000])


def mutate_circuit(rng: random.Random, text: str, folder: Path, cid: str,
                   huge_share: float | None = None) -> tuple[str | bytes, list[str]]:  # fmt: skip
    """One mutated file: text (or bytes, for encodings) and the names of the mutations applied.
    `huge_share`: the share of files that get `m_huge` (a file of 100 KB to 1 MB); None: it is one
    mutation among the others (about 12% of files)."""
    applied = []
    pool = MUTATIONS if huge_share is None else [m for m in MUTATIONS if m is not m_huge]
    for _ in range(rng.choice([1, 1, 2, 3])):
        m = rng.choice(pool)
        applied.append(m.__name__)
        text = m(rng, text, folder, cid)
    if huge_share is not None and rng.random() < huge_share:
        applied.append(m_huge.__name__)
        text = m_huge(rng, text, folder, cid)
    if rng.random() < 0.12:  # the encoding layer
        how = rng.choice(["bom", "crlf", "cr", "bad_utf8", "nul", "utf16", "latin1"])
        applied.append(how)
        if how == "bom":
            text = "\ufeff" + text
        elif how == "crlf":
            text = text.replace("\n", "\r\n")
        elif how == "cr":
            text = text.replace("\n", "\r", rng.randrange(1, 4))
        elif how == "nul":
            text = _insert(rng, text, "\x00")
        else:
            data = text.encode("utf-8", "surrogatepass")
            if how == "bad_utf8":
                i = rng.randrange(len(data) + 1)
                data = data[:i] + bytes([rng.choice([0x80, 0xC3, 0xFF, 0xED, 0xF4])]) + data[i:]
            elif how == "utf16":
                data = text.encode("utf-16", "surrogatepass")
            else:
                data = text.encode("latin-1", "replace")
            return data, applied
    return text, applied


def m_chars(rng, text, folder, cid):
    for _ in range(rng.randrange(1, 6)):
        text = _insert(rng, text, rng.choice(ODD))
    return text


def m_delete(rng, text, folder, cid):
    if not text:
        return text
    i = rng.randrange(len(text))
    return text[:i] + text[i + rng.randrange(1, 40) :]


def m_lines(rng, text, folder, cid):
    lines = text.split("\n")
    if len(lines) < 2:
        return text
    op = rng.choice(["swap", "dup", "drop", "reverse"])
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    if op == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "dup":
        lines.insert(j, lines[i])
    elif op == "drop":
        del lines[i]
    else:
        lines.reverse()
    return "\n".join(lines)


def m_line_breakers(rng, text, folder, cid):
    piece = rng.choice(LINE_BREAKERS)
    return rng.choice([_in_comment, _in_string, _insert])(rng, text, piece)


def m_deep(rng, text, folder, cid):
    k = rng.choice([63, 64, 65, 200, 1000, 5000, 100000])
    kind = rng.choice(["feature", "list", "unbalanced", "group_chain", "arrow_chain", "import_chain"])
    if kind == "feature":
        return text + f"\nnode a1.1 depends on {'(' * k}input{')' * k}\n"
    if kind == "list":
        return text + f"\nset completeness.sizes = {'[' * k}1{']' * k}\n"
    if kind == "unbalanced":
        return text + "\n" + "node a1.1 depends on " + "(" * k + "\n"
    if kind == "group_chain":
        k = min(k, 5000)
        return (
            text
            + "\n"
            + "\n".join(f"group g{i} = g{i + 1}" for i in range(k))
            + f"\ngroup g{k} = a0.0\nedge g0 -> out\n"
        )
    if kind == "arrow_chain":
        k = min(k, 20000)
        return text + "\nedge " + " -> ".join(["embed"] + [f"a{i % 2}.{i % 4}" for i in range(k)] + ["out"]) + "\n"
    k = min(k, 300)
    for i in range(k):
        (folder / f"{cid}_chain{i}.circuit").write_text(f'import "{cid}_chain{i + 1}.circuit"\n')
    (folder / f"{cid}_chain{k}.circuit").write_text(f'import "{cid}_chain0.circuit"\n')  # and a cycle at the end
    return f'import "{cid}_chain0.circuit"\n' + text


def m_numbers(rng, text, folder, cid):
    d = _digits(rng)
    spot = rng.choice([
        f"set seed = {d}", f"set seed = -{d}", f"expect recovered >= {d}", f"expect recovered >= 1e{d}",
        f"expect kl <= {d}.5", f"set bootstrap = {d}", f"edge embed -> a1.{d}", f"edge m{d} -> out",
        f"edge a{d}.0 -> out", f"group g = a{d}.0..a{d}.1", f"dataset dd = induction(n = {d})",
        f"set completeness.sizes = [{d}]", "expect recovered >= 1e308", "expect recovered >= 1e309",
        "expect recovered >= -1e400", "set seed = 9223372036854775807", "set seed = 9223372036854775808",
    ])  # fmt: skip
    return _insert_line(rng, text, spot)


def _insert_line(rng, text, line):
    lines = text.split("\n")
    lines.insert(rng.randrange(len(lines) + 1), line)
    return "\n".join(lines)


def m_paths(rng, text, folder, cid):
    long = "a" * rng.choice([255, 256, 4096, 5000])
    p = rng.choice([
        long, f"{long}/{long}", f"{long}.jsonl", "a\\u0000b", "/dev/zero", "/dev/stdin", "/proc/self/mem", "/",
        ".", "..", "/nonexistent/x", "~/x", "C:\\\\x", "\\\\\\\\server\\\\share", "x" * 200 + "/" * 300,
        "/etc/shadow", "nul", "con", "dir/", "\\u2028.jsonl", "\\t", "", " ", "/proc/self/fd/0",
    ])  # fmt: skip
    raw = p.replace("\\u0000", "\x00").replace("\\u2028", "\u2028")  # raw characters in the file, not escapes
    stmt = rng.choice([f'import "{raw}"', f'dataset jj = "{raw}"', f'model "{raw}"', f'dataset jj = "{p}"'])
    return _insert_line(rng, text, stmt)


def m_huge(rng, text, folder, cid):
    kind = rng.choice(["many_errors", "long_line", "long_comment", "repeat", "long_name", "long_string"])
    if rng.random() < 0.08:  # rarely: valid-but-huge files only cost time (~20 s of CPU each for four commands)
        kind = "under_cap"
    if kind == "under_cap":  # just under the 256 KiB a file may hold: the slowest file that is parsed
        out = text
        while len(out) < 240_000:
            out += f"\nedge a{len(out) % 7}.{len(out) % 5} -> out  # {len(out)}"
        return out
    if kind == "many_errors":
        n = rng.choice([1000, 20000, 50000])
        return text + "\n" + "\n".join(f"edge a{i % 30}.{i % 40} -> out" for i in range(n)) + "\n"
    if kind == "long_line":
        n = rng.choice([5000, 100000])
        return text + "\ngroup big = " + ", ".join(f"x{i}" for i in range(n)) + "\n"
    if kind == "long_comment":
        return text + "\n# " + "c" * rng.choice([100000, 1000000]) + "\n"
    if kind == "repeat":
        out = text
        while len(out) < 1_000_000:
            out += "\n" + out
        return out
    if kind == "long_name":
        return text + f"\nedge {'n' * 100000} -> out\n"
    return text + f'\nimport "{"s" * 200000}\n'


def m_printing_feature(rng, text, folder, cid):
    mod = f"noisy_{cid}"
    (folder / f"{mod}.py").write_text(
        "import os\nprint('a feature module printing on import')\nos.write(1, b'and writing to fd 1\\n')\n"
        "def f(example):\n    return 0\n"
    )
    return _insert_line(rng, text, f"node a1.2 depends on {mod}:f")


def m_grammar_noise(rng, text, folder, cid):
    pieces = ["edge ->", "node", "group = ,", "dataset d = (", "set = 1", "expect >=", "ablate unclaimed by",
              "wire", "on", "metric", "import", "model", ")", "]", "edge a0.0..a1.3.k -> out", "node a0.0 at", "\"",
              "edge embed -> a1.0.q.k", "set completeness.sizes = [1,,2]", "dataset d = x(a = [1, [2, \"3\"]])"]  # fmt: skip
    for _ in range(rng.randrange(1, 4)):
        text = _insert_line(rng, text, rng.choice(pieces))
    return text


MUTATIONS = [m_chars, m_chars, m_delete, m_lines, m_line_breakers, m_line_breakers, m_deep, m_numbers, m_numbers,
             m_paths, m_huge, m_printing_feature, m_grammar_noise, m_grammar_noise]  # fmt: skip


def generate_circuits(n: int, seed: int, folder: Path, huge_share: float | None = None) -> list[Case]:
    rng = random.Random(seed)
    valid, seeds = _seeds()
    cases = []
    for i in range(n):
        cid = f"c{i:05d}"
        d = folder / cid[:4]
        d.mkdir(parents=True, exist_ok=True)
        content, applied = mutate_circuit(rng, rng.choice(valid if rng.random() < 0.5 else seeds), d, cid, huge_share)
        p = d / f"{cid}.circuit"
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_bytes(content.encode("utf-8", "surrogatepass"))
        cases.append(Case(cid, "circuit", str(p), applied))
    return cases


def hostile_circuits(folder: Path, *, small: bool = False) -> list[Case]:
    """One file per named hazard (the issue's list), the same every run. `small`: the quick sizes of the
    smoke test (the slow, valid-but-huge files are left out: they only cost time)."""
    k = 4 if small else 1
    folder.mkdir(parents=True, exist_ok=True)
    base = TINY_CIRCUIT.format(data="induction(n = 8, seed = 0, length = 10, layouts = 1)")
    (folder / "noisy_h.py").write_text(
        "import os\nprint('noise')\nos.write(1, b'fd noise\\n')\ndef f(e):\n    return 0\n"
    )
    texts: dict[str, str | bytes] = {
        "deep_feature": base + f"node a1.1 depends on {'(' * 1000}input{')' * 1000}\n",
        "deep_list": base + f"set completeness.sizes = {'[' * 5000}1{']' * 5000}\n",
        "deep_groups": base
        + "\n".join(f"group g{i} = g{i + 1}" for i in range(1200))
        + "\ngroup g1200 = a0.0\nedge g0 -> out\n",
        "int_5000_digits": base + "set seed = " + "9" * 5000 + "\n",
        "expect_huge": base + "expect recovered >= " + "9" * 400 + "\n",
        "expect_inf": base + "expect recovered >= 1e999\n",
        "layer_5000_digits": base + "edge m" + "9" * 5000 + " -> out\n",
        "head_5000_digits": base + "edge embed -> a1." + "9" * 5000 + "\n",
        "long_import": 'import "' + "a" * 5000 + '.circuit"\n' + base,
        "long_dataset": base.replace(
            "induction(n = 8, seed = 0, length = 10, layouts = 1)", '"' + "d" * 300 + '.jsonl"'
        ),
        "nul_path": base + 'import "a\x00b.circuit"\n',
        "nul_in_code": base + "edge embed\x00 -> out\n",
        "crlf": base.replace("\n", "\r\n"),
        "lone_cr": base.replace("\n", "\r", 3),
        "bom": "\ufeff" + base,
        "printing_module": base + "node a1.2 depends on noisy_h:f\n",
        "many_errors": base + "\n".join(f"edge a{i % 30}.{i % 40} -> out" for i in range(8000 // k)) + "\n",
        "long_line": base + "group big = " + ", ".join(f"x{i}" for i in range(20000 // k)) + "\n",
        "one_mb": base + ("# " + "c" * 98 + "\n") * 10500,
        "just_under_cap": base + "".join(f"edge a{i % 2}.{i % 4} -> out  # {i}\n" for i in range(9000)),
        "import_cycle_300": None,  # built below
    }
    for ch in LINE_BREAKERS:
        tag = f"U{ord(ch):04X}"
        texts[f"breaker_comment_{tag}"] = base.replace("# previous-token heads", f"# previous{ch}token heads")
        texts[f"breaker_string_{tag}"] = base.replace('"jsonl"', "") + f'import "x{ch}y.circuit"\n'
        texts[f"breaker_code_{tag}"] = base + f"edge embed{ch} -> out\n"
    cases = []
    if small:
        del texts["just_under_cap"]
    for name, text in texts.items():
        p = folder / f"{name}.circuit"
        if name == "import_cycle_300":
            n = 300 // k
            for i in range(n):
                (folder / f"cyc{i}.circuit").write_text(f'import "cyc{(i + 1) % n}.circuit"\n')
            text = 'import "cyc0.circuit"\n' + base
        if isinstance(text, str):
            p.write_bytes(text.encode("utf-8", "surrogatepass"))
        else:
            p.write_bytes(text)
        cases.append(Case(f"h-{name}", "circuit", str(p), [name]))
    for name, data in {"invalid_utf8": base.encode() + b"# caf\xe9\n", "utf16": base.encode("utf-16")}.items():
        p = folder / f"{name}.circuit"
        p.write_bytes(data)
        cases.append(Case(f"h-{name}", "circuit", str(p), [name]))
    return cases


# datasets ---------------------------------------------------------------------------------------


def _good_rows(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        toks = [rng.randrange(48) for _ in range(10)]
        rows.append({"tokens": toks, "answer": toks[3], "positions": {"A1": 2}, "B": toks[3] % 3, "id": f"r{i}",
                     "note": "plain text"})  # fmt: skip
    return rows


def _row_mutations(rng: random.Random, rows: list[dict], lines: list[str]) -> tuple[list[str], str]:
    kind = rng.choice([
        "u2028_in_string", "breaker_in_string", "raw_control", "deep", "huge_int", "huge_float", "nan", "long_row",
        "over_context", "one_row", "empty", "dup_id", "bad_type", "missing_key", "bad_position", "bad_json",
        "nul", "huge_line", "many_bad_rows", "out_of_vocab", "negative_index", "wrong_field_type", "crlf",
    ])  # fmt: skip
    j = rng.randrange(len(lines))
    row = dict(rows[j % len(rows)])
    if kind == "u2028_in_string":  # valid JSON: must load (the row's `note` field holds it)
        lines[j] = json.dumps({**row, "note": "a\u2028b\u2029c"}, ensure_ascii=False)
    elif kind == "breaker_in_string":
        lines[j] = json.dumps({**row, "note": "x" + rng.choice(LINE_BREAKERS) + "y"}, ensure_ascii=False)
    elif kind == "raw_control":
        lines[j] = json.dumps(row).replace("plain text", "plain\x0ctext")
    elif kind == "deep":
        k = rng.choice([100, 1000, 100000])
        lines[j] = json.dumps(row)[:-1] + ', "deep": ' + "[" * k + "1" + "]" * k + "}"
    elif kind == "huge_int":
        lines[j] = json.dumps(row).replace(f'"answer": {row["answer"]}', '"answer": ' + _digits(rng))
    elif kind == "huge_float":
        lines[j] = json.dumps(row).replace(f'"answer": {row["answer"]}', '"answer": 1e999')
    elif kind == "nan":
        lines[j] = json.dumps({**row, "B": float("nan")})
    elif kind == "long_row":
        lines[j] = json.dumps({**row, "note": "n" * 1_000_000})
    elif kind == "over_context":
        lines[j] = json.dumps({**row, "tokens": [1] * rng.choice([33, 100, 100000])})
    elif kind == "one_row":
        return lines[:1], kind
    elif kind == "empty":
        return [], kind
    elif kind == "dup_id":
        lines[j] = json.dumps({**row, "id": "r0"})
    elif kind == "bad_type":
        lines[j] = json.dumps({**row, "tokens": rng.choice(["abc", None, [1.5], {}, [], [True]])})
    elif kind == "missing_key":
        del row[rng.choice(["tokens", "answer", "positions", "B"])]
        lines[j] = json.dumps(row)
    elif kind == "bad_position":
        lines[j] = json.dumps({**row, "positions": rng.choice([{"A1": 99}, {"A1": []}, {"1x": 0}, [], {"A1": "0"}])})
    elif kind == "bad_json":
        lines[j] = lines[j][: rng.randrange(len(lines[j]))]
    elif kind == "nul":
        lines[j] = lines[j].replace("plain", "pl\x00ain")
    elif kind == "huge_line":
        lines[j] = "[" + "1," * 500000 + "1]"
    elif kind == "many_bad_rows":
        lines += ['{"tokens": [1]}'] * 20000
    elif kind == "out_of_vocab":
        lines[j] = json.dumps({**row, "tokens": [1, 2, 99999, 3]})
    elif kind == "negative_index":
        lines[j] = json.dumps({**row, "positions": {"A1": -100}})
    elif kind == "wrong_field_type":
        lines[j] = json.dumps({**row, "B": {"x": 1}})
    elif kind == "crlf":
        return [x + "\r" for x in lines], kind
    return lines, kind


def generate_datasets(n: int, seed: int, folder: Path) -> list[Case]:
    rng = random.Random(seed + 1)
    cases = []
    for i in range(n):
        cid = f"d{i:05d}"
        d = folder / cid
        d.mkdir(parents=True, exist_ok=True)
        rows = _good_rows(rng, rng.choice([6, 12, 24]))
        lines = [json.dumps(r) for r in rows]
        applied = []
        for _ in range(rng.choice([1, 1, 2])):
            if not lines:
                break
            lines, kind = _row_mutations(rng, rows, lines)
            applied.append(kind)
        data = ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8", "surrogatepass")
        if rng.random() < 0.1:
            how = rng.choice(["bom", "bad_utf8", "latin1"])
            applied.append(how)
            if how == "bom":
                data = b"\xef\xbb\xbf" + data
            elif how == "bad_utf8":
                k = rng.randrange(len(data) + 1)
                data = data[:k] + b"\xff\xfe" + data[k:]
            else:
                data = data.decode("utf-8", "replace").replace("plain", "pl\xe9in").encode("latin-1", "replace")
        (d / "d.jsonl").write_bytes(data)
        (d / "h.circuit").write_text(TINY_CIRCUIT.format(data='"d.jsonl"'))
        cases.append(Case(cid, "dataset", str(d / "h.circuit"), applied))
    return cases


# ------------------------------------------------------------------------------------------------
# checking one run


def scan_comments_and_strings(text: str) -> tuple[list[str], list[str]]:
    """Comments (less trailing blanks) and string values, by a scanner independent of circuitdsl's:
    lines end at `\\n` only, as the grammar says."""
    comments, strings = [], []
    for line in text.split("\n"):
        line = line[:-1] if line.endswith("\r") else line
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if c == '"':
                j = i + 1
                while j < n and line[j] != '"':
                    j += 2 if line[j] == "\\" else 1
                strings.append(_unescape(line[i + 1 : j]))  # the value: fmt may spell a raw tab `\t`
                i = j + 1
            elif c == "#":
                comments.append(line[i:].rstrip(" \t\r"))
                break
            else:
                i += 1
    return comments, strings


def _unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append({"t": "\t", "n": "\n"}.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


class FuzzTimeout(BaseException):
    pass


def _run_captured(argv: list[str], time_limit: float) -> tuple[int | None, bytes, bytes, str | None, float]:
    """(exit code or None, stdout, stderr, escaped exception, seconds) of main(argv) in this process."""
    from circuitdsl.cli import main

    out_f, err_f = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(out_f.fileno(), 1)
    os.dup2(err_f.fileno(), 2)

    def on_alarm(signum, frame):
        raise FuzzTimeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    escaped = None
    code = None
    t0 = time.perf_counter()
    try:
        code = main(argv)
    except FuzzTimeout:
        escaped = "timeout"
    except MemoryError:
        escaped = "MemoryError"
    except BaseException as e:
        import traceback

        escaped = "escaped: " + "".join(traceback.format_exception_only(type(e), e)).strip()
    finally:
        seconds = time.perf_counter() - t0
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
    out = _read_capped(out_f)
    err = _read_capped(err_f)
    return code, out, err, escaped, seconds


def _read_capped(f, limit: int = 20_000_000) -> bytes:
    f.seek(0, 2)
    size = f.tell()
    f.seek(0)
    data = f.read(min(size, limit))
    f.close()
    return data if size <= limit else data + b"\n[... %d more bytes]" % (size - limit)


def check_run(command: str, code, out: bytes, err: bytes, escaped, seconds, time_limit) -> list[str]:
    found = []
    if escaped == "timeout":
        found.append(f"timeout (over {time_limit:g} s)")
    elif escaped == "MemoryError":
        found.append("OOM: MemoryError escaped main")
    elif escaped:
        found.append(escaped)
    if code == 3:
        kind = "OOM" if b"MemoryError" in err else "traceback"
        found.append(f"{kind}: exit 3 (internal error): {err.decode('utf-8', 'replace').strip()[:300]}")
    elif code is not None and code not in ALLOWED[command]:
        found.append(f"exit {code}, documented: {sorted(ALLOWED[command])}")
    if b"Traceback (most recent call last)" in out or b"Traceback (most recent call last)" in err:
        found.append("traceback: printed on stdout/stderr")
    if len(out) + len(err) > OUTPUT_LIMIT:
        found.append(f"unbounded output: {len(out) + len(err)} bytes")
    if command in ("lint-json", "check") and code in (0, 1, 2):
        try:
            doc = json.loads(out.decode("utf-8"))
            if not isinstance(doc, list):
                found.append("--format json: stdout is JSON but not a list")
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            found.append(f"--format json: stdout is not one JSON document ({e}): {out[:120]!r}")
    return found


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(case: Case, time_limit: float) -> list[Run]:
    """Every command on one case, in this process."""
    runs = []
    if case.kind == "circuit":
        plans = [("lint", ["lint", case.path]), ("lint-json", ["lint", "--format", "json", case.path]),
                 ("fmt-check", ["fmt", "--check", case.path])]  # fmt: skip
    else:
        plans = [("check", ["check", "--no-completeness", "--format", "json", case.path])]
    for command, argv in plans:
        code, out, err, escaped, seconds = _run_captured(argv, time_limit)
        found = check_run(command, code, out, err, escaped, seconds, time_limit)
        if case.kind == "dataset" and code == 2 and b"error[E42" in err:
            tail = err.split(b"error[E42", 1)[1].split(b"\n", 2)[:2]
            if len(tail) > 1 and b"d.jsonl:" not in tail[1]:
                found.append(
                    "dataset diagnostic does not point at the JSONL file: " + tail[1].decode("utf-8", "replace")[:200]
                )
        runs.append(Run(case.id, command, code, round(seconds, 3), round(_rss_mb(), 1), len(out) + len(err), found))
    if case.kind == "circuit":
        runs.append(_fmt_round_trip(case, time_limit))
    return runs


def _fmt_round_trip(case: Case, time_limit: float) -> Run:
    """`fmt` on a copy: comments and strings survive character for character; a second fmt changes nothing."""
    src = Path(case.path)
    copy = src.with_name(src.stem + ".fmtcopy.circuit")
    shutil.copyfile(src, copy)
    try:
        before = src.read_bytes()
        code, out, err, escaped, seconds = _run_captured(["fmt", str(copy)], time_limit)
        found = check_run("fmt", code, out, err, escaped, seconds, time_limit)
        after = copy.read_bytes()
        if code == 0 and after != before:
            try:
                a, b = before.decode("utf-8"), after.decode("utf-8")
            except UnicodeDecodeError:
                found.append("fmt rewrote a file that is not UTF-8")
            else:
                ca, sa = scan_comments_and_strings(a.removeprefix("\ufeff"))
                cb, sb = scan_comments_and_strings(b.removeprefix("\ufeff"))
                if sorted(ca) != sorted(cb):
                    lost = sorted(set(ca) - set(cb))[:2]
                    found.append(f"fmt changed comments: {[x[:80] for x in lost]!r}")
                if sorted(sa) != sorted(sb):
                    found.append("fmt changed strings")
                code2, out2, err2, esc2, _ = _run_captured(["fmt", "--check", str(copy)], time_limit)
                if esc2 == "timeout":
                    found.append(f"timeout (over {time_limit:g} s): fmt --check after fmt")
                elif code2 != 0:
                    found.append(f"fmt is not idempotent: fmt --check after fmt exits {code2}")
        elif code != 0 and after != before:
            found.append(f"fmt exited {code} but changed the file")
    finally:
        copy.unlink(missing_ok=True)
    return Run(case.id, "fmt", code, round(seconds, 3), round(_rss_mb(), 1), len(out) + len(err), found,
               rewrote=code == 0 and after != before)  # fmt: skip


# ------------------------------------------------------------------------------------------------
# workers and the summary


def worker(cases_file: str, results_file: str, start: int, time_limit: float, memory_mb: int) -> None:
    """Run cases[start:] in this process, appending a `start` line before each and its runs after."""
    if memory_mb:
        limit = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["CIRCUITDSL_CACHE"] = str(Path(results_file).parent / "cache")  # crash reports stay in the run's folder
    cases = [Case(**c) for c in json.loads(Path(cases_file).read_text())]
    with open(results_file, "a", buffering=1) as res:
        for i in range(start, len(cases)):
            res.write(json.dumps({"start": i}) + "\n")
            for r in run_case(cases[i], time_limit):
                res.write(json.dumps({"run": asdict(r)}) + "\n")
            res.write(json.dumps({"done": i}) + "\n")


def run_all(cases: list[Case], work: Path, *, time_limit: float, memory_mb: int, jobs: int = 1,
            log=print) -> list[Run]:  # fmt: skip
    """Run every case in `jobs` worker processes (restarted when one dies); every Run."""
    circuits = [c for c in cases if c.kind == "circuit"]
    datasets = [c for c in cases if c.kind != "circuit"]
    chunks = [circuits[k::jobs] for k in range(jobs)] + [datasets[k::jobs] for k in range(jobs)]
    runs: list[Run] = []
    procs = []
    for k, chunk in enumerate(chunks):
        if not chunk:
            continue
        cf = work / f"cases-{k}.json"
        cf.write_text(json.dumps([asdict(c) for c in chunk]))
        rf = work / f"results-{k}.jsonl"
        rf.write_text("")
        procs.append([k, chunk, cf, rf, 0, None, 0.0])  # k, chunk, cases file, results file, next, proc, last progress
    started = time.time()
    last_log = 0.0
    while True:
        alive = False
        for st in procs:
            k, chunk, cf, rf, nxt, proc, seen = st
            if proc is None and nxt < len(chunk):
                circuit = chunk[0].kind == "circuit"
                mem = memory_mb if circuit else 0  # torch reserves more address space than any limit worth setting
                limit = time_limit if circuit else 4 * time_limit
                cmd = [sys.executable, __file__, "--worker", str(cf), str(rf), str(nxt), str(limit), str(mem)]
                st[5] = subprocess.Popen(cmd, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=open(work / f"worker-{k}.err", "ab"))  # fmt: skip
                st[6] = time.time()
                alive = True
                continue
            if proc is None:
                continue
            ret = proc.poll()
            done, current = _progress(rf)
            if done + 1 > nxt:
                st[4] = done + 1
                st[6] = time.time()
            if ret is None:
                alive = True
                if time.time() - st[6] > max(300.0, 10 * time_limit):  # hung where no alarm reaches (C code)
                    proc.kill()
                    proc.wait()
                    ret = -9
                else:
                    continue
            done, current = _progress(rf)
            st[4] = done + 1
            if current is not None and current > done:  # died on a case
                case = chunk[current]
                why = f"worker died (exit status {ret}): " + ("killed (OOM or hang)" if ret in (-9, 137) else "crash")
                runs_file_append(rf, Run(case.id, "worker", ret, 0.0, 0.0, 0, [why]))
                st[4] = current + 1
            st[5] = None
            alive = alive or st[4] < len(chunk)
        if time.time() - last_log > 60:
            last_log = time.time()
            n_done = sum(st[4] for st in procs)
            log(f"  {n_done}/{len(cases)} cases, {time.time() - started:.0f} s")
        if not alive:
            break
        time.sleep(0.2)
    for st in procs:
        for line in Path(st[3]).read_text().splitlines():
            rec = json.loads(line)
            if "run" in rec:
                runs.append(Run(**rec["run"]))
    return runs


def runs_file_append(rf: Path, run: Run) -> None:
    with open(rf, "a") as f:
        f.write(json.dumps({"run": asdict(run)}) + "\n")
        f.write(json.dumps({"done": -1}) + "\n")


def _progress(rf: Path) -> tuple[int, int | None]:
    """(last case finished, case started and not finished or None) from a worker's results file."""
    done, current = -1, None
    try:
        with open(rf) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "start" in rec:
                    current = rec["start"]
                elif "done" in rec and rec["done"] >= 0:
                    done = rec["done"]
    except OSError:
        pass
    return done, (current if current is not None and current > done else None)


def summarize(runs: list[Run], cases: list[Case]) -> dict:
    by_case = {c.id: c for c in cases}
    findings = [(r, f) for r in runs for f in r.findings]
    tracebacks = sum(1 for r, f in findings if f.startswith(("traceback", "escaped")))
    ooms = sum(1 for r, f in findings if f.startswith("OOM") or "killed" in f)
    timeouts = sum(1 for r, f in findings if f.startswith("timeout"))
    slowest = max(runs, key=lambda r: r.seconds, default=None)
    biggest = max(runs, key=lambda r: r.out_bytes, default=None)
    rss = max(runs, key=lambda r: r.rss_mb, default=None)
    codes: dict[str, dict[str, int]] = {}
    for r in runs:
        codes.setdefault(r.command, {}).setdefault(str(r.code), 0)
        codes[r.command][str(r.code)] += 1
    return {
        "cases": len(cases),
        "runs": len(runs),
        "findings": len(findings),
        "tracebacks": tracebacks,
        "ooms": ooms,
        "timeouts": timeouts,
        "exit_codes": codes,
        "fmt_rewrote": sum(r.rewrote for r in runs),
        "lint_json_runs": sum(r.command == "lint-json" for r in runs),
        "max_seconds": slowest and {"seconds": slowest.seconds, "case": slowest.case, "command": slowest.command,
                                    "mutations": by_case.get(slowest.case, Case("", "", "")).mutations},
        "max_rss_mb": rss and {"rss_mb": rss.rss_mb, "case": rss.case},
        "max_output_bytes": biggest and {"bytes": biggest.out_bytes, "case": biggest.case, "command": biggest.command},
        "examples": [{"case": r.case, "path": by_case.get(r.case, Case("", "", "")).path, "command": r.command,
                      "mutations": by_case.get(r.case, Case("", "", "")).mutations, "finding": f} for r, f in findings[:40]],
    }  # fmt: skip


def summarize_folder(work: Path) -> dict:
    """The summary of the cases an --out folder's workers have finished (complete cases only)."""
    cases, runs = [], []
    for cf in sorted(work.glob("cases-*.json")):
        chunk = [Case(**c) for c in json.loads(cf.read_text())]
        rf = cf.with_name(cf.name.replace("cases-", "results-").replace(".json", ".jsonl"))
        pending: list[Run] = []
        done = set()
        for line in rf.read_text().splitlines() if rf.exists() else []:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line being written
                continue
            if "start" in rec:
                pending = []
            elif "run" in rec:
                pending.append(Run(**rec["run"]))
            elif "done" in rec:
                runs += pending
                if rec["done"] >= 0:
                    done.add(rec["done"])
                pending = []
        cases += [chunk[i] for i in sorted(done)]
    summary = summarize(runs, cases)
    summary["cases_generated"] = sum(len(json.loads(cf.read_text())) for cf in work.glob("cases-*.json"))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--files", type=int, default=1000, help=".circuit files to generate (default 1000)")
    ap.add_argument("--datasets", type=int, default=0, help="JSONL datasets to check on the tiny model (default 0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--huge-share",
        type=float,
        default=None,
        help="share of files given the huge mutation (100 KB - 1 MB; default: one mutation among 14, ~12%%)",
    )
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument("--time-limit", type=float, default=30.0, help="seconds one run may take (default 30)")
    ap.add_argument(
        "--memory-limit", type=int, default=3072, help="MiB of address space per lint worker (default 3072)"
    )
    ap.add_argument("--out", default=None, help="folder for the generated files and results (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--report", default=None, help="also write the summary as JSON here")
    ap.add_argument(
        "--cases-from",
        metavar="DIR",
        default=None,
        help="run the cases an earlier --out DIR generated (its files stay where they are) instead of generating",
    )
    ap.add_argument(
        "--skip-done",
        metavar="DIR",
        action="append",
        default=[],
        help="with --cases-from: leave out the cases an earlier (stopped) --out DIR already ran",
    )
    ap.add_argument(
        "--no-hostile",
        action="store_true",
        help="leave out the fixed hostile .circuit files (e.g. a datasets-only run)",
    )
    ap.add_argument(
        "--summarize",
        metavar="DIR",
        default=None,
        help="only summarize the runs recorded so far in DIR (an --out folder; a run still going or stopped)",
    )
    args = ap.parse_args(argv)
    if args.summarize:
        summary = summarize_folder(Path(args.summarize))
        print(json.dumps(summary, indent=2))
        return 1 if summary["findings"] else 0
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="circuitdsl-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.cases_from:
        cases = [
            Case(**c) for cf in sorted(Path(args.cases_from).glob("cases-*.json")) for c in json.loads(cf.read_text())
        ]
        cases = [c for c in cases if not (args.no_hostile and c.id.startswith("h-"))]
        for d in args.skip_done:  # resume a stopped run: leave out cases whose four runs another --out DIR recorded
            done: dict[str, int] = {}
            for rf in Path(d).glob("results-*.jsonl"):
                for line in rf.read_text().splitlines():
                    run = json.loads(line).get("run") if line.strip() else None
                    if run:
                        done[run["case"]] = done.get(run["case"], 0) + 1
            cases = [c for c in cases if done.get(c.id, 0) < 4]
    else:
        cases = (([] if args.no_hostile else hostile_circuits(work / "hostile")) + generate_circuits(args.files, args.seed, work / "circuits", args.huge_share)
                 + generate_datasets(args.datasets, args.seed, work / "datasets"))  # fmt: skip
    print(f"generated {len(cases)} cases in {time.time() - t0:.0f} s under {work}", file=sys.stderr)
    runs = run_all(cases, work, time_limit=args.time_limit, memory_mb=args.memory_limit, jobs=args.jobs,
                   log=lambda m: print(m, file=sys.stderr))  # fmt: skip
    summary = summarize(runs, cases)
    summary["wall_seconds"] = round(time.time() - t0, 1)
    summary["seed"] = args.seed
    text = json.dumps(summary, indent=2)
    print(text)
    if args.report:
        Path(args.report).write_text(text + "\n")
    if not args.keep and not args.out:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]))
        sys.exit(0)
    sys.exit(main())
