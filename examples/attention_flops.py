"""Where a transformer block's flops and bytes go as the sequence grows.

One ``nn.TransformerBlock(64, 4)`` (pre-norm, causal attention, GELU MLP) on an input
(B, T, 64), trained on the loss ``sum(block(x) * r)``; the sequence length T and the
batch B stay symbols.  gradc's own cost formulas (``compiler.cost``) give every kernel
of the training step (forward and backward) its flops and bytes as sympy formulas in
B and T; each node is put in one part of the block (layer norms, the QKV projection,
the scores q k^T, the scale, mask and softmax, the mixing of the values, the output
projection, the MLP, the residuals and the loss), each kernel's bytes go to the part
of its costliest node, and the formulas are evaluated for T = 16 ... 2048 at B = 1.

The attention is not fused into one kernel (no flash attention): its (B, 4, T, T)
scores and weights are written to memory and read back several times, forward and
backward, so its bytes grow as T^2 and take over the step's memory traffic.

Last, the flops of one training step of the tiny GPT (``tiny_gpt.py``, batch 64)
against the usual estimate 6 * parameters * tokens.

Run it:  python examples/attention_flops.py
"""
import textwrap

import sympy

from compiler import Input, Model, nn, ops as F
from compiler.cost import ITEMSIZE, kernel_cost, matmul_flops, node_cost
from compiler.flops import reverse_mode_graph
from compiler.graph import toposort
from compiler.ops.registry import OPS
from compiler.pipeline import kernels_of, training_graph
from compiler.shapes import numel, symbol

WIDTH, HEADS, BATCH = 64, 4, 1
B, T = symbol("B"), symbol("T")
PARTS = ("layer norms", "QKV projection", "scores q k^T", "scale, mask, softmax",
         "mixing with v", "output projection", "MLP", "residuals and loss")


def block_model():
    """The block on x (B, T, WIDTH); its loss ``sum(y * r)`` sends the data r back as dL/dy."""
    x, r = Input("x", ("B", "T", WIDTH)), Input("r", ("B", "T", WIDTH))
    block = nn.TransformerBlock(WIDTH, HEADS)
    y = block(x)
    return Model([x, r], {"y": y}, F.sum(y * r)), block, x


def last_contraction(node):
    """The matmul that comes last (in topological order) among ``node`` and what it
    depends on: the scores for the attention weights, the output projection for its result."""
    return [n for n in toposort([node]) if OPS[n.op].kind == "contraction"][-1]


def forward_parts(model, block, x):
    """``{node: part}`` for the nodes of the forward pass.  The block's layers, called
    again, give the same nodes as in the model (nodes are hash-consed); each part's nodes
    are what its last nodes depend on that no earlier part holds."""
    h1 = block.ln1(x)
    weights, v = block.attn.weights(h1)  # the softmax's result (B, heads, T, T), the values
    attended = block.attn(h1)
    x1 = x + attended
    h2 = block.ln2(x1)
    mlp = block.mlp(h2)
    assert x1 + mlp is model.outputs["y"], "the block's layers did not rebuild the block"
    scores, out_proj = last_contraction(weights), last_contraction(attended)
    ends = [("layer norms", [h1]), ("QKV projection", [*scores.inputs, v]),
            ("scores q k^T", [scores]), ("scale, mask, softmax", [weights]),
            ("mixing with v", [out_proj.inputs[0]]), ("output projection", [attended]),
            ("residuals and loss", [x1]), ("layer norms", [h2]), ("MLP", [mlp]),
            ("residuals and loss", [model.loss])]
    part = {}
    for name, roots in ends:
        for n in toposort(roots):
            if n not in part and OPS[n.op].kind != "leaf":
                part[n] = name
    return part


def costs_by_part():
    """``{part: {"forward", "backward", "forward_matmul", "backward_matmul",
    "forward_bytes", "backward_bytes"}}``, each a formula in B and T, and the kernels.

    gradc builds every gradient node ``located`` at the source line of the forward node
    it differentiates; each forward node is given its part's name as its line while the
    training graph is built (and its own line back after), so that every node of the
    step carries its part.  A node's
    flops go to its part, a kernel's bytes to the part of its costliest node (at T = 256)."""
    model, block, x = block_model()
    parts = forward_parts(model, block, x)
    lines = {node: node.source_line for node in parts}
    try:
        for node, name in parts.items():
            node.source_line = name
        kernels = kernels_of(model, training_graph(model))
    finally:  # the forward nodes get their lines back (a model built later may share them)
        for node, line in lines.items():
            node.source_line = line
        parts = {**parts, **{m: m.source_line for k in kernels for m in k.members
                             if m not in lines}}
    out = {p: dict.fromkeys(("forward", "backward", "forward_matmul", "backward_matmul",
                             "forward_bytes", "backward_bytes"), sympy.S.Zero) for p in PARTS}
    for k in kernels:
        phase = "backward" if k.phase == "backward" else "forward"
        for m in k.members:
            if parts.get(m) not in out:
                raise RuntimeError(f"{k.name}: {m.op} is in no part ({parts.get(m)})")
            flops = node_cost(m).flops
            out[parts[m]][phase] += flops
            if OPS[m.op].kind == "contraction":
                out[parts[m]][phase + "_matmul"] += flops
        costliest = max(k.members, key=lambda m: at(node_cost(m).flops, t=256))
        out[parts[costliest]][phase + "_bytes"] += kernel_cost(k).bytes
    for p in out:
        out[p] = {key: sympy.expand(v) for key, v in out[p].items()}
    return out, kernels


