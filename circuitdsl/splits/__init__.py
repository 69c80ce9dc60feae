"""Split components (docs/FEATURES.md): a component's output rewritten as a sum of claimable parts.

basis.py reads subspace bases, sae.py reads sparse autoencoders in SAELens' on-disk layout, parts.py maps a
component's output to its parts' outputs (the one implementation the engine uses)."""
