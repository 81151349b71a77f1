"""Offline stand-ins for what the tutorials download, and equal starting weights for both libraries.

NumPy and scikit-learn only. ``set_weights`` receives the ``torch`` module the script imported (torch
or chainrule), so the same code fills either library's model.
"""

import numpy as np


def digits28(n_train=1200, n_valid=400, seed=0):
    """scikit-learn's 8x8 digits as MNIST-shaped data: upscaled x3 (nearest neighbour) and padded to 28x28,
    scaled to [0, 1], float32 images and int64 labels, shuffled with ``seed`` and split train/valid."""
    from sklearn.datasets import load_digits
    d = load_digits()
    images = np.pad(np.kron(d.images, np.ones((3, 3))) / 16.0, ((0, 0), (2, 2), (2, 2)))
    order = np.random.default_rng(seed).permutation(len(images))
    x, y = images[order].astype(np.float32), d.target[order].astype(np.int64)
    return x[:n_train], y[:n_train], x[n_train:n_train + n_valid], y[n_train:n_train + n_valid]


def set_weights(torch, model, seed=0):
    """Fill every parameter from NumPy with torch's default Linear distribution U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    fan_in from the last matrix seen (a bias follows its weight)."""
    rng = np.random.default_rng(seed)
    fan_in = 1
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                fan_in = p.shape[1]
            bound = 1.0 / np.sqrt(fan_in)
            p.copy_(torch.from_numpy(rng.uniform(-bound, bound, tuple(p.shape)).astype(np.float32)))
    return model


def result(name, *values):
    """Print one RESULT line (the porting protocol)."""
    print("RESULT", name, *[repr(float(v)) if not isinstance(v, (str, bool)) else v for v in values])
