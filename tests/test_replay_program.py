"""The replay program's own transformations (replay.py): elementwise ops and reductions call their
NumPy function directly, and a repeated computation is shared only when nothing writes into it."""

from __future__ import annotations

import re

import numpy as np
import pytest
from test_compile import _standard_step

import chainrule as cr
from chainrule import nn
from chainrule.nn import functional as F


def _run_both(make_step, batches):
    """(eager results, compiled results, the Compiled) of the step made twice from the same seed."""
    eager, compiled = make_step(), cr.compile(make_step(), warn=False)
    want = [eager(*b)._data.copy() for b in batches]
    got = [compiled(*b)._data.copy() for b in batches]
    assert compiled.calls["replayed"] == len(batches) - 2, compiled.reasons
    return want, got, compiled


def _l2_step():
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 1))
    opt = cr.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss = (1 - y * model(x)).relu().mean() + 1e-3 * sum((p * p).sum() for p in model.parameters())
        loss.backward()
        opt.step()
        return loss
    return step


def test_an_l2_penalty_computes_each_gradient_product_once_and_equals_eager():
    rng = np.random.default_rng(0)
    batches = [(cr.tensor(rng.standard_normal((8, 3)).astype(np.float32)),
                cr.tensor(np.sign(rng.standard_normal((8, 1))).astype(np.float32))) for _ in range(5)]
    want, got, run = _run_both(_l2_step, batches)
    assert all(np.array_equal(a, b) for a, b in zip(want, got))
    code = run.code
    # p * p's rule is g * p + g * p: one product per parameter, added to itself
    shared = [line for line in code.splitlines() if "= np_add(v" in line and line.split("(")[1].split(",")[0]
              == line.split(", ")[1].rstrip(")")]
    assert len(shared) == 4, code
    assert "np_multiply(" in code and "sum_reduce(" in code  # direct NumPy calls, no forward wrapper


def test_a_value_written_in_place_is_not_shared():
    def make():
        def step(x):
            a = x * 2.0
            b = x * 2.0  # the same computation as a, but a is then written into
            a.add_(1.0)
            return (a * b).sum()
        return step
    rng = np.random.default_rng(1)
    batches = [(cr.tensor(rng.standard_normal((4, 4)).astype(np.float32)),) for _ in range(4)]
    want, got, run = _run_both(make, batches)
    assert all(np.array_equal(a, b) for a, b in zip(want, got))
    assert run.code.count("np_multiply(v0") == 2, run.code


def test_a_parameter_updated_between_two_equal_reads_is_read_again():
    cr.manual_seed(0)
    w = cr.tensor(np.ones(3, np.float32), requires_grad=True)
    opt = cr.optim.SGD([w], lr=0.5)

    def make():
        w.data = cr.tensor(np.ones(3, np.float32))
        opt.state.clear()

        def step(x):
            opt.zero_grad()
            before = (w * x).sum()
            before.backward()
            opt.step()
            with cr.no_grad():
                return before + (w * x).sum()  # w * x again, after the update: another value
        return step

    rng = np.random.default_rng(2)
    batches = [(cr.tensor(rng.standard_normal(3).astype(np.float32)),) for _ in range(4)]
    eager = make()
    want = [eager(*b)._data.copy() for b in batches]
    compiled = cr.compile(make(), warn=False)
    got = [compiled(*b)._data.copy() for b in batches]
    assert compiled.calls["replayed"] == 2
    assert all(np.array_equal(a, b) for a, b in zip(want, got))


def test_a_cross_entropy_step_calls_its_sums_directly_and_equals_eager():
    def make():
        cr.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
        return _standard_step(model, cr.optim.Adam(model.parameters(), lr=0.01))
    rng = np.random.default_rng(3)
    batches = [(cr.tensor(rng.standard_normal((6, 4)).astype(np.float32)), cr.tensor(rng.integers(0, 3, 6)))
               for _ in range(5)]
    want, got, run = _run_both(make, batches)
    assert all(np.array_equal(a, b) for a, b in zip(want, got))
    assert run.code.count("sum_reduce(") == 2, run.code  # the two bias gradients, without sum's forward


