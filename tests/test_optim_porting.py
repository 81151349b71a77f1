"""torch.optim habits that ported scripts rely on (issue 15), each against torch 2.13: frozen parameters
in the list, zero_grad's default, state dicts in both directions, editing param_groups mid-run."""

import inspect

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim
from chainrule.optim import lr_scheduler

# One case per optimizer kind, each with state (momentum, moments, sums).
KINDS = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1)),
]
IDS = [n for n, _ in KINDS]
SHAPES = [(5, 3), (7,), ()]


def _pair(torch, name, kw, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [cr.Tensor(a.copy(), requires_grad=True) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    return ours, getattr(optim, name)(ours, **kw), theirs, getattr(torch.optim, name)(theirs, **kw)


def _steps(torch, ours, opt, theirs, topt, n, seed=1, each=None):
    rng = np.random.default_rng(seed)
    for t in range(n):
        if each is not None:
            each(t)
        for p, q in zip(ours, theirs):
            g = rng.standard_normal(p.shape)
            p.grad = cr.Tensor(g.astype(p._data.dtype))
            q.grad = torch.from_numpy(g.astype(p._data.dtype))
        opt.step()
        topt.step()


def _same(ours, theirs, rtol=1e-9, atol=1e-12):
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p._data, q.detach().numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name,kw", KINDS, ids=IDS)
def test_parameters_that_do_not_require_grad_are_kept_and_skipped(torch, name, kw):
    """torch accepts a frozen tensor in the list (a frozen layer in model.parameters()); it never gets a
    gradient, so it is never updated and gets no state."""
    rng = np.random.default_rng(0)
    w0, f0 = rng.standard_normal((4, 3)), rng.standard_normal(3)
    w, frozen = cr.Tensor(w0.copy(), requires_grad=True), cr.Tensor(f0.copy())
    tw, tfrozen = torch.tensor(w0.copy(), requires_grad=True), torch.tensor(f0.copy())
    opt, topt = getattr(optim, name)([w, frozen], **kw), getattr(torch.optim, name)([tw, tfrozen], **kw)
    for _ in range(10):
        g = rng.standard_normal((4, 3))
        w.grad, tw.grad = cr.Tensor(g), torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    _same([w, frozen], [tw, tfrozen])
    np.testing.assert_array_equal(frozen._data, f0)
    assert frozen not in opt.state  # torch's Adagrad made its state at construction: step 0, never stepped
    assert float(topt.state[tfrozen].get("step", 0)) == 0 if tfrozen in topt.state else True


def test_zero_grad_sets_gradients_to_none_by_default_as_torch_2(torch):
    default = inspect.signature(optim.Optimizer.zero_grad).parameters["set_to_none"].default
    assert default is inspect.signature(torch.optim.Optimizer.zero_grad).parameters["set_to_none"].default is True
    w, tw = cr.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    opt, topt = optim.SGD([w], lr=0.1), torch.optim.SGD([tw], lr=0.1)
    for set_to_none in (False, True):
        (w * w).sum().backward()
        (tw * tw).sum().backward()
        opt.zero_grad(set_to_none=set_to_none) if not set_to_none else opt.zero_grad()
        topt.zero_grad(set_to_none=set_to_none) if not set_to_none else topt.zero_grad()
        if set_to_none:
            assert w.grad is None and tw.grad is None
        else:
            np.testing.assert_array_equal(w.grad._data, tw.grad.numpy())
            assert not w.grad._data.any()


def _to_torch(torch, sd):
    """Our state dict (ndarrays, int steps) as torch.optim loads it: tensors, the step a float tensor."""
    state = {i: {k: torch.tensor(float(v)) if k == "step" else torch.from_numpy(np.array(v)) for k, v in s.items()}
             for i, s in sd["state"].items()}
    return {"state": state, "param_groups": sd["param_groups"]}


@pytest.mark.parametrize("name,kw", KINDS, ids=IDS)
def test_state_dict_goes_to_torch_and_back(torch, name, kw):
    """Ours -> torch after 15 steps, 10 more steps in torch, torch -> ours, 10 more here: the same
    trajectory as torch running all 35 steps alone, and the keys are torch's."""
    ours, opt, theirs, topt = _pair(torch, name, kw)
    _steps(torch, ours, opt, theirs, topt, 35)
    ours, opt, theirs2, topt2 = _pair(torch, name, kw)
    _steps(torch, ours, opt, theirs2, topt2, 15, seed=1)
    assert [set(s) for s in opt.state_dict()["state"].values()] == [set(s) for s in topt2.state_dict()["state"].values()]
    fresh = [torch.tensor(p._data.copy(), requires_grad=True) for p in ours]
    tnew = getattr(torch.optim, name)(fresh, lr=123.0)  # the state dict brings the real hyperparameters
    tnew.load_state_dict(_to_torch(torch, opt.state_dict()))
    rng = np.random.default_rng(1)
    gs = [[rng.standard_normal(p.shape) for p in ours] for _ in range(35)]
    for t in range(15, 25):
        for q, g in zip(fresh, gs[t]):
            q.grad = torch.from_numpy(g.copy())
        tnew.step()
    back = [cr.Tensor(q.detach().numpy().copy(), requires_grad=True) for q in fresh]
    mine = getattr(optim, name)(back, lr=123.0)
    mine.load_state_dict(tnew.state_dict())
    for t in range(25, 35):
        for p, g in zip(back, gs[t]):
            p.grad = cr.Tensor(g.copy())
        mine.step()
    _same(back, theirs)
    assert mine.param_groups[0]["lr"] == kw["lr"]


@pytest.mark.parametrize("name,kw", KINDS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_editing_param_groups_mid_run_takes_effect_at_the_next_step(torch, name, kw, dtype):
    """As in torch: lr (what schedulers write) and the other hyperparameters are read at every step."""
    ours, opt, theirs, topt = _pair(torch, name, kw, dtype)
    other = {"SGD": ("momentum", 0.5), "Adagrad": ("lr_decay", 0.1), "RMSprop": ("alpha", 0.9),
             "Adam": ("betas", (0.5, 0.9)), "AdamW": ("weight_decay", 0.5)}[name]

    def edit(t):
        for o in (opt, topt):
            for group in o.param_groups:
                if t == 8:
                    group["lr"] *= 0.3
                if t == 16:
                    group[other[0]] = other[1]
    _steps(torch, ours, opt, theirs, topt, 25, each=edit)
    rtol, atol = (1e-4, 1e-5) if dtype == np.float32 else (1e-9, 1e-12)
    _same(ours, theirs, rtol, atol)


@pytest.mark.parametrize("name,kw", KINDS, ids=IDS)
def test_a_scheduler_drives_the_same_trajectory_as_torchs(torch, name, kw):
    ours, opt, theirs, topt = _pair(torch, name, kw)
    mine, its = lr_scheduler.StepLR(opt, step_size=3, gamma=0.5), torch.optim.lr_scheduler.StepLR(topt, 3, 0.5)

    def schedule(t):
        if t:
            mine.step()
            its.step()
    _steps(torch, ours, opt, theirs, topt, 12, each=schedule)
    _same(ours, theirs)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in topt.param_groups]


def test_newton_leaves_frozen_parameters_alone():
    """Newton differentiates the closure's loss itself: only with respect to the parameters that require grad."""
    w, frozen = cr.tensor([1.0, 2.0], requires_grad=True), cr.tensor([3.0])
    optim.Newton([w, frozen]).step(lambda: ((w - 5.0) ** 2).sum() + (frozen * w).sum())
    np.testing.assert_allclose(w._data, [3.5, 3.5])  # the quadratic's minimum, 5 - 3 / 2, in one step
    np.testing.assert_array_equal(frozen._data, [3.0])


@pytest.mark.parametrize("fused", [None, False])
def test_an_optimizer_pickles_and_deep_copies_mid_run(fused):
    """(sklearn clones and pickles estimators that hold one.) The copy carries on exactly as the original."""
    import copy
    import pickle

    w = cr.Tensor(np.linspace(-1, 1, 12).reshape(3, 4), requires_grad=True)
    opt = optim.Adam([w], lr=0.1, fused=fused)
    for copier in (lambda o: pickle.loads(pickle.dumps(o)), copy.deepcopy):
        w.grad = cr.Tensor(np.ones((3, 4)))
        opt.step()
        twin = copier(opt)
        (v,) = twin.param_groups[0]["params"]
        assert (twin._kernel is None) == (opt._kernel is None)
        for o, p in ((opt, w), (twin, v)):
            p.grad = cr.Tensor(np.full((3, 4), 0.5))
            o.step()
        np.testing.assert_array_equal(v._data, w._data)
