"""Every loss (functional and module) against torch.nn.functional: values and input gradients,
float32 and float64, all reductions, plus the stability and error cases."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import nn

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
REDUCTIONS = ["mean", "sum", "none"]
N, C = 6, 4


def _rng(seed=0):
    return np.random.default_rng(seed)


def _ours(a, dtype):
    """Our version of a non-input argument: float arrays take the test dtype, ints stay ints."""
    if a is None or not isinstance(a, np.ndarray):
        return a
    return cr.tensor(a, dtype=dtype if a.dtype.kind == "f" else None)


def _theirs(torch, a, dtype):
    if a is None or not isinstance(a, np.ndarray):
        return a
    return torch.from_numpy(a.astype(dtype) if a.dtype.kind == "f" else a)


def check_loss(torch, ours, theirs, x, args, kw, dtype, theirs_kw=None):
    """Value and input gradient of ``ours(x, *args, **kw)`` equal torch's, under a random
    upstream gradient (so 'none' reductions are checked elementwise)."""
    x = np.asarray(x, dtype=dtype)
    xc = cr.tensor(x, dtype=dtype, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    lc = ours(xc, *[_ours(a, dtype) for a in args], **{k: _ours(v, dtype) for k, v in kw.items()})
    lt = theirs(xt, *[_theirs(torch, a, dtype) for a in args],
                **{k: _theirs(torch, v, dtype) for k, v in (theirs_kw or kw).items()})
    assert lc.shape == tuple(lt.shape)
    assert lc.dtype == dtype
    np.testing.assert_allclose(lc._data, lt.detach().numpy(), **TOL[dtype])
    u = _rng(9).standard_normal(lc.shape).astype(dtype)
    (lc * cr.tensor(u, dtype=dtype)).sum().backward()
    (lt * torch.from_numpy(u)).sum().backward()
    assert xc.grad.dtype == dtype
    np.testing.assert_allclose(xc.grad._data, xt.grad.numpy(), **TOL[dtype])
    return lc


def _probs(shape, seed=1):
    p = _rng(seed).uniform(0.05, 1, shape)
    return p / p.sum(axis=1, keepdims=True)


# ----- cross-entropy ---------------------------------------------------------------------------------
CE_CASES = {
    "index": lambda: (_rng().integers(0, C, N), {}),
    "index_weight": lambda: (_rng().integers(0, C, N), dict(weight=_rng(2).uniform(0.5, 2, C))),
    "index_smooth": lambda: (_rng().integers(0, C, N), dict(label_smoothing=0.2)),
    "index_smooth_weight": lambda: (_rng().integers(0, C, N),
                                    dict(label_smoothing=0.1, weight=_rng(2).uniform(0.5, 2, C))),
    "index_ignore": lambda: (np.array([0, 3, -100, 1, -100, 2]), dict(ignore_index=-100)),
    "index_ignore_custom_weight_smooth": lambda: (np.array([0, 3, 2, 1, 2, 2]),
                                                  dict(ignore_index=2, weight=_rng(2).uniform(0.5, 2, C),
                                                       label_smoothing=0.3)),
    "probs": lambda: (_probs((N, C)), {}),
    "probs_weight": lambda: (_probs((N, C)), dict(weight=_rng(2).uniform(0.5, 2, C))),
    "probs_smooth": lambda: (_probs((N, C)), dict(label_smoothing=0.25)),
    "probs_unnormalised": lambda: (_rng(3).uniform(0, 1, (N, C)), {}),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CE_CASES))
def test_cross_entropy(torch, case, reduction, dtype):
    target, kw = CE_CASES[case]()
    x = _rng(5).standard_normal((N, C)) * 3
    check_loss(torch, F.cross_entropy, torch.nn.functional.cross_entropy, x, (target,),
               dict(kw, reduction=reduction), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_spatial_and_unbatched(torch, reduction, dtype):
    # (N, C, d1, d2) logits with (N, d1, d2) targets, and a single (C,) example with a 0-d target
    x = _rng(6).standard_normal((2, C, 3, 2))
    t = _rng(7).integers(0, C, (2, 3, 2))
    t[0, 1, 1] = -100
    w = _rng(2).uniform(0.5, 2, C)
    check_loss(torch, F.cross_entropy, torch.nn.functional.cross_entropy, x, (t,),
               dict(reduction=reduction, weight=w, label_smoothing=0.1), dtype)
    check_loss(torch, F.cross_entropy, torch.nn.functional.cross_entropy, x, (_probs(x.shape),),
               dict(reduction=reduction), dtype)
    check_loss(torch, F.cross_entropy, torch.nn.functional.cross_entropy, x[0, :, 0, 0], (np.array(2),),
               dict(reduction=reduction), dtype)


def test_cross_entropy_is_the_lectures_softmax_loss():
    # l = -z_y + log sum_j e^{z_j}, computed here independently in float64
    z = _rng().standard_normal((N, C))
    y = _rng(1).integers(0, C, N)
    expect = -z[np.arange(N), y] + np.log(np.exp(z).sum(1))
    got = F.cross_entropy(cr.tensor(z, dtype=np.float64), cr.tensor(y), reduction="none")._data
    np.testing.assert_allclose(got, expect, rtol=1e-12)


# ----- nll -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kw", [{}, dict(weight=np.array([0.5, 2.0, 1.0, 1.5])), dict(ignore_index=1)],
                         ids=["plain", "weight", "ignore"])
def test_nll_loss(torch, kw, reduction, dtype):
    logp = np.log(_probs((N, C), seed=4))
    t = np.array([0, 1, 2, 3, 1, 0])
    check_loss(torch, F.nll_loss, torch.nn.functional.nll_loss, logp, (t,), dict(kw, reduction=reduction), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nll_loss_spatial(torch, dtype):
    logp = np.log(_probs((2, C, 3), seed=4))
    t = _rng().integers(0, C, (2, 3))
    check_loss(torch, F.nll_loss, torch.nn.functional.nll_loss, logp, (t,), dict(reduction="mean"), dtype)


# ----- binary ----------------------------------------------------------------------------------------
BCE_LOGIT_CASES = {
    "plain": {},
    "weight": dict(weight=np.linspace(0.5, 2, C)),
    "pos_weight": dict(pos_weight=np.array([1.0, 2.0, 0.5, 3.0])),
    "both": dict(weight=np.linspace(0.5, 2, C), pos_weight=np.array([1.0, 2.0, 0.5, 3.0])),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(BCE_LOGIT_CASES))
def test_bce_with_logits(torch, case, reduction, dtype):
    x = _rng(5).standard_normal((N, C)) * 3
    y = _rng(6).uniform(0, 1, (N, C))  # soft labels exercise both terms
    y[0] = [0, 1, 0, 1]
    check_loss(torch, F.binary_cross_entropy_with_logits, torch.nn.functional.binary_cross_entropy_with_logits,
               x, (y,), dict(BCE_LOGIT_CASES[case], reduction=reduction), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["plain", "pos_weight"])
def test_bce_with_logits_extreme_logits_are_finite(torch, case, dtype):
    x = np.array([[1e4, -1e4, 1e4, -1e4], [0.0, 50.0, -50.0, 1e4]])
    y = np.array([[1.0, 0.0, 0.0, 1.0], [0.5, 1.0, 1.0, 0.0]])
    kw = dict(reduction="none", **({} if case == "plain" else dict(pos_weight=np.array([1.0, 2.0, 0.5, 3.0]))))
    lc = check_loss(torch, F.binary_cross_entropy_with_logits,
                    torch.nn.functional.binary_cross_entropy_with_logits, x, (y,), kw, dtype)
    assert np.isfinite(lc._data).all()
    # a correct confident prediction costs ~0, a wrong one costs |x| + log(1 + e^-|x|) = |x| in
    # floating point (derived by hand; pos_weight does not touch y = 0, and scales y = 1 by p)
    assert lc._data[0, 0] == 0 and lc._data[0, 1] == 0
    np.testing.assert_allclose(lc._data[0, 2], 1e4)
    np.testing.assert_allclose(lc._data[0, 3], 1e4 * (1.0 if case == "plain" else 3.0))
    xc = cr.tensor(x, dtype=dtype, requires_grad=True)
    F.binary_cross_entropy_with_logits(xc, cr.tensor(y, dtype=dtype), **{k: v for k, v in kw.items()
                                                                          if k == "reduction"}).sum().backward()
    assert np.isfinite(xc.grad._data).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce(torch, weighted, reduction, dtype):
    p = _rng(5).uniform(0.02, 0.98, (N, C))
    y = (_rng(6).uniform(0, 1, (N, C)) > 0.5).astype(float)
    kw = dict(reduction=reduction, **(dict(weight=np.linspace(0.5, 2, C)) if weighted else {}))
    check_loss(torch, F.binary_cross_entropy, torch.nn.functional.binary_cross_entropy, p, (y,), kw, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_saturated_probabilities_finite_gradient(torch, dtype):
    # Regression: p exactly 0 or 1 (a float32 sigmoid saturates for z > 17) gave NaN gradients,
    # from clip(log 0) = clip(-inf): 0 * inf in the backward pass. Values follow torch's clamp of
    # log at -100; the gradient is that of the clamped loss, derived by hand: for (p, y) =
    # (0, 0): d/dp -log(1-p) = 1;  (1, 1): d/dp -log p = -1;  (0, 1), (1, 0): clamped, flat -> 0.
    # (torch's own backward uses (p-y)/max(p(1-p), 1e-12) here, giving 0, 0, -1e12, 1e12.)
    p = np.array([0.0, 1.0, 0.0, 1.0], dtype)
    y = np.array([0.0, 1.0, 1.0, 0.0], dtype)
    pc = cr.tensor(p, dtype=dtype, requires_grad=True)
    loss = F.binary_cross_entropy(pc, cr.tensor(y, dtype=dtype), reduction="none")
    ref = torch.nn.functional.binary_cross_entropy(torch.from_numpy(p), torch.from_numpy(y), reduction="none")
    np.testing.assert_array_equal(loss._data, ref.numpy())
    np.testing.assert_array_equal(loss._data, [0, 0, 100, 100])
    loss.sum().backward()
    np.testing.assert_array_equal(pc.grad._data, [1, -1, 0, 0])
    # and through a saturated sigmoid, the way BCELoss is used on a model's output
    z = cr.tensor([30.0, -30.0], dtype=dtype, requires_grad=True)
    F.binary_cross_entropy(cr.sigmoid(z), cr.tensor([0.0, 1.0], dtype=dtype)).backward()
    assert np.isfinite(z.grad._data).all()


# ----- regression ------------------------------------------------------------------------------------
REG = [("mse", "mse_loss", {}), ("l1", "l1_loss", {}), ("huber", "huber_loss", {}),
       ("huber_delta", "huber_loss", dict(delta=0.7)), ("smooth_l1", "smooth_l1_loss", dict(beta=0.5))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,fn,kw", REG, ids=[r[0] for r in REG])
def test_regression_losses(torch, name, fn, kw, reduction, dtype):
    x = _rng(5).standard_normal((N, 3)) * 2
    y = _rng(6).standard_normal((N, 3))
    check_loss(torch, getattr(F, fn), getattr(torch.nn.functional, fn), x, (y,), dict(kw, reduction=reduction), dtype)


# ----- modules ---------------------------------------------------------------------------------------
MODULES = [
    ("CrossEntropyLoss", dict(label_smoothing=0.1, weight=np.array([1.0, 2.0, 0.5, 1.0])), "index"),
    ("NLLLoss", dict(reduction="sum"), "index"),
    ("BCEWithLogitsLoss", dict(pos_weight=np.array([1.0, 2.0, 0.5, 3.0])), "binary"),
    ("BCELoss", dict(reduction="none"), "prob"),
    ("MSELoss", {}, "real"),
    ("L1Loss", dict(reduction="sum"), "real"),
    ("HuberLoss", dict(delta=0.5), "real"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw,kind", MODULES, ids=[m[0] for m in MODULES])
def test_loss_modules(torch, name, kw, kind, dtype):
    x = _rng(5).standard_normal((N, C))
    t = {"index": _rng().integers(0, C, N), "binary": (_rng(1).uniform(size=(N, C)) > 0.5).astype(float),
         "real": _rng(2).standard_normal((N, C))}.get(kind)
    if kind == "prob":
        x, t = _rng(5).uniform(0.05, 0.95, (N, C)), (_rng(1).uniform(size=(N, C)) > 0.5).astype(float)
    ours = getattr(nn, name)(**{k: _ours(v, dtype) for k, v in kw.items()})
    theirs = getattr(torch.nn, name)(**{k: _theirs(torch, v, dtype) for k, v in kw.items()})
    check_loss(torch, ours, theirs, x, (t,), {}, dtype)


# ----- errors ----------------------------------------------------------------------------------------
def test_target_out_of_range_is_a_clear_error():
    z = cr.randn(3, 10)
    with pytest.raises(ValueError, match=r"target class 10 is out of range for 10 classes"):
        F.cross_entropy(z, cr.tensor([1, 10, 2]))
    with pytest.raises(ValueError, match=r"target class -1 is out of range"):
        F.cross_entropy(z, cr.tensor([1, -1, 2]))
    with pytest.raises(ValueError, match=r"target class 10 is out of range for 10 classes"):
        F.nll_loss(z, cr.tensor([1, 10, 2]))
    with pytest.raises(ValueError, match="out of range"):
        nn.CrossEntropyLoss()(z, cr.tensor([10, 0, 0]))


def test_float_labels_with_wrong_shape_are_a_clear_error():
    z = cr.randn(3, 4)
    with pytest.raises(ValueError, match=r"probability targets must have the input's shape \(3, 4\), got \(3,\)"):
        F.cross_entropy(z, cr.tensor([1.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 5\)"):
        F.cross_entropy(z, cr.zeros(3, 5))


def test_mismatched_batch_sizes_are_a_clear_error():
    with pytest.raises(ValueError, match=r"input of shape \(3, 4\) needs targets of shape \(3,\).*got \(5,\)"):
        F.cross_entropy(cr.randn(3, 4), cr.tensor([0, 1, 2, 3, 0]))
    with pytest.raises(ValueError, match=r"needs targets of shape \(3,\)"):
        F.nll_loss(cr.randn(3, 4), cr.tensor([0, 1]))
    for fn in (F.mse_loss, F.l1_loss, F.huber_loss, F.binary_cross_entropy_with_logits):
        with pytest.raises(ValueError, match=r"input shape \(3, 1\) and target shape \(5, 1\) differ"):
            fn(cr.randn(3, 1), cr.rand(5, 1))
    with pytest.raises(ValueError, match=r"input shape \(3,\) and target shape \(4,\) differ"):
        F.binary_cross_entropy(cr.rand(3), cr.rand(4))


def test_bad_hyperparameters_are_errors():
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cross_entropy(cr.randn(3, 4), cr.tensor([0, 1, 2]), reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        F.cross_entropy(cr.randn(3, 4), cr.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\), got \(3,\)"):
        F.cross_entropy(cr.randn(3, 4), cr.tensor([0, 1, 2]), weight=cr.ones(3))
    with pytest.raises(ValueError, match="probabilities in"):
        F.binary_cross_entropy(cr.tensor([0.5, 1.5]), cr.tensor([0.0, 1.0]))


@pytest.mark.parametrize("fn", [F.binary_cross_entropy_with_logits, F.binary_cross_entropy, F.mse_loss,
                                F.l1_loss, F.huber_loss])
def test_float64_numpy_targets_do_not_upcast_a_float32_loss(fn):
    # Regression: labels straight from NumPy/sklearn are float64; they turned the float32 loss
    # (and the whole backward pass above it) into float64.
    x = cr.rand(4, 3, requires_grad=True)
    y = (np.arange(12).reshape(4, 3) % 2).astype(np.float64)
    kw = {} if fn in (F.mse_loss, F.l1_loss, F.huber_loss) else dict(weight=np.linspace(0.5, 2, 3))
    loss = fn(x, y, **kw)
    assert loss.dtype == np.float32
    expect = fn(x._data.astype(np.float64), y, **kw)  # the same loss computed in float64
    np.testing.assert_allclose(loss.item(), expect, rtol=1e-5)


def test_cross_entropy_fast_path_matches_general_path(torch):
    """The lean path (int targets, no weight/smoothing, all labels valid) and the general path
    (forced here by an all-ones class weight) give the same value and gradient, and both match torch."""
    import numpy as np

    import chainrule as cr
    import chainrule.functional as F

    rng = np.random.default_rng(0)
    z0, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    for reduction in ("mean", "sum"):
        grads = []
        for weight in (None, np.ones(4)):
            z = cr.tensor(z0, dtype="float64", requires_grad=True)
            loss = F.cross_entropy(z, cr.tensor(y), weight=weight, reduction=reduction)
            loss.backward()
            grads.append((loss.item(), z.grad.numpy()))
        tz = torch.tensor(z0, requires_grad=True)
        tl = torch.nn.functional.cross_entropy(tz, torch.tensor(y), reduction=reduction)
        tl.backward()
        for value, grad in grads:
            np.testing.assert_allclose(value, tl.item(), rtol=1e-12)
            np.testing.assert_allclose(grad, tz.grad.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="out of range"):
        F.cross_entropy(cr.randn(2, 3), cr.tensor([0, 3]))


# ----- the fused, reduced softmax_cross_entropy (the training loop's loss node) ------------------------
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_fused_cross_entropy_saved_softmax_equals_recomputed(reduction):
    """The rule reads the softmax saved by the forward; recorded (create_graph) it recomputes it from
    Tensors. Both must give the same gradient, and the second order must pass gradgradcheck."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    g = {"none": rng.standard_normal(6), "sum": np.array(0.7), "mean": np.array(1.3)}[reduction]
    grads = []
    for create_graph in (False, True):
        zt = cr.Tensor(z, requires_grad=True)
        out = cr.ops.softmax_cross_entropy(zt, y, reduction=reduction)
        (gz,) = cr.grad(out, [zt], grad_outputs=cr.Tensor(g), create_graph=create_graph)
        grads.append(gz._data)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-14, atol=1e-15)
    f = lambda z: cr.ops.softmax_cross_entropy(z, y, reduction=reduction)
    assert cr.gradcheck(f, [z]) and cr.gradgradcheck(f, [z])


