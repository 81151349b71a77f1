"""Lecture: feature engineering. What should phi be?

One-hot word vectors make every pair of words equally different; hand-made features make "cat" and
"cats" similar; a neural network learns phi from data. On XOR, a linear model on the raw inputs is at
chance, one on polynomial features phi(x) = (1, a, b, a^2, ab, b^2) solves it, and so does an MLP.
"""

import numpy as np

import chainrule as cr

WORDS = ["a", "an", "the", "cat", "cats", "dog"]
# hand-made features:      article  animal  plural  vowel-initial
HAND = np.array([[1, 0, 0, 1], [1, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 1, 0, 0]], np.float32)


def cosine(Phi):
    Phi = Phi / np.linalg.norm(Phi, axis=1, keepdims=True)
    return Phi @ Phi.T


def train(make, ds, epochs, lr=0.05):
    cr.manual_seed(0)                                   # the same initial weights each run
    model = make()
    opt = cr.optim.Adam(model.parameters(), lr=lr)
    cr.fit(model, "cross_entropy", opt, (ds.X_train, ds.y_train), epochs=epochs, batch_size=32, seed=0, progress=False)
    return model, float((model.predict(ds.X_test) == ds.y_test).mean())


def main(quick=False, out="."):
    onehot = cr.one_hot(cr.tensor(np.arange(len(WORDS))), len(WORDS)).numpy().astype(np.float32)
    sim_onehot, sim_hand = cosine(onehot), cosine(HAND)
    print(f"cosine(cat, cats): one-hot {sim_onehot[3, 4]:.2f}  hand-made {sim_hand[3, 4]:.2f}")
    print(f"cosine(cat, the):  one-hot {sim_onehot[3, 2]:.2f}  hand-made {sim_hand[3, 2]:.2f}")
    ds = cr.datasets.make_xor(n_samples=200 if quick else 400, noise=0.2)
    phi = cr.models.PolynomialFeatures(degree=2)                                         # hand-made phi
    makers = {"linear on raw x": lambda: cr.models.SoftmaxRegression(2, 2),             # phi = identity
              "linear on poly phi(x)": lambda: cr.models.SoftmaxRegression(phi.n_output_features(2), 2, feature_fn=phi),
              "MLP (learned phi)": lambda: cr.models.MLP([2, 16, 2])}                     # learned phi
    models, acc = {}, {}
    for name, make in makers.items():
        models[name], acc[name] = train(make, ds, epochs=40 if quick else 100)
        print(f"XOR test accuracy, {name:<22} {acc[name]:.3f}")
    hidden = cr.relu(models["MLP (learned phi)"].layers[0](cr.tensor(ds.X_test))).numpy()     # the learned features
    print(f"learned features: {hidden.shape[1]} hidden units, {(hidden[0] > 0).sum()} active on the first test point")
    figure = cr.viz.plot_decision_regions(models, ds.X_test, ds.y_test, f"{out}/02_xor_features.png")  # P(y = 1 | x)
    print(f"figure: {figure}")
    return dict(sim_onehot=sim_onehot, sim_hand=sim_hand, acc=acc, figure=figure)


if __name__ == "__main__":
    import argparse
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--out", default=".", help="directory for the figure (default: the current directory)")
    cli.add_argument("--quick", action="store_true", help="a few seconds instead of the guide's full run")
    main(**vars(cli.parse_args()))
