"""Oracle tests: every op against PyTorch (CPU), in float32 and float64.

One line per op, driven by :func:`check`: shapes first, then forward values, then the input
gradients for a random cotangent ``u`` (``out.backward(u)``), and for the smooth ops the second
derivative ``d<grad(<out, u>), v>/dx`` against ``torch.autograd.grad(..., create_graph=True)``.
"""

import numpy as np
import pytest

import chainrule as cr
import chainrule.functional as F
from chainrule import ops

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
BROADCAST = [((4, 5), (4, 5)), ((4, 5), (4, 1)), ((4, 5), (5,)), ((4, 5), ()), ((2, 1, 5), (3, 1))]
BROADCAST_IDS = ["same", "col", "row", "scalar", "both"]


def _tdtype(torch, dtype):
    return {np.float32: torch.float32, np.float64: torch.float64}[np.dtype(dtype).type]


def _close(actual, expected, dtype, what, scale=1.0):
    tol = TOL[np.dtype(dtype).type]
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=tol["rtol"] * scale,
                               atol=tol["atol"] * scale, err_msg=what)


def check(torch, f, tf, *arrays, dtype=np.float64, second=False, grads=None, scale=1.0, seed=1):
    """Compare ``f`` (chainrule) and ``tf`` (torch) on ``arrays``: shape, dtype, values, VJPs, HVPs.

    ``grads`` selects which inputs require grad (default: all floating ones). ``scale`` widens
    the tolerance for ops that accumulate long sums in float32.
    """
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a) for a in arrays]
    if grads is None:
        grads = [a.dtype.kind == "f" for a in arrays]
    xs = [cr.tensor(a, dtype=dtype if a.dtype.kind == "f" else None, requires_grad=g) for a, g in zip(arrays, grads)]
    ts = [torch.tensor(a, dtype=_tdtype(torch, dtype) if a.dtype.kind == "f" else None, requires_grad=g)
          for a, g in zip(arrays, grads)]
    out, tout = f(*xs), tf(*ts)
    assert isinstance(out, cr.Tensor)
    assert out.shape == tuple(tout.shape), f"shape {out.shape} != torch {tuple(tout.shape)}"
    if np.dtype(out.dtype).kind == "f":
        assert out.dtype == np.dtype(dtype), f"dtype {out.dtype} != {np.dtype(dtype)}"
    _close(out._data, tout.detach().numpy(), dtype, "forward", scale)
    if not any(grads):
        return out
    assert out.requires_grad
    u = rng.standard_normal(out.shape).astype(dtype)
    gs = cr.grad(out, [x for x, g in zip(xs, grads) if g], grad_outputs=cr.tensor(u, dtype=dtype),
                 create_graph=second, allow_unused=True)
    tin = [t for t, g in zip(ts, grads) if g]
    tgs = torch.autograd.grad(tout, tin, grad_outputs=torch.tensor(u), create_graph=second, allow_unused=True)
    for k, (g, tg) in enumerate(zip(gs, tgs)):
        if tg is None:
            assert g is None or not np.any(g._data), f"input {k}: torch says no gradient"
            continue
        assert g is not None, f"input {k}: no gradient"
        assert g.shape == tuple(tg.shape) and g.dtype == np.dtype(dtype)
        _close(g._data, tg.detach().numpy(), dtype, f"gradient of input {k}", scale)
    if second:
        vs = [rng.standard_normal(x.shape).astype(dtype) for x, g in zip(xs, grads) if g]
        dot = sum(((g * v).sum() for g, v in zip(gs, vs) if g is not None and g.requires_grad), cr.tensor(0.0, dtype=dtype))
        tdot = sum((tg * torch.tensor(v)).sum() for tg, v in zip(tgs, vs) if tg is not None and tg.requires_grad)
        if not dot.requires_grad:
            assert isinstance(tdot, int) or not tdot.requires_grad, "torch has a second derivative"
            return out
        hv = cr.grad(dot, [x for x, g in zip(xs, grads) if g], allow_unused=True)
        if isinstance(tdot, int) or not tdot.requires_grad:  # torch: constant gradient
            thv = [None] * len(tin)
        else:
            thv = torch.autograd.grad(tdot, tin, allow_unused=True)
        for k, (h, th) in enumerate(zip(hv, thv)):
            if th is None:
                assert h is None or not np.any(h._data), f"input {k}: torch says no second derivative"
                continue
            assert h is not None, f"input {k}: no second derivative"
            _close(h._data, th.numpy(), dtype, f"Hessian-vector product of input {k}", scale * 10)
    return out


def rnd(*shape, seed=0, lo=None, hi=None):
    r = np.random.default_rng(seed)
    if lo is not None:
        return r.uniform(lo, hi, shape)
    return r.standard_normal(shape)


