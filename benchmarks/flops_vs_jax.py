"""gradc's flop count for one training step against PyTorch's and JAX's.

The MLP 784-256-256-10 (ReLU, softmax cross-entropy, batch 128): forward and
backward, gradients for the parameters only.  PyTorch's FlopCounterMode counts
matrix products only; JAX's compiled ``cost_analysis()`` counts every op XLA
emits (elementwise ops one flop per element, transcendentals separately).

Run it:  python benchmarks/flops_vs_jax.py     (needs torch; jax optional)
"""
import numpy as np

from compiler import Input, Model, nn, ops as F
from compiler.cost import matmul_flops
from compiler.flops import compare, evaluate, reverse_mode_graph
from compiler.shapes import symbol

BATCH = 128


def model():
    x, k = Input("x", ("B", 784)), Input("k", ("B",), dtype="int64")
    net = nn.Chain(nn.Dense(784, 256, act=F.relu), nn.Dense(256, 256, act=F.relu), nn.Dense(256, 10))
    return Model([x, k], {"logits": net(x)}, F.cross_entropy(net(x), k))


def torch_flops():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                              torch.nn.ReLU(), torch.nn.Linear(256, 10))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(net(torch.randn(BATCH, 784)),
                                          torch.randint(0, 10, (BATCH,))).backward()
    return counter.get_total_flops()


def jax_costs():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    sizes = [(784, 256), (256, 256), (256, 10)]
    params = [(jnp.asarray(rng.normal(size=s), jnp.float32), jnp.zeros(s[1], jnp.float32))
              for s in sizes]
    x = jnp.asarray(rng.normal(size=(BATCH, 784)), jnp.float32)
    k = jnp.asarray(rng.integers(0, 10, BATCH))

    def loss(params, x, k):
        h = x
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            if i < len(params) - 1:
                h = jax.nn.relu(h)
        logp = jax.nn.log_softmax(h)
        return -jnp.mean(jnp.take_along_axis(logp, k[:, None], axis=1))

    compiled = jax.jit(jax.value_and_grad(loss)).lower(params, x, k).compile()
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return {"flops": analysis.get("flops"), "transcendentals": analysis.get("transcendentals")}


def main():
    m = model()
    B = symbol("B")
    rows = evaluate(compare(m, budget={"max_params": 0}), BATCH)
    ours_total = rows["reverse_mode"]["flops"]
    ours_matmul = int(matmul_flops(reverse_mode_graph(m).nodes).subs(B, BATCH))
    print(f"MLP 784-256-256-10, ReLU, softmax cross-entropy, batch {BATCH}: one training step")
    print(f"  gradc matmul flops            {ours_matmul:>14,}")
    print(f"  PyTorch FlopCounterMode       {torch_flops():>14,}   (matmuls only)")
    print(f"  gradc total flops             {ours_total:>14,}   (transcendentals as 1 flop)")
    jax = jax_costs()
    if jax is None:
        print("  JAX: not installed (pip install jax)")
        return
    print(f"  JAX cost_analysis flops       {int(jax['flops']):>14,}   "
          f"(+ {int(jax['transcendentals'] or 0):,} transcendentals)")
    print(f"  gradc / JAX                   {ours_total / jax['flops']:>14.4f}")


if __name__ == "__main__":
    main()
