"""The compiled hypothesis: frozen values passed from the compiler to the engine.

This module is the contract between stages. It imports neither torch nor lark.
Meaning of every value: ../shared/SEMANTICS.md (and docs/LANGUAGE.md for the surface syntax).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

__all__ = [
    "Span",
    "NodeKind",
    "NodeId",
    "Port",
    "EdgeId",
    "FeatureKind",
    "Feature",
    "AblationKind",
    "Ablation",
    "MetricKind",
    "Metric",
    "metric_unit",
    "DatasetKind",
    "DatasetSpec",
    "ModelShape",
    "ModelRef",
    "Claim",
    "SplitKind",
    "Split",
    "Comparison",
    "Expect",
    "SearchBudget",
    "TreeRule",
    "TestPlan",
    "TEST_NAMES",
    "Hypothesis",
    "SCORE_NAMES",
]


@dataclass(frozen=True, order=True)
class Span:
    """A region of a source file: 1-based line and column, end exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int


class NodeKind(enum.Enum):
    """The kinds of node in the model graph (SEMANTICS.md section 1)."""

    EMBED = "embed"
    """Token embedding (`hook_embed`)."""
    POS = "pos"
    """Learned absolute position embedding (`hook_pos_embed`); absent in rotary models."""
    HEAD = "head"
    """One attention head's output through W_O (`blocks.L.attn.hook_result[:, :, H]`)."""
    MLP = "mlp"
    """One MLP's output (`blocks.L.hook_mlp_out`)."""
    OUT = "out"
    """The final residual read by the unembedding; writes nothing."""

    __hash__ = (
        object.__hash__
    )  # members are singletons; Enum's own hash is Python code, and NodeIds are hashed ~10^6 times per tree


_KIND_ORDER = {NodeKind.EMBED: 0, NodeKind.POS: 1, NodeKind.HEAD: 2, NodeKind.MLP: 3, NodeKind.OUT: 4}


@dataclass(frozen=True)
class NodeId:
    """A node of the model graph. `layer`/`head` are None where they do not apply.

    `part` names one part of a *split* component (see `Split`): the component's output rewritten as a sum
    of parts, each a node of its own with the component's kind, ports and readers (`a9.6[s]`, `a9.6[~s]`,
    `m3[f17]`, `m3[rest]`, `m3[err]`). None for a whole component."""

    kind: NodeKind
    layer: int | None = None
    head: int | None = None
    part: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.kind, self.layer, self.head, self.part)))

    def __hash__(self) -> int:  # computed once: trees and full hypotheses hash NodeIds ~10^6 times
        return self._hash  # type: ignore[attr-defined]

    def __reduce__(self):  # the cached hash is per process (enum hashes are): never pickle it
        return (NodeId, (self.kind, self.layer, self.head, self.part))

    @property
    def whole(self) -> NodeId:
        """The component this node is a part of (itself when it is not a part)."""
        return self if self.part is None else NodeId(self.kind, self.layer, self.head)

    @property
    def name(self) -> str:
        """The canonical spelling used in `.circuit` files: embed, pos, a9.6, m5, out, a9.6[s], m3[err]."""
        if self.kind is NodeKind.HEAD:
            base = f"a{self.layer}.{self.head}"
        elif self.kind is NodeKind.MLP:
            base = f"m{self.layer}"
        else:
            base = self.kind.value
        return base if self.part is None else f"{base}[{self.part}]"

    def sort_key(self) -> tuple[int, int, int, int, str]:
        """Topological order of the model: embeddings, then layer by layer (heads before MLP), then out;
        a split component's parts follow one another where the component stood, by part name."""
        part = (0, "") if self.part is None else (1, self.part)
        if self.kind in (NodeKind.EMBED, NodeKind.POS):
            return (-1, _KIND_ORDER[self.kind], 0, *part)
        if self.kind is NodeKind.OUT:
            return (1 << 30, 0, 0, 0, "")
        assert self.layer is not None
        return (self.layer, _KIND_ORDER[self.kind], self.head or 0, *part)

    def __lt__(self, other: NodeId) -> bool:
        return self.sort_key() < other.sort_key()

    def __str__(self) -> str:
        return self.name