def at(formula, t, batch=BATCH):
    return float(sympy.sympify(formula).subs({B: batch, T: t}))


def t_squared(formula):
    """The terms of ``formula`` in T^2."""
    return sympy.expand(sympy.sympify(formula)).coeff(T, 2) * T ** 2


def matmul_weights(model, nodes):
    """The parameters that enter a matmul (through slices, transposes and reshapes)."""
    params, found = set(model.params), set()
    for n in nodes:
        if OPS[n.op].kind != "contraction":
            continue
        for operand in n.inputs:
            while OPS[operand.op].kind == "shape":
                operand = operand.inputs[0]
            if operand in params:
                found.add(operand)
    return found


def gpt_versus_6nd(attention_t2, batch=64):
    """The tiny GPT's flops for the loss and all gradients at ``batch`` (``gradc flops``'s
    reverse-mode row), split into matmuls and the rest, against 6 * parameters * tokens.
    ``attention_t2``: one block's flops of the T x T matmuls (scores and mixing, forward
    and backward), a formula in B and T."""
    import tiny_gpt

    assert (tiny_gpt.WIDTH, tiny_gpt.HEADS) == (WIDTH, HEADS), "its blocks are not this block"
    model = tiny_gpt.model
    nodes = reverse_mode_graph(model).nodes
    total = int(sum((node_cost(n).flops for n in nodes), sympy.S.Zero).subs(B, batch))
    matmul = int(sympy.sympify(matmul_flops(nodes)).subs(B, batch))
    blocks = sum(p.name.endswith(".in_proj_W") for p in model.params)  # one per attention
    attention = blocks * int(attention_t2.subs({B: batch, T: tiny_gpt.T}))
    params = int(sum(numel(p.shape) for p in model.params))
    weights = int(sum(numel(w.shape) for w in matmul_weights(model, nodes)))
    tokens = batch * tiny_gpt.T
    return {"batch": batch, "tokens": tokens, "blocks": blocks, "params": params,
            "matmul_params": weights, "six_n_d": 6 * params * tokens, "total": total,
            "matmuls": matmul, "attention_matmul": attention, "weight_matmul": matmul - attention,
            "six_w_d": 6 * weights * tokens, "other": total - matmul,
            "six_n_scored": 6 * params * batch * tiny_gpt.N}  # only the N scored positions


def t2_matrix_passes(kernels):
    """How many (B, HEADS, T, T) buffers the kernels read or write, forward and backward."""
    square = B * HEADS * T ** 2
    passes = {"forward": 0, "backward": 0}
    for k in kernels:
        phase = "backward" if k.phase == "backward" else "forward"
        passes[phase] += sum(numel(n.shape) == square for n in k.inputs + k.outputs)
    return passes


