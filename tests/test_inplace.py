"""In-place updates after a graph recorded a tensor: backward raises exactly where PyTorch's version
counter does (the oracle), and the per-primitive declarations of what a rule reads are true."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import ops, optim


def _mul_input(lib, T):
    x, w = T([1.0, 2.0]), T([3.0, 4.0], requires_grad=True)
    y = (x * w).sum()
    x += 1  # x needs no grad, so this is allowed while recording; mul's rule reads x
    return y


def _add_input(lib, T):
    x, w = T([1.0, 2.0]), T([3.0, 4.0], requires_grad=True)
    y = (x + w).sum()
    x += 1  # add's rule reads neither input: nothing is wrong
    return y


def _param_under_no_grad(lib, T):
    w = T([3.0, 4.0], requires_grad=True)
    y = (w * w).sum()
    with lib.no_grad():
        w -= 0.1
    return y


def _exp_output(lib, T):
    w = T([3.0, 4.0], requires_grad=True)
    y = lib.exp(w)
    with lib.no_grad():
        y.zero_()  # exp's rule is g * exp(w), read from its output
    return y.sum()


def _exp_input(lib, T):
    w = T([3.0, 4.0], requires_grad=True)
    x = w * 1.0
    y = lib.exp(x)
    with lib.no_grad():
        x.fill_(0.0)  # exp's rule does not read its input
    return y.sum()


def _optimizer_step(lib, T):
    w = T([3.0, 4.0], requires_grad=True)
    opt = (optim if lib is cr else lib.optim).SGD([w], lr=0.1)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    opt.step()
    return loss


def _before_use(lib, T):
    x, w = T([1.0, 2.0]), T([3.0, 4.0], requires_grad=True)
    x += 1
    return (x * w).sum()


def _setitem(lib, T):
    x, w = T([1.0, 2.0]), T([3.0, 4.0], requires_grad=True)
    y = (x * w).sum()
    x[0] = 5.0
    return y


CASES = [_mul_input, _add_input, _param_under_no_grad, _exp_output, _exp_input, _optimizer_step, _before_use, _setitem]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.strip("_") for c in CASES])
def test_backward_raises_where_torch_does(torch, case):
    def outcome(lib, T):
        y = case(lib, T)
        try:
            y.backward()
        except RuntimeError as e:
            return str(e)
        return None
    ours = outcome(cr, lambda d, requires_grad=False: cr.tensor(np.array(d, np.float32), requires_grad=requires_grad))
    theirs = outcome(torch, lambda d, requires_grad=False: torch.tensor(d, requires_grad=requires_grad))
    assert (ours is None) == (theirs is None), (ours, theirs)
    if ours is not None:
        assert "updated in place" in ours and "which its gradient needs" in ours


def test_the_training_loop_never_trips_it():
    rng = np.random.default_rng(0)
    model = cr.models.MLP([4, 8, 3])
    opt = optim.Adam(model.parameters(), lr=0.01)
    x, y = cr.tensor(rng.standard_normal((16, 4)).astype(np.float32)), cr.tensor(rng.integers(0, 3, 16))
    for _ in range(3):
        opt.zero_grad()
        cr.functional.cross_entropy(model(x), y).backward()
        opt.step()
        with cr.no_grad():
            for p in model.parameters():
                p.mul_(0.999)  # e.g. a hand-written decay between steps
    assert all(np.isfinite(p._data).all() for p in model.parameters())


# Each primitive whose rule is declared not to read its inputs (or its output) must give the same
# gradients when those arrays are replaced by garbage of the same shape and dtype.
RNG = np.random.default_rng(1)
A = RNG.uniform(0.5, 2.0, (3, 4))
B = RNG.uniform(0.5, 2.0, (3, 4))
CONV = {"kernel_size": (2, 2), "stride": (1, 1), "padding": ((1, 0), (0, 1)), "dilation": (1, 1)}
SAMPLES = {
    "add": ((A, B), {}), "sub": ((A, B), {}), "neg": ((A,), {}), "exp": ((A,), {}), "sqrt": ((A,), {}),
    "tanh": ((A,), {}), "sigmoid": ((A,), {}), "relu": ((A - 1.2,), {}), "sum": ((A,), {"axis": 0}),
    "reshape": ((A,), {"shape": (4, 3)}), "transpose": ((A,), {}), "broadcast_to": ((A[:1],), {"shape": (3, 4)}),
    "getitem": ((A,), {"idx": (slice(0, 2), 1)}), "concatenate": ((A, B), {"axis": 1}),
    "pad": ((A,), {"pad_width": ((1, 0), (0, 2))}), "astype": ((A,), {"dtype": np.float32}),
    "scatter_add": ((A[:2, 1],), {"idx": (slice(0, 2), 1), "shape": (3, 4)}),
    "mul": ((A, B), {}), "div": ((A, B), {}), "pow": ((A, B), {}), "max": ((A,), {"axis": 1}),
    "prod": ((A,), {"axis": 0}), "log": ((A,), {}), "matmul": ((A, B.T), {}),
    # reads (True, True): its rule reads every state it produced, so the sample only pins the declaration
    "rnn_scan": ((RNG.standard_normal((2, 3, 6)), RNG.standard_normal((3, 2)), RNG.standard_normal((6, 2))),
                 {"mode": "gru"}),
    # ops_conv: im2col and col2im on a (2, 3, 4, 5) input, 2x2 kernel, padded to (5, 6): (3, 2, 2, 4, 5, 2) columns
    "unfold": ((RNG.uniform(0.5, 2.0, (2, 3, 4, 5)),), dict(CONV)),
    "fold": ((RNG.uniform(0.5, 2.0, (3, 2, 2, 4, 5, 2)),), dict(CONV, shape=(2, 3, 4, 5))),
    "max_pool_blocks": ((RNG.uniform(0.5, 2.0, (2, 3, 4, 6)),), {"kernel_size": (2, 3)}),
    "cumsum": ((A,), {"axis": 1}),  # ops_scan: the rule reverses and sums g only
}


def _rule_result(prim, g, out, inputs, attrs, saved=None):
    return [None if r is None else np.asarray(r) for r in prim.vjp(g, out, inputs, (True,) * len(inputs), saved, attrs)]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_declared_reads_are_true(name):
    prim = ops.REGISTRY[name]
    inputs, attrs = SAMPLES[name]
    out, saved = prim.forward(*inputs, **attrs) if prim.saves else (prim.forward(*inputs, **attrs), None)
    out = np.asarray(out)
    g = RNG.standard_normal(out.shape)
    want = _rule_result(prim, g, out, inputs, attrs, saved)
    garbage_in = tuple(np.full_like(a, 7.0) for a in inputs) if not prim.reads_inputs else inputs
    garbage_out = np.full_like(out, 3.0) if not prim.reads_out else out
    got = _rule_result(prim, g, garbage_out, garbage_in, attrs, saved)
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


def test_every_primitive_with_a_rule_is_sampled_or_reads_its_inputs():
    # New primitives default to 'reads its inputs, not its output'. Whoever declares otherwise adds a sample.
    for name, prim in ops.REGISTRY.items():
        if prim.rule is not None and (not prim.reads_inputs or prim.reads_out):
            assert name in SAMPLES, f"{name}: declared reads ({prim.reads_inputs}, {prim.reads_out}) are untested"


@pytest.mark.parametrize("create_graph", [False, True])
def test_grad_and_double_backward_check_too(create_graph):
    x, w = cr.tensor(np.array([1.0, 2.0], np.float32)), cr.tensor(np.array([3.0, 4.0], np.float32), requires_grad=True)
    y = (x * w * w).sum()
    x += 1
    with pytest.raises(RuntimeError, match="mul: input 0 .* updated in place"):
        cr.grad(y, [w], create_graph=create_graph)


def _view_update(lib, T):
    x, w = T([1.0, 2.0, 3.0, 4.0]), T([1.0, 1.0, 1.0, 1.0], requires_grad=True)
    v = x.reshape(2, 2)
    y = (x * w).sum()
    v += 1  # the same memory as x, through another tensor
    return y


def _other_tensor_update(lib, T):
    x, w = T([1.0, 2.0]), T([3.0, 4.0], requires_grad=True)
    z = T([0.0, 0.0])
    y = (x * w).sum()
    z += 1  # unrelated memory
    return y


@pytest.mark.parametrize("case", [_view_update, _other_tensor_update], ids=["view", "other"])
def test_updates_through_views_count_for_the_whole_storage(torch, case):
    test_backward_raises_where_torch_does(torch, case)