def test_multinomial_inside_a_step_draws_again_on_every_replay():
    def make():
        cr.manual_seed(5)

        def step(logits):
            return cr.multinomial(F.softmax(logits, dim=-1), 3, replacement=True)
        return step
    rng = np.random.default_rng(4)
    batches = [(cr.tensor(rng.standard_normal((4, 6)).astype(np.float32)),) for _ in range(6)]
    eager = make()
    want = [eager(*b)._data.copy() for b in batches]
    compiled = cr.compile(make(), warn=False)
    got = [compiled(*b)._data.copy() for b in batches]
    assert compiled.calls["replayed"] == 4, compiled.reasons
    assert all(np.array_equal(a, b) for a, b in zip(want, got))
    assert len({a.tobytes() for a in got}) == len(got)  # a new draw every call, not the recorded one


def _bits(a) -> bytes:
    return np.asarray(a).tobytes()


def _scalar_step_maker(dtype):
    def make():
        w = cr.from_numpy(np.linspace(-1, 1, 6).astype(dtype)).requires_grad_()

        def step(x):
            w.grad = None
            # 0-d sums combined with Python numbers and each other: NumPy scalar arithmetic on replay
            loss = (w * x).sum() * 0.5 + (x * x).sum() / 3 - (-(w * w).sum()) + 1
            loss.backward()
            return loss, w.grad
        return step
    return make


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_scalar_arithmetic_becomes_operators_with_eager_bits_and_dtype(dtype):
    rng = np.random.default_rng(5)
    batches = [(cr.from_numpy(rng.standard_normal(6).astype(dtype)),) for _ in range(5)]
    make = _scalar_step_maker(dtype)
    eager, compiled = make(), cr.compile(make(), warn=False)
    want = [tuple(t._data.copy() for t in eager(*b)) for b in batches]
    got = [tuple(t._data.copy() for t in compiled(*b)) for b in batches]
    assert compiled.calls["replayed"] == 3, compiled.reasons
    for (lw, gw), (lg, gg) in zip(want, got):
        assert lg.dtype == lw.dtype == np.dtype(dtype) and _bits(lg) == _bits(lw) and _bits(gg) == _bits(gw)
    code = compiled.code
    assert re.search(r"= \(v\d+ [+*/-] (v|s)\d*\)", code) or re.search(r"= \(s\d* [+*/-] v\d+\)", code), code


def _grads_step():
    """A step without zero_grad, returning its loss and every gradient (flattened), and its model."""
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))

    def step(x):
        loss = model(x).square().mean()
        loss.backward()
        return cr.cat([loss.detach().reshape(1)] + [p.grad.reshape(-1) for p in model.parameters()])
    return step, model


@pytest.mark.parametrize("zero_until", [6, 2, 0])
def test_leaf_gradients_are_handed_over_or_accumulated_as_eager(zero_until):
    """The gradients cleared before every call (6), before the two recorded calls only (2: the replay
    finds gradients where the recordings had none), or never (0: accumulated from the second call)."""
    rng = np.random.default_rng(6)
    batches = [(cr.tensor(rng.standard_normal((5, 3)).astype(np.float32)),) for _ in range(6)]
    (eager, em), (fn, cm) = _grads_step(), _grads_step()
    step = cr.compile(fn, warn=False)
    want, got = [], []
    for i, b in enumerate(batches):
        if i < zero_until:
            em.zero_grad()
            cm.zero_grad()
        want.append(eager(*b)._data.copy())
        got.append(step(*b)._data.copy())
    assert step.calls["replayed"] == 4, step.reasons
    assert all(_bits(a) == _bits(b) for a, b in zip(want, got))
    owners = {id(p.grad._data if p.grad._data.base is None else p.grad._data.base) for p in cm.parameters()}
    assert len(owners) == len(list(cm.parameters()))  # no two leaves share a gradient buffer
    # the short way only when both recordings found no gradients; the general one always behind it
    assert ("_grad is " in step.code) == (zero_until >= 2) and "_acc(" in step.code, step.code
