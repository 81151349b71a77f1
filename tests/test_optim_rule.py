"""The update rules (optim/rule.py): each optimizer's rule, called as plain NumPy code, is what the
optimizer runs on both paths, bit for bit; describe() prints the rule's own lines; a new rule gets a
NumPy program, a kernel and equations without further code."""

import numpy as np
import pytest
from test_optim_fused import CASES, IDS

import chainrule as cr
from chainrule import optim
from chainrule.optim import _fused
from chainrule.optim.rule import UpdateRule, maximum, sqrt

SHAPES = [(300, 200), (7, 3), ()]  # blocked (> CHUNK) on the NumPy path, small, a scalar


def _direct(opt, params, grads):
    """The optimizer's rule function called directly on fresh NumPy arrays, as the lecture's code would be."""
    rule, group = opt.rule, opt.param_groups[0]
    thetas = [p._data.copy() for p in params]
    states = [dict.fromkeys(rule.arrays[2:]) for _ in params]
    for t, gs in enumerate(grads, 1):
        kw = {**opt._rule_kwargs(group), "t": t, "first": t == 1}
        for i, g in enumerate(gs):
            st = states[i]
            for a in st:
                if st[a] is None:
                    st[a] = opt._initial(rule.state_keys[a], thetas[i], kw)
            thetas[i], *new = rule.fn(thetas[i], g, *st.values(), **{k: kw[k] for k in rule.scalars})
            st.update(zip(st, new))
    return thetas


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("fused", [False, None], ids=["numpy", "default"])
def test_the_rule_called_directly_is_what_the_optimizer_runs(name, kw, dtype, fused):
    rng = np.random.default_rng(0)
    params = [cr.Tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(12)]
    for gs in grads[::5]:
        gs[0].reshape(-1)[:7] = 0
    opt = getattr(optim, name)(params, fused=fused, **kw)
    expected = _direct(opt, params, grads)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = cr.Tensor(g.copy())
        opt.step()
    for p, e in zip(params, expected):
        assert p._data.dtype == e.dtype == dtype
        np.testing.assert_array_equal(p._data, e)


@pytest.mark.parametrize("cls,kw", [(optim.SGD, {}), (optim.Adagrad, {}), (optim.RMSprop, {}), (optim.Adam, {}),
                                    (optim.AdamW, {})])
def test_scratch_count_for_the_cost_model_is_the_default_programs(cls, kw):
    opt = cls([cr.zeros(3, requires_grad=True)], **kw)
    group = {**opt._rule_kwargs(opt.param_groups[0]), "t": 1, "first": True}
    assert cls._n_scratch == opt.rule.program(opt.rule.flags(group)).n_scratch


def test_describe_prints_the_rules_own_lines():
    """Every line describe() prints is a line of the rule's source with the numbers put in."""
    p = cr.zeros(3, requires_grad=True)
    opt = optim.Adam([p], lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)
    lines = [line.strip() for line in opt.describe().splitlines()[2:]]
    source = [line.strip() for line in opt.rule.source.splitlines()]
    for shown, written in [("m = 0.8 * m + 0.2 * g", "m = beta1 * m + (1 - beta1) * g"),
                           ("v = 0.99 * v + 0.01 * g * g", "v = beta2 * v + (1 - beta2) * g * g"),
                           ("m_hat = m / (1 - 0.8^t)", "m_hat = m / (1 - beta1**t)"),
                           ("g = g + 0.1 * theta", "g = g + weight_decay * theta")]:
        assert shown in lines and written in source
    assert len(lines) == 6  # the lines of this variant only: no maximize, no decoupled decay, no amsgrad


# ----- a rule written here: the machinery is not specific to the optimizers above --------------------
def heavy_ball(theta, g, b, *, lr, mu, clip, t):
    b = mu * b + g
    step = lr / t  # a scalar local: computed once, in Python floats
    theta = theta - step * (maximum(b, -b) if clip else b)
    return theta, b


def heavy_ball_numpy(theta, g, b, *, lr, mu, clip, t):
    b = mu * b + g
    return theta - lr / t * (np.maximum(b, -b) if clip else b), b


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_new_rule_gets_a_numpy_program_a_kernel_and_equations(clip, dtype):
    rule = UpdateRule(heavy_ball, state={"b": "momentum_buffer"})
    kw = dict(lr=0.1, mu=0.9, clip=clip, t=4)
    program, consts = rule.prepare(kw, dtype)
    assert program.name == ("heavy_ball[clip]" if clip else "heavy_ball") and program.state_keys == ("momentum_buffer",)
    assert consts == tuple(np.dtype(dtype).type(c) for c in (0.9, 0.1 / 4))
    rng = np.random.default_rng(0)
    theta, g, b = (rng.standard_normal(50).astype(dtype) for _ in range(3))
    want_theta, want_b = heavy_ball_numpy(theta.copy(), g, b.copy(), **kw)
    x, bb = theta.copy(), b.copy()
    program.numpy(x, g, [bb], [np.empty_like(x) for _ in range(program.n_scratch)], consts)
    np.testing.assert_array_equal(x, want_theta)
    np.testing.assert_array_equal(bb, want_b)
    if _fused.available():
        x, bb = theta.copy(), b.copy()
        _fused.kernel({}, program)(x, g, bb, *consts)
        np.testing.assert_array_equal(x, want_theta)
        np.testing.assert_array_equal(bb, want_b)
    assert program.equations(kw) == ["b = 0.9 * b + g", "step = 0.1 / t    # a scalar local: computed once, in Python floats",
                                     "theta = theta - step * " + ("maximum(b, -b)" if clip else "b")]


def _bad_pow(theta, g, *, lr):
    theta = theta - lr * g**2
    return (theta,)


def _bad_loop(theta, g, *, lr):
    for _ in range(2):
        theta = theta - lr * g
    return (theta,)


def _bad_condition(theta, g, *, lr):
    theta = theta - lr * g if g else theta
    return (theta,)


def _bad_return(theta, g, *, lr):
    theta = theta - lr * g


def _bad_scalar_call(theta, g, *, lr, t):
    theta = theta - sqrt(lr / t) * g
    return (theta,)


def _bad_rebinding(theta, g, *, lr):
    step = lr
    step = step * g
    theta = theta - step
    return (theta,)


@pytest.mark.parametrize("fn,msg", [
    (_bad_pow, r"_bad_pow, line 2: arrays take \+ - \* /.*write g \* g"),
    (_bad_loop, r"_bad_loop, line 2: only assignments, if/else and a final return"),
    (_bad_condition, r"_bad_condition, line 2: a condition may read only keyword arguments, not \['g'\]"),
    (_bad_return, r"_bad_return must end with `return theta`"),
    (_bad_scalar_call, r"_bad_scalar_call, line 2: sqrt\(\) of scalars: write it with \*\*"),
    (_bad_rebinding, r"_bad_rebinding, line 3: step is a scalar; an array cannot be assigned to it"),
])
def test_unsupported_rules_say_what_and_where(fn, msg):
    with pytest.raises(TypeError, match=msg):
        UpdateRule(fn, state={}).prepare({"lr": 0.1, "t": 1}, np.float32)