class Port(enum.Enum):
    """Where an edge enters its receiver."""

    Q = "q"
    """A head's query input (`blocks.L.hook_q_input[:, :, H]`)."""
    K = "k"
    """A head's key input; in GQA models, the key/value group's (`hook_k_input[:, :, G]`)."""
    V = "v"
    """A head's value input; in GQA models, the key/value group's (`hook_v_input[:, :, G]`)."""
    IN = "in"
    """The input of an MLP (`blocks.L.hook_resid_mid`) or of `out` (the final residual)."""

    __hash__ = object.__hash__  # members are singletons (see NodeKind)

    def __lt__(self, other: Port) -> bool:
        """Ports order q < k < v < in, so that EdgeIds (order=True) sort."""
        if not isinstance(other, Port):
            return NotImplemented
        return _PORT_ORDER[self] < _PORT_ORDER[other]


_PORT_ORDER = {Port.Q: 0, Port.K: 1, Port.V: 2, Port.IN: 3}


@dataclass(frozen=True, order=True)
class EdgeId:
    """A claimed edge: sender's output into one port of the receiver."""

    sender: NodeId
    receiver: NodeId
    port: Port

    def __str__(self) -> str:
        port = "" if self.port is Port.IN else f".{self.port.value}"
        return f"{self.sender.name} -> {self.receiver.name}{port}"


class FeatureKind(enum.Enum):
    """What a claimed node's output is claimed to depend on (SEMANTICS.md section 2)."""

    IDENTITY = "input"
    """The exact input: the equivalence class of x is {x}."""
    CONSTANT = "nothing"
    """Nothing: every example of x's layout is in x's class."""
    FIELD = "field"
    """A dataset field (`args[0]` is the field name)."""
    TOKEN_AT = "token"
    """The token at a named position (`args[0]` is the position name)."""
    FUNCTION = "function"
    """A user Python function `module:function` (`args[0]`), called with the example. `args[1]` is its
    origin as the compiler resolved it (circuitdsl.features): the absolute path of the module file next
    to the `.circuit` file that names it, or "" for a module imported by name; the engine loads that."""
    TUPLE = "tuple"
    """A tuple of other features (`parts`)."""


@dataclass(frozen=True)
class Feature:
    kind: FeatureKind
    args: tuple[str, ...] = ()
    parts: tuple[Feature, ...] = ()

    def __str__(self) -> str:
        if self.kind is FeatureKind.IDENTITY:
            return "input"
        if self.kind is FeatureKind.CONSTANT:
            return "nothing"
        if self.kind is FeatureKind.FIELD:
            return f"field {self.args[0]}"
        if self.kind is FeatureKind.TOKEN_AT:
            return f"token at {self.args[0]}"
        if self.kind is FeatureKind.FUNCTION:
            return self.args[0]
        return "(" + ", ".join(str(p) for p in self.parts) + ")"


IDENTITY = Feature(FeatureKind.IDENTITY)


class AblationKind(enum.Enum):
    """What an unclaimed sender contributes (SEMANTICS.md section 2)."""

    RESAMPLE = "resample"
    """Its clean output on a random input x_r drawn from D within x's layout."""
    RESAMPLE_FROM = "resample from"
    """The same, x_r drawn from a named dataset with matching layouts."""
    PAIRED = "paired"
    """Its clean output on the row of a named dataset paired with x."""
    MEAN = "mean"
    """Its mean output per position over D (or a named dataset), per layout."""
    ZERO = "zero"
    """Nothing (biases stay)."""


@dataclass(frozen=True)
class Ablation:
    kind: AblationKind = AblationKind.RESAMPLE
    dataset: str | None = None

    def __str__(self) -> str:
        if self.kind is AblationKind.MEAN:
            return "mean" + (f" over {self.dataset}" if self.dataset else "")
        if self.dataset:
            return f"{self.kind.value} {self.dataset}"
        return self.kind.value


