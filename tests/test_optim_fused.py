"""The compiled one-pass optimizer kernels (optim/_fused.py, numba): bit-identical to the NumPy programs.

test_optim.py checks every SGD/Adagrad/RMSprop/Adam/AdamW case against torch.optim with the default ``fused=None``,
which takes the kernel when numba is installed (CI installs it with the test extra); here the kernel
and the NumPy ufuncs are checked against each other bit for bit, so both paths are covered.
"""

import os

import numpy as np
import pytest
from test_optim import CASES as TORCH_CASES

import chainrule as cr
from chainrule import optim
from chainrule.optim import _fused

# Every case of test_optim.py (each option combination that changes the arithmetic), plus the options
# torch lacks (lr_in_velocity, eps_in_sqrt). Every trajectory starts from fresh state, so the first
# momentum step (b = g) is covered.
EXTRA_CASES = [
    ("SGD", dict(lr=0.1, weight_decay=0.1, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, lr_in_velocity=True)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, lr_in_velocity=True, weight_decay=0.01)),
    ("RMSprop", dict(alpha=0.9, eps_in_sqrt=True)),
    ("RMSprop", dict(centered=True, eps_in_sqrt=True, weight_decay=0.1)),
    ("RMSprop", dict(momentum=0.5, eps_in_sqrt=True, maximize=True)),
    ("RMSprop", dict(momentum=0.5, centered=True, eps_in_sqrt=True)),
]
CASES = TORCH_CASES + EXTRA_CASES
IDS = [f"{n}-" + ",".join(f"{k}={v}" for k, v in kw.items()) for n, kw in CASES]
OPTIMIZERS = ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"]
# A parameter bigger than Optimizer.CHUNK (the NumPy rule then runs block by block), a small one, a scalar.
SHAPES = [(300, 200), (7, 3), ()]


@pytest.fixture
def kernels():
    if not _fused.available():
        if os.environ.get("CHAINRULE_REQUIRE_ORACLE"):
            pytest.fail("numba is required in CI (the test extra installs chainrule[fast])")
        pytest.skip("numba not installed (pip install -e '.[fast]')")
    return _fused.kernels()


class _Spy(dict):
    """A kernel registry that records (program name, elements) for every kernel call."""

    def __init__(self, real, fail=False):
        super().__init__()
        self.real, self.fail, self.calls = real, fail, []

    def get(self, name, default=None):
        if self.fail:
            pytest.fail(f"kernel {name} called")
        real = self.real.get(name)
        if real is None:
            return None  # compiled into self.real by _fused.kernel(self, program) below
        return lambda *a: self.calls.append((name, a[0].size)) or real(*a)

    def __setitem__(self, name, k):
        self.real[name] = k


@pytest.fixture
def spy(kernels, monkeypatch):
    s = _Spy(kernels)
    monkeypatch.setattr(_fused, "_KERNELS", s)
    return s


def _trajectory(name, kw, dtype, fused, steps=30):
    rng = np.random.default_rng(0)
    params = [cr.Tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in SHAPES]
    opt = getattr(optim, name)(params, fused=fused, **kw)
    for t in range(steps):
        for p in params:
            g = rng.standard_normal(p.shape).astype(dtype)
            if t % 7 == 0 and g.ndim:
                g.reshape(-1)[:5] = 0  # exact zeros: sqrt(v_hat) + eps (sqrt(G) + eps...) in the denominator
            p.grad = cr.Tensor(g)
        opt.step()
    return [p._data.copy() for p in params], opt


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_kernel_is_bit_identical_to_numpy_rule(kernels, name, kw, dtype):
    fast, opt_fast = _trajectory(name, kw, dtype, fused=True)
    slow, opt_slow = _trajectory(name, kw, dtype, fused=False)
    assert opt_fast._kernel is not None and opt_slow._kernel is None
    for a, b in zip(fast, slow):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)
    for sa, sb in zip(opt_fast.state.values(), opt_slow.state.values()):
        for k in sa:
            np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


def test_default_uses_the_kernel_when_numba_is_there(spy):
    w = cr.Tensor(np.ones((4, 5), np.float32), requires_grad=True)
    w.grad = cr.Tensor(np.ones((4, 5), np.float32))
    opt = optim.Adam([w], lr=0.1)
    opt.step()  # the first step may compile the kernel (registered under its program's name)...
    opt.step()  # ... the second calls it: one pass over the whole parameter, not block by block
    assert spy.calls[-1] == ("adam", 20) and set(spy.calls) == {("adam", 20)}
    assert w._data.dtype == np.float32 and np.all(w._data < 0.81)  # two Adam steps of ~lr each


def test_non_contiguous_parameter_takes_the_numpy_rule(kernels, monkeypatch):
    monkeypatch.setattr(_fused, "_KERNELS", _Spy(kernels, fail=True))
    rng = np.random.default_rng(1)
    w = cr.Tensor(rng.standard_normal((6, 4)).astype(np.float32).T, requires_grad=True)
    assert not w._data.flags.c_contiguous
    ref = cr.Tensor(w._data.copy(), requires_grad=True)
    for p in (w, ref):
        p.grad = cr.Tensor(np.full((4, 6), 0.5, np.float32))
    optim.Adam([w], lr=0.1).step()
    optim.Adam([ref], lr=0.1, fused=False).step()
    np.testing.assert_array_equal(w._data, ref._data)