def test_fused_cross_entropy_is_one_node_and_matches_the_unreduced_loss():
    rng = np.random.default_rng(1)
    z = cr.Tensor(rng.standard_normal((5, 3)).astype(np.float32), requires_grad=True)
    y = rng.integers(0, 3, 5)
    loss = cr.functional.cross_entropy(z, y)
    assert loss._ctx.op.name == "softmax_cross_entropy" and loss._ctx.inputs[0] is z
    rows = cr.ops.softmax_cross_entropy(z, y)
    np.testing.assert_array_equal(loss._data, rows._data.sum() / np.float32(5))
    with pytest.raises(ValueError, match="reduction must be 'none', 'sum' or 'mean', got 'avg'"):
        cr.ops.softmax_cross_entropy(z, y, reduction="avg")


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.uint64])
def test_softmax_minus_onehot_in_every_layout_and_label_dtype(layout, dtype):
    """The cross-entropy rule's fast path indexes the copy flat in its memory order: it must give
    ``(p - onehot(y)) * scale`` bit for bit, in p's layout, for any integer label dtype."""
    from chainrule.ops_loss import _softmax_minus_onehot
    rng = np.random.default_rng(9)
    base = rng.random((7, 12)).astype(np.float32)
    p = {"C": base[:, :5].copy(), "F": np.asfortranarray(base[:, :5]), "strided": base[:, ::2][:, :5]}[layout]
    y = rng.integers(0, 5, 7).astype(dtype)
    scale = np.float32(1 / 7)
    want = (p - np.eye(5, dtype=np.float32)[y.astype(np.intp)]) * scale
    got = _softmax_minus_onehot.forward(p, y, scale)
    assert got.dtype == np.float32 and np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes()
    assert got.flags.f_contiguous == (layout == "F")