def main(argv=None):
    from common import parse_args, pyplot, save

    args = parse_args(__doc__, argv)
    parts, kernels = costs_by_part()
    flops = {p: c["forward"] + c["backward"] for p, c in parts.items()}
    moved = {p: c["forward_bytes"] + c["backward_bytes"] for p, c in parts.items()}
    total_flops, total_bytes = sum(flops.values()), sum(moved.values())
    print(f"TransformerBlock({WIDTH}, heads={HEADS}) on (B, T, {WIDTH}), one training step "
          f"({len(kernels)} kernels), gradc's formulas:")
    print(f"  {'part':<21} {'forward flops':<18} {'backward flops':<20} bytes (float32)")
    for p, c in parts.items():
        print(f"  {p:<21} {str(c['forward']):<18} {str(c['backward']):<20} {moved[p]}")
    print(f"  {'total':<21} flops {total_flops}, bytes {total_bytes}")
    passes = t2_matrix_passes(kernels)
    squares = t_squared(total_bytes).coeff(T, 2)  # the bytes in T^2: per_batch * B + mask
    per_batch, mask = squares.coeff(B, 1), squares.coeff(B, 0)
    claim = (f"the (B, {HEADS}, T, T) scores, weights and their gradients are written or read "
             f"{passes['forward'] + passes['backward']} times per step ({passes['forward']} "
             f"forward, {passes['backward']} backward): {per_batch}*B*T^2 bytes; the causal "
             f"mask (T, T) {mask // ITEMSIZE['float32']} times: {mask}*T^2 bytes")
    print(f"Unfused attention: {claim}.")

    exponents = range(4, 12) if args.fast else [e / 4 for e in range(16, 45)]
    ts = [round(2 ** e) for e in exponents]
    series = {"flops": {p: [at(flops[p], t) for t in ts] for p in PARTS},
              "bytes": {p: [at(moved[p], t) for t in ts] for p in PARTS}}
    share = {"flops": [at(t_squared(total_flops), t) / at(total_flops, t) for t in ts],
             "bytes": [at(t_squared(total_bytes), t) / at(total_bytes, t) for t in ts]}
    print(f"At B = {BATCH}:\n  {'T':>5}  {'flops':<10} {'bytes':<10} share of the T^2 terms "
          "(flops, bytes)  largest part by bytes")
    for i, t in enumerate(ts):
        if t & (t - 1) == 0:  # the powers of two
            top = max(PARTS, key=lambda p: series["bytes"][p][i])
            print(f"  {t:>5}  {at(total_flops, t):<10.4g} {at(total_bytes, t):<10.4g} "
                  f"{share['flops'][i]:>15.1%} {share['bytes'][i]:>7.1%}  {'':<13}{top}")

    gpt = gpt_versus_6nd(sum(parts[p][key] for p in ("scores q k^T", "mixing with v")
                             for key in ("forward_matmul", "backward_matmul")))
    print(f"tiny GPT ({gpt['blocks']} blocks, T = {gpt['tokens'] // gpt['batch']}), batch "
          f"{gpt['batch']} = {gpt['tokens']:,} tokens, {gpt['params']:,} parameters:")
    print(f"  6 * params * tokens                      {gpt['six_n_d']:>13,}")
    print(f"  gradc, loss and all gradients            {gpt['total']:>13,} "
          f"({gpt['total'] / gpt['six_n_d']:.3f}x)")
    print(f"    matmuls with the {gpt['matmul_params']:,} weights         "
          f"{gpt['weight_matmul']:>13,} (6 * weights * tokens: {gpt['six_w_d']:,})")
    print(f"    attention's T x T matmuls              {gpt['attention_matmul']:>13,}")
    print(f"    everything else (not matmuls)          {gpt['other']:>13,}")
    print(f"  the other {gpt['params'] - gpt['matmul_params']:,} parameters count "
          f"{6 * (gpt['params'] - gpt['matmul_params']) * gpt['tokens']:,} in 6 * params * tokens")
    print(f"  6 * params * tokens counting only the scored positions: {gpt['six_n_scored']:,}")

    note = textwrap.fill(f"unfused attention: {claim}. A fused (flash) attention kernel "
                         "keeps them on chip.", 46)
    note = note.replace("T^2", "T\u00b2").replace("*", "\u00b7")
    save(plot(pyplot(), ts, series, share, note), args, "attention_flops")
    return {"parts": parts, "kernels": kernels, "ts": ts, "series": series, "share": share,
            "passes": passes, "total_flops": total_flops, "total_bytes": total_bytes,
            "gpt": gpt}


def plot(plt, ts, series, share, note):
    """Shares of the parts (flops, bytes), the totals and their T^2 terms, the T^2 shares."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    ticks = [t for t in ts if t & (t - 1) == 0]
    totals = {key: [sum(series[key][p][i] for p in PARTS) for i in range(len(ts))]
              for key in series}
    for ax, key in zip(axes[0], series):
        shares = [[series[key][p][i] / totals[key][i] for i in range(len(ts))] for p in PARTS]
        ax.stackplot(ts, shares, labels=PARTS, colors=[f"C{i}" for i in range(len(PARTS))],
                     alpha=0.85)
        ax.set(ylim=(0, 1), ylabel=f"share of the step's {key}",
               title=f"{key} of one training step (forward + backward), by part")
    handles, labels = axes[0][1].get_legend_handles_labels()  # listed as stacked, top first
    axes[0][1].legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.02, 1),
                      fontsize=9)
    ax = axes[1][0]
    for key, color in (("flops", "C0"), ("bytes", "C3")):
        ax.plot(ts, totals[key], color=color, lw=2, label=f"{key}, total")
        ax.plot(ts, [s * v for s, v in zip(share[key], totals[key])], color=color, ls="--",
                label=f"{key}, its T\u00b2 terms")
    ax.loglog()
    ax.set(ylabel=f"per step, batch {BATCH}",
           title="flops and bytes (float32) of one step")
    ax.legend(fontsize=8)
    ax.text(0.97, 0.03, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=8.5,
            multialignment="left", bbox={"facecolor": "white", "edgecolor": "C3", "alpha": 0.9})
    ax = axes[1][1]
    for key, color in (("flops", "C0"), ("bytes", "C3")):
        ax.plot(ts, share[key], color=color, lw=2, label=key)
    ax.set(ylim=(0, 1), ylabel="share of the T\u00b2 terms",
           title="what grows as T\u00b2: the attention's T x T matrices")
    ax.legend(loc="upper left", fontsize=8)
    for ax in axes.flat:
        ax.semilogx()
        ax.set(xlim=(ts[0], ts[-1]), xlabel="sequence length T")
        ax.set_xticks(ticks, labels=[str(t) for t in ticks])
        ax.minorticks_off()
    for ax in axes[1]:
        ax.grid(True, alpha=0.3)
    return fig


if __name__ == "__main__":
    main()
