"""install_tl_hook on a model without transformer-lens hook points: a BackendError naming the site (found by
mypy: the lookup dereferenced None and raised AttributeError, which the CLI reports as an internal error)."""

import pytest

pytest.importorskip("torch")

from circuitdsl.backends.base import BackendError, install_tl_hook
from circuitdsl.backends.protocol import Site


class _Bare:
    name = "bare"
    model = object()  # no hook_dict


def test_a_model_without_hook_points_is_a_backend_error():
    with pytest.raises(BackendError, match="has no mlp_out at layer 0"):
        install_tl_hook(_Bare(), "blocks.0.hook_mlp_out", Site.MLP_OUT, 0, lambda x: x)
