"""The lean steps of a group (Optimizer._step_lean, _step_kernels): once every parameter of a stateless
rule took the small-parameter path, later steps run the group's NumPy calls as one list; once every
parameter of a stateful rule took the compiled-kernel path, its kernel calls run without the lookups. Whatever changes under it
(a parameter replaced, a gradient missing or reshaped, new data, the state cleared, a graph recorded
before the step) must give what the full path gives."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr

SHAPES = [(4, 3), (4,), (2, 4), (2,)]


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return [cr.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in SHAPES]


def _grads(params, seed):
    rng = np.random.default_rng(seed)
    for p in params:
        p.grad = cr.tensor(rng.standard_normal(p.shape).astype(np.float32))


def _expected(values, grads, lr):
    return [v - np.float32(lr) * g for v, g in zip(values, grads)]


def _warm(opt, params):
    for k in range(2):  # the second step runs the lean list
        _grads(params, k)
        opt.step()
    assert opt._prepared[0][3][0] is not None


def test_lean_steps_equal_the_rule():
    params = _params()
    opt = cr.optim.SGD(params, lr=0.1)
    values = [p._data.copy() for p in params]
    for k in range(4):
        _grads(params, k)
        grads = [p.grad._data.copy() for p in params]
        values = _expected(values, grads, 0.1)
        opt.step()
        assert all(np.array_equal(p._data, v) for p, v in zip(params, values))


@pytest.mark.parametrize("change", ["replace", "no_grad", "new_data", "cleared_state", "lr"])
def test_a_change_under_the_lean_list_takes_the_full_path(change):
    params = _params()
    opt = cr.optim.SGD(params, lr=0.1)
    _warm(opt, params)
    lr = 0.1
    if change == "replace":  # a new tensor in the group's list: it must be the one updated
        params[0] = opt.param_groups[0]["params"][0] = cr.tensor(np.ones((4, 3), np.float32), requires_grad=True)
    elif change == "new_data":
        params[2].data = cr.tensor(np.full((2, 4), 3.0, np.float32))
    elif change == "cleared_state":
        opt.state.clear()
    elif change == "lr":
        opt.param_groups[0]["lr"] = lr = 0.5
    _grads(params, 9)
    if change == "no_grad":
        params[1].grad = None
    before = [p._data.copy() for p in params]
    grads = [None if p.grad is None else p.grad._data.copy() for p in params]
    opt.step()
    for p, v, g in zip(params, before, grads):
        want = v if g is None else v - np.float32(lr) * g
        np.testing.assert_array_equal(p._data, want)
    if change == "cleared_state":
        assert all(p in opt.state for p in params)


def test_a_gradient_of_another_shape_is_refused_after_lean_steps():
    params = _params()
    opt = cr.optim.SGD(params, lr=0.1)
    _warm(opt, params)
    params[0]._grad = cr.tensor(np.ones((3, 4), np.float32))  # past the setter's own check
    with pytest.raises(ValueError, match=r"gradient of shape \(3, 4\) does not match its parameter's shape \(4, 3\)"):
        opt.step()


def test_a_graph_recorded_before_a_lean_step_refuses_to_backpropagate():
    params = _params()
    opt = cr.optim.SGD(params, lr=0.1)
    _warm(opt, params)
    x = cr.tensor(np.ones((5, 3), np.float32))
    out = (x @ params[0].T).sum()
    opt.step()  # params[0] updated in place after the product read it
    with pytest.raises(RuntimeError, match="updated in place"):
        out.backward()


# ----- the kernel path's lean step (Optimizer._step_kernels): stateful rules with compiled kernels -----
KERNEL_RULES = {"Adam": dict(lr=0.01), "AdamW": dict(lr=0.01, weight_decay=0.1), "RMSprop": dict(lr=0.01),
                "SGD momentum": dict(lr=0.1, momentum=0.9), "Adagrad": dict(lr=0.1)}


def _kernel_opt(name, params):
    pytest.importorskip("numba")
    cls = getattr(cr.optim, name.split()[0])
    return cls(params, fused=True, **KERNEL_RULES[name])


def _state_arrays(opt, params):
    return [{k: np.array(v) for k, v in opt.state[p].items()} for p in params]


def _change(change, opt, params):
    """Change what the lean kernel list relies on (``graph``: a product recorded before the step, returned)."""
    if change == "replace":
        params[0] = opt.param_groups[0]["params"][0] = cr.tensor(np.ones((4, 3), np.float32), requires_grad=True)
        params[0].grad = cr.tensor(np.full((4, 3), 0.5, np.float32))
    elif change == "no_grad":
        params[1].grad = None
    elif change == "new_data":
        params[2].data = cr.tensor(np.full((2, 4), 3.0, np.float32))
    elif change == "cleared_state":
        opt.state.clear()
    elif change == "lr":
        opt.param_groups[0]["lr"] = 0.5
    elif change == "loaded_state":
        opt.load_state_dict(opt.state_dict())
    elif change == "strided_grad":
        params[0]._grad = cr.tensor(np.ones((3, 4), np.float32).T)  # F-ordered: the NumPy program
    elif change == "graph":
        return (cr.tensor(np.ones((5, 3), np.float32)) @ params[0].T).sum()
    return None


@pytest.mark.parametrize("name", list(KERNEL_RULES))
@pytest.mark.parametrize("change", [None, "replace", "no_grad", "new_data", "cleared_state", "lr", "loaded_state",
                                    "strided_grad", "graph"])
def test_kernel_lean_steps_equal_the_full_path(name, change):
    """The same steps, once with the lean kernel list (warm) and once with the prepared steps forgotten
    before every step (the full path), must give the same bits in the parameters and the state."""
    runs = []
    for full in (False, True):
        params = _params()
        opt = _kernel_opt(name, params)
        for k in range(5):
            _grads(params, k)
            out = _change(change, opt, params) if k == 3 else None
            if full:
                opt._prepared.clear()
            elif k >= 2 and change is None:
                assert opt._prepared[0][3][1] is not None  # the lean list ran
            opt.step()
            if change == "graph" and k == 3:
                with pytest.raises(RuntimeError, match="updated in place"):
                    out.backward()
        runs.append(([p._data.copy() for p in params], _state_arrays(opt, params)))
    (pa, sa), (pb, sb) = runs
    assert all(a.tobytes() == b.tobytes() for a, b in zip(pa, pb))
    assert len(sa) == len(sb)
    for x, y in zip(sa, sb):
        assert x.keys() == y.keys() and all(x[k].tobytes() == y[k].tobytes() for k in x)


def test_plain_sgd_on_big_parameters_keeps_its_kernel_list():
    """Plain SGD keeps no state, so its parameters' state stays empty (the rule's first-step flag is
    on every step): the kernel list must use the same specialisation and not be rebuilt each step."""
    pytest.importorskip("numba")
    rng = np.random.default_rng(3)
    init = [rng.standard_normal(s).astype(np.float32) for s in [(96, 100), (9000,)]]  # >= UFUNCS_BELOW
    runs, lists = [], []
    for full in (False, True):
        params = [cr.tensor(a.copy(), requires_grad=True) for a in init]
        opt = cr.optim.SGD(params, lr=0.1, fused=True)
        for k in range(5):
            _grads(params, k)
            if full:
                opt._prepared.clear()
            opt.step()
            if not full and k >= 1:
                lists.append(opt._prepared[0][3][1])
        runs.append([p._data.copy() for p in params])
    assert lists[0] is not None and all(x is lists[0] for x in lists)  # built once, then reused
    assert all(a.tobytes() == b.tobytes() for a, b in zip(*runs))