def away(*shape, seed=0, m=0.2):
    """Normal samples pushed at least ``m`` away from 0 (for abs, relu, sign...)."""
    x = rnd(*shape, seed=seed)
    return np.where(x >= 0, x + m, x - m)


def pos(*shape, seed=0):
    return rnd(*shape, seed=seed, lo=0.5, hi=2.0)


def _tF():
    import torch

    return torch.nn.functional


# ----- binary elementwise ops over the broadcast matrix -----------------------------------------
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, False),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, False),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, True),
    "div": (lambda a, b: a / b, lambda a, b: a / b, True),
    "pow": (lambda a, b: a ** b, lambda a, b: a ** b, True),
    "maximum": (cr.maximum, lambda a, b: __import__("torch").maximum(a, b), False),
    "minimum": (cr.minimum, lambda a, b: __import__("torch").minimum(a, b), False),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", BROADCAST, ids=BROADCAST_IDS)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary(torch, name, shapes, dtype):
    f, tf, smooth = BINARY[name]
    sa, sb = shapes
    a = pos(*sa, seed=1) if name in ("pow", "div") else rnd(*sa, seed=1)
    b = pos(*sb, seed=2) if name == "div" else rnd(*sb, seed=2)
    check(torch, f, tf, a, b, dtype=dtype, second=smooth)
    check(torch, lambda x, y: f(y, x), lambda x, y: tf(y, x), a if name != "pow" else rnd(*sa, seed=1),
          b if name != "pow" else pos(*sb, seed=2), dtype=dtype, second=smooth)


SCALAR = {
    "add": (lambda a: a + 1.5, lambda a: 1.5 + a),
    "sub": (lambda a: a - 1.5, lambda a: 1.5 - a),
    "mul": (lambda a: a * 1.5, lambda a: 1.5 * a),
    "div": (lambda a: a / 1.5, lambda a: 1.5 / a),
    "pow": (lambda a: a ** 2.5, lambda a: 2.5 ** a),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(SCALAR))
def test_tensor_scalar_both_sides(torch, name, dtype):
    right, left = SCALAR[name]
    check(torch, right, right, pos(4, 5), dtype=dtype, second=True)
    check(torch, left, left, pos(4, 5), dtype=dtype, second=True)
    # NumPy scalars behave like Python scalars (and never upcast float32)
    out = right(cr.tensor(pos(3), dtype=dtype)) + np.float64(0.0)
    assert out.dtype == np.dtype(dtype)


