"""The small-model fast paths (issue #8, logistic regression step): the one-pass backward, plain SGD's
direct update, the Sequential/Linear/cross-entropy shortcuts. Each must give exactly what the general
path gives."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn, optim
from chainrule.functional import cross_entropy
from chainrule.optim.optimizer import Optimizer


# ----- engine: the one-pass walk against the general one (grad(), search + sort) ----------------
def _dag(x, y):
    a = cr.exp(x) * y          # y used twice, x reached along three paths
    b = a.sum() + (a * x).sum()
    c = (b * y).sum() + cr.tanh(x).mean()
    return c


def test_one_pass_backward_equals_the_general_walk():
    rng = np.random.default_rng(0)
    x = cr.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    y = cr.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    gx, gy = cr.grad(_dag(x, y), [x, y])  # the general _run (capture)
    _dag(x, y).backward()  # _run_plain
    assert np.array_equal(x.grad._data, gx._data) and np.array_equal(y.grad._data, gy._data)


def test_one_pass_backward_runs_rules_in_decreasing_creation_order(monkeypatch):
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    for name in ("mul", "add", "exp", "sum"):
        prim = cr.ops.REGISTRY[name]
        rule = prim.rule

        def spy(*a, _rule=rule, _name=name, **k):
            seen.append(_name)
            return _rule(*a, **k)
        monkeypatch.setattr(prim, "rule", spy)
    h = cr.exp(x)
    (h * x + h).sum().backward()  # sum, add, mul, exp: exp only after both its uses
    assert seen == ["sum", "add", "mul", "exp"]


def test_nodes_that_receive_no_gradient_are_released_too():
    from chainrule.ops import REGISTRY, Primitive
    stop = Primitive("_test_stop_gradient", lambda a: a.copy()).defgrad(lambda g, out, a: (None,))
    try:
        x = cr.tensor([1.0, -2.0], requires_grad=True)
        h = cr.exp(x)
        y = (stop(h) + x).sum()  # h's node is in the graph, but no gradient reaches it
        y.backward()
        assert h._ctx.released and y._ctx.released
        assert np.array_equal(x.grad._data, [1.0, 1.0])
        with pytest.raises(RuntimeError, match="second time"):
            y.backward()
    finally:
        REGISTRY.pop("_test_stop_gradient", None)


def test_backward_from_a_leaf_and_with_retain_graph():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    x.backward(cr.tensor([3.0, 4.0]))
    assert np.array_equal(x.grad._data, [3.0, 4.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert np.array_equal(x.grad._data, [3.0 + 4 * 1.0, 4.0 + 4 * 2.0])


# ----- plain SGD: the direct update against Optimizer.step ---------------------------------------
def _pair(shapes, dtype, **kw):
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    ps = [[cr.tensor(a.copy(), requires_grad=True) for a in init] for _ in range(2)]
    return ps, [optim.SGD(p, **kw) for p in ps]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fused", [None, False])
def test_plain_sgd_step_is_bit_identical_to_the_base_class(dtype, fused):
    shapes = [(10, 64), (10,), (), (100, 100)]  # the last one is over the ufunc threshold
    (fast, slow), (o_fast, o_slow) = _pair(shapes, dtype, lr=0.1, fused=fused)
    views = [p._data for p in fast]
    rng = np.random.default_rng(2)
    for t in range(5):
        gs = [rng.standard_normal(s).astype(dtype) for s in shapes]
        for ps in (fast, slow):
            for p, g in zip(ps, gs):
                p.grad = cr.tensor(g.copy())
        if t == 3:  # a scheduler may write a NumPy scalar: still rounded to the parameter's dtype
            for o in (o_fast, o_slow):
                o.param_groups[0]["lr"] = np.float64(0.03)
        o_fast.step()
        Optimizer.step(o_slow)
        for a, b in zip(fast, slow):
            assert np.array_equal(a._data, b._data)
    assert all(p._data is v for p, v in zip(fast, views))  # updated in place
    assert o_fast.state_dict() == o_slow.state_dict()  # one empty state entry per stepped parameter


def test_plain_sgd_skips_missing_gradients_and_checks_shapes():
    (ps, _), (o, _) = _pair([(3,), (2,)], np.float32, lr=0.5)
    before = ps[1]._data.copy()
    ps[0].grad = cr.tensor(np.ones(3, np.float32))
    o.step()
    assert np.array_equal(ps[1]._data, before) and set(o.state) == {ps[0]}
    with pytest.raises(ValueError, match="assigned grad has shape"):  # refused at once, as in torch
        ps[0].grad = cr.tensor(np.ones(4, np.float32))
    ps[0]._grad = cr.tensor(np.ones(4, np.float32))  # and still caught by the step if it got there anyway
    with pytest.raises(ValueError, match="does not match"):
        o.step()


def test_sgd_options_switched_on_after_construction_take_the_full_update():
    (fast, slow), (o_fast, o_slow) = _pair([(4,)], np.float32, lr=0.1)
    for o in (o_fast, o_slow):
        o.param_groups[0].update(momentum=0.9, weight_decay=0.01)
    for _ in range(3):
        for ps in (fast, slow):
            ps[0].grad = cr.tensor(np.full(4, 0.5, np.float32))
        o_fast.step()
        Optimizer.step(o_slow)
    assert np.array_equal(fast[0]._data, slow[0]._data)
    assert "momentum_buffer" in o_fast.state[fast[0]]


def test_sgd_step_with_closure_returns_the_loss():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    o = optim.SGD([w], lr=0.1)

    def closure():
        o.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss
    loss = o.step(closure)
    assert float(loss) == 5.0 and np.allclose(w._data, [0.8, 1.6])


# ----- modules and the loss ----------------------------------------------------------------------
def test_one_layer_sequential_and_linear_dtype_handling():
    lin = nn.Linear(3, 2)
    seq = nn.Sequential(lin)
    x = np.arange(6.0).reshape(2, 3)  # float64 ndarray: cast to the weights' float32
    assert seq(x).dtype == np.float32 and np.array_equal(seq(x)._data, lin(cr.tensor(x, dtype=np.float32))._data)
    with pytest.raises(TypeError, match="float64"):
        lin(cr.tensor(x, dtype=np.float64))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.int16])
def test_cross_entropy_label_check_for_every_integer_dtype(dtype, torch):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((6, 4)).astype(np.float32)
    y = np.array([0, 3, 1, 2, 3, 0], dtype)
    ours = cross_entropy(cr.tensor(z), y)
    theirs = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(y.astype(np.int64)))
    assert np.isclose(float(ours), float(theirs), rtol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        cross_entropy(cr.tensor(z), np.array([0, 4, 1, 2, 3, 0], dtype))
    if np.dtype(dtype).kind == "i":
        with pytest.raises(ValueError, match="out of range"):
            cross_entropy(cr.tensor(z), np.array([0, -3, 1, 2, 3, 0], dtype))
        y_ign = np.array([0, -100, 1, 2, 3, 0], dtype) if np.iinfo(dtype).min <= -100 else None
        if y_ign is not None:  # ignore_index: the general path
            ours = cross_entropy(cr.tensor(z), y_ign)
            theirs = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(y_ign.astype(np.int64)))
            assert np.isclose(float(ours), float(theirs), rtol=1e-6)


def test_logreg_training_step_matches_torch(torch):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((32, 64)).astype(np.float32), rng.integers(0, 10, 32)
    model = cr.models.MLP([64, 10])
    tm = torch.nn.Linear(64, 10)
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(model.layers[0].weight._data))
        tm.bias.copy_(torch.tensor(model.layers[0].bias._data))
    o, to = optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD(tm.parameters(), lr=0.1)
    for _ in range(20):
        o.zero_grad()
        cross_entropy(model(cr.tensor(x)), y).backward()
        o.step()
        to.zero_grad()
        torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y)).backward()
        to.step()
    np.testing.assert_allclose(model.layers[0].weight._data, tm.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.layers[0].bias._data, tm.bias.detach().numpy(), rtol=1e-5, atol=1e-6)


