"""Optimizers: N-step trajectories against torch.optim, checkpoints, the lecture's forms, errors."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim

SHAPES = [(5, 3), (7,), (2, 3, 4), ()]
STEPS = 100

# (optimizer name, kwargs): every option combination that changes the arithmetic.
CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.5)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.1, weight_decay=0.1, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, weight_decay=0.05, amsgrad=True, maximize=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-6)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(centered=True)),
    ("RMSprop", dict(lr=0.001, momentum=0.9)),
    ("RMSprop", dict(lr=0.001, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.9, centered=True)),
    ("RMSprop", dict(maximize=True)),
]
IDS = [f"{n}-" + ",".join(f"{k}={v}" for k, v in kw.items()) for n, kw in CASES]


def _problem(dtype, steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    for gs in grads[::7]:
        gs[1][:2] = 0  # some exact zeros: sqrt(G) + eps, 0/0 guards
    return init, grads


def _run_cr(name, kw, init, grads, opt=None, params=None):
    params = params or [cr.Tensor(x.copy(), requires_grad=True) for x in init]
    opt = opt or getattr(optim, name)(params, **kw)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = cr.Tensor(g.copy())
        opt.step()
    return params, opt


def _run_torch(torch, name, kw, init, grads):
    params = [torch.tensor(x.copy(), requires_grad=True) for x in init]
    opt = getattr(torch.optim, name)(params, **kw)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = torch.from_numpy(g.copy())
        opt.step()
    return params, opt


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
@pytest.mark.parametrize("dtype,rtol,atol", [(np.float64, 1e-6, 1e-12), (np.float32, 1e-4, 1e-5)], ids=["f64", "f32"])
def test_matches_torch(torch, name, kw, dtype, rtol, atol):
    init, grads = _problem(dtype)
    ours, _ = _run_cr(name, kw, init, grads)
    theirs, _ = _run_torch(torch, name, kw, init, grads)
    for p, q in zip(ours, theirs):
        assert p._data.dtype == dtype
        np.testing.assert_allclose(p._data, q.detach().numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_blocked_and_noncontiguous_updates_match_torch(torch, name, kw):
    """Big tensors are updated block by block (partial last block here), transposed views whole."""
    rng = np.random.default_rng(3)
    init = [rng.standard_normal((37, 29)), rng.standard_normal((30, 20)).T, rng.standard_normal(5)]
    grads = [[rng.standard_normal(x.shape) for x in init] for _ in range(20)]
    params = [cr.Tensor(x.copy(order="K"), requires_grad=True) for x in init]
    assert not params[1]._data.flags.c_contiguous
    opt = getattr(optim, name)(params, fused=False, **kw)  # the NumPy path (the kernel takes whole arrays)
    opt.CHUNK = 100  # 37 * 29 = 1073 elements: 10 full blocks and a partial one
    _run_cr(name, kw, init, grads, opt=opt, params=params)
    theirs, _ = _run_torch(torch, name, kw, init, grads)
    for p, q in zip(params, theirs):
        np.testing.assert_allclose(p._data, q.detach().numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_state_dict_resume_is_exact(torch, name, kw):
    """Stop after 40 steps, rebuild a NEW optimizer from the state dict, finish: identical to an
    uninterrupted run (bit for bit), and to torch."""
    init, grads = _problem(np.float64)
    full, _ = _run_cr(name, kw, init, grads)
    first, opt = _run_cr(name, kw, init, grads[:40])
    sd = opt.state_dict()
    params = [cr.Tensor(p._data.copy(), requires_grad=True) for p in first]
    fresh = getattr(optim, name)(params)  # default hyperparameters: the state dict brings the real ones
    fresh.load_state_dict(sd)
    resumed, _ = _run_cr(name, kw, init, grads[40:], opt=fresh, params=params)
    for a, b in zip(full, resumed):
        np.testing.assert_array_equal(a._data, b._data)
    theirs, _ = _run_torch(torch, name, kw, init, grads)
    for p, q in zip(resumed, theirs):
        np.testing.assert_allclose(p._data, q.detach().numpy(), rtol=1e-6, atol=1e-12)


def test_state_dict_is_a_snapshot_in_torch_layout():
    init, grads = _problem(np.float64, steps=3)
    params, opt = _run_cr("Adam", dict(lr=0.01), init, grads)
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    assert sd["state"][0]["step"] == 3 and set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert sd["param_groups"][0]["params"] == [0, 1, 2, 3] and sd["param_groups"][0]["lr"] == 0.01
    before = sd["state"][0]["exp_avg"].copy()
    _run_cr("Adam", {}, init, grads, opt=opt, params=params)
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], before)  # not aliased to the live state


@pytest.mark.parametrize("name,kw", [("Adam", dict(lr=0.01, amsgrad=True)), ("SGD", dict(lr=0.05, momentum=0.9)),
                                     ("RMSprop", dict(momentum=0.5, centered=True)), ("Adagrad", dict(lr_decay=0.1))])
def test_loads_a_torch_state_dict(torch, name, kw):
    init, grads = _problem(np.float64)
    theirs_half, topt = _run_torch(torch, name, kw, init, grads[:50])
    params = [cr.Tensor(q.detach().numpy().copy(), requires_grad=True) for q in theirs_half]
    opt = getattr(optim, name)(params)
    opt.load_state_dict(topt.state_dict())
    _run_cr(name, kw, init, grads[50:], opt=opt, params=params)
    theirs, _ = _run_torch(torch, name, kw, init, grads)
    for p, q in zip(params, theirs):
        np.testing.assert_allclose(p._data, q.detach().numpy(), rtol=1e-6, atol=1e-12)


def test_param_groups_have_their_own_hyperparameters(torch):
    init, grads = _problem(np.float64, steps=30)
    ps = [cr.Tensor(x.copy(), requires_grad=True) for x in init]
    opt = optim.SGD([{"params": ps[:2]}, {"params": ps[2:3], "lr": 0.5, "nesterov": False}], lr=0.05, momentum=0.9,
                    nesterov=True)
    opt.add_param_group({"params": [ps[3]], "momentum": 0.0, "nesterov": False})
    tp = [torch.tensor(x.copy(), requires_grad=True) for x in init]
    topt = torch.optim.SGD([{"params": tp[:2]}, {"params": tp[2:3], "lr": 0.5, "nesterov": False}], lr=0.05,
                           momentum=0.9, nesterov=True)
    topt.add_param_group({"params": [tp[3]], "momentum": 0.0, "nesterov": False})
    _run_cr("SGD", {}, init, grads, opt=opt, params=ps)
    for gs in grads:
        for p, g in zip(tp, gs):
            p.grad = torch.from_numpy(g.copy())
        topt.step()
    for p, q in zip(ps, tp):
        np.testing.assert_allclose(p._data, q.detach().numpy(), rtol=1e-10)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.5, 0.05]


# ----- the lecture's forms versus PyTorch's -----------------------------------------------------
def _quadratic_grad(A, b):
    return lambda th: A @ th - b  # f(theta) = 1/2 theta^T A theta - b^T theta


def test_momentum_lecture_form_equals_pytorch_form_for_constant_lr():
    """v = gamma v + lr g; theta -= v   versus   b = mu b + g; theta -= lr b: v = lr b."""
    A, b = np.diag([1.0, 10.0]), np.array([1.0, -2.0])
    grad = _quadratic_grad(A, b)
    lr, gamma = 0.05, 0.9
    theta, v = np.array([3.0, 1.0]), np.zeros(2)
    p = cr.tensor(theta.copy(), dtype=np.float64, requires_grad=True)
    opt = optim.SGD([p], lr=lr, momentum=gamma)
    for _ in range(50):
        v = gamma * v + lr * grad(theta)          # the lecture, literally
        theta = theta - v
        p.grad = cr.Tensor(grad(p._data))
        opt.step()
        np.testing.assert_allclose(p._data, theta, rtol=1e-12, atol=1e-14)
    q = cr.tensor([3.0, 1.0], dtype=np.float64, requires_grad=True)
    lect = optim.SGD([q], lr=lr, momentum=gamma, lr_in_velocity=True)
    for _ in range(50):
        q.grad = cr.Tensor(grad(q._data))
        lect.step()
    np.testing.assert_allclose(q._data, theta, rtol=1e-12, atol=1e-14)


def test_momentum_forms_differ_under_a_schedule():
    """When lr changes mid-run the lecture's velocity keeps old steps at the old lr; PyTorch's
    buffer is rescaled by the new lr at once. lr_in_velocity=True follows the lecture."""
    A, b = np.diag([1.0, 10.0]), np.array([1.0, -2.0])
    grad = _quadratic_grad(A, b)
    theta, v, gamma = np.array([3.0, 1.0]), np.zeros(2), 0.9
    ps = [cr.tensor([3.0, 1.0], dtype=np.float64, requires_grad=True) for _ in range(2)]
    opts = [optim.SGD([ps[0]], lr=0.05, momentum=gamma), optim.SGD([ps[1]], lr=0.05, momentum=gamma, lr_in_velocity=True)]
    for t in range(20):
        lr = 0.05 if t < 10 else 0.005
        v = gamma * v + lr * grad(theta)
        theta = theta - v
        for p, o in zip(ps, opts):
            o.param_groups[0]["lr"] = lr
            p.grad = cr.Tensor(grad(p._data))
            o.step()
    np.testing.assert_allclose(ps[1]._data, theta, rtol=1e-12)
    assert np.abs(ps[0]._data - theta).max() > 1e-3


def test_nesterov_lookahead_formula_matches_reparametrised_sgd():
    """The lecture's NAG, v_t = gamma v_{t-1} + lr grad f(theta_t - gamma v_{t-1}), theta_{t+1} =
    theta_t - v_t, run literally; with phi_t = theta_t - gamma v_{t-1}:
        phi_{t+1} = theta_t - (1 + gamma) v_t = phi_t + gamma v_{t-1} - (1 + gamma) v_t
                  = phi_t - lr g_t - gamma v_t          (substituting v_t)
                  = phi_t - lr (g_t + gamma b_t)        (v_t = lr b_t, b_t = gamma b_{t-1} + g_t)
    with g_t = grad f(phi_t): exactly SGD(nesterov=True) on phi. phi_1 = theta_1 since v_0 = 0."""
    A, b = np.array([[3.0, 1.0], [1.0, 20.0]]), np.array([1.0, -2.0])
    grad = _quadratic_grad(A, b)
    lr, gamma = 0.04, 0.9
    theta, v = np.array([3.0, 1.0]), np.zeros(2)
    p = cr.tensor(theta.copy(), dtype=np.float64, requires_grad=True)
    opt = optim.SGD([p], lr=lr, momentum=gamma, nesterov=True)
    for _ in range(200):
        np.testing.assert_allclose(p._data, theta - gamma * v, rtol=1e-10, atol=1e-13)  # phi_t
        v = gamma * v + lr * grad(theta - gamma * v)   # the lecture, literally
        theta = theta - v
        p.grad = cr.Tensor(grad(p._data))
        opt.step()
    opt_theta = np.linalg.solve(A, b)
    np.testing.assert_allclose(theta, opt_theta, atol=1e-6)
    np.testing.assert_allclose(p._data, opt_theta, atol=1e-6)


def test_adagrad_lecture_sqrt_G_minus_eps_is_a_typo():
    """sqrt(G - eps) is NaN while G < eps (a parameter with zero gradient so far); implemented is
    PyTorch's theta -= lr g / (sqrt(G) + eps)."""
    g = np.array([0.0, 1e-6, 2.0])
    lr, eps = 0.1, 1e-10
    with np.errstate(invalid="ignore"):
        lecture = -lr / np.sqrt(g ** 2 - eps) * g
    assert np.isnan(lecture[:2]).all()
    p = cr.tensor(np.zeros(3), dtype=np.float64, requires_grad=True)
    p.grad = cr.Tensor(g.copy())
    optim.Adagrad([p], lr=lr, eps=eps).step()
    np.testing.assert_allclose(p._data, -lr * g / (np.sqrt(g ** 2) + eps), rtol=1e-15)
    assert np.isfinite(p._data).all()


