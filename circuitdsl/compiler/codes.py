"""Every diagnostic code the language defines, with its one-line title.

Diagnostics are built through `diag(code, ...)`, which refuses codes not listed here, so this table
is the complete list (docs/LANGUAGE.md prints it; tests/language/golden/ has a file per code).
"""

from __future__ import annotations

from circuitdsl.diagnostics import Diagnostic, Label, Severity
from circuitdsl.ir import Span

__all__ = ["CODES", "diag", "severity_of"]

CODES: dict[str, str] = {
    # E1xx syntax
    "E101": "syntax error: unexpected text",
    "E102": "syntax error: a character that cannot start anything here",
    "E103": "syntax error: the file ends in the middle of a statement",
    "E104": "unterminated string",
    "E105": "unknown statement",
    "E106": "unknown escape sequence in a string",
    "E107": "number out of range (integers are 64-bit, floats finite)",
    "E108": "parentheses or brackets nested too deep",
    "E109": "file too large (a `.circuit` file holds at most 256 KiB)",
    "E110": "a path that cannot name a file (empty, a NUL character, a name over 255 bytes, over 1024 bytes in all)",
    # E2xx names that do not resolve
    "E201": "unknown attention head",
    "E202": "layer out of range",
    "E203": "unknown node or group name",
    "E204": "`pos` in a model without learned position embeddings",
    "E205": "an MLP in an attention-only model",
    "E206": "unknown or misplaced port",
    "E207": "unknown dataset name",
    "E208": "unknown dataset field",
    "E209": "unknown named position",
    "E210": "feature function cannot be imported or called",
    "E211": "unknown score name in `expect`",
    "E212": "unknown setting",
    "E213": "setting value of the wrong type",
    "E214": "unknown metric",
    "E215": "imported file cannot be read",
    "E216": "range endpoints of different kinds (a range runs from head to head or from MLP to MLP)",
    "E217": "reversed range: the first endpoint comes after the last",
    "E218": "range endpoint does not exist in the model",
    "E219": "unknown part of a split component",
    "E220": "a part of a component that is not split",
    "E221": "a split component named whole in a claim, edge, wire or group (name its parts)",
    # E3xx graph structure
    "E301": "duplicate definition",
    "E302": "a node claimed twice with different features or positions",
    "E303": "backwards edge: the receiver does not read the sender",
    "E304": "edge into an embedding or out of `out`",
    "E305": "cycle in the claimed graph",
    "E306": "import cycle",
    "E307": "group contains itself",
    "E308": "group name is a model node name",
    "E309": "a feature or position claim on `out` (it always reads the example itself, at the scored positions)",
    "E310": "groups nested too deep (a group in a group in a group... more than 64 levels)",
    # E4xx datasets
    "E401": "no dataset declared",
    "E402": "unknown dataset generator",
    "E403": "unknown generator argument",
    "E404": "JSONL dataset file missing or unreadable",
    "E405": "generator argument of the wrong type",
    # E5xx models
    "E501": "model cannot be resolved",
    "E502": "no `model` statement",
    # E7xx split components (docs/FEATURES.md)
    "E701": "only a head, an MLP or `embed` can be split",
    "E702": "a component split twice",
    "E703": "basis file missing",
    "E704": "basis file unreadable (not one finite tensor in an npy or safetensors file)",
    "E705": "basis of the wrong shape (it must be [d_model, k])",
    "E706": "rank-deficient basis (its columns do not span k dimensions)",
    "E707": "a basis that spans the whole space (k = d_model: the complement is empty)",
    "E708": "SAE directory missing",
    "E709": "SAE unreadable or its cfg.json unsupported",
    "E710": "SAE hook point is not the split component's output",
    "E711": "SAE input width differs from the model's d_model",
    "E712": "SAE latent index out of range",
    "E713": "a latent named twice in one split",
    # E9xx usage
    "E901": "file cannot be read",
    # warnings
    "W214": "an expect reads a search the file turns off (`set minimality.enabled = false`, `set completeness.enabled = false`)",
    "W301": "claimed node with no claimed path from an embedding",
    "W302": "claimed node with no claimed path to `out`",
    "W303": "no claimed edge into `out`",
    "W304": "a split none of whose parts is claimed (it changes nothing)",
    # notes
    "N001": "more diagnostics than are shown (the first 50 of a file are; the note counts the rest)",
    "N301": "edge into a k/v port shared by a grouped-query-attention group",
}


def severity_of(code: str) -> Severity:
    return {"E": Severity.ERROR, "W": Severity.WARNING, "N": Severity.NOTE}[code[0]]


def diag(
    code: str,
    message: str,
    span: Span | None = None,
    *,
    label: str = "",
    hint: str = "",
    related: tuple[Label, ...] = (),
) -> Diagnostic:
    """A Diagnostic with a registered code; the severity follows from the code's letter."""
    if code not in CODES:
        raise KeyError(f"diagnostic code {code} is not registered in circuitdsl.compiler.codes")
    return Diagnostic(code, message, span, label, hint, severity_of(code), tuple(related))
