"""Lecture: how do we actually update the weights?

GD, SGD and minibatch SGD are one optimizer with three batch sizes; momentum and Nesterov race plain SGD down
the ravine, next to Adagrad, RMSProp and Adam; Newton's method (the curvature) solves L2-regularised logistic
regression in a handful of steps where gradient descent needs hundreds.
"""

import numpy as np

import chainrule as cr
from chainrule import playground as pg


def train(X, y, optimizer, epochs, batch_size=None, **hyper):  # (1/n) sum -log P(y_i | x_i; w) + lam/2 ||w||^2
    cr.manual_seed(0)                                    # the same initial weights each run
    model = cr.models.LogisticRegression(X.shape[1])
    hist = cr.fit(model, "bce_with_logits", optimizer(model.parameters(), **hyper), (X, y), epochs=epochs,
                  batch_size=batch_size, penalty=lambda: cr.nn.l2_penalty(model, 1e-2), metrics=(), seed=0, progress=False)
    return np.array(hist["loss"])    # each epoch's mean over its batches (full batch: before its one step)


def plot(curves, ravine, newton, path):   # batch sizes | the ravine | Newton against GD, log scale
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    pg.plot_trajectories("ravine", ravine, ax=ax[1], title="ravine (steps to 1e-6)")
    for a, cs, (x, y, title) in ((ax[0], curves, ("epoch", "training objective", "same SGD, three batch sizes")),
                                 (ax[2], newton, ("iteration", "loss - best", "logistic regression"))):
        for name, c in cs.items():
            a.plot(np.maximum(c, 1e-7), ".-" if name == "Newton" else "-", label=name)  # float32 rounds below
        a.set(xlabel=x, ylabel=y, title=title, yscale="log" if cs is newton else "linear")
        a.legend(fontsize=8)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path


def main(quick=False, out="."):
    ds = cr.datasets.load_breast_cancer()
    n, epochs = (200, 5) if quick else (len(ds.y_train), 20)
    X, y = ((ds.X_train - ds.X_train.mean(0)) / ds.X_train.std(0))[:n], ds.y_train[:n]
    curves = {name: train(X, y, cr.optim.SGD, epochs, bs, lr=0.05)
              for name, bs in (("GD (batch = n)", None), ("SGD (batch = 1)", 1), ("minibatch (32)", 32))}
    print("\n".join(f"{k:<16} mean objective in epoch 1 {c[0]:.4f}, in epoch {len(c)}: {c[-1]:.4f}" for k, c in curves.items()))
    ravine = pg.run("ravine", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"], steps=200)
    print(pg.table("ravine", ravine))
    # Newton: theta <- theta - H^-1 g (fit calls its step(closure)); gradient descent: theta <- theta - lr g
    newton = {"Newton": train(X, y, cr.optim.Newton, 10), "GD": train(X, y, cr.optim.SGD, 1000 if quick else 3000, lr=0.5)}
    gap = {k: c - newton["Newton"].min() for k, c in newton.items()}
    steps = {k: int(np.argmax(g < 1e-6)) if (g < 1e-6).any() else None for k, g in gap.items()}
    print(f"steps to within 1e-6 of the optimum: Newton {steps['Newton']}, gradient descent {steps['GD']}")
    print(f"figure: {plot(curves, ravine, gap, f'{out}/06_optimizers.png')}")
    return dict(batch_curves=curves, ravine_steps={k: r.steps_to_tol for k, r in ravine.items()}, newton=newton, steps=steps)


if __name__ == "__main__":
    import argparse
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--out", default=".", help="directory for the figure (default: the current directory)")
    cli.add_argument("--quick", action="store_true", help="a few seconds instead of the guide's full run")
    main(**vars(cli.parse_args()))