@pytest.mark.parametrize("name,kw,program", [
    ("SGD", dict(lr=0.1), "sgd[momentum == 0]"),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True), "sgd[nesterov]"),
    ("Adagrad", dict(), "adagrad"),
    ("RMSprop", dict(), "rmsprop"),
    ("RMSprop", dict(centered=True), "rmsprop[centered]"),
    ("RMSprop", dict(momentum=0.9), "rmsprop[momentum > 0]"),
    ("RMSprop", dict(momentum=0.9, centered=True), "rmsprop[centered][momentum > 0]"),
    ("AdamW", dict(amsgrad=True), "adam[decoupled_weight_decay and weight_decay != 0][amsgrad]"),
])
def test_each_variant_has_its_kernel(spy, name, kw, program):
    w = cr.Tensor(np.ones((300, 200), np.float32), requires_grad=True)  # > Optimizer.CHUNK: still one call
    opt = getattr(optim, name)([w], **kw)
    for _ in range(3):
        w.grad = cr.Tensor(np.ones((300, 200), np.float32))
        opt.step()
    assert spy.calls[-2:] == [(program, 60000), (program, 60000)]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_float16_and_non_contiguous_take_the_numpy_rule(kernels, monkeypatch, name):
    monkeypatch.setattr(_fused, "_KERNELS", _Spy(kernels, fail=True))
    rng = np.random.default_rng(2)
    params = [cr.Tensor(rng.standard_normal((6, 4)).T, requires_grad=True),
              cr.Tensor(rng.standard_normal((4, 6)).astype(np.float16), requires_grad=True)]
    refs = [cr.Tensor(p._data.copy(), requires_grad=True) for p in params]
    for p in params + refs:
        p.grad = cr.Tensor(np.full((4, 6), 0.5, p._data.dtype))
    kw = dict(lr=0.1, momentum=0.9) if name in ("SGD", "RMSprop") else dict(lr=0.1)
    getattr(optim, name)(params, **kw).step()
    getattr(optim, name)(refs, fused=False, **kw).step()
    for p, q in zip(params, refs):
        np.testing.assert_array_equal(p._data, q._data)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_fused_true_without_numba_says_how_to_get_it(monkeypatch, name):
    monkeypatch.setattr(_fused, "_AVAILABLE", False)  # as if numba were missing
    w = cr.Tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match=rf"{name}\(fused=True\) needs numba.*chainrule\[fast\]"):
        getattr(optim, name)([w], fused=True)
    assert getattr(optim, name)([w])._kernel is None  # fused=None quietly falls back to NumPy
    assert getattr(optim, name)([w], fused=False)._kernel is None


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_fused_must_be_none_or_bool(name):
    w = cr.Tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(ValueError, match="fused must be None, True or False, got 'yes'"):
        getattr(optim, name)([w], fused="yes")


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setattr(_fused, "_AVAILABLE", None)
    monkeypatch.setenv("CHAINRULE_FUSED", "0")
    assert not _fused.available() and _fused.kernels() is None  # monkeypatch puts the old answer back afterwards


def test_fused_matches_torch_fused_adam_on_a_training_run(kernels, torch):
    """An MLP trained 20 steps with chainrule's compiled Adam and torch's Adam(fused=True)."""
    rng = np.random.default_rng(0)
    model = cr.models.MLP([20, 32, 5])
    tmodel = model.torch_equivalent()
    tmodel.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.to_torch_state_dict().items()})
    opt = optim.Adam(model.parameters(), lr=1e-2, fused=True)
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-2, fused=True)
    for _ in range(20):
        x = rng.standard_normal((16, 20)).astype(np.float32)
        y = rng.integers(0, 5, 16)
        opt.zero_grad()
        cr.functional.cross_entropy(model(x), y).backward()
        opt.step()
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        topt.step()
    for k, v in model.to_torch_state_dict().items():
        np.testing.assert_allclose(v, tmodel.state_dict()[k].numpy(), rtol=1e-4, atol=1e-5, err_msg=k)


def test_plain_sgd_takes_the_kernel_only_for_big_parameters(spy):
    """Two ufunc passes beat the kernel's call overhead below 8K elements (same bits either way)."""
    small = cr.Tensor(np.ones((10, 64), np.float32), requires_grad=True)
    big = cr.Tensor(np.ones((100, 100), np.float32), requires_grad=True)
    opt = optim.SGD([small, big], lr=0.1)
    for _ in range(2):
        for p in (small, big):
            p.grad = cr.Tensor(np.full(p.shape, 0.5, np.float32))
        opt.step()
    assert spy.calls[-1:] == [("sgd[momentum == 0]", 10_000)] and all(n == 10_000 for _, n in spy.calls)
    one = np.float32(1) - np.float32(0.1) * np.float32(0.5)
    np.testing.assert_array_equal(small._data, one - np.float32(0.1) * np.float32(0.5))
    np.testing.assert_array_equal(big._data, small._data[0, 0])
