"""Pooling and normalization: F.max_pool*/avg_pool*/adaptive_avg_pool*, F.batch_norm, F.layer_norm, their
modules, and Module buffers (BatchNorm's running statistics in the state_dict).

Oracle tests against torch 2.13 in float32 and float64 (values and input gradients), second
derivatives by gradgradcheck, running statistics after training steps equal to torch's, state_dict
round trips both ways, errors.
"""

import numpy as np
import pytest
from torch_oracle import check_against_torch

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import nn

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-11, atol=1e-12)}


def _oracle(torch, ours, theirs, arrays, dtype, seed=0):
    check_against_torch(torch, ours, theirs, arrays, dtype, TOL, seed)


# ----- pooling ------------------------------------------------------------------------------------
POOLS = [  # (function name, input shape, keyword arguments)
    ("max_pool2d", (2, 3, 8, 8), dict(kernel_size=2)),
    ("max_pool2d", (2, 3, 9, 7), dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool2d", (2, 2, 9, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max_pool2d", (1, 2, 10, 9), dict(kernel_size=(2, 3), stride=(1, 2), dilation=2)),
    ("max_pool2d", (2, 6, 28, 28), dict(kernel_size=2, stride=2)),
    ("max_pool2d", (3, 7, 7), dict(kernel_size=2)),  # unbatched
    ("max_pool1d", (2, 3, 11), dict(kernel_size=3)),
    ("max_pool1d", (2, 3, 12), dict(kernel_size=4, stride=2, padding=2, dilation=1, ceil_mode=True)),
    ("max_pool1d", (2, 3, 12), dict(kernel_size=2, stride=1, dilation=3)),
    ("avg_pool2d", (2, 3, 8, 8), dict(kernel_size=2)),
    ("avg_pool2d", (2, 3, 9, 7), dict(kernel_size=3, stride=2, padding=1)),
    ("avg_pool2d", (2, 3, 9, 7), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("avg_pool2d", (2, 3, 9, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("avg_pool2d", (2, 3, 9, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("avg_pool2d", (2, 3, 7, 7), dict(kernel_size=2, ceil_mode=True)),
    ("avg_pool2d", (2, 2, 8, 6), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), divisor_override=5)),
    ("avg_pool1d", (2, 3, 11), dict(kernel_size=3, stride=2, padding=1)),
    ("avg_pool1d", (2, 3, 10), dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False)),
    ("adaptive_avg_pool2d", (2, 3, 9, 7), dict(output_size=(3, 2))),
    ("adaptive_avg_pool2d", (2, 3, 9, 7), dict(output_size=(4, 5))),  # overlapping bins
    ("adaptive_avg_pool2d", (2, 3, 5, 6), dict(output_size=1)),  # global average pooling
    ("adaptive_avg_pool2d", (2, 3, 5, 6), dict(output_size=(None, 4))),
    ("adaptive_avg_pool2d", (2, 3, 4, 4), dict(output_size=6)),  # upsampling: bins of one element
    ("adaptive_avg_pool1d", (2, 3, 10), dict(output_size=3)),
    ("adaptive_avg_pool1d", (3, 10), dict(output_size=4)),  # unbatched
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, shape, kw", POOLS)
def test_pooling_matches_torch(torch, name, shape, kw, dtype):
    x = np.random.default_rng(0).standard_normal(shape)
    _oracle(torch, lambda a: getattr(F, name)(a, **kw), lambda a: getattr(torch.nn.functional, name)(a, **kw),
            [x], dtype)


@pytest.mark.parametrize("name, shape, kw", [p for p in POOLS if len(p[1]) > 2 and np.prod(p[1]) < 400])
def test_pooling_second_derivatives(name, shape, kw):
    x = cr.tensor(np.random.default_rng(1).standard_normal(shape), dtype=cr.float64)
    # Squared so that the Hessian is not zero: max and average pooling are piecewise linear.
    assert cr.gradgradcheck(lambda t: getattr(F, name)(t, **kw) ** 2, [x])


def test_max_pool_ties_share_the_gradient(torch):
    """Where the maximum is tied our gradient is shared equally (a valid subgradient); torch gives it
    all to one element. The sums agree, and away from ties the gradients are identical."""
    x = cr.tensor(np.zeros((1, 1, 2, 2)), dtype=cr.float64, requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((1, 1, 2, 2), 0.25))
    tx = torch.zeros((1, 1, 2, 2), dtype=torch.float64, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, 2).sum().backward()
    assert tx.grad.sum().item() == x.grad.numpy().sum() == 1.0


@pytest.mark.parametrize("shape, k, layers_layout", [
    ((2, 3, 8, 6), (2, 3), True), ((2, 3, 8, 6), (2, 3), False), ((3, 2, 12), (4,), True), ((1, 2, 4, 4), (2, 2), False)])
def test_max_pool_blocks_equals_unfold_then_max(shape, k, layers_layout):
    """Tiling windows take the reshape path (ops_conv.max_pool_blocks): the same values, gradients
    (ties shared) and second derivatives as unfold + max, for inputs in the layers' (C, *S, N) memory
    order and in plain C order."""
    from chainrule import ops, ops_conv
    rng = np.random.default_rng(2)
    a = np.round(rng.standard_normal(shape) * 2) / 2  # coarse values: some windows hold ties
    if layers_layout:
        a = np.ascontiguousarray(np.moveaxis(a, 0, -1)).transpose((a.ndim - 1,) + tuple(range(a.ndim - 1)))
    nd = len(k)
    kw = dict(kernel_size=k, stride=k, padding=((0, 0),) * nd, dilation=(1,) * nd)
    ref = lambda t: ops.max(ops_conv.unfold(t, **kw), axis=tuple(range(1, 1 + nd)))  # noqa: E731 - (C, *L, N)
    fast = lambda t: ops_conv.max_pool_blocks(t, kernel_size=k)  # noqa: E731 - (N, C, *L)
    to_first = (nd + 1,) + tuple(range(nd + 1))
    x1, x2 = cr.tensor(a, requires_grad=True), cr.tensor(a, requires_grad=True)
    g = rng.standard_normal(fast(a).shape)
    (fast(x1) * g).sum().backward()
    (ops.transpose(ref(x2), axes=to_first) * g).sum().backward()
    np.testing.assert_array_equal(fast(a), np.transpose(ref(a), to_first))
    np.testing.assert_allclose(x1.grad.numpy(), x2.grad.numpy(), rtol=1e-15)
    assert cr.gradgradcheck(lambda t: fast(t) ** 2, [cr.tensor(rng.standard_normal(shape), dtype=cr.float64)])
    with pytest.raises(ValueError, match=r"max_pool_blocks: kernel \(3, 3\) must tile"):
        ops_conv.max_pool_blocks(np.zeros((1, 1, 4, 6)), kernel_size=(3, 3))


@pytest.mark.parametrize("ours, theirs, kw", [
    ("MaxPool2d", "MaxPool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("MaxPool1d", "MaxPool1d", dict(kernel_size=2)),
    ("AvgPool2d", "AvgPool2d", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("AvgPool1d", "AvgPool1d", dict(kernel_size=3, padding=1)),
    ("AdaptiveAvgPool2d", "AdaptiveAvgPool2d", dict(output_size=(2, None))),
    ("AdaptiveAvgPool1d", "AdaptiveAvgPool1d", dict(output_size=5)),
])
def test_pooling_modules(torch, ours, theirs, kw):
    m, tm = getattr(nn, ours)(**kw), getattr(torch.nn, theirs)(**kw)
    assert repr(m) == repr(tm) and list(m.parameters()) == [] and m.state_dict() == {}
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8) if ours.endswith("2d") else (2, 3, 11)).astype(np.float32)
    np.testing.assert_allclose(m(cr.tensor(x)).numpy(), tm(torch.tensor(x)).numpy(), rtol=1e-6, atol=1e-6)


def test_pooling_errors():
    with pytest.raises(ValueError, match="pad should be at most half of kernel size"):
        nn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="pad should be at most half of kernel size"):
        F.avg_pool1d(np.zeros((1, 1, 8)), 3, padding=2)
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        nn.AvgPool2d(0)
    with pytest.raises(ValueError, match=r"larger than the padded input \(1, 1, 3, 3\)"):
        F.max_pool2d(np.zeros((1, 1, 3, 3)), 4)
    with pytest.raises(ValueError, match=r"expected a \(N, C, H, W\) input"):
        F.max_pool2d(np.zeros((4, 4)), 2)
    with pytest.raises(NotImplementedError, match="return_indices"):
        nn.MaxPool2d(2, return_indices=True)
    with pytest.raises(ValueError, match="divisor_override must be a positive int"):
        F.avg_pool2d(np.zeros((1, 1, 4, 4)), 2, divisor_override=0)
    with pytest.raises(ValueError, match="output_size must be >= 1"):
        F.adaptive_avg_pool1d(np.zeros((1, 1, 4)), 0)


# ----- batch normalization ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 7), (4, 3, 5, 6)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_function_matches_torch(torch, shape, training, dtype):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(shape) * 3 + 1, rng.standard_normal(3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3).astype(dtype), rng.uniform(0.5, 2, 3).astype(dtype)
    rm_t, rv_t = torch.tensor(rm.copy()), torch.tensor(rv.copy())
    _oracle(torch, lambda *a: F.batch_norm(a[0], rm, rv, a[1], a[2], training, 0.3, 1e-3),
            lambda *a: torch.nn.functional.batch_norm(a[0], rm_t, rv_t, a[1], a[2], training, 0.3, 1e-3),
            [x, w, b], dtype)
    # the running statistics were updated in place (in training) exactly as torch's
    np.testing.assert_allclose(rm, rm_t.numpy(), **TOL[dtype])
    np.testing.assert_allclose(rv, rv_t.numpy(), **TOL[dtype])


@pytest.mark.parametrize("momentum", [0.1, None, 0.5])
@pytest.mark.parametrize("cls, shape", [("BatchNorm1d", (16, 4)), ("BatchNorm1d", (8, 4, 5)), ("BatchNorm2d", (6, 4, 3, 5))])
def test_batch_norm_running_stats_follow_torch(torch, cls, shape, momentum):
    """A few training steps (with an SGD update in between, so the input changes), then eval mode:
    running statistics, num_batches_tracked, outputs and parameter gradients equal torch's."""
    m = getattr(nn, cls)(4, momentum=momentum, dtype=cr.float64)
    tm = getattr(torch.nn, cls)(4, momentum=momentum).double()
    rng = np.random.default_rng(0)
    opt, topt = cr.optim.SGD(m.parameters(), lr=0.1), torch.optim.SGD(tm.parameters(), lr=0.1)
    for step in range(4):
        x = rng.standard_normal(shape) * (step + 1) + step
        y, ty = m(cr.tensor(x, dtype=cr.float64)), tm(torch.tensor(x))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        for o, opt_ in ((y, opt), (ty, topt)):
            opt_.zero_grad()
            (o ** 3).sum().backward()
            opt_.step()
    sd, tsd = m.state_dict(), tm.state_dict()
    assert list(sd) == list(tsd) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    for k in sd:
        np.testing.assert_allclose(sd[k].numpy(), tsd[k].numpy(), rtol=1e-10, atol=1e-12)
    assert int(sd["num_batches_tracked"].item()) == 4 and sd["num_batches_tracked"].dtype == np.int64
    m.eval(), tm.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(m(cr.tensor(x, dtype=cr.float64)).numpy(), tm(torch.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    assert int(m.num_batches_tracked.item()) == 4  # evaluation does not count batches


@pytest.mark.parametrize("kw", [dict(affine=False), dict(track_running_stats=False), dict(bias=False),
                                dict(eps=0.1, momentum=0.9)])
def test_batch_norm_variants(torch, kw):
    m, tm = nn.BatchNorm2d(3, **kw, dtype=cr.float64), torch.nn.BatchNorm2d(3, **kw).double()
    assert repr(m).split("  [")[0] == repr(tm) and list(m.state_dict()) == list(tm.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 5))
    for mode in ("train", "eval"):
        getattr(m, mode)(), getattr(tm, mode)()
        _oracle(torch, m, tm, [x], np.float64)


def test_batch_norm_state_dict_both_ways(torch):
    tm = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU())
    tm.train()
    with torch.no_grad():
        for _ in range(3):
            tm(torch.randn(4, 2, 6, 6) * 2 + 1)
        tm[1].weight.uniform_(0.5, 1.5)
    m = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU())
    m.load_state_dict(tm.state_dict())
    assert int(m[1].num_batches_tracked.item()) == 3
    m.eval(), tm.eval()
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(m(x).numpy(), tm(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    m.train()
    m(x * 3)  # changes our running statistics; copy them back into a fresh torch model
    tm2 = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU())
    tm2.load_state_dict({k: torch.tensor(v.numpy()) for k, v in m.state_dict().items()})
    assert int(tm2[1].num_batches_tracked) == 4
    np.testing.assert_array_equal(tm2[1].running_var.numpy(), m[1].running_var.numpy())
    m.eval(), tm2.eval()
    np.testing.assert_allclose(m(x).numpy(), tm2(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_second_derivatives(training):
    rng = np.random.default_rng(2)
    x, w, b = (cr.tensor(a, dtype=cr.float64) for a in (rng.standard_normal((4, 3, 2)), rng.standard_normal(3),
                                                        rng.standard_normal(3)))
    rm, rv = np.zeros(3), np.ones(3)
    fn = lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training, 0.0) ** 2  # noqa: E731 - momentum 0: stats fixed
    assert cr.gradcheck(fn, [x, w, b])
    assert cr.gradgradcheck(fn, [x, w, b])


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input"):
        nn.BatchNorm1d(3)(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="has 4 channels .* num_features=3"):
        nn.BatchNorm2d(3)(np.zeros((2, 4, 4, 5)))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="momentum must be in"):
        nn.BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match="num_features must be a positive integer"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match="eps must be"):
        nn.BatchNorm2d(3, eps=-1)
    with pytest.raises(ValueError, match="needs running_mean and running_var"):
        F.batch_norm(np.zeros((2, 3)), None, None, training=False)


# ----- layer normalization ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, ns", [((4, 10), 10), ((2, 3, 6), (6,)), ((2, 3, 4, 5), (4, 5)), ((3, 4), (3, 4))])
def test_layer_norm_matches_torch(torch, shape, ns, dtype):
    rng = np.random.default_rng(0)
    wshape = (ns,) if isinstance(ns, int) else ns
    x, w, b = rng.standard_normal(shape) * 2 + 1, rng.standard_normal(wshape), rng.standard_normal(wshape)
    _oracle(torch, lambda *a: F.layer_norm(a[0], ns, a[1], a[2], 1e-3),
            lambda *a: torch.nn.functional.layer_norm(a[0], wshape, a[1], a[2], 1e-3), [x, w, b], dtype)


@pytest.mark.parametrize("kw", [dict(), dict(elementwise_affine=False), dict(bias=False), dict(eps=0.5)])
def test_layer_norm_module(torch, kw):
    m, tm = nn.LayerNorm((3, 4), **kw, dtype=cr.float64), torch.nn.LayerNorm((3, 4), **kw).double()
    assert repr(m).split("  [")[0] == repr(tm) and list(m.state_dict()) == list(tm.state_dict())
    if m.weight is not None:
        with torch.no_grad():
            tm.weight.uniform_(0.5, 1.5)
        m.load_state_dict(tm.state_dict())
    _oracle(torch, m, tm, [np.random.default_rng(0).standard_normal((2, 3, 4))], np.float64)


def test_layer_norm_second_derivatives_and_errors():
    rng = np.random.default_rng(3)
    x, w = cr.tensor(rng.standard_normal((3, 5)), dtype=cr.float64), cr.tensor(rng.standard_normal(5), dtype=cr.float64)
    assert cr.gradgradcheck(lambda x, w: F.layer_norm(x, 5, w) ** 2, [x, w])
    with pytest.raises(ValueError, match=r"input \(3, 5\) does not end with normalized_shape \(4,\)"):
        F.layer_norm(x, 4)
    with pytest.raises(ValueError, match="normalized_shape must be a positive int"):
        nn.LayerNorm(0)


# ----- buffers ------------------------------------------------------------------------------------
def test_buffers_are_state_but_not_parameters():
    m = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    assert [n for n, _ in m.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert [n for n, _ in m.named_buffers()] == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    m.to(cr.float64)
    assert m[1].running_mean.dtype == np.float64 and m[1].num_batches_tracked.dtype == np.int64
    with pytest.raises(ValueError, match="missing key '1.running_var'"):
        m.load_state_dict({k: v for k, v in m.state_dict().items() if k != "1.running_var"})
    m[1].register_buffer("scratch", np.zeros(2), persistent=False)
    assert "1.scratch" in dict(m.named_buffers()) and "1.scratch" not in m.state_dict()
    with pytest.raises(KeyError, match="already has an attribute 'eps'"):
        m[1].register_buffer("eps", np.zeros(1))
    assert list(nn.BatchNorm1d(3, track_running_stats=False).named_buffers()) == []


def test_buffers_survive_save_and_load(tmp_path):
    """num_batches_tracked is 0-d, as in torch: saving must not turn it into shape (1,) (regression)."""
    m = nn.Sequential(nn.Conv1d(1, 2, 3), nn.BatchNorm1d(2))
    m(np.random.default_rng(0).standard_normal((4, 1, 8)).astype(np.float32))
    cr.save(m, tmp_path / "bn.safetensors")
    state = cr.load(tmp_path / "bn.safetensors")
    assert state["1.num_batches_tracked"].shape == () and int(state["1.num_batches_tracked"].item()) == 1
    m2 = nn.Sequential(nn.Conv1d(1, 2, 3), nn.BatchNorm1d(2))
    m2.load_state_dict(state)
    np.testing.assert_array_equal(m2[1].running_mean.numpy(), m[1].running_mean.numpy())