def test_rmsprop_eps_in_sqrt_is_the_lecture_form():
    """The lecture: E = 0.9 E + 0.1 g^2, theta -= lr g / sqrt(E + eps). Small gradients show the
    difference: inside the root the denominator's floor is sqrt(eps)."""
    rng = np.random.default_rng(1)
    gs = [1e-5 * rng.standard_normal(4) for _ in range(20)]
    lr, eps = 0.01, 1e-8
    theta, E = np.zeros(4), np.zeros(4)
    ps = [cr.tensor(np.zeros(4), dtype=np.float64, requires_grad=True) for _ in range(2)]
    lect = optim.RMSprop([ps[0]], lr=lr, alpha=0.9, eps=eps, eps_in_sqrt=True)
    torchform = optim.RMSprop([ps[1]], lr=lr, alpha=0.9, eps=eps)
    for g in gs:
        E = 0.9 * E + 0.1 * g ** 2
        theta = theta - lr / np.sqrt(E + eps) * g
        for p, o in zip(ps, (lect, torchform)):
            p.grad = cr.Tensor(g.copy())
            o.step()
    np.testing.assert_allclose(ps[0]._data, theta, rtol=1e-12)
    assert np.abs(ps[1]._data - theta).max() > 10 * np.abs(theta).max()