class MetricKind(enum.Enum):
    """The per-example metric m(x) (SEMANTICS.md section 4), averaged over the example's scored positions.

    At a scored position with logits l over the model's *output* vocabulary, answer a (or answer set A)
    and wrong answer w (or wrong set W)."""

    LOGIT_DIFF = "logit_diff"
    """mean_{a in A} l[a] - mean_{w in W} l[w] (a single token is a set of one); higher is better. Logits."""
    PROB_DIFF = "prob_diff"
    """sum_{a in A} p[a] - sum_{w in W} p[w], p = softmax(l); higher is better. Probability."""
    MARGIN = "margin"
    """l[a] - max_{t != a} l[t]: positive exactly when the answer is the unique argmax; higher is better. Logits."""
    LOGPROB = "logprob"
    """log p(a); higher is better. Nats."""
    PROB = "prob"
    """p(a); higher is better. Probability."""
    LOSS = "loss"
    """Cross-entropy -log p(a); lower is better. Nats."""
    ACCURACY = "accuracy"
    """1 when l[a] is larger than every other logit (the answer is the unique argmax), else 0; higher is better."""
    MSE = "mse"
    """-(y - target)^2, y the model's single output unit read as a number (d_vocab_out = 1); higher is better."""
    KL = "kl"
    """KL(model(x) || evaluated(x)) over the output vocabulary; 0 for the model itself; lower is better. Nats."""

    @property
    def unit(self) -> str:
        """The unit of m(x) and of every raw score computed from it."""
        return _METRIC_UNITS[self]

    @property
    def lower_is_better(self) -> bool:
        return self in (MetricKind.LOSS, MetricKind.KL)

    @property
    def answer_sets(self) -> bool:
        """Whether an answer (and wrong answer) may be a set of tokens."""
        return self in (MetricKind.LOGIT_DIFF, MetricKind.PROB_DIFF)

    @property
    def needs_wrong(self) -> bool:
        return self in (MetricKind.LOGIT_DIFF, MetricKind.PROB_DIFF)


_METRIC_UNITS = {
    MetricKind.LOGIT_DIFF: "logits",
    MetricKind.PROB_DIFF: "probability",
    MetricKind.MARGIN: "logits",
    MetricKind.LOGPROB: "nats",
    MetricKind.PROB: "probability",
    MetricKind.LOSS: "nats",
    MetricKind.ACCURACY: "fraction correct",
    MetricKind.MSE: "squared output units",
    MetricKind.KL: "nats",
}


def metric_unit(name: str) -> str:
    """The unit of a metric given by name (as results carry it); 'units' for an unknown name."""
    try:
        return MetricKind(name).unit
    except ValueError:
        return "units"


@dataclass(frozen=True)
class Metric:
    kind: MetricKind = MetricKind.LOGIT_DIFF


class DatasetKind(enum.Enum):
    GENERATOR = "generator"
    """A Python generator registered by name (circuitdsl.datasets.registry)."""
    FILE = "file"
    """A JSONL file (path relative to the .circuit file that names it)."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: DatasetKind
    source: str
    """Generator name, or the resolved absolute path of the JSONL file."""
    args: tuple[tuple[str, Any], ...] = ()
    """Generator keyword arguments, sorted by name (values: int, float, str, bool)."""
    span: Span | None = None


@dataclass(frozen=True)
class ModelShape:
    """What the compiler knows about a model without loading it."""

    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    pos_embed: str
    """'learned' (has a `pos` node), 'rotary' or 'none'."""
    has_mlp: bool = True
    parallel_attn_mlp: bool = False
    """True where the MLP reads the same input as attention (GPT-J style)."""
    vocab_size: int | None = None

    def kv_group(self, head: int) -> int:
        """The key/value head that query head `head` reads from."""
        return head // (self.n_heads // self.n_kv_heads)

    def group_members(self, head: int) -> tuple[int, ...]:
        """All query heads sharing `head`'s key/value head."""
        size = self.n_heads // self.n_kv_heads
        g = self.kv_group(head)
        return tuple(range(g * size, (g + 1) * size))


@dataclass(frozen=True)
class ModelRef:
    name: str
    """As written in the file: a registry name or a path."""
    resolved: str
    """The registry key, or the absolute path of a local model directory."""
    shape: ModelShape
    span: Span | None = None


@dataclass(frozen=True)
class Claim:
    """A claimed node with its feature and optional position restriction."""

    node: NodeId
    feature: Feature = IDENTITY
    positions: tuple[str, ...] | None = None
    """Named positions the node is claimed at; None means every position."""
    groups: tuple[str, ...] = ()
    """Names of the groups the node was claimed through (for drawing)."""
    span: Span | None = None


