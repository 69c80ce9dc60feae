"""A straightforward reference scrub: one full forward pass (with hooks) per treeified node.

It shares only the draw rules (treeify, draws) with the engine; every activation comes from
`run_with_cache` / `run_with_hooks` on the whole model, with no clean cache, no row dedupe and no
single-block runs. The engine must agree with it (tests/engine/test_reference.py), and
benchmarks/run.py times it against the engine."""

from __future__ import annotations

import torch

from circuitdsl.engine.draws import CLASS, OTHER, FeatureIndex, pick
from circuitdsl.engine.treeify import treeify
from circuitdsl.ir import AblationKind, NodeKind, Port


def _cache(model, tokens):
    _, c = model.run_with_cache(tokens)
    return {k: v.detach() for k, v in c.items()}


def _sender(c, s, n_layers):
    if s.kind is NodeKind.EMBED:
        return c["hook_embed"]
    if s.kind is NodeKind.POS:
        return c["hook_pos_embed"]
    if s.kind is NodeKind.HEAD:
        return c[f"blocks.{s.layer}.attn.hook_result"][:, :, s.head]
    return c[f"blocks.{s.layer}.hook_mlp_out"]


def _port_resid(c, v, n_layers):
    if v.kind is NodeKind.HEAD:
        return c[f"blocks.{v.layer}.hook_resid_pre"]
    if v.kind is NodeKind.MLP:
        return c[f"blocks.{v.layer}.hook_resid_mid"]
    return c[f"blocks.{n_layers - 1}.hook_resid_post"]


def _upstream_sum(c, v, shape):
    from circuitdsl.engine.derive import upstream

    return sum(_sender(c, s, shape.n_layers) for s in upstream(v, shape))


@torch.no_grad()
def reference_scrub(backend, datasets, main, h, ablation, seed):
    model = backend.model
    shape = backend.shape
    nL = shape.n_layers
    ds = datasets[main]
    other = datasets[ablation.dataset] if ablation.dataset else ds
    fidx = FeatureIndex(ds)
    tree = treeify(h)
    out = [None] * len(ds)
    for layout, pool in ds.layouts().items():
        n = len(pool)
        ids = [ds.examples[i].id for i in pool]
        toks = lambda idx: backend.tokens([ds.examples[i].tokens for i in idx])  # noqa: E731
        feats = {k[0]: t.feature for k, t in tree.nodes.items()}
        xs = {(): list(pool)}

        def x_of(ctx):
            if ctx not in xs:
                parent = x_of(ctx[:-1])
                path = "/".join(v.name for v in ctx)
                xs[ctx] = [pick(fidx.cls(feats[ctx[-1]], parent[j]), seed, ids[j], path, CLASS) for j in range(n)]
            return xs[ctx]

        opool = other.layouts().get(layout, ())
        mean_c = _cache(model, backend.tokens([other.examples[i].tokens for i in opool])) if ablation.kind is AblationKind.MEAN else None
        outputs = {}
        for key in tree.order:
            t = tree.nodes[key]
            v = t.node
            xt = x_of(t.input_ctx)
            if v.kind in (NodeKind.EMBED, NodeKind.POS):
                outputs[key] = _sender(_cache(model, toks(xt)), v, nL)
                continue
            k = ablation.kind
            if k in (AblationKind.RESAMPLE, AblationKind.RESAMPLE_FROM):
                src = pool if k is AblationKind.RESAMPLE else opool
                xr = [pick(src, seed, ids[j], t.path, OTHER) for j in range(n)]
                ac = _cache(model, backend.tokens([(ds if k is AblationKind.RESAMPLE else other).examples[i].tokens for i in xr]))
            elif k is AblationKind.PAIRED:
                ac = _cache(model, backend.tokens([other.examples[i].tokens for i in xt]))
            elif k is AblationKind.MEAN:
                ac = {kk: vv.mean(0, keepdim=True).expand(n, *vv.shape[1:]) for kk, vv in mean_c.items() if vv.is_floating_point()}
            else:
                cx = _cache(model, toks(xt))
                ac = None
            if k is AblationKind.ZERO:
                base = _port_resid(cx, v, nL) - _upstream_sum(cx, v, shape)
                abl = lambda s: 0.0  # noqa: E731
            else:
                base = _port_resid(ac, v, nL)
                abl = lambda s, ac=ac: _sender(ac, s, nL)  # noqa: E731
            ports = {p: base.clone() for p in ((Port.Q, Port.K, Port.V) if v.kind is NodeKind.HEAD else (Port.IN,))}
            P = layout[0]
            pos = dict(ds.examples[pool[0]].positions)

            def mask(names):
                if names is None:
                    return torch.ones(P)
                m = torch.zeros(P)
                for nm in names:
                    m[list(pos[nm])] = 1
                return m

            for te in t.edges:
                s = te.edge.sender
                ms = mask(tree.nodes[te.child].positions)
                if te.edge.port in (Port.Q, Port.IN) and v.kind is not NodeKind.OUT:
                    ms = ms * mask(t.positions)
                ports[te.edge.port] += (outputs[te.child] - abl(s)) * ms[None, :, None]
            if v.kind is NodeKind.OUT:
                got = {}

                def set_final(x, hook):
                    return ports[Port.IN]

                logits = model.run_with_hooks(toks(pool), fwd_hooks=[(f"blocks.{nL - 1}.hook_resid_post", set_final)])
                for j, i in enumerate(pool):
                    out[i] = logits[j, list(ds.examples[i].scored_positions)]
                continue
            L = v.layer
            got = {}
            H, G = shape.n_heads, shape.n_kv_heads

            def setter(val, width):
                return lambda x, hook: val.unsqueeze(2).expand(-1, -1, width, -1).clone()

            def grab(x, hook):
                got["y"] = x.detach().clone()

            if v.kind is NodeKind.HEAD:
                hooks = [(f"blocks.{L}.hook_q_input", setter(ports[Port.Q], H)), (f"blocks.{L}.hook_k_input", setter(ports[Port.K], G)),
                         (f"blocks.{L}.hook_v_input", setter(ports[Port.V], G)), (f"blocks.{L}.attn.hook_result", grab)]
            else:
                hooks = [(f"blocks.{L}.hook_resid_mid", lambda x, hook: ports[Port.IN].clone()), (f"blocks.{L}.hook_mlp_out", grab)]
            model.run_with_hooks(toks(pool), fwd_hooks=hooks)
            outputs[key] = got["y"][:, :, v.head] if v.kind is NodeKind.HEAD else got["y"]
    return out
