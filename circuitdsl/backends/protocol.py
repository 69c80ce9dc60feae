"""The interface between circuitdsl and a loaded model (SEMANTICS.md section 1).

Everything model-specific lives behind `ModelBackend`: hook names, the block arguments each layer is
run with (masks, sliding windows, rotary tables), norms, soft-caps, grouped-query attention, parallel
blocks, device and dtype. The engine, the patching sweeps, the report's extras and falsify name
activations by `Site` and layer only, and never by a hook name.

Implementations: `backends.bridge.BridgeBackend` (Hugging Face models through transformer-lens 4.3's
TransformerBridge) and `backends.native.NativeBackend` (circuitdsl's own no-LayerNorm format). A third
(nnsight, say) implements the same methods in one module; `backends.contract` then checks it against
the model's own forward pass like the others.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # torch is imported only by implementations
    import torch

    from circuitdsl.backends.base import CleanCache
    from circuitdsl.ir import ModelShape

__all__ = ["Site", "Edit", "SiteKey", "ModelBackend", "ContractReference"]


class Site(enum.Enum):
    """A place in the forward pass where an activation can be read or replaced. Shapes use B examples,
    P positions, H query heads, G key/value heads, D d_model."""

    EMBED = "embed"
    """Token embedding [B, P, D] (what the `embed` node writes)."""
    POS = "pos"
    """Learned position embedding [B, P, D] (the `pos` node); absent in rotary models."""
    RESID_PRE = "resid_pre"
    """The residual entering layer L [B, P, D]: what every head of L reads."""
    Q_INPUT = "q_input"
    """Per-head query input [B, P, H, D], in the residual stream (before the head's norm)."""
    K_INPUT = "k_input"
    """Per key/value head key input [B, P, G, D]."""
    V_INPUT = "v_input"
    """Per key/value head value input [B, P, G, D]."""
    RESULT = "result"
    """Each head's output through W_O [B, P, H, D] (biases excluded)."""
    PATTERN = "pattern"
    """Attention pattern [B, H, P_query, P_key]."""
    MLP_IN = "mlp_in"
    """The residual the MLP of layer L reads [B, P, D]: after the heads of L in sequential blocks, the
    layer's input in parallel blocks (GPT-J, GPT-NeoX/Pythia, Phi)."""
    MLP_OUT = "mlp_out"
    """The MLP's output [B, P, D] (its biases included)."""
    RESID_POST = "resid_post"
    """The residual leaving layer L [B, P, D]."""
    FINAL_SCALE = "final_scale"
    """The final norm's scale [B, P, 1] (layer None); absent in models without a final norm."""


SiteKey = tuple[Site, "int | None"]
"""(site, layer); layer None for EMBED, POS and FINAL_SCALE."""

Edit = Callable[["torch.Tensor"], "torch.Tensor | None"]
"""Called with the activation at a site; returns its replacement (same shape), or None to leave it."""


@runtime_checkable
class ContractReference(Protocol):
    """The model's own forward pass with plain PyTorch hooks on its own modules (not the backend's
    code path): the yardstick of the model contract (backends/contract.py)."""

    def layer_residuals(self, tokens: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """([residual entering layer 0, .., entering layer n-1, leaving layer n-1], logits at the last 4
        positions)."""
        ...

    def logits_with_head(self, tokens: torch.Tensor, layer: int, head: int, source: torch.Tensor) -> torch.Tensor:
        """Logits (last 4 positions) of `tokens` with head layer.head's output replaced by its output on
        `source` (same shape), through a hook on the model's own attention output projection."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ModelBackend(Protocol):
    """A loaded model, as circuitdsl sees it."""

    name: str
    kind: str
    """'bridge', 'native', ..."""
    shape: ModelShape
    d_vocab_out: int
    tokenizer: Any
    vocab_strings: tuple[str, ...] | None

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def n_ctx(self) -> int | None:
        """The longest input the model accepts (learned positions), None when not bounded."""
        ...

    @property
    def causal(self) -> bool:
        """Whether a position attends only to itself and earlier positions."""
        ...

    @property
    def final_norm(self) -> str:
        """'layernorm', 'rmsnorm' or 'none': the norm before the unembedding."""
        ...

    @property
    def resid_gauge(self) -> str:
        """'exact', or 'mean' when the backend's residual stream equals the model's only up to each
        position's mean over d_model (transformer-lens centres the writing weights of LayerNorm
        models, whose every reader removes that mean)."""
        ...

    @property
    def logit_gauge(self) -> str:
        """'exact', or 'mean' when logits equal the model's up to a constant per position (a centred
        unembedding; every metric but `mse` is invariant to it)."""
        ...

    def tokens(self, rows: Iterable[Sequence[int]]) -> torch.Tensor: ...

    def run(
        self, tokens: torch.Tensor, *, capture: Iterable[SiteKey] = (), edits: Mapping[SiteKey, Edit] | None = None
    ) -> tuple[torch.Tensor, dict]:
        """One forward pass: (logits [B, P, V], {site key: captured activation})."""
        ...

    def run_from(
        self,
        layer: int,
        resid: torch.Tensor,
        *,
        edits: Mapping[SiteKey, Edit] | None = None,
        positions: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Logits (at `positions` only when given) of the run whose residual entering `layer` is `resid`;
        layers before it do not run. Needs an earlier `run` on inputs of the same length."""
        ...

    def clean_run(self, tokens: torch.Tensor) -> CleanCache:
        """One pass keeping every node's output and the residual at every port."""
        ...

    def run_layer(
        self, layer: int, q_in: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor, mlp_in: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Layer `layer` alone, its heads' ports set: (RESULT [R, P, H, D], MLP_OUT or None)."""
        ...

    def run_mlp(self, layer: int, mlp_in: torch.Tensor) -> torch.Tensor:
        """MLP_OUT of `layer` when its MLP_IN is `mlp_in`."""
        ...

    def unembed(self, resid_final: torch.Tensor) -> torch.Tensor:
        """Logits from residuals leaving the last layer: everything the model does after its last block."""
        ...

    def unembed_matrix(self) -> torch.Tensor:
        """W_U [D, V] (float)."""
        ...

    def grad_run(
        self,
        tokens: torch.Tensor,
        objective: Callable[[torch.Tensor], torch.Tensor],
        *,
        grads: Iterable[SiteKey],
        capture: Iterable[SiteKey] = (),
        edits: Mapping[SiteKey, Edit] | None = None,
    ) -> tuple[float, dict, dict]:
        """One forward pass with gradients on (and `edits` applied), then one backward pass of the scalar
        `objective(logits)`: (its value, {site key: d objective / d activation there}, {site key: captured
        activation, detached}). Each site in `grads` is exposed as a leaf (the activation plus a zero
        tensor that requires grad, after any edit there), so a gradient is with respect to what that
        site feeds: Q_INPUT per query head and K_INPUT / V_INPUT per key/value group (the heads' ports),
        MLP_IN the MLP's own input only (not the residual stream around it), RESID_POST of the last
        layer the final residual (the port of `out`), RESULT / MLP_OUT / EMBED / POS a sender's output.
        Parameters get no gradient. Used by edge attribution (circuitdsl.attribute)."""
        ...

    def reference(self) -> ContractReference:
        """The model's own forward pass with plain hooks, for the model contract."""
        ...

    def fingerprint(self) -> str:
        """A hash of the weights and config as loaded (keys the contract's verdict)."""
        ...