class SplitKind(enum.Enum):
    """How a component's output is rewritten as a sum of parts (docs/FEATURES.md)."""

    SUBSPACE = "subspace"
    """Two parts: the orthogonal projection onto a subspace (`[name]`) and onto its complement (`[~name]`)."""
    SAE = "sae"
    """A sparse autoencoder at the component's output: one part per named latent i (`[f<i>]`, its activation
    times its decoder row), `[rest]` (every other latent plus the decoder bias) and `[err]` (the output minus
    the SAE's reconstruction). The parts sum to the component's output exactly."""


@dataclass(frozen=True)
class Split:
    """A `split` statement: `node`'s output, a sum of `parts` (NodeIds with `part` set), each claimable.

    The parts replace `node` in the model graph: `node` itself can no longer be named in a claim or edge."""

    node: NodeId
    kind: SplitKind
    source: str
    """Absolute path of the basis file (npy or safetensors) or the SAE directory (SAELens layout)."""
    parts: tuple[NodeId, ...]
    name: str = ""
    """SUBSPACE: the subspace's name (parts `[name]`, `[~name]`)."""
    latents: tuple[int, ...] = ()
    """SAE: the latents named as parts of their own, ascending."""
    digest: str = ""
    """blake2b of the basis / SAE weights file as compiled, so a result names the exact weights it used."""
    span: Span | None = None


class Comparison(enum.Enum):
    GE = ">="
    LE = "<="
    GT = ">"
    LT = "<"

    def holds(self, value: float, threshold: float) -> bool:
        return {
            Comparison.GE: value >= threshold,
            Comparison.LE: value <= threshold,
            Comparison.GT: value > threshold,
            Comparison.LT: value < threshold,
        }[self]


SCORE_NAMES: dict[str, str] = {
    "recovered": "point estimate of (F(scrubbed) - F(baseline)) / (F(model) - F(baseline))",
    "recovered.lower": "lower end of recovered's bootstrap 95% interval",
    "recovered.upper": "upper end of recovered's bootstrap 95% interval",
    "incompleteness": "worst |F(C \\ K) - F(M \\ K)| found by the completeness search",
    "mean_abs_delta": "mean over examples of |m(scrubbed, x) - m(model, x)|",
    "median_abs_delta": "median over examples of |m(scrubbed, x) - m(model, x)|",
    "p90_abs_delta": "90th percentile over examples of |m(scrubbed, x) - m(model, x)|",
    "kl": "mean KL(model(x) || scrubbed(x)) at the scored positions",
    "minimality": "smallest single-node removal cost, as a fraction of F(model) - F(baseline)",
    "sufficiency.p": "p-value of C's recovered against random circuits of its size (SEMANTICS.md section 5)",
    "necessity.p": "p-value of F(M \\ C) against F(M \\ R) for random node sets R of C's size",
    "equivalence.p": "p-value of the two one-sided binomial tests that the scrubbed model beats the model on "
    "1/2 +- eps of the examples (small supports equivalence)",
    "minimality.p": "largest Holm-Bonferroni adjusted p-value of the per-node minimality tests",
}

TEST_NAMES: tuple[str, ...] = ("sufficiency", "necessity", "equivalence", "minimality")
"""The statistical tests of SEMANTICS.md section 5, in report order."""


@dataclass(frozen=True)
class Expect:
    score: str
    """A key of SCORE_NAMES."""
    op: Comparison
    threshold: float
    span: Span | None = None

    def __str__(self) -> str:
        return f"{self.score} {self.op.value} {self.threshold:g}"


@dataclass(frozen=True)
class SearchBudget:
    """Completeness search budget (SEMANTICS.md section 4), all reported."""

    sizes: tuple[int, ...] = (1, 2)
    samples: int = 8
    """Random subsets K drawn per size."""
    greedy_steps: int = 3
    """Greedy growth iterations (each adds the node that most raises incompleteness)."""
    enabled: bool = True
    """`set completeness.enabled = false`: the file's own way to skip the search (as `--no-completeness`),
    for hypotheses whose M \\ K cannot be scrubbed exactly (E601); reports say it was skipped and why."""


