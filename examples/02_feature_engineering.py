"""Lecture: feature engineering. What should phi be?

One-hot word vectors make every pair of words equally different; hand-made features make "cat"
and "cats" similar; a neural network learns phi from data. On XOR, a linear model on the raw
inputs is at chance, a linear model on polynomial features phi(x) = (1, a, b, a^2, ab, b^2)
solves it, and an MLP (which learns its own features) solves it too.
"""

import numpy as np

import chainrule as cr

WORDS = ["a", "an", "the", "cat", "cats", "dog"]
# hand-made features:      article  animal  plural  vowel-initial
HAND = np.array([[1, 0, 0, 1], [1, 0, 0, 1], [1, 0, 0, 0],
                 [0, 1, 0, 0], [0, 1, 1, 0], [0, 1, 0, 0]], dtype=np.float32)


def cosine(Phi):
    Phi = Phi / np.linalg.norm(Phi, axis=1, keepdims=True)
    return Phi @ Phi.T


def accuracy(model, ds, epochs, lr):
    cr.manual_seed(0)
    opt = cr.optim.Adam(model.parameters(), lr=lr)
    cr.fit(model, "cross_entropy", opt, (ds.X_train, ds.y_train), epochs=epochs, batch_size=32, seed=0,
           progress=False)
    return float((model.predict(ds.X_test) == ds.y_test).mean())


def plot(models, ds, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    g = np.linspace(-2, 2, 121, dtype=np.float32)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    fig, axes = plt.subplots(1, len(models), figsize=(3 * len(models), 2.9))
    for ax, (name, m) in zip(axes, models.items()):
        ax.contourf(g, g, m.predict_proba(grid)[:, 1].reshape(121, 121), levels=10, cmap="RdBu_r", alpha=0.6)
        ax.scatter(*ds.X_test.T, c=ds.y_test, cmap="RdBu_r", s=8, edgecolors="k", linewidths=0.3)
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(quick=False, out=None):
    onehot = cr.one_hot(cr.tensor(np.arange(len(WORDS))), len(WORDS)).numpy().astype(np.float32)
    sim_onehot, sim_hand = cosine(onehot), cosine(HAND)
    print(f"cosine(cat, cats): one-hot {sim_onehot[3, 4]:.2f}  hand-made {sim_hand[3, 4]:.2f}")
    print(f"cosine(cat, the):  one-hot {sim_onehot[3, 2]:.2f}  hand-made {sim_hand[3, 2]:.2f}")

    ds = cr.datasets.make_xor(n_samples=200 if quick else 400, noise=0.2)
    epochs = 40 if quick else 100
    cr.manual_seed(0)
    linear = cr.models.SoftmaxRegression(2, 2)                               # phi = identity
    cr.manual_seed(0)
    phi = cr.models.PolynomialFeatures(degree=2)                            # hand-made phi
    poly = cr.models.SoftmaxRegression(phi.n_output_features(2), 2, feature_fn=phi)
    cr.manual_seed(0)
    mlp = cr.models.MLP([2, 16, 2])                                         # learned phi
    models = {"linear on raw x": linear, "linear on poly phi(x)": poly, "MLP (learned phi)": mlp}
    acc = {name: accuracy(m, ds, epochs, lr=0.05) for name, m in models.items()}
    for name, a in acc.items():
        print(f"XOR test accuracy, {name:<22} {a:.3f}")
    hidden = mlp.layers[1](mlp.layers[0](cr.tensor(ds.X_test))).numpy()     # the learned features
    print(f"learned features: {hidden.shape[1]} hidden units, {(hidden[0] > 0).sum()} active on the first test point")
    figure = plot(models, ds, out) if out else None     # P(y = 1 | x) over the plane
    return dict(sim_onehot=sim_onehot, sim_hand=sim_hand, acc=acc, figure=figure)


if __name__ == "__main__":
    main()
