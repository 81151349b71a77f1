"""Learning-rate schedules: lr sequences over many epochs against torch.optim.lr_scheduler."""

import math
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim
from chainrule.optim import lr_scheduler as sched

EPOCHS = 120

CASES = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[10, 25, 25, 60], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.97)),
    ("CosineAnnealingLR", dict(T_max=30)),
    ("CosineAnnealingLR", dict(T_max=17, eta_min=0.001)),
    ("LinearLR", dict()),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.5, total_iters=40)),
    ("LambdaLR", dict(lr_lambda=lambda e: 1.0 / (1 + e) ** 0.5)),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CASES)]


def _opts(torch):
    ps = [cr.zeros(3, requires_grad=True), cr.zeros(2, requires_grad=True)]
    ours = optim.SGD([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.5}], lr=0.1, momentum=0.9)
    tp = [torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)]
    theirs = torch.optim.SGD([{"params": tp[:1]}, {"params": tp[1:], "lr": 0.5}], lr=0.1, momentum=0.9)
    return ours, theirs


def _sequence(opt, s, epochs=EPOCHS, metrics=None):
    out = [list(s.get_last_lr())]
    for e in range(epochs):
        opt.step()
        s.step() if metrics is None else s.step(metrics[e])
        out.append(list(s.get_last_lr()))
    return np.array(out)


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_lr_sequence_matches_torch(torch, name, kw):
    ours, theirs = _opts(torch)
    a = _sequence(ours, getattr(sched, name)(ours, **kw))
    b = _sequence(theirs, getattr(torch.optim.lr_scheduler, name)(theirs, **kw))
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)
    assert [g["lr"] for g in ours.param_groups] == list(a[-1])


def test_chained_warmup_then_cosine_matches_torch(torch):
    ours, theirs = _opts(torch)
    s1, s2 = sched.LinearLR(ours, start_factor=0.01, total_iters=10), sched.CosineAnnealingLR(ours, T_max=50)
    t1 = torch.optim.lr_scheduler.LinearLR(theirs, start_factor=0.01, total_iters=10)
    t2 = torch.optim.lr_scheduler.CosineAnnealingLR(theirs, T_max=50)
    for _ in range(80):
        ours.step(), theirs.step()
        s1.step(), s2.step(), t1.step(), t2.step()
        np.testing.assert_allclose(s2.get_last_lr(), t2.get_last_lr(), rtol=1e-13)


@pytest.mark.parametrize("kw", [dict(), dict(mode="max", factor=0.5, patience=2, threshold=0.05, cooldown=3),
                                dict(patience=3, threshold_mode="abs", threshold=0.01, min_lr=[0.02, 0.1]),
                                dict(factor=0.2, patience=0, min_lr=1e-3)])
def test_reduce_on_plateau_matches_torch(torch, kw):
    rng = np.random.default_rng(0)
    metrics = list(1.0 / np.arange(1, 31)) + list(0.03 + 0.01 * rng.random(60)) + list(0.02 - 0.0001 * np.arange(30))
    ours, theirs = _opts(torch)
    a = _sequence(ours, sched.ReduceLROnPlateau(ours, **kw), metrics=metrics)
    b = _sequence(theirs, torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kw), metrics=metrics)
    np.testing.assert_allclose(a, b, rtol=1e-13)
    assert a[-1, 0] < a[0, 0]  # it did reduce


@pytest.mark.parametrize("name,kw", CASES[:-1] + [("ReduceLROnPlateau", dict(patience=2))], ids=IDS[:-1] + ["plateau"])
def test_state_dict_resume(name, kw):
    """Stop at epoch 33, rebuild optimizer and scheduler from their state dicts, go on: same lrs."""
    metrics = [1.0 / (1 + min(e, 20)) for e in range(EPOCHS)]
    plateau = name == "ReduceLROnPlateau"

    def make():
        p = cr.zeros(2, requires_grad=True)
        o = optim.Adam([p], lr=0.1)
        return o, getattr(sched, name)(o, **kw)

    o, s = make()
    full = _sequence(o, s, metrics=metrics if plateau else None)
    o, s = make()
    head = _sequence(o, s, epochs=33, metrics=metrics if plateau else None)
    osd, ssd = o.state_dict(), s.state_dict()
    o2, s2 = make()
    o2.load_state_dict(osd)
    s2.load_state_dict(ssd)
    tail = _sequence(o2, s2, epochs=EPOCHS - 33, metrics=metrics[33:] if plateau else None)
    np.testing.assert_array_equal(np.concatenate([head, tail[1:]]), full)


def test_lambda_state_dict_saves_callable_objects():
    class Decay:
        def __init__(self):
            self.k = 0.5

        def __call__(self, e):
            return self.k ** e

    o = optim.SGD([cr.zeros(1, requires_grad=True)], lr=1.0)
    s = sched.LambdaLR(o, Decay())
    s.lr_lambdas[0].k = 0.9
    sd = s.state_dict()
    assert sd["lr_lambdas"] == [{"k": 0.9}]
    s2 = sched.LambdaLR(optim.SGD([cr.zeros(1, requires_grad=True)], lr=1.0), Decay())
    s2.load_state_dict(sd)
    assert s2.lr_lambdas[0].k == 0.9


def test_closed_form_step_epoch_matches_torch(torch):
    ours, theirs = _opts(torch)
    s = sched.CosineAnnealingLR(ours, T_max=20)
    t = torch.optim.lr_scheduler.CosineAnnealingLR(theirs, T_max=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e in (5, 13, 2):
            s.step(e), t.step(e)
            np.testing.assert_allclose(s.get_last_lr(), t.get_last_lr(), rtol=1e-13)
    expected = 0.1 * (1 + math.cos(math.pi * 2 / 20)) / 2
    assert s.get_last_lr()[0] == pytest.approx(expected)


def test_errors():
    o = optim.SGD([cr.zeros(1, requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match="start_factor must be in"):
        sched.LinearLR(o, start_factor=0)
    with pytest.raises(ValueError, match="step_size must be an integer >= 1, got 0"):
        sched.StepLR(o, step_size=0)
    with pytest.raises(ValueError, match="factor must be in"):
        sched.ReduceLROnPlateau(o, factor=1.5)
    with pytest.raises(TypeError, match="not a chainrule Optimizer"):
        sched.StepLR(object(), step_size=1)
    with pytest.raises(KeyError, match="initial_lr"):
        sched.StepLR(optim.SGD([cr.zeros(1, requires_grad=True)], lr=1.0), step_size=1, last_epoch=3)