@dataclass(frozen=True)
class TreeRule:
    """How the hypothesis is treeified (SEMANTICS.md section 3; `set treeify.*`)."""

    shared_draws: bool = False
    """The opt-in shared-draw approximation: copies of a node reached through identity-feature nodes or
    through different ports of one receiver share one treeified node and its draws. Every report of a
    hypothesis that uses it says so. Off (exact causal scrubbing, one treeified node per path) by default."""
    max_nodes: int = 50_000
    """The most structurally distinct treeified nodes one scrub may need; past it the engine stops with
    E601 instead of computing (it never switches rule by itself)."""


@dataclass(frozen=True)
class TestPlan:
    """Which statistical tests (SEMANTICS.md section 5) a check runs, and their draws (`set tests.*`).

    The three tests built from null draws cost `r` extra scrubs each (minimality: `r` per node kind) and
    are off unless the file, the command line (`check --tests R`) or an `expect` on their p-value asks;
    the equivalence test costs no scrub (it reads the per-example metrics) and is on by default."""

    __test__ = False  # not a pytest test class

    sufficiency: bool = False
    necessity: bool = False
    equivalence: bool = True
    minimality: bool = False
    r: int = 100
    """Null draws per test (random circuits, random node sets)."""
    seed: int | None = None
    """Seed of the random circuits and node sets; None: the check's seed."""
    eps: float = 0.1
    """Equivalence margin: equivalent when P(m(scrubbed, x) > m(model, x)) lies in [1/2 - eps, 1/2 + eps]."""
    follow_expects: bool = True
    """An `expect` on a test's p-value runs that test whatever the flags say (`check --no-tests` turns this off)."""

    def enabled(self, name: str) -> bool:
        return bool(getattr(self, name))


@dataclass(frozen=True)
class Hypothesis:
    """A compiled, validated hypothesis. `graph` is a frozen networkx.DiGraph:
    nodes are NodeId with attribute `claim` (Claim); edges (sender, receiver) carry
    `ports` (frozenset[Port]). `edges` lists every claimed EdgeId in sorted order."""

    name: str
    source_path: str | None
    source_text: str
    model: ModelRef
    datasets: tuple[DatasetSpec, ...]
    main_dataset: str
    metric: Metric
    ablation: Ablation
    claims: tuple[Claim, ...]
    edges: tuple[EdgeId, ...]
    groups: tuple[tuple[str, tuple[NodeId, ...]], ...]
    expects: tuple[Expect, ...]
    budget: SearchBudget = SearchBudget()
    splits: tuple[Split, ...] = ()
    """The file's `split` statements: components whose outputs are rewritten as sums of parts."""
    seed: int = 0
    bootstrap: int = 1000
    treeify: TreeRule = TreeRule()
    tests: TestPlan = TestPlan()
    minimality_enabled: bool = True
    """`set minimality.enabled = false`: the file's own way to skip the minimality search (as
    `--no-minimality`); no removal is scrubbed and every report says it was skipped and why."""
    edge_origins: tuple[tuple[EdgeId, Span | None, str], ...] = field(default=(), compare=False, repr=False)
    """For each claimed edge: where the file claims it and how, `edge` (an edge statement) or `wire`
    (claimed only by a `wire` statement). Empty for hypotheses not compiled from a file."""
    graph: nx.DiGraph = field(default_factory=nx.DiGraph, compare=False, repr=False)

    def claim(self, node: NodeId) -> Claim | None:
        for c in self.claims:
            if c.node == node:
                return c
        return None

    def dataset(self, name: str) -> DatasetSpec:
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(name)

    @property
    def claimed_nodes(self) -> tuple[NodeId, ...]:
        return tuple(c.node for c in self.claims)


def make_graph(claims: tuple[Claim, ...], edges: tuple[EdgeId, ...]) -> nx.DiGraph:
    """The frozen networkx view of a hypothesis: one node per claim (attribute `claim`),
    one edge per claimed (sender, receiver) pair (attribute `ports`, a frozenset of Port)."""
    g = nx.DiGraph()
    for c in claims:
        g.add_node(c.node, claim=c)
    ports: dict[tuple[NodeId, NodeId], set[Port]] = {}
    for e in edges:
        ports.setdefault((e.sender, e.receiver), set()).add(e.port)
    for (s, r), ps in sorted(ports.items()):
        g.add_edge(s, r, ports=frozenset(ps))
    return nx.freeze(g)
