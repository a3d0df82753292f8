"""Q-learning with function approximation (seed 001) on a small chain MDP.

    theta <- theta + alpha * dQ(x, u)/dtheta * [r + gamma * max_u' Q(x', u') - Q(x, u)]

is gradient descent on (target - Q(x, u))^2 with the target held fixed: in gradc the
target goes through F.stop_gradient, so no gradient flows into it.

The chain: states 0..N-1, actions left/right, reward 1 for reaching the right end
(which ends the episode).  Transitions for every state and action are replayed;
the value error against Q* from value iteration falls.

Run it:  python examples/td_learning.py
"""
import numpy as np

from compiler import Input, Model, compile, nn, ops as F
from runtime import train

N, GAMMA = 10, 0.9

s, s_next = Input("s", ("B", N)), Input("s_next", ("B", N))        # one-hot states
a = Input("a", ("B",), dtype="int64")
r, done = Input("r", ("B",)), Input("done", ("B",))
q_net = nn.Chain(nn.Dense(N, 32, act="tanh"), nn.Dense(32, 2))
q_sa = F.sum(q_net(s) * F.one_hot(a, 2), axis=1)
target = F.stop_gradient(r + GAMMA * (1.0 - done) * F.max(q_net(s_next), axis=1))
model = Model(inputs=[s, a, r, s_next, done], outputs={"q": q_net(s)},
              loss=F.mean((target - q_sa) ** 2))


def step(state, action):
    nxt = min(state + 1, N - 1) if action == 1 else max(state - 1, 0)
    return nxt, float(nxt == N - 1), float(nxt == N - 1)


def transitions():
    rows = [(st, ac, *step(st, ac)) for st in range(N - 1) for ac in (0, 1)]
    st, ac, nxt, rew, dn = map(np.array, zip(*rows))
    eye = np.eye(N)
    return {"s": eye[st], "a": ac, "r": rew, "s_next": eye[nxt], "done": dn}


def q_star():
    q = np.zeros((N, 2))
    for _ in range(200):
        for st in range(N - 1):
            for ac in (0, 1):
                nxt, rew, dn = step(st, ac)
                q[st, ac] = rew + GAMMA * (1 - dn) * q[nxt].max()
    return q


def main(argv=None):
    from common import parse_args, pyplot, save

    args = parse_args(__doc__, argv)
    prog = compile(model, dtype="float64")
    data, best = transitions(), q_star()
    params = prog.init_params(seed=0)
    errors = []
    rounds = 100 if args.fast else 400
    for _ in range(rounds):  # each round: a few sweeps of TD updates over the replayed transitions
        q = prog.predict(params, {"s": np.eye(N)[:N - 1]})["q"]
        errors.append(float(np.max(np.abs(q - best[:N - 1]))))
        params = train(prog, data, optimizer="adam", lr=0.003, epochs=5, batch_size=18,
                       params=params, quiet=True).params
    q = prog.predict(params, {"s": np.eye(N)[:N - 1]})["q"]
    errors.append(float(np.max(np.abs(q - best[:N - 1]))))
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(np.arange(len(errors)) * 5, errors, lw=2)
    left.set(xlabel="epochs of TD updates", ylabel="max |Q - Q*|", yscale="log",
             title="value error against value iteration")
    right.plot(range(N - 1), best[:N - 1].max(1), "k--", marker="o", label="V* (value iteration)")
    right.plot(range(N - 1), q.max(1), marker="s", label="max_u Q(x, u), learned")
    right.set(xlabel="state", ylabel="value", title=f"chain of {N} states, gamma {GAMMA}")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    right.legend()
    save(fig, args, "td_learning")
    print(f"max |Q - Q*|: {errors[0]:.3f} at the start, {errors[-1]:.4f} at the end")
    return {"errors": errors}


if __name__ == "__main__":
    main()
