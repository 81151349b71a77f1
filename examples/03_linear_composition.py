"""Lecture: "Composition of linear maps is linear".

p(y | x) = softmax(W(V f(x))) is no richer than logistic regression: a deep network without
activations collapses to one linear map C = W3 W2 W1 (and one bias), so it fails on XOR exactly
like a linear model. Put g = ReLU, sigmoid or tanh between the layers and it fits XOR.
"""

import numpy as np

import chainrule as cr


def train(model, ds, epochs):
    opt = cr.optim.Adam(model.parameters(), lr=0.05)
    cr.fit(model, "cross_entropy", opt, (ds.X_train, ds.y_train), epochs=epochs, batch_size=32, seed=0,
           progress=False)
    return float((model.predict(ds.X_test) == ds.y_test).mean())


def collapse(mlp):
    """The single linear map (C, c) with mlp(x) = x C^T + c for a network without activations."""
    C, c = np.eye(mlp.sizes[0], dtype=np.float64), np.zeros(mlp.sizes[0])
    for layer in mlp.layers:
        if isinstance(layer, cr.nn.Linear):
            W, b = layer.weight.numpy().astype(np.float64), layer.bias.numpy().astype(np.float64)
            C, c = W @ C, W @ c + b                       # W (C x + c) + b
    return C, c


def main(quick=False):
    ds = cr.datasets.make_xor(n_samples=200 if quick else 400, noise=0.2)
    epochs = 40 if quick else 100
    cr.manual_seed(0)
    deep_linear = cr.models.MLP([2, 16, 16, 2], activation="identity")     # W3 W2 W1 x: no g
    acc = {"deep linear (3 layers, no g)": train(deep_linear, ds, epochs)}

    C, c = collapse(deep_linear)
    single = cr.models.SoftmaxRegression(2, 2)
    single.linear.weight.data[...] = C                    # one matrix C = W3 W2 W1 ...
    single.linear.bias.data[...] = c
    X = ds.X_test.astype(np.float32)
    gap = float(np.abs(deep_linear(X).numpy() - single(X).numpy()).max())
    same = float((deep_linear.predict(X) == single.predict(X)).mean())
    print("C = W3 W2 W1 =\n", np.round(C, 3))
    print(f"max |deep(x) - (C x + c)| = {gap:.2e}; same predictions on {same:.0%} of test points")

    cr.manual_seed(0)
    acc["linear model"] = train(cr.models.SoftmaxRegression(2, 2), ds, epochs)
    for g in ("relu", "sigmoid", "tanh"):
        cr.manual_seed(0)
        acc[f"deep, g = {g}"] = train(cr.models.MLP([2, 16, 16, 2], activation=g), ds, epochs)
    for name, a in acc.items():
        print(f"XOR test accuracy  {name:<30} {a:.3f}")
    return dict(collapse_gap=gap, same_predictions=same, acc=acc)


if __name__ == "__main__":
    main()
