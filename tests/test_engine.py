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
