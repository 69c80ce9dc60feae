"""Writes the basis files and SAE directories the split goldens read (run once; the outputs are committed).

    .venv/bin/python tests/language/golden/splits/make_fixtures.py

The goldens compile against tests/language/fixtures/native2m (d_model 16, 2 layers, MLPs).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

HERE = Path(__file__).resolve().parent
D_MODEL, D_SAE = 16, 8


def basis(name: str, a: np.ndarray) -> None:
    np.save(HERE / name, a.astype(np.float32))


def sae(name: str, *, d_in: int = D_MODEL, hook: str = "blocks.0.hook_mlp_out", cfg: dict | None = None) -> None:
    d = HERE / name
    d.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    config = {
        "architecture": "standard",
        "d_in": d_in,
        "d_sae": D_SAE,
        "hook_name": hook,
        "hook_layer": 0,
        "dtype": "float32",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
    }
    config.update(cfg or {})
    (d / "cfg.json").write_text(json.dumps(config, indent=1) + "\n")
    save_file(
        {
            "W_enc": rng.standard_normal((d_in, D_SAE)).astype(np.float32),
            "b_enc": np.zeros(D_SAE, np.float32),
            "W_dec": rng.standard_normal((D_SAE, d_in)).astype(np.float32),
            "b_dec": np.zeros(d_in, np.float32),
        },
        str(d / "sae_weights.safetensors"),
    )


def main() -> None:
    rng = np.random.default_rng(0)
    basis("s2.npy", rng.standard_normal((D_MODEL, 2)))
    basis("t1.npy", rng.standard_normal((D_MODEL, 1)))
    basis("full.npy", rng.standard_normal((D_MODEL, D_MODEL)))
    basis("short.npy", rng.standard_normal((8, 2)))
    col = rng.standard_normal((D_MODEL, 1))
    basis("rank1.npy", np.concatenate([col, 2 * col], axis=1))
    (HERE / "garbage.npy").write_bytes(b"this is not an npy file\n")
    sae("sae_m0")
    sae("sae_resid", hook="blocks.0.hook_resid_post")
    sae("sae_wide", d_in=32)
    sae("sae_norm", cfg={"normalize_activations": "expected_average_only_in"})


if __name__ == "__main__":
    main()