# ----- unary elementwise ops --------------------------------------------------------------------
UNARY = {  # name: (chainrule, torch, input maker, smooth)
    "neg": (lambda x: -x, lambda x: -x, rnd, False),
    "exp": (cr.exp, lambda x: x.exp(), rnd, True),
    "log": (cr.log, lambda x: x.log(), pos, True),
    "sqrt": (cr.sqrt, lambda x: x.sqrt(), pos, True),
    "abs": (cr.abs, lambda x: x.abs(), away, False),
    "tanh": (cr.tanh, lambda x: x.tanh(), rnd, True),
    "sigmoid": (cr.sigmoid, lambda x: x.sigmoid(), rnd, True),
    "relu": (cr.relu, lambda x: x.relu(), away, False),
    "log1p": (cr.log1p, lambda x: x.log1p(), pos, True),
    "sin": (cr.sin, lambda x: x.sin(), rnd, True),
    "cos": (cr.cos, lambda x: x.cos(), rnd, True),
    "clip": (lambda x: cr.clip(x, -0.5, 0.5), lambda x: x.clamp(-0.5, 0.5),
             lambda *s, seed=0: away(*s, seed=seed, m=0.01) * 0.8, False),
    "clip_lo": (lambda x: x.clip(min=0.1), lambda x: x.clamp(min=0.1), away, False),
    "clip_hi": (lambda x: cr.clamp(x, max=-0.1), lambda x: x.clamp(max=-0.1), away, False),
    "square": (lambda x: x * x, lambda x: x * x, rnd, True),
    "gelu": (F.gelu, lambda x: _tF().gelu(x), rnd, True),
    "gelu_tanh": (lambda x: F.gelu(x, "tanh"), lambda x: _tF().gelu(x, approximate="tanh"), rnd, True),
    "softplus": (F.softplus, lambda x: _tF().softplus(x), rnd, True),
    "leaky_relu": (F.leaky_relu, lambda x: _tF().leaky_relu(x), away, False),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary(torch, name, dtype):
    f, tf, make, smooth = UNARY[name]
    check(torch, f, tf, make(3, 4, seed=3), dtype=dtype, second=smooth)
    check(torch, f, tf, make(seed=4), dtype=dtype)  # 0-d


def test_pow_zero_exponent_at_zero_base(torch):
    """Regression: d(x**0)/dx at x = 0 was 0 * 0**-1 = NaN; torch (and math) give 0."""
    x = np.array([0.0, 1.5, -2.0])
    for dtype in DTYPES:
        out = check(torch, lambda t: t ** 0.0, lambda t: t ** 0.0, x, dtype=dtype, second=True)
        assert np.all(np.isfinite(out._data))
        check(torch, lambda t, e: t ** e, lambda t, e: t ** e, np.array([0.0, 0.0, 2.0]), np.array([0.0, 2.0, 0.0]),
              dtype=dtype, grads=[True, False])
        xs = cr.tensor(x, dtype=dtype, requires_grad=True)
        (xs ** 0).sum().backward()
        np.testing.assert_array_equal(xs.grad._data, np.zeros(3))


def test_gelu_of_0d_tensor(torch):
    """Regression: normal_cdf crashed on 0-d input (np.frompyfunc returns a Python float there)."""
    check(torch, F.gelu, torch.nn.functional.gelu, np.array(0.7), dtype=np.float32)
    check(torch, F.gelu, torch.nn.functional.gelu, np.array(-1.3), dtype=np.float64, second=True)


def test_sigmoid_extremes(torch):
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    out = check(torch, cr.sigmoid, lambda t: t.sigmoid(), x, dtype=np.float32)
    assert np.all(np.isfinite(out._data))


@pytest.mark.parametrize("dtype", DTYPES)
def test_where(torch, dtype):
    cond = rnd(4, 5, seed=9) > 0
    for sa, sb in BROADCAST[:4]:
        check(torch, lambda a, b: cr.where(cond, a, b), lambda a, b: torch.where(torch.tensor(cond), a, b),
              rnd(*sa), rnd(*sb, seed=1), dtype=dtype)
    # a Tensor condition and a scalar branch
    check(torch, lambda a: cr.where(cr.tensor(cond), a, 0.0), lambda a: torch.where(torch.tensor(cond), a, 0.0),
          rnd(4, 5), dtype=dtype)


# ----- matmul -----------------------------------------------------------------------------------
MATMUL = [((5,), (5,)), ((5,), (5, 3)), ((4, 5), (5,)), ((4, 5), (5, 3)), ((2, 4, 5), (5, 3)),
          ((4, 5), (2, 5, 3)), ((2, 1, 4, 5), (3, 5, 2)), ((6, 5), (2, 3, 5, 4)), ((2, 3, 4), (4,)), ((4,), (2, 4, 3))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", MATMUL, ids=[f"{a}@{b}" for a, b in MATMUL])
def test_matmul(torch, shapes, dtype):
    a, b = rnd(*shapes[0], seed=1), rnd(*shapes[1], seed=2)
    check(torch, lambda x, y: x @ y, lambda x, y: x @ y, a, b, dtype=dtype, second=True)
    check(torch, cr.matmul, torch.matmul, a, b, dtype=dtype, grads=[False, True])


# ----- reductions -------------------------------------------------------------------------------
AXES = [None, 0, 1, -1, (0, 2)]


def _dims(axis, nd=3):
    return tuple(range(nd)) if axis is None else axis


def _tprod(t, axis, keepdims):
    for d in sorted((a % t.ndim for a in ((axis,) if isinstance(axis, int) else _dims(axis, t.ndim))), reverse=True):
        t = t.prod(dim=d, keepdim=keepdims)
    return t


REDUCE = {  # name: (chainrule method, torch, input)
    "sum": (lambda x, a, k: x.sum(axis=a, keepdims=k), lambda t, a, k: t.sum(dim=_dims(a), keepdim=k), rnd),
    "mean": (lambda x, a, k: x.mean(axis=a, keepdims=k), lambda t, a, k: t.mean(dim=_dims(a), keepdim=k), rnd),
    "var": (lambda x, a, k: x.var(axis=a, keepdims=k), lambda t, a, k: t.var(dim=_dims(a), keepdim=k), rnd),
    "var0": (lambda x, a, k: cr.var(x, a, k, correction=0),
             lambda t, a, k: t.var(dim=_dims(a), keepdim=k, correction=0), rnd),
    "std": (lambda x, a, k: x.std(axis=a, keepdims=k), lambda t, a, k: t.std(dim=_dims(a), keepdim=k), rnd),
    "max": (lambda x, a, k: x.max(axis=a, keepdims=k), lambda t, a, k: t.amax(dim=_dims(a), keepdim=k), rnd),
    "min": (lambda x, a, k: x.min(axis=a, keepdims=k), lambda t, a, k: t.amin(dim=_dims(a), keepdim=k), rnd),
    "cr.max": (lambda x, a, k: cr.max(x, axis=a, keepdims=k), lambda t, a, k: t.amax(dim=_dims(a), keepdim=k), rnd),
    "cr.amin": (lambda x, a, k: cr.amin(x, a, k), lambda t, a, k: t.amin(dim=_dims(a), keepdim=k), rnd),
    "prod": (lambda x, a, k: x.prod(axis=a, keepdims=k), _tprod,
             lambda *s, seed=0: pos(*s, seed=seed) * np.sign(rnd(*s, seed=7))),
    "logsumexp": (lambda x, a, k: x.logsumexp(axis=a, keepdims=k),
                  lambda t, a, k: t.logsumexp(dim=_dims(a), keepdim=k), rnd),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", list(REDUCE))
def test_reduction(torch, name, axis, keepdims, dtype):
    f, tf, make = REDUCE[name]
    smooth = name in ("sum", "mean", "var", "logsumexp", "prod")
    check(torch, lambda x: f(x, axis, keepdims), lambda t: tf(t, axis, keepdims), make(2, 3, 4, seed=5),
          dtype=dtype, second=smooth)


@pytest.mark.parametrize("dtype", DTYPES)
def test_prod_with_zeros(torch, dtype):
    """Regression: prod's gradient out / x was 0 / 0 = NaN wherever the slice held a zero."""
    x = np.array([[2.0, 0.0, 3.0, -1.5], [0.0, 0.0, 2.0, 1.0], [1.0, 2.0, -3.0, 0.5]])
    for axis in (None, 0, 1, -1):
        out = check(torch, lambda t: t.prod(axis=axis), lambda t: t.prod() if axis is None else t.prod(dim=axis), x, dtype=dtype)
        assert np.all(np.isfinite(out._data))
    # second order where the slice has no zero
    check(torch, lambda t: t.prod(axis=1), lambda t: t.prod(dim=1), x[2:], dtype=dtype, second=True)


def test_max_ties_share_gradient(torch):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    check(torch, lambda t: t.max(axis=1), lambda t: t.amax(dim=1), x)
    check(torch, lambda t: t.max(), lambda t: t.amax(), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_family(torch, axis, dtype):
    x = rnd(3, 4, 5, seed=6) * 3
    check(torch, lambda t: t.softmax(axis), lambda t: t.softmax(dim=axis), x, dtype=dtype, second=True)
    check(torch, lambda t: cr.softmax(t, axis), lambda t: t.softmax(dim=axis), x, dtype=dtype, second=True)
    check(torch, lambda t: cr.log_softmax(t, axis), lambda t: t.log_softmax(dim=axis), x, dtype=dtype, second=True)
    check(torch, lambda t: cr.logsumexp(t, axis), lambda t: t.logsumexp(dim=axis), x, dtype=dtype, second=True)


@pytest.mark.parametrize("shape,axis", [((3, 0), 1), ((0, 4), 0), ((0, 4), 1), ((2, 0, 3), None)])
def test_softmax_family_on_an_empty_axis(torch, shape, axis):
    # Sums over nothing: logsumexp is -inf (log 0), softmax and log_softmax are empty; gradients are empty.
    x = cr.tensor(np.zeros(shape, np.float32), requires_grad=True)
    t = torch.zeros(shape, requires_grad=True)
    dim = tuple(range(len(shape))) if axis is None else axis
    got, want = cr.logsumexp(x, axis), torch.logsumexp(t, dim=dim)
    assert got.shape == tuple(want.shape)
    np.testing.assert_array_equal(got._data, want.detach().numpy())
    got.sum().backward()
    want.sum().backward()
    assert x.grad.shape == tuple(t.grad.shape) == shape
    if axis is not None:
        for f, g in ((cr.softmax, torch.softmax), (cr.log_softmax, torch.log_softmax)):
            assert f(x, axis).shape == tuple(g(t, dim=axis).shape)


def test_softmax_large_logits_finite(torch):
    x = np.array([[1000.0, 0.0, -1000.0], [5.0, 5.0, 5.0]])
    out = check(torch, cr.log_softmax, lambda t: t.log_softmax(-1), x, dtype=np.float32)
    assert np.all(np.isfinite(out._data))
    check(torch, cr.softmax, lambda t: t.softmax(-1), x, dtype=np.float32)
    check(torch, cr.logsumexp, lambda t: t.logsumexp(dim=(0, 1)), x, dtype=np.float64)


# ----- shape ops --------------------------------------------------------------------------------
SHAPE = {  # name: (chainrule, torch, input shape)
    "reshape": (lambda x: x.reshape(6, 4), lambda t: t.reshape(6, 4), (2, 3, 4)),
    "reshape-1": (lambda x: cr.reshape(x, shape=(4, -1)), lambda t: t.reshape(4, -1), (2, 3, 4)),
    "view": (lambda x: x.view((3, 8)), lambda t: t.view(3, 8), (2, 3, 4)),
    "T": (lambda x: x.T, lambda t: t.T, (3, 4)),
    "transpose": (lambda x: cr.transpose(x), lambda t: t.permute(2, 1, 0), (2, 3, 4)),
    "transpose2": (lambda x: x.transpose(0, 2), lambda t: t.transpose(0, 2), (2, 3, 4)),
    # regression: on a 2-D tensor, transpose(0, 1) was NumPy's identity permutation, not torch's swap
    "transpose01_2d": (lambda x: x.transpose(0, 1), lambda t: t.transpose(0, 1), (3, 4)),
    "transpose10_2d": (lambda x: x.transpose(1, 0), lambda t: t.transpose(1, 0), (3, 4)),
    "transpose_tuple": (lambda x: x.transpose((1, 0)), lambda t: t.permute(1, 0), (3, 4)),
    "permute": (lambda x: x.permute(1, 2, 0), lambda t: t.permute(1, 2, 0), (2, 3, 4)),
    "permute_neg": (lambda x: cr.transpose(x, axes=(-1, 0, 1)), lambda t: t.permute(2, 0, 1), (2, 3, 4)),
    "swapaxes": (lambda x: cr.swapaxes(x, 0, -1), lambda t: t.swapaxes(0, -1), (2, 3, 4)),
    "mT": (lambda x: x.mT, lambda t: t.mT, (2, 3, 4)),
    "squeeze": (lambda x: x.squeeze(), lambda t: t.squeeze(), (2, 1, 4, 1)),
    "squeeze1": (lambda x: cr.squeeze(x, 1), lambda t: t.squeeze(1), (2, 1, 4, 1)),
    "squeeze_neg": (lambda x: x.squeeze(dim=-1), lambda t: t.squeeze(-1), (2, 1, 4, 1)),
    "unsqueeze": (lambda x: x.unsqueeze(1), lambda t: t.unsqueeze(1), (2, 3)),
    "unsqueeze_neg": (lambda x: cr.unsqueeze(x, -1), lambda t: t.unsqueeze(-1), (2, 3)),
    "expand": (lambda x: x.expand(2, 3, 4), lambda t: t.expand(2, 3, 4), (3, 1)),
    "expand-1": (lambda x: cr.expand(x, (5, -1, 4)), lambda t: t.expand(5, -1, 4), (3, 1)),
    "broadcast_to": (lambda x: cr.broadcast_to(x, shape=(2, 3, 4)), lambda t: t.broadcast_to(2, 3, 4), (4,)),
    "flatten": (lambda x: x.flatten(), lambda t: t.flatten(), (2, 3, 4)),
    "flatten1": (lambda x: cr.flatten(x, 1), lambda t: t.flatten(1), (2, 3, 4)),
    "flatten_mid": (lambda x: x.flatten(0, 1), lambda t: t.flatten(0, 1), (2, 3, 4)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(SHAPE))
def test_shape_ops(torch, name, dtype):
    f, tf, shape = SHAPE[name]
    check(torch, f, tf, rnd(*shape), dtype=dtype, second=True)


# ----- indexing ---------------------------------------------------------------------------------
def _index_cases():
    mask = rnd(4, 5, seed=11) > 0
    rows = np.array([0, 2, 0, 0, 3])  # repeated: gradients must accumulate
    return {
        "int": 2,
        "neg_int": -1,
        "slice": (slice(1, 3), slice(None, None, 2)),
        "slice_neg_step": ((slice(None, None, -1), 1), lambda t: t.flip(0)[:, 1]),  # torch has no negative steps
        "ellipsis": (Ellipsis, 1),
        "newaxis": (None, slice(1, 3)),
        "int_array_repeats": rows,
        "list_repeats": [1, 1, 3],
        "pair_arrays_repeats": (np.array([0, 1, 1, 0]), np.array([2, 2, 2, 2])),
        "slice_then_array": (slice(None), np.array([4, 4, 0])),
        "array_2d_repeats": np.array([[0, 0], [3, 0]]),
        "bool_mask": mask,
        "bool_rows": mask[:, 0],
    }


INDEX = _index_cases()


def _tidx(torch, idx):
    if isinstance(idx, tuple):
        return tuple(_tidx(torch, i) for i in idx)
    if isinstance(idx, (np.ndarray, list)):
        return torch.tensor(np.asarray(idx))
    return idx


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(INDEX))
def test_indexing(torch, name, dtype):
    idx = INDEX[name]
    idx, tf = idx if isinstance(idx, tuple) and callable(idx[-1]) else (idx, lambda t: t[_tidx(torch, idx)])
    out = check(torch, lambda x: x[idx], tf, rnd(4, 5), dtype=dtype, second=True)
    assert out._data.size > 0


def test_indexing_repeated_rows_accumulate(torch):
    x = cr.tensor(rnd(4, 5), dtype=np.float64, requires_grad=True)
    x[np.array([1, 1, 1, 3])].sum().backward()
    expected = np.zeros((4, 5))
    expected[1], expected[3] = 3.0, 1.0
    np.testing.assert_array_equal(x.grad._data, expected)


def test_indexing_with_integer_tensor(torch):
    idx = cr.tensor([2, 0, 2])
    check(torch, lambda x: x[idx], lambda t: t[torch.tensor([2, 0, 2])], rnd(4, 3))


# ----- joining and padding ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack(torch, axis, dtype):
    shapes = [(2, 3), (2, 3), (2, 3)]
    cat_shapes = [(2, 3), (1, 3), (4, 3)] if axis == 0 else [(2, 3), (2, 1), (2, 4)]
    check(torch, lambda *xs: cr.concatenate(xs, axis=axis), lambda *ts: torch.cat(ts, dim=axis),
          *[rnd(*s, seed=i) for i, s in enumerate(cat_shapes)], dtype=dtype, second=True)
    check(torch, lambda *xs: cr.cat(list(xs), axis), lambda *ts: torch.cat(ts, dim=axis),
          *[rnd(*s, seed=i) for i, s in enumerate(cat_shapes)], dtype=dtype, grads=[True, False, True])
    check(torch, lambda *xs: cr.stack(xs, axis=axis), lambda *ts: torch.stack(ts, dim=axis),
          *[rnd(*s, seed=i) for i, s in enumerate(shapes)], dtype=dtype, second=True)


PADS = {  # name: (chainrule pad_width, value, torch pad (last axis first))
    "per_axis": (((1, 2), (0, 3)), 0.0, (0, 3, 1, 2)),
    "int": (1, 0.0, (1, 1, 1, 1)),
    "value": (((0, 0), (2, 1)), -1.5, (2, 1)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(PADS))
def test_pad(torch, name, dtype):
    pw, value, tp = PADS[name]
    tf = torch.nn.functional.pad
    check(torch, lambda x: cr.pad(x, pw, value), lambda t: tf(t, tp, value=value), rnd(3, 4), dtype=dtype, second=True)


# ----- fused layers and losses ------------------------------------------------------------------
LINEAR = [((6, 4), (3, 4), (3,)), ((6, 4), (3, 4), None), ((2, 5, 4), (3, 4), (3,)), ((4,), (3, 4), (3,))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", LINEAR, ids=[str(s[0]) + ("" if s[2] else "-nobias") for s in LINEAR])
def test_linear(torch, shapes, dtype):
    tl = torch.nn.functional.linear
    arrays = [rnd(*s, seed=i) for i, s in enumerate(shapes) if s is not None]
    check(torch, F.linear, tl, *arrays, dtype=dtype, second=True)
    check(torch, ops.linear, tl, *arrays, dtype=dtype, grads=[False, True] + [True] * (len(arrays) - 2))
    check(torch, ops.linear, tl, *arrays, dtype=dtype, grads=[True] + [False] * (len(arrays) - 1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy(torch, reduction, dtype):
    tce = torch.nn.functional.cross_entropy
    y = np.array([0, 3, 1, 1, 2, 4])
    z = rnd(6, 5, seed=8) * 2
    check(torch, lambda x: F.cross_entropy(x, y, reduction=reduction),
          lambda t: tce(t, torch.tensor(y), reduction=reduction), z, dtype=dtype, second=True)
    p = np.random.default_rng(3).dirichlet(np.ones(5), size=6)
    check(torch, lambda x: F.cross_entropy(x, p.astype(dtype), reduction=reduction),
          lambda t: tce(t, torch.tensor(p.astype(dtype)), reduction=reduction), z, dtype=dtype, second=True)
    # the fused primitive itself, on its own
    check(torch, lambda x: ops.softmax_cross_entropy(x, y), lambda t: tce(t, torch.tensor(y), reduction="none"),
          z, dtype=dtype, second=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_options(torch, dtype):
    tce = torch.nn.functional.cross_entropy
    y = np.array([0, 3, -100, 1, 2, 4])
    w = np.linspace(0.5, 2.0, 5)
    z = rnd(6, 5, seed=8)
    check(torch, lambda x: F.cross_entropy(x, y, weight=w, label_smoothing=0.1),
          lambda t: tce(t, torch.tensor(y), weight=torch.tensor(w, dtype=t.dtype), label_smoothing=0.1),
          z, dtype=dtype)
    z4 = rnd(2, 5, 3, seed=9)  # (N, C, d)
    y4 = np.array([[0, 1, 4], [2, 2, 3]])
    check(torch, lambda x: F.cross_entropy(x, y4), lambda t: tce(t, torch.tensor(y4)), z4, dtype=dtype, second=True)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_cross_entropy_single_row(torch, reduction):
    """Regression: a 1-D (C,) input with a probability target crashed reshaping the loss to (C,)."""
    tce = torch.nn.functional.cross_entropy
    z, p = rnd(5, seed=2), np.random.default_rng(4).dirichlet(np.ones(5))
    check(torch, lambda x: F.cross_entropy(x, p, reduction=reduction),
          lambda t: tce(t, torch.tensor(p), reduction=reduction), z, second=True)
    check(torch, lambda x: F.cross_entropy(x, np.array(3), reduction=reduction),
          lambda t: tce(t, torch.tensor(3), reduction=reduction), z, second=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_with_logits(torch, dtype):
    tb = torch.nn.functional.binary_cross_entropy_with_logits
    x, y = rnd(4, 5, seed=1) * 3, rnd(4, 5, seed=2, lo=0.0, hi=1.0)
    check(torch, lambda a, b: ops.bce_with_logits(a, b), lambda a, b: tb(a, b, reduction="none"), x, y, dtype=dtype)
    check(torch, F.binary_cross_entropy_with_logits, tb, x, y, dtype=dtype, grads=[True, False], second=True)
    check(torch, lambda a: F.binary_cross_entropy_with_logits(a, y.astype(dtype), pos_weight=np.full(5, 2.0)),
          lambda a: tb(a, torch.tensor(y.astype(dtype)), pos_weight=torch.full((5,), 2.0, dtype=a.dtype)), x, dtype=dtype)
    big = np.array([-1e4, -30.0, 0.0, 30.0, 1e4])
    out = check(torch, lambda a: ops.bce_with_logits(a, np.float32(1.0) * np.ones(5, np.float32)),
                lambda a: tb(a, torch.ones(5), reduction="none"), big, dtype=np.float32)
    assert np.all(np.isfinite(out._data))


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "binary_cross_entropy"])
def test_other_losses(torch, name):
    x, y = rnd(4, 5, seed=1, lo=0.05, hi=0.95), rnd(4, 5, seed=2, lo=0.0, hi=1.0)
    if name in ("huber_loss", "smooth_l1_loss"):
        x = x * 4
    check(torch, getattr(F, name), getattr(torch.nn.functional, name), x, y, grads=[True, False])


def test_nll_loss(torch):
    y = np.array([0, 3, 1, 1])
    tnll = torch.nn.functional.nll_loss
    check(torch, lambda x: F.nll_loss(F.log_softmax(x), y), lambda t: tnll(t.log_softmax(-1), torch.tensor(y)),
          rnd(4, 5), second=True)


# ----- non-differentiable ops -------------------------------------------------------------------
NONDIFF = {
    "lt": (lambda a, b: a < b, lambda a, b: a < b),
    "le": (lambda a, b: a <= b, lambda a, b: a <= b),
    "gt": (lambda a, b: a > b, lambda a, b: a > b),
    "ge": (lambda a, b: a >= b, lambda a, b: a >= b),
    "eq": (lambda a, b: a == b, lambda a, b: a == b),
    "ne": (lambda a, b: a != b, lambda a, b: a != b),
}


@pytest.mark.parametrize("name", list(NONDIFF))
def test_comparisons_do_not_require_grad(torch, name):
    f, tf = NONDIFF[name]
    a, b = np.round(rnd(4, 5, seed=1)), np.round(rnd(4, 1, seed=2))
    xa, xb = cr.tensor(a, requires_grad=True), cr.tensor(b, requires_grad=True)
    out = f(xa, xb)
    assert out.requires_grad is False and out.dtype == np.bool_ and out.is_leaf
    ref = tf(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
    np.testing.assert_array_equal(out._data, ref.numpy())
    assert f(xa, 0.0).requires_grad is False


def test_argmax_argmin_sign(torch):
    a = rnd(3, 4, 5, seed=4)
    x, t = cr.tensor(a, requires_grad=True), torch.tensor(a)
    for axis in (None, 0, 1, -1):
        m, tm = x.argmax(axis=axis), (t.argmax() if axis is None else t.argmax(dim=axis))
        assert m.requires_grad is False and m.dtype.kind == "i"
        np.testing.assert_array_equal(m._data, tm.numpy())
        n = cr.argmin(x, axis=axis)
        np.testing.assert_array_equal(n._data, (t.argmin() if axis is None else t.argmin(dim=axis)).numpy())
        assert n.requires_grad is False
    np.testing.assert_array_equal(x.argmax(axis=1, keepdims=True)._data, t.argmax(dim=1, keepdim=True).numpy())
    s = cr.sign(x)
    assert s.requires_grad is False
    np.testing.assert_array_equal(s._data, t.sign().numpy())
    y = (x * 2.0 + cr.sign(x).astype(np.float32)).sum()  # sign contributes no gradient
    y.backward()
    np.testing.assert_array_equal(x.grad._data, np.full(a.shape, 2.0, np.float32))


def test_one_hot(torch):
    y = np.array([3, 0, 2, 2])
    out = cr.one_hot(cr.tensor(y), 5)
    ref = torch.nn.functional.one_hot(torch.tensor(y), 5).numpy()
    assert isinstance(out, cr.Tensor) and out.shape == ref.shape and out.dtype == np.int64
    assert out.requires_grad is False
    np.testing.assert_array_equal(out._data, ref)
    np.testing.assert_array_equal(cr.one_hot(y)._data if isinstance(cr.one_hot(y), cr.Tensor) else cr.one_hot(y),
                                  torch.nn.functional.one_hot(torch.tensor(y)).numpy())
    f = cr.one_hot(y, 4, dtype=np.float32)
    assert f.dtype == np.float32
    with pytest.raises(ValueError, match="out of range"):
        cr.one_hot(y, 3)


# ----- ndarray fast path ------------------------------------------------------------------------
def test_primitives_on_ndarrays_return_ndarrays(torch):
    a, b = rnd(3, 4, seed=1), rnd(4, 2, seed=2)
    out = ops.matmul(a, b)
    assert type(out) is np.ndarray
    np.testing.assert_allclose(out, torch.tensor(a).matmul(torch.tensor(b)).numpy(), rtol=1e-12)
    assert type(ops.relu(a)) is np.ndarray and type(F.softmax(a)) is np.ndarray
    np.testing.assert_allclose(F.log_softmax(a), torch.tensor(a).log_softmax(-1).numpy(), rtol=1e-12)


# ----- random graphs: the engine on DAGs with fan-out, diamonds and reuse ----------------------
def _program(seed, n_ops=25):
    """A random straight-line program over 3 leaves: (op, i, j) steps reading earlier values."""
    rng = np.random.default_rng(seed)
    ops_ = ["add", "mul", "sub", "tanh", "sigmoid", "sin", "scale", "sum0", "softmax", "getitem"]
    return [(rng.choice(ops_), int(rng.integers(0, 3 + k)), int(rng.integers(0, 3 + k))) for k in range(n_ops)]


def _run_program(prog, leaves, lib):
    vals = list(leaves)
    for op, i, j in prog:
        a, b = vals[i], vals[j]
        if op == "add":
            v = a + b
        elif op == "mul":
            v = a * b * 0.5
        elif op == "sub":
            v = a - b
        elif op == "scale":
            v = a * 1.5 + 0.25
        elif op == "sum0":  # reduce and broadcast back: (4, 3) -> (1, 3) -> + (4, 3)
            v = (a.sum(axis=0, keepdims=True) if lib == "cr" else a.sum(dim=0, keepdim=True)) * 0.1 + b
        elif op == "softmax":
            v = a.softmax(-1) if lib == "cr" else a.softmax(dim=-1)
        elif op == "getitem":
            rows = [3, 0, 0, 2]
            v = a[np.array(rows)] if lib == "cr" else a[__import__("torch").tensor(rows)]
        else:
            v = getattr(cr, op)(a) if lib == "cr" else getattr(a, op)()
        vals.append(v)
    return vals


@pytest.mark.parametrize("seed", range(12))
def test_random_graphs_match_torch(torch, seed):
    arrays = [rnd(4, 3, seed=seed * 10 + k) for k in range(3)]
    prog = _program(seed)

    def f(*xs):
        vals = _run_program(prog, xs, "cr")
        return sum(v * float(k + 1) for k, v in enumerate(vals[3:]))

    def tf(*ts):
        vals = _run_program(prog, ts, "torch")
        return sum(v * float(k + 1) for k, v in enumerate(vals[3:]))

    check(torch, f, tf, *arrays, dtype=np.float64, second=True, scale=10)