def test_adam_is_the_lectures_bias_corrected_update():
    rng = np.random.default_rng(2)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    theta, m, v = np.zeros(3), np.zeros(3), np.zeros(3)
    p = cr.tensor(np.zeros(3), dtype=np.float64, requires_grad=True)
    opt = optim.Adam([p], lr=lr)
    for t in range(1, 31):
        g = rng.standard_normal(3)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        theta = theta - lr / (np.sqrt(v_hat) + eps) * m_hat
        p.grad = cr.Tensor(g)
        opt.step()
    np.testing.assert_allclose(p._data, theta, rtol=1e-13)


# ----- mechanics ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop"])
def test_float32_stays_float32_and_scratch_is_allocated_once(name):
    p = cr.randn(50, 20, requires_grad=True)
    kw = {"momentum": 0.9, "weight_decay": 0.1} if name == "SGD" else {"weight_decay": 0.1}
    opt = getattr(optim, name)([p], **kw)
    p.grad = cr.randn(50, 20)
    opt.step()
    # (the compiled Adam needs no scratch at all)
    bufs = [id(b) for b in opt._scratch.get(np.dtype(np.float32), [])] + [id(v) for v in opt.state[p].values()
                                                                          if isinstance(v, np.ndarray)]
    data_id = id(p._data)
    for _ in range(5):
        p.grad = cr.randn(50, 20)
        opt.step()
    assert p._data.dtype == np.float32 and id(p._data) == data_id
    assert [id(b) for b in opt._scratch.get(np.dtype(np.float32), [])] + [id(v) for v in opt.state[p].values()
                                                                  if isinstance(v, np.ndarray)] == bufs
    assert all(b.size == opt.CHUNK for b in opt._scratch.get(np.dtype(np.float32), []))  # scratch does not grow with P
    assert all(v.dtype == np.float32 for v in opt.state[p].values() if isinstance(v, np.ndarray))


