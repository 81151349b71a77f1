"""The engine, checked with NumPy only: finite differences, second order, graph shapes, errors."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.functional as F
from chainrule import ops


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def pos(*shape, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 2.0, shape)


def away(*shape, seed=0):
    x = rnd(*shape, seed=seed)
    return np.where(x >= 0, x + 0.2, x - 0.2)


_Y = np.array([0, 2, 1, 2])
_P = np.random.default_rng(5).dirichlet(np.ones(3), size=4)
_MASK = rnd(3, 4, seed=9) > 0

# name: (function of Tensors, input arrays, smooth (gets a second-order check))
GRADCHECK = {
    "add": (lambda a, b: a + b, [rnd(3, 4), rnd(4, seed=1)], True),
    "sub": (lambda a, b: a - b, [rnd(3, 1), rnd(4, seed=1)], True),
    "mul": (lambda a, b: a * b, [rnd(3, 4), rnd(3, 1, seed=1)], True),
    "div": (lambda a, b: a / b, [rnd(3, 4), pos(4, seed=1)], True),
    "pow": (lambda a, b: a ** b, [pos(3, 4), rnd(3, 4, seed=1)], True),
    "pow_scalar": (lambda a: a ** 3.0 + 2.0 ** a, [rnd(3, 4)], True),
    "rsub_rdiv": (lambda a: 1.0 - 2.0 / a, [pos(3, 4)], True),
    "neg": (lambda a: -a, [rnd(3, 4)], True),
    "maximum": (cr.maximum, [rnd(3, 4), rnd(3, 4, seed=1)], False),
    "minimum": (cr.minimum, [rnd(3, 4), rnd(4, seed=1)], False),
    "exp": (cr.exp, [rnd(3, 4)], True),
    "log": (cr.log, [pos(3, 4)], True),
    "log1p": (cr.log1p, [pos(3, 4)], True),
    "sqrt": (cr.sqrt, [pos(3, 4)], True),
    "abs": (cr.abs, [away(3, 4)], False),
    "tanh": (cr.tanh, [rnd(3, 4)], True),
    "sigmoid": (cr.sigmoid, [rnd(3, 4) * 3], True),
    "relu": (cr.relu, [away(3, 4)], False),
    "sin_cos": (lambda a: cr.sin(a) * cr.cos(a), [rnd(3, 4)], True),
    "gelu": (F.gelu, [rnd(3, 4)], True),
    "gelu_tanh": (lambda a: F.gelu(a, "tanh"), [rnd(3, 4)], True),
    "softplus": (F.softplus, [rnd(3, 4)], True),
    "leaky_relu": (F.leaky_relu, [away(3, 4)], False),
    "where": (lambda a, b: cr.where(_MASK, a, b), [rnd(3, 4), rnd(4, seed=1)], True),
    "clip": (lambda a: cr.clip(a, -0.5, 0.5), [away(3, 4) * 0.6], False),
    "matmul_2d": (lambda a, b: a @ b, [rnd(3, 4), rnd(4, 2, seed=1)], True),
    "matmul_1d": (lambda a, b: a @ b, [rnd(4), rnd(4, seed=1)], True),
    "matmul_1d_2d": (lambda a, b: a @ b, [rnd(4), rnd(4, 2, seed=1)], True),
    "matmul_2d_1d": (lambda a, b: a @ b, [rnd(3, 4), rnd(4, seed=1)], True),
    "matmul_batched": (lambda a, b: a @ b, [rnd(2, 1, 3, 4), rnd(3, 4, 2, seed=1)], True),
    "sum": (lambda a: a.sum(axis=1), [rnd(2, 3, 4)], True),
    "sum_keep": (lambda a: a.sum(axis=(0, 2), keepdims=True), [rnd(2, 3, 4)], True),
    "mean": (lambda a: a.mean(axis=-1), [rnd(2, 3, 4)], True),
    "var": (lambda a: a.var(axis=0), [rnd(2, 3, 4)], True),
    "std": (lambda a: a.std(), [rnd(2, 3, 4)], True),
    "max": (lambda a: a.max(axis=1), [rnd(2, 3, 4)], False),
    "min": (lambda a: a.min(axis=(0, 2), keepdims=True), [rnd(2, 3, 4)], False),
    "prod": (lambda a: a.prod(axis=1), [pos(2, 3, 4)], True),
    "logsumexp": (lambda a: a.logsumexp(axis=1), [rnd(2, 3, 4)], True),
    "softmax": (lambda a: a.softmax(axis=1), [rnd(2, 3, 4)], True),
    "log_softmax": (lambda a: cr.log_softmax(a), [rnd(2, 3, 4)], True),
    "reshape": (lambda a: a.reshape(4, 6), [rnd(2, 3, 4)], True),
    "transpose": (lambda a: a.permute(2, 0, 1), [rnd(2, 3, 4)], True),
    "swapaxes": (lambda a: a.swapaxes(0, 2), [rnd(2, 3, 4)], True),
    "squeeze_unsqueeze": (lambda a: a.squeeze(1).unsqueeze(0), [rnd(2, 1, 4)], True),
    "expand": (lambda a: a.expand(2, 3, 4), [rnd(3, 1)], True),
    "broadcast_to": (lambda a: cr.broadcast_to(a, shape=(3, 4)), [rnd(4)], True),
    "flatten": (lambda a: a.flatten(1), [rnd(2, 3, 4)], True),
    "getitem_slice": (lambda a: a[1:, ::2], [rnd(3, 4)], True),
    "getitem_repeats": (lambda a: a[np.array([0, 2, 0, 0])], [rnd(3, 4)], True),
    "getitem_pairs": (lambda a: a[np.array([0, 1, 1]), np.array([3, 3, 3])], [rnd(3, 4)], True),
    "getitem_mask": (lambda a: a[_MASK], [rnd(3, 4)], True),
    "concatenate": (lambda a, b: cr.concatenate([a, b], axis=1), [rnd(3, 2), rnd(3, 4, seed=1)], True),
    "stack": (lambda a, b: cr.stack([a, b], axis=-1), [rnd(3, 2), rnd(3, 2, seed=1)], True),
    "pad": (lambda a: cr.pad(a, ((1, 0), (2, 3)), 1.5), [rnd(3, 2)], True),
    "astype": (lambda a: a.astype(np.float32).astype(np.float64) * 0 + a.double(), [rnd(3)], True),
    "linear": (F.linear, [rnd(5, 4), rnd(3, 4, seed=1), rnd(3, seed=2)], True),
    "linear_3d": (F.linear, [rnd(2, 5, 4), rnd(3, 4, seed=1)], True),
    "cross_entropy": (lambda z: F.cross_entropy(z, _Y), [rnd(4, 3)], True),
    "cross_entropy_probs": (lambda z: F.cross_entropy(z, _P, reduction="sum"), [rnd(4, 3)], True),
    "cross_entropy_smooth": (lambda z: F.cross_entropy(z, _Y, label_smoothing=0.2), [rnd(4, 3)], True),
    "bce_with_logits": (ops.bce_with_logits, [rnd(3, 4) * 3, np.random.default_rng(1).uniform(0, 1, (3, 4))], True),
    "mse_loss": (F.mse_loss, [rnd(3, 4), rnd(3, 4, seed=1)], True),
    "huber_loss": (F.huber_loss, [rnd(3, 4) * 2, rnd(3, 4, seed=1)], False),
    "mlp": (lambda x, w1, w2: F.cross_entropy(cr.tanh(x @ w1) @ w2, _Y), [rnd(4, 3), rnd(3, 5, seed=1), rnd(5, 3, seed=2)], True),
}


@pytest.mark.parametrize("name", list(GRADCHECK))
def test_gradcheck(name):
    fn, arrays, _ = GRADCHECK[name]
    assert cr.gradcheck(fn, [np.array(a, dtype=np.float64) for a in arrays])


@pytest.mark.parametrize("name", [k for k, v in GRADCHECK.items() if v[2]])
def test_gradgradcheck(name):
    fn, arrays, _ = GRADCHECK[name]
    assert cr.gradgradcheck(fn, [np.array(a, dtype=np.float64) for a in arrays], atol=1e-4)


def test_gradcheck_detects_a_wrong_rule(monkeypatch):
    monkeypatch.setattr(ops.tanh, "rule", lambda g, out, a: (g * (1.0 - out),))
    with pytest.raises(cr.GradcheckError, match="disagree"):
        cr.gradcheck(cr.tanh, [rnd(3)])
    assert cr.gradcheck(cr.tanh, [rnd(3)], raise_exception=False) is False


def test_gradcheck_refuses_float32():
    with pytest.raises(ValueError, match="float64"):
        cr.gradcheck(cr.tanh, [cr.tensor(rnd(3), requires_grad=True)])


def test_vjp_inner_product():
    """<u, J v> computed by a VJP equals the finite-difference JVP <u, (f(x+eps v)-f(x-eps v))/2eps>."""
    x = cr.tensor(rnd(3, 4), dtype=np.float64, requires_grad=True)
    f = lambda t: cr.tanh(t @ cr.tensor(rnd(4, 2, seed=3), dtype=np.float64)).softmax(0)
    u, v, eps = rnd(3, 2, seed=1), rnd(3, 4, seed=2), 1e-6
    (g,) = cr.grad(f(x), x, grad_outputs=cr.tensor(u, dtype=np.float64))
    with cr.no_grad():
        fp, fm = (f(cr.tensor(x._data + s * eps * v, dtype=np.float64))._data for s in (1, -1))
        jv = (fp - fm) / (2 * eps)
    np.testing.assert_allclose(np.sum(g._data * v), np.sum(u * jv), rtol=1e-7)


# ----- second order -----------------------------------------------------------------------------
def test_hvp_matches_finite_differences_of_gradients():
    w = cr.tensor(rnd(3, 2), dtype=np.float64, requires_grad=True)
    b = cr.tensor(rnd(2, seed=1), dtype=np.float64, requires_grad=True)
    X = rnd(6, 3, seed=2)
    f = lambda: F.cross_entropy(F.linear(cr.tensor(X, dtype=np.float64), w.T, b), np.array([0, 1, 1, 0, 1, 0]))
    v = [rnd(3, 2, seed=3), rnd(2, seed=4)]
    hv = cr.hvp(f, [w, b], v)
    eps = 1e-6

    def grads_at(s):
        with cr.no_grad():
            w._data += s * eps * v[0]
            b._data += s * eps * v[1]
        gs = cr.grad(f(), [w, b])
        with cr.no_grad():
            w._data -= s * eps * v[0]
            b._data -= s * eps * v[1]
        return [g._data for g in gs]
    num = [(p - m) / (2 * eps) for p, m in zip(grads_at(1), grads_at(-1))]
    for h, n in zip(hv, num):
        np.testing.assert_allclose(h._data, n, rtol=1e-5, atol=1e-8)


def test_hvp_of_linear_function_is_zero():
    x = cr.tensor(rnd(3), dtype=np.float64, requires_grad=True)
    (h,) = cr.hvp(lambda: (x * 2.0).sum(), [x], [np.ones(3)])
    np.testing.assert_array_equal(h._data, np.zeros(3))


def test_hessian_of_quadratic_form():
    A = rnd(4, 4)
    H = cr.hessian(lambda x: x @ (cr.tensor(A, dtype=np.float64) @ x), rnd(4, seed=1))
    assert H.shape == (4, 4)
    np.testing.assert_allclose(H._data, A + A.T, rtol=1e-12, atol=1e-12)


def test_hessian_of_known_functions():
    x0 = rnd(3, seed=2)
    H = cr.hessian(lambda x: cr.exp(x).sum(), x0)  # diag(e^x)
    np.testing.assert_allclose(H._data, np.diag(np.exp(x0)), rtol=1e-12)
    H = cr.hessian(lambda x: cr.logsumexp(x), x0)  # diag(p) - p p^T
    p = np.exp(x0) / np.exp(x0).sum()
    np.testing.assert_allclose(H._data, np.diag(p) - np.outer(p, p), rtol=1e-10, atol=1e-12)
    x2 = rnd(2, 2, seed=3)
    H = cr.hessian(lambda x: (x ** 3.0).sum(), x2)  # shape x.shape + x.shape
    assert H.shape == (2, 2, 2, 2)
    np.testing.assert_allclose(H._data.reshape(4, 4), np.diag(6 * x2.reshape(-1)), rtol=1e-12)


def test_jacobian():
    A = rnd(3, 4)
    J = cr.jacobian(lambda x: cr.tensor(A, dtype=np.float64) @ x, rnd(4))
    np.testing.assert_allclose(J._data, A, rtol=1e-12)
    x0 = rnd(3, seed=1)
    J = cr.jacobian(cr.tanh, x0)
    np.testing.assert_allclose(J._data, np.diag(1 - np.tanh(x0) ** 2), rtol=1e-12)


def test_create_graph_gives_differentiable_gradient():
    x = cr.tensor([1.5, -0.5], dtype=np.float64, requires_grad=True)
    y = (x ** 3.0).sum()
    (g,) = cr.grad(y, x, create_graph=True)
    assert g.requires_grad
    np.testing.assert_allclose(g._data, 3 * x._data ** 2)
    (gg,) = cr.grad(g.sum(), x)
    np.testing.assert_allclose(gg._data, 6 * x._data)
    # backward(create_graph=True) leaves a differentiable .grad
    x2 = cr.tensor([2.0], dtype=np.float64, requires_grad=True)
    (x2 ** 4.0).sum().backward(create_graph=True)
    assert x2.grad.requires_grad
    (g3,) = cr.grad(x2.grad.sum(), x2)
    np.testing.assert_allclose(g3._data, [12 * 4.0])


# ----- graph shapes -----------------------------------------------------------------------------
def test_diamond_graph():
    x = cr.tensor(2.0, dtype=np.float64, requires_grad=True)
    a = x * 3.0
    b, c = cr.exp(a), a * a  # a feeds two branches that meet again
    y = b + c
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 3 * np.exp(6.0) + 2 * 6.0 * 3)


def test_fan_out_and_reused_nonleaf():
    x = cr.tensor(rnd(3), dtype=np.float64, requires_grad=True)
    h = cr.tanh(x)
    y = (h * h * h).sum() + h.sum() + (h @ h)
    y.backward()
    t = np.tanh(x._data)
    np.testing.assert_allclose(x.grad._data, (3 * t ** 2 + 1 + 2 * t) * (1 - t ** 2), rtol=1e-12)


def test_same_tensor_twice_in_one_op():
    x = cr.tensor([3.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad._data, [6.0])
    y = cr.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=np.float64, requires_grad=True)
    (y @ y).sum().backward()
    ones = np.ones((2, 2))
    np.testing.assert_allclose(y.grad._data, ones @ y._data.T + y._data.T @ ones)


def test_long_chain_no_recursion_error():
    x = cr.tensor(1.0, dtype=np.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001 ** 10_000, rtol=1e-9)


def test_long_chain_create_graph():
    x = cr.tensor(0.5, dtype=np.float64, requires_grad=True)
    y = x
    for _ in range(3000):
        y = y + x * x * 1e-4
    (g,) = cr.grad(y, x, create_graph=True)
    (h,) = cr.grad(g, x)
    np.testing.assert_allclose(g.item(), 1 + 3000 * 2e-4 * 0.5, rtol=1e-10)
    np.testing.assert_allclose(h.item(), 3000 * 2e-4, rtol=1e-10)


def test_gradients_accumulate_across_backward_calls():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad._data, [3 + 2, 3 + 4])
    x.grad.zero_()
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad._data, [2.0, 2.0])


def test_leaf_grads_do_not_alias():
    """Two leaves receiving the same upstream array must not share .grad memory."""
    a, b = cr.tensor([1.0, 2.0], requires_grad=True), cr.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad._data += 10
    np.testing.assert_array_equal(b.grad._data, [1.0, 1.0])
    g = np.ones(2, np.float32)
    c = cr.tensor([1.0, 2.0], requires_grad=True)
    (c * 1.0).backward(g)
    g[0] = 99
    np.testing.assert_array_equal(c.grad._data, [1.0, 1.0])


def test_retain_graph():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (cr.exp(x)).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad._data, 2 * np.exp(x._data), rtol=1e-6)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_second_backward_without_retain_graph_raises():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_intermediate_grads_not_stored():
    x = cr.tensor([1.0], requires_grad=True)
    h = x * 2.0
    (h * 3.0).sum().backward()
    assert h.grad is None and x.grad is not None


def test_backward_inputs_restricts_accumulation():
    a, b = cr.tensor([1.0], requires_grad=True), cr.tensor([2.0], requires_grad=True)
    (a * b).sum().backward(inputs=[a])
    np.testing.assert_allclose(a.grad._data, [2.0])
    assert b.grad is None


# ----- grad mode --------------------------------------------------------------------------------
def test_no_grad_context_and_decorator():
    x = cr.tensor([1.0], requires_grad=True)
    with cr.no_grad():
        y = x * 2.0
        assert not cr.is_grad_enabled()
        with cr.enable_grad():
            z = x * 2.0
            assert cr.is_grad_enabled()
    assert cr.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad and z.grad_fn is not None

    @cr.no_grad()
    def f(t):
        return t * 2.0

    @cr.enable_grad()
    def g(t):
        return t * 2.0

    assert not f(x).requires_grad
    with cr.no_grad():
        assert g(x).requires_grad
    assert cr.is_grad_enabled()


def test_no_grad_restored_after_exception():
    with pytest.raises(ZeroDivisionError):
        with cr.no_grad():
            1 / 0
    assert cr.is_grad_enabled()


def test_set_grad_enabled_restores_mode():
    """Regression: set_grad_enabled switched the mode before __enter__ saved it, so the `with`
    block 'restored' the new mode and grad stayed off for the rest of the process."""
    with cr.set_grad_enabled(False):
        assert not cr.is_grad_enabled()
    assert cr.is_grad_enabled()
    with cr.no_grad():
        with cr.set_grad_enabled(True):
            assert cr.is_grad_enabled()
        assert not cr.is_grad_enabled()
    cr.set_grad_enabled(False)  # plain call switches, like torch
    try:
        assert not cr.is_grad_enabled()
    finally:
        cr.set_grad_enabled(True)
    assert cr.is_grad_enabled()


def test_set_grad_enabled_as_decorator():
    """Regression: decorating with @set_grad_enabled(False) switched grad off for the whole process
    at definition time (torch restores the mode when it is used as a decorator)."""
    @cr.set_grad_enabled(False)
    def f(t):
        return t * 2.0

    assert cr.is_grad_enabled()
    x = cr.tensor([1.0], requires_grad=True)
    assert not f(x).requires_grad
    assert cr.is_grad_enabled() and (x * 2.0).requires_grad


def test_no_grad_decorator_is_reentrant():
    """Regression: one decorator instance kept a single saved mode, so a recursive @no_grad()
    function overwrote it and left grad mode off after returning."""
    @cr.no_grad()
    def f(n):
        return 0 if n == 0 else f(n - 1)

    f(3)
    assert cr.is_grad_enabled()


def test_grad_mode_belongs_to_the_thread_that_set_it():
    """Regression (a CI failure): grad mode was one global switch, so a playground server thread inside
    ``no_grad()`` made the test thread's forward build no graph. As in torch, each thread has its own
    mode, and a new thread starts with grad enabled."""
    import threading

    inside, done = threading.Event(), threading.Event()
    seen = {}

    def server():
        with cr.no_grad():
            seen["server"] = cr.is_grad_enabled()
            inside.set()
            done.wait(10)

    t = threading.Thread(target=server)
    t.start()
    assert inside.wait(10)
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()  # recorded while the other thread is inside no_grad()
    done.set()
    t.join()
    assert seen["server"] is False and cr.is_grad_enabled() and y.requires_grad
    y.backward()
    np.testing.assert_allclose(x.grad._data, [2.0, 4.0])

    with cr.no_grad():
        t = threading.Thread(target=lambda: seen.update(fresh=cr.is_grad_enabled()))
        t.start()
        t.join()
    assert seen["fresh"] is True


def test_a_profiler_hears_only_its_own_thread():
    """The listener of the primitives (cost.measure's counter, cr.compile's recorder) is per thread:
    another thread's ops are not counted in, or recorded into, this thread's step."""
    import threading

    from chainrule import autograd

    heard = []
    go, finished = threading.Event(), threading.Event()

    def other():
        go.wait(10)
        cr.tensor([1.0], requires_grad=True).exp()
        finished.set()

    t = threading.Thread(target=other)
    t.start()
    autograd.state.profiler = lambda op, out, datas, attrs: heard.append(op.name)
    try:
        go.set()
        assert finished.wait(10)
        cr.tensor([1.0], requires_grad=True).tanh()
    finally:
        autograd.state.profiler = None
    t.join()
    assert heard == ["tanh"]


# ----- cr.grad ----------------------------------------------------------------------------------
def test_grad_returns_without_touching_dot_grad():
    x, y = cr.tensor([1.0, 2.0], requires_grad=True), cr.tensor([3.0], requires_grad=True)
    gx, gy = cr.grad((x * y).sum(), [x, y])
    np.testing.assert_allclose(gx._data, [3.0, 3.0])
    np.testing.assert_allclose(gy._data, [3.0])
    assert x.grad is None and y.grad is None


def test_grad_allow_unused():
    x, u = cr.tensor([1.0], requires_grad=True), cr.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        cr.grad((x * 2.0).sum(), [x, u])
    gx, gu = cr.grad((x * 2.0).sum(), [x, u], allow_unused=True)
    assert gu is None
    np.testing.assert_allclose(gx._data, [2.0])


def test_grad_of_nonleaf_and_multiple_outputs():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    y1, y2 = (h * h).sum(), h.sum()
    (gh,) = cr.grad([y1, y2], h)
    np.testing.assert_allclose(gh._data, 2 * h._data + 1)


def test_grad_errors():
    x = cr.tensor([1.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        cr.grad(x.sum(), x)
    w = cr.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="backward\\(\\): this tensor does not require grad"):
        (x * 2.0).sum().backward()
    with pytest.raises(ValueError, match="grad has shape"):
        (w * 2.0).backward(np.ones(3))


# ----- anomaly detection ------------------------------------------------------------------------
def test_detect_anomaly_names_the_op_forward():
    x = cr.tensor([-1.0, 2.0], requires_grad=True)
    with cr.detect_anomaly():
        with pytest.raises(FloatingPointError, match="log produced NaN/Inf in its forward pass") as e:
            with np.errstate(invalid="ignore"):
                cr.log(x)
    assert "test_autograd.py" in str(e.value)  # points at the line that created the op


def test_detect_anomaly_names_the_op_backward():
    x = cr.tensor([0.0, 4.0], requires_grad=True)
    with cr.detect_anomaly():
        y = cr.sqrt(x).sum()  # finite forward, infinite gradient at 0
        with pytest.raises(FloatingPointError, match="sqrt produced NaN/Inf in its backward pass"):
            with np.errstate(divide="ignore"):
                y.backward()


def test_without_anomaly_mode_nan_propagates():
    x = cr.tensor([-1.0], requires_grad=True)
    with np.errstate(invalid="ignore"):
        y = cr.log(x)
    assert np.isnan(y.item())


# ----- error messages ---------------------------------------------------------------------------
def test_matmul_shape_mismatch_message():
    a, b = cr.randn(32, 784), cr.randn(512, 10)
    with pytest.raises(ValueError, match=r"matmul: \(32, 784\) @ \(512, 10\): 784 != 512"):
        a @ b
    with pytest.raises(ValueError, match=r"matmul.*\(3,\).*\(4,\)"):
        cr.randn(3) @ cr.randn(4)
    with pytest.raises(ValueError, match="linear: input.*4 != 5"):
        F.linear(cr.randn(2, 4), cr.randn(3, 5))


def test_broadcast_error_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(3, 4\) and \(5,\) cannot be broadcast"):
        cr.randn(3, 4) + cr.randn(5)
    with pytest.raises(ValueError, match=r"reshape.*\(2, 3\).*\(4,\)"):
        cr.randn(2, 3).reshape(4)


def test_broadcast_to_fewer_dims_is_refused():
    """Regression: the small-tensor copy path of broadcast_to (out[...] = x) accepted (1, 1, 3) -> (3,),
    which NumPy and torch refuse, and the backward then failed far from the cause."""
    for shape in [(1, 1, 3), (1, 3)]:
        with pytest.raises(ValueError, match=r"broadcast_to: cannot broadcast shape"):
            cr.broadcast_to(cr.randn(*shape, requires_grad=True), shape=(3,))
    with pytest.raises(ValueError, match=r"broadcast_to: cannot broadcast shape"):
        cr.broadcast_to(cr.randn(100, 1, 3), shape=(100, 3))  # the large (view) path agrees


def test_unbroadcast_refuses_incompatible_shapes():
    from chainrule.autograd import unbroadcast

    with pytest.raises(ValueError, match=r"myop: gradient of shape \(3, 4\).*\(5,\)"):
        unbroadcast(np.ones((3, 4)), (5,), "myop")
    np.testing.assert_array_equal(unbroadcast(np.ones((2, 3, 4)), (3, 1)), np.full((3, 1), 8.0))


def test_backward_on_non_scalar_says_pass_grad():
    x = cr.randn(32, 10, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"scalar; this tensor has shape \(32, 10\): pass grad="):
        (x * 2.0).backward()


@pytest.mark.parametrize("bad", ["a", object(), None, [1, "x"]], ids=["str", "object", "None", "mixed-list"])
def test_unsupported_operand_types(bad):
    x = cr.randn(3)
    with pytest.raises(TypeError, match="unsupported operand"):
        x + bad
    with pytest.raises(TypeError):
        bad * x


def test_bool_of_multi_element_tensor_raises():
    with pytest.raises(ValueError, match="ambiguous"):
        bool(cr.randn(3))
    with pytest.raises(ValueError, match="ambiguous"):
        if cr.ones(2) > 0:
            pass
    assert bool(cr.tensor([1.0])) is True and bool(cr.tensor(0.0)) is False


def test_int_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        cr.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        cr.arange(3).requires_grad_()


# ----- dtype discipline -------------------------------------------------------------------------
@pytest.mark.parametrize("scalar", [np.float64(2.0), 2.0, 2, np.sqrt(2 / 784), np.int64(3)],
                         ids=["np64", "float", "int", "sqrt", "npint"])
def test_float32_stays_float32_with_scalars(scalar):
    x = cr.randn(3, requires_grad=True)
    for y in (x * scalar, scalar * x, x + scalar, scalar - x, x / scalar, (x * x + 1.0) ** scalar, cr.maximum(x, scalar)):
        assert y.dtype == np.float32
    y = (x * scalar).sum()
    y.backward()
    assert x.grad.dtype == np.float32


def test_float32_with_0d_float64_array_stays_float32():
    x = cr.randn(3)
    assert (x * np.array(2.0)).dtype == np.float32


def test_gradient_dtype_matches_leaf():
    x = cr.tensor([1.0, 2.0], requires_grad=True)  # float32
    w = cr.tensor([1.0, 2.0], dtype=np.float64, requires_grad=True)
    (x.double() * w).sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float64


def test_ndarray_matmul_tensor_reaches_rmatmul():
    a = np.ones((2, 3), np.float32)
    x = cr.randn(3, 4, requires_grad=True)
    y = a @ x
    assert isinstance(y, cr.Tensor) and y.shape == (2, 4) and y.requires_grad
    y.sum().backward()
    np.testing.assert_allclose(x.grad._data, np.full((3, 4), 2.0))
    z = np.ones(4, np.float32) * x  # ndarray * Tensor also reaches Tensor.__rmul__
    assert isinstance(z, cr.Tensor) and z.requires_grad
    w = np.float64(2.0) * x
    assert isinstance(w, cr.Tensor) and w.dtype == np.float32


def test_tensor_hash_is_identity():
    a, b = cr.tensor([1.0]), cr.tensor([1.0])
    assert len({a, b}) == 2 and {a: 1}[a] == 1


# ----- profiler hook ----------------------------------------------------------------------------
def test_profiler_sees_every_primitive_in_both_phases():
    from chainrule.autograd import state

    seen = []
    x, w = cr.randn(8, 4, requires_grad=True), cr.randn(3, 4, requires_grad=True)  # random_draw: no FLOPs
    state.profiler = lambda op, out, inputs, attrs: seen.append((op.name, state.phase, op.flops(out, *inputs, **attrs)))
    try:
        F.linear(x, w).sum().backward()
    finally:
        state.profiler = None
    fwd = [s for s in seen if s[1] == "forward"]
    bwd = [s for s in seen if s[1] == "backward"]
    assert [s[0] for s in fwd] == ["linear", "sum"]
    assert fwd[0][2] == 2 * 8 * 3 * 4
    assert {s[0] for s in bwd} >= {"matmul"} and sum(s[2] for s in bwd if s[0] == "matmul") == 2 * (2 * 8 * 3 * 4)


def test_integer_operands_do_not_widen_float32():
    """Regression: NumPy makes int64 * float32 (and int / int) float64; PyTorch keeps float32.
    ``x * mask.astype(int)`` or ``cr.arange(n) / n`` silently turned a float32 model float64."""
    x = cr.randn(3, requires_grad=True)
    assert (x * np.arange(3)).dtype == np.float32
    assert (x * cr.arange(3)).dtype == np.float32 and (cr.arange(3) + x).dtype == np.float32
    assert (cr.arange(5) / 5).dtype == np.float32 and (cr.arange(5) * 0.5).dtype == np.float32
    assert cr.sqrt(cr.arange(4)).dtype == np.float32
    y = (x * np.arange(3)).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad._data, [0.0, 1.0, 2.0])
    # floats still promote as in PyTorch: a float64 operand gives float64, and casts are kept
    assert (x * np.ones(3)).dtype == np.float64 and (x.double() * x).dtype == np.float64
    assert x.double().dtype == np.float64 and (cr.arange(3, dtype=np.float64) * 2).dtype == np.float64
    assert (cr.tensor([1.0], dtype=np.float64) * cr.arange(1)).dtype == np.float64


def test_graph_released_after_backward_unless_retained():
    x = cr.randn(3, requires_grad=True)
    h = cr.exp(x)
    y = (h * 2.0).sum()
    y.backward(retain_graph=True)
    assert not y._ctx.released and not h._ctx.released
    y.backward()
    assert y._ctx.released and h._ctx.released  # saved inputs dropped: their arrays can be freed
    assert x.grad is not None and x.is_leaf


def test_backward_on_scalar_leaf_and_float64_upstream():
    x = cr.tensor(2.0, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0 and x.grad.dtype == np.float32
    y = cr.tensor([1.0, 2.0], requires_grad=True)
    (y * 3.0).backward(np.array([1.0, 2.0]))  # a float64 upstream gradient is cast to the tensor's dtype
    assert y.grad.dtype == np.float32
    np.testing.assert_array_equal(y.grad._data, [3.0, 6.0])


def test_grad_edge_cases():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    g1, g2 = cr.grad((x * x).sum(), [x, x])  # the same input twice gets its gradient twice
    np.testing.assert_array_equal(g1._data, [2.0, 4.0])
    np.testing.assert_array_equal(g2._data, [2.0, 4.0])
    h = x * 3.0
    gh, gx = cr.grad((h * h).sum(), [h, x])  # a non-leaf and the leaf below it, in one call
    np.testing.assert_array_equal(gh._data, [6.0, 12.0])
    np.testing.assert_array_equal(gx._data, [18.0, 36.0])
    (g,) = cr.grad([x * 2.0, x * 3.0], x, grad_outputs=[cr.ones(2), cr.ones(2)])
    np.testing.assert_array_equal(g._data, [5.0, 5.0])


def test_backward_inputs_nonleaf_accumulates():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    z = (h * h).sum()
    z.backward(inputs=[h], retain_graph=True)
    np.testing.assert_array_equal(h.grad._data, [6.0, 12.0])
    assert x.grad is None
    z.backward(inputs=[x, h])
    np.testing.assert_array_equal(h.grad._data, [12.0, 24.0])
    np.testing.assert_array_equal(x.grad._data, [18.0, 36.0])
