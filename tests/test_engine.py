"""Regression tests for the engine's ordering and gradient bookkeeping (owned by the core)."""

import numpy as np

import chainrule as cr


def test_leaf_gradient_aliasing_a_pending_gradient(torch):
    # The add rule hands one array to both inputs; a leaf must not sum into it in place while
    # another node still waits on it (x gets three contributions through s1, h and m).
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    h, m = x * 3, x * 5
    ((x + h) + m).sum().backward()
    tx = torch.tensor([1.0, 2.0], requires_grad=True)
    ((tx + tx * 3) + tx * 5).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


def test_two_leaves_never_share_gradient_memory():
    a = cr.tensor([1.0, 2.0], requires_grad=True)
    b = cr.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    a.grad.numpy()[:] = 0  # clipping one gradient in place must leave the other alone
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])


def test_order_follows_creation_not_input_position():
    # y uses u before w in argument order but w was created later; both orders must agree.
    x = cr.tensor(2.0, requires_grad=True)
    u = x * x
    w = u * x
    y = w + u
    y.backward()
    assert x.grad.item() == 3 * 4.0 + 2 * 2.0  # d(x^3 + x^2) = 3x^2 + 2x


def test_grad_of_intermediate_and_leaf_together():
    x = cr.tensor([1.0, -2.0], requires_grad=True)
    h = x * x
    y = (h * 3).sum()
    gh, gx = cr.grad(y, [h, x])
    np.testing.assert_array_equal(gh.numpy(), [3.0, 3.0])
    np.testing.assert_array_equal(gx.numpy(), [6.0, -12.0])
    assert x.grad is None  # cr.grad returns, it does not accumulate


def test_tensor_trig_methods_match_functions():
    x = cr.tensor([0.3, -1.2], requires_grad=True)
    (x.sin() + x.cos() + x.log1p()).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.cos([0.3, -1.2]) - np.sin([0.3, -1.2]) + 1 / (1 + np.array([0.3, -1.2])),
                               rtol=1e-6)


# ----- relu's rule must never write into a gradient another node or leaf still holds ---------------
def test_relu_does_not_overwrite_a_gradient_shared_with_a_leaf():
    """add hands the same g to both inputs; the leaf's copy must not be masked by relu's rule."""
    rng = np.random.default_rng(1)
    x = cr.Tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    b = cr.Tensor(np.zeros((4, 3), np.float32), requires_grad=True)
    g = rng.standard_normal((4, 3)).astype(np.float32)
    (cr.relu(x * 1.0) + b).backward(g)
    np.testing.assert_array_equal(b.grad._data, g)  # unmasked
    np.testing.assert_array_equal(x.grad._data, g * (x._data > 0))


def test_relu_does_not_overwrite_a_captured_gradient():
    rng = np.random.default_rng(2)
    x = cr.Tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    h = cr.relu(x * 2.0)
    out = h.sum() * 1.0
    gh, gx = cr.grad(out, [h, x])
    np.testing.assert_array_equal(gh._data, np.ones((4, 3), np.float32))  # dL/dh, not masked
    np.testing.assert_array_equal(gx._data, 2.0 * (h._data > 0))


def test_relu_does_not_overwrite_views_of_a_shared_gradient():
    """reshape hands on a view of g; when g also goes elsewhere the view is not the sole owner."""
    rng = np.random.default_rng(3)
    x = cr.Tensor(rng.standard_normal((2, 6)).astype(np.float32), requires_grad=True)
    y = cr.Tensor(rng.standard_normal(12).astype(np.float32), requires_grad=True)
    s = cr.relu(x * 1.0).reshape(12) + y  # add: the same g to the reshape and to y
    g = rng.standard_normal(12).astype(np.float32)
    s.backward(g)
    np.testing.assert_array_equal(y.grad._data, g)
    np.testing.assert_array_equal(x.grad._data, (g.reshape(2, 6) * (x._data > 0)))