def test_step_returns_closure_loss_and_skips_params_without_grad():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    u = cr.tensor([5.0], requires_grad=True)
    opt = optim.SGD([w, u], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss) == pytest.approx(5.0)
    np.testing.assert_allclose(w._data, [0.8, 1.6], rtol=1e-6)
    np.testing.assert_array_equal(u._data, [5.0])
    assert u not in opt.state


def test_zero_grad():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    w.grad = cr.tensor([3.0, 4.0])
    buf = w.grad._data
    opt.zero_grad(set_to_none=False)
    assert w.grad._data is buf and not buf.any()
    opt.zero_grad()
    assert w.grad is None


@pytest.mark.parametrize("make,msg", [
    (lambda p: optim.SGD(p, lr=-0.1), "lr must be >= 0, got -0.1"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-1), "momentum must be >= 0, got -1"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=2.0), r"dampening must be in \[0, 1\], got 2.0"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), r"betas\[0\] must be in \[0, 1\), got 1.0"),
    (lambda p: optim.Adam(p, eps=-1e-8), "eps must be >= 0, got -1e-08"),
    (lambda p: optim.Adagrad(p, lr_decay=-1), "lr_decay must be >= 0, got -1"),
    (lambda p: optim.RMSprop(p, alpha=1.5), r"alpha must be in \[0, 1\], got 1.5"),
    (lambda p: optim.AdamW(p, weight_decay=-0.1), "weight_decay must be >= 0, got -0.1"),
    (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda p: optim.SGD([{"params": p}, {"params": p}], lr=0.1), "more than one parameter group"),
    (lambda p: optim.SGD([{"params": p}, {"params": [cr.zeros(2, requires_grad=True)], "lr": -1.0}], lr=0.1),
     "lr must be >= 0, got -1.0"),
])
def test_hyperparameter_errors_name_value_and_range(make, msg):
    with pytest.raises(ValueError, match=msg):
        make([cr.zeros(3, requires_grad=True)])


