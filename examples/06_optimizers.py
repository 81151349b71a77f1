"""Lecture: how do we actually update the weights?

GD, SGD and minibatch SGD are one optimizer with three batch sizes; momentum and Nesterov race plain
SGD down the ravine, next to Adagrad, RMSProp and Adam; Newton's method (the curvature) solves
L2-regularised logistic regression in a handful of steps where gradient descent needs hundreds.
"""

import os

import numpy as np

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import playground as pg


def objective(model, X, y, lam=1e-2):   # (1/n) sum -log P(y_i | x_i; w) + lam/2 ||w||^2
    return F.binary_cross_entropy_with_logits(model(X), y) + cr.nn.l2_penalty(model, lam)


def batch_sizes(X, y, epochs):
    Xt, yt, curves = cr.tensor(X), cr.tensor(y * 1.0), {}
    for name, bs in (("GD (batch = n)", None), ("SGD (batch = 1)", 1), ("minibatch (32)", 32)):
        cr.manual_seed(0)
        model = cr.models.LogisticRegression(X.shape[1])
        opt = cr.optim.SGD(model.parameters(), lr=0.05)
        loader = cr.data.DataLoader(X, y, batch_size=bs, seed=0)
        curves[name] = [objective(model, Xt, yt).item()]
        for _ in range(epochs):
            for xb, yb in loader:
                sgd_step(opt, lambda: objective(model, xb, yb))  # noqa: B023 - called at once
            curves[name].append(objective(model, Xt, yt).item())
    return curves


def newton_vs_gd(X, y, max_steps):
    Xt, yt, curves = cr.tensor(X, dtype=cr.float64), cr.tensor(y, dtype=cr.float64), {}
    for name, steps in (("Newton", 10), ("GD", max_steps)):
        cr.manual_seed(0)
        model = cr.models.LogisticRegression(X.shape[1]).double()
        opt = cr.optim.Newton(model.parameters()) if name == "Newton" else cr.optim.SGD(model.parameters(), lr=0.5)
        closure = lambda: objective(model, Xt, yt)  # noqa: E731
        curves[name] = np.array([opt.step(closure).item() if name == "Newton"     # theta -= H^-1 g
                                 else sgd_step(opt, closure) for _ in range(steps)])
    best = curves["Newton"].min()
    hit = {k: np.flatnonzero(v - best < 1e-6) for k, v in curves.items()}
    return curves, best, {k: int(h[0]) if h.size else None for k, h in hit.items()}


def sgd_step(opt, closure):
    opt.zero_grad()
    loss = closure()
    loss.backward()
    opt.step()
    return loss.item()


def plot(curves, ravine, newton, path):   # batch sizes | the ravine | Newton against GD, log scale
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    pg.plot_trajectories("ravine", ravine, ax=ax[1], title="ravine (steps to 1e-6)")
    for a, cs, (x, y, title) in ((ax[0], curves, ("epoch", "training objective", "same SGD, three batch sizes")),
                                 (ax[2], newton, ("iteration", "loss - best", "logistic regression"))):
        for name, c in cs.items():
            a.plot(c, ".-" if name == "Newton" else "-", label=name)
        a.set(xlabel=x, ylabel=y, title=title, yscale="log" if cs is newton else "linear")
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(quick=False, out="."):
    ds = cr.datasets.load_breast_cancer()
    n = 200 if quick else len(ds.y_train)
    X, y = ((ds.X_train - ds.X_train.mean(0)) / ds.X_train.std(0))[:n], ds.y_train[:n]
    curves = batch_sizes(X, y, epochs=5 if quick else 20)
    for name, c in curves.items():
        print(f"{name:<16} objective after 1 epoch {c[1]:.4f}, after {len(c) - 1}: {c[-1]:.4f}")
    ravine = pg.run("ravine", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"], steps=200)
    print(pg.table("ravine", ravine))
    newton, best, steps = newton_vs_gd(X, y, max_steps=1000 if quick else 3000)
    print(f"steps to within 1e-6 of the optimum: Newton {steps['Newton']}, gradient descent {steps['GD']}")
    figure = os.path.join(out, "06_optimizers.png")
    plot(curves, ravine, {k: np.maximum(c - best, 1e-16) for k, c in newton.items()}, figure)
    print(f"figure: {figure}")
    return dict(batch_curves=curves, ravine_steps={k: r.steps_to_tol for k, r in ravine.items()},
                newton_steps=steps["Newton"], gd_steps=steps["GD"], gd_steps_run=len(newton["GD"]), figure=figure)


if __name__ == "__main__":
    import argparse

    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--out", default=".", help="directory for the figure (default: the current directory)")
    cli.add_argument("--quick", action="store_true", help="a few seconds instead of the guide's full run")
    main(**vars(cli.parse_args()))
