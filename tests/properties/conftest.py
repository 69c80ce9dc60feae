"""Property tests of the engine on the embedded tiny model (small datasets, few examples, deadline=None)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