def test_load_state_dict_rejects_mismatched_groups():
    a, b = cr.zeros(3, requires_grad=True), cr.zeros(2, requires_grad=True)
    sd = optim.Adam([a, b]).state_dict()
    with pytest.raises(ValueError, match="group 0 has 2 parameters in the state dict but 1 here"):
        optim.Adam([a]).load_state_dict(sd)


def test_describe_shows_equations_with_current_hyperparameters():
    p = cr.zeros(3, requires_grad=True)
    opt = optim.Adam([p], lr=0.01, betas=(0.8, 0.99), amsgrad=True)
    text = opt.describe()
    assert "m = 0.8 * m + 0.2 * g" in text and "v_hat = v_max / (1 - 0.99^t)" in text
    assert "theta = theta - 0.01 * (m_hat / (sqrt(v_hat) + 1e-08))" in text
    assert "v_max = maximum(v_max, v)    # amsgrad" in text
    opt.param_groups[0]["lr"] = 0.5
    assert "theta = theta - 0.5 * (m_hat" in opt.describe()
    sgd = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True).describe()
    assert "b = 0.9 * b + 1 * g" in sgd and "theta = theta - 0.1 * (g + 0.9 * b)" in sgd
    rms = optim.RMSprop([p], eps_in_sqrt=True).describe()
    assert "s = E[g^2]" in rms and "denom = sqrt(s + 1e-08)" in rms
    assert "lr_t = 0.01 / (1 + (t - 1) * 0.5)" in optim.Adagrad([p], lr_decay=0.5).describe()
    assert "theta = 0.99999 * theta    # decoupled" in optim.AdamW([p]).describe()
    assert "g = g + 0.1 * theta" in optim.Adam([p], weight_decay=0.1).describe()


def test_numpy_scalar_hyperparameters_become_python_floats():
    p = cr.randn(4, requires_grad=True)
    opt = optim.Adam([p], lr=np.float64(0.01), betas=(np.float64(0.9), 0.999))
    assert type(opt.param_groups[0]["lr"]) is float and type(opt.param_groups[0]["betas"][0]) is float
    p.grad = cr.randn(4)
    opt.step()
    assert p._data.dtype == np.float32


def test_accepts_module_parameters_and_named_parameters():
    from chainrule import nn

    model = nn.Linear(3, 2)
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == [n for n, _ in model.named_parameters()]
    before = [p._data.copy() for p in model.parameters()]
    loss = (model(cr.randn(5, 3)) ** 2).mean()
    loss.backward()
    opt.step()
    assert all(np.abs(p._data - b).max() > 0 for p, b in zip(model.parameters(), before))
