"""The oracle helper shared by the layer tests (test_conv.py, test_pool_norm.py)."""

import numpy as np

import chainrule as cr


def check_against_torch(torch, ours, theirs, arrays, dtype, tol, seed=0):
    """Run ``ours`` (chainrule) and ``theirs`` (torch) on the same arrays cast to ``dtype``; compare the
    outputs (shape, dtype, values) and the gradients of a random projection ``u . y`` with respect
    to every array. ``tol`` maps the dtype to ``assert_allclose`` keywords."""
    xs = [cr.tensor(a.astype(dtype), dtype=dtype, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    y, ty = ours(*xs), theirs(*ts)
    assert y.shape == tuple(ty.shape)
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), **tol[dtype])
    u = np.random.default_rng(seed).standard_normal(y.shape).astype(dtype)
    (y * cr.tensor(u, dtype=dtype)).sum().backward()
    (ty * torch.tensor(u)).sum().backward()
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), **tol[dtype])
