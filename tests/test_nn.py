"""cr.nn: Module reflection and state, every layer against its torch.nn twin, init and dropout statistics."""

import math
from collections import OrderedDict

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.nn import init

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _tdtype(torch, dtype):
    return torch.float32 if dtype == np.float32 else torch.float64


def copy_to_torch(torch, ours, theirs):
    """Copy our parameters into the torch module by state_dict key (names must agree)."""
    sd = {k: torch.from_numpy(np.array(v._data)) for k, v in ours.state_dict().items()}
    theirs.load_state_dict(sd, strict=True)


def check_twin(torch, ours, theirs, x, dtype, grads=True):
    """Same weights -> same output, same input gradient and same gradient of every parameter."""
    ours.to(dtype)
    theirs.to(_tdtype(torch, dtype))
    if list(ours.state_dict()):
        copy_to_torch(torch, ours, theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    xn = np.asarray(x, dtype=dtype)
    xc = cr.tensor(xn, dtype=dtype, requires_grad=True)
    xt = torch.tensor(xn, requires_grad=True)
    yc, yt = ours(xc), theirs(xt)
    assert yc.shape == tuple(yt.shape)
    assert yc.dtype == dtype
    np.testing.assert_allclose(yc._data, yt.detach().numpy(), **TOL[dtype])
    if not grads:
        return
    # a random upstream gradient, so a wrong rule cannot hide behind sum()
    u = np.random.default_rng(1).standard_normal(yc.shape).astype(dtype)
    (yc * u).sum().backward()
    (yt * torch.from_numpy(u)).sum().backward()
    np.testing.assert_allclose(xc.grad._data, xt.grad.numpy(), **TOL[dtype])
    tp = dict(theirs.named_parameters())
    for n, p in ours.named_parameters():
        assert p.grad is not None, n
        assert p.grad.dtype == dtype
        np.testing.assert_allclose(p.grad._data, tp[n].grad.numpy(), **TOL[dtype], err_msg=n)


LAYERS = [
    ("Linear", lambda nn_: nn_.Linear(5, 3), (4, 5)),
    ("Linear_nobias", lambda nn_: nn_.Linear(5, 3, bias=False), (4, 5)),
    ("Linear_3d", lambda nn_: nn_.Linear(5, 3), (2, 4, 5)),
    ("ReLU", lambda nn_: nn_.ReLU(), (4, 5)),
    ("Sigmoid", lambda nn_: nn_.Sigmoid(), (4, 5)),
    ("Tanh", lambda nn_: nn_.Tanh(), (4, 5)),
    ("LeakyReLU", lambda nn_: nn_.LeakyReLU(0.2), (4, 5)),
    ("GELU", lambda nn_: nn_.GELU(), (4, 5)),
    ("GELU_tanh", lambda nn_: nn_.GELU(approximate="tanh"), (4, 5)),
    ("Softmax", lambda nn_: nn_.Softmax(dim=1), (4, 5)),
    ("Softmax0", lambda nn_: nn_.Softmax(dim=0), (4, 5)),
    ("LogSoftmax", lambda nn_: nn_.LogSoftmax(dim=-1), (4, 5)),
    ("Identity", lambda nn_: nn_.Identity(), (4, 5)),
    ("Flatten", lambda nn_: nn_.Flatten(), (2, 3, 4)),
    ("Sequential", lambda nn_: nn_.Sequential(nn_.Linear(5, 7), nn_.Tanh(), nn_.Linear(7, 2)), (4, 5)),
    ("Sequential_deep", lambda nn_: nn_.Sequential(nn_.Flatten(), nn_.Linear(6, 4), nn_.ReLU(),
                                                   nn_.Linear(4, 4), nn_.Sigmoid(), nn_.Linear(4, 3),
                                                   nn_.LogSoftmax(dim=1)), (3, 2, 3)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[x[0] for x in LAYERS])
def test_layer_matches_torch(torch, name, make, shape, dtype):
    cr.manual_seed(0)
    x = np.random.default_rng(2).standard_normal(shape) * 2
    check_twin(torch, make(nn), make(torch.nn), x, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_eval_matches_torch(torch, dtype):
    x = np.random.default_rng(0).standard_normal((4, 5))
    check_twin(torch, nn.Dropout(0.3).eval(), torch.nn.Dropout(0.3).eval(), x, dtype)


def test_linear_default_init_is_torch_distribution():
    # weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)): every entry within the bound, and the sample
    # variance near bound^2/3 (n = 40000 draws: the std error of a U variance estimate is
    # sqrt(4/45)/sqrt(n) * bound^2 ~ 0.0015 bound^2, so 0.02 bound^2 is > 10 sigma).
    cr.manual_seed(0)
    lin = nn.Linear(400, 100)
    b = 1 / math.sqrt(400)
    assert lin.weight.dtype == np.float32 and lin.bias.dtype == np.float32
    assert np.abs(lin.weight._data).max() <= b and np.abs(lin.bias._data).max() <= b
    assert abs(lin.weight._data.var() - b * b / 3) < 0.02 * b * b
    assert np.abs(lin.weight._data).max() > 0.99 * b  # not a narrower distribution


def test_seed_makes_models_reproducible():
    cr.manual_seed(3)
    a = cr.models.MLP([4, 8, 2])
    cr.manual_seed(3)
    b = cr.models.MLP([4, 8, 2])
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb
        np.testing.assert_array_equal(pa._data, pb._data)
    c = cr.models.MLP([4, 8, 2])
    assert not np.array_equal(c.layers[0].weight._data, a.layers[0].weight._data)


# ----- Module reflection ---------------------------------------------------------------------------
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(3, np.float32))
        self.body = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
        self.heads = [nn.Linear(3, 1), nn.Linear(3, 2)]
        self.named = {"a": nn.Linear(3, 4)}
        self.not_a_param = cr.ones(3)  # plain tensors are not parameters (torch: buffers)
        self.shared = self.body  # registered twice: its parameters count once

    def forward(self, x):
        h = self.body(x) * self.scale
        return self.heads[0](h) + self.heads[1](h)[:, :1], self.named["a"](h)


def test_named_parameters_follow_torch_naming():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "body.0.weight", "body.0.bias", "heads.0.weight", "heads.0.bias",
                     "heads.1.weight", "heads.1.bias", "named.a.weight", "named.a.bias"]
    assert len(list(net.parameters())) == 9
    assert net.num_parameters() == 3 + 6 + 3 + 3 + 1 + 6 + 2 + 12 + 4
    assert [n for n, _ in net.named_children()] == ["body", "heads.0", "heads.1", "named.a"]
    assert [n for n, _ in net.named_modules()][:3] == ["", "body", "body.0"]
    assert len(list(net.modules())) == 1 + 3 + 3


def test_named_parameters_match_torch_for_nested_model(torch):
    def build(owner, nn_):
        owner.enc = nn_.Sequential(nn_.Linear(3, 4), nn_.Tanh(), nn_.Sequential(nn_.Linear(4, 4)))
        owner.blocks = nn_.ModuleList([nn_.Linear(4, 4) for _ in range(2)])
        owner.heads = nn_.ModuleDict({"y": nn_.Linear(4, 2)})
        return owner

    ours, theirs = build(nn.Module(), nn), build(torch.nn.Module(), torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]


def test_train_eval_propagate_and_zero_grad():
    net = Net()
    assert net.training and net.body[1].training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    a, b = net(cr.randn(5, 2))
    (a.sum() + b.sum()).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad._data == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_shares_data_and_round_trips():
    cr.manual_seed(0)
    a, b = Net(), Net()
    sd = a.state_dict()
    assert isinstance(sd, OrderedDict) and list(sd) == [n for n, _ in a.named_parameters()]
    assert np.shares_memory(sd["body.0.weight"]._data, a.body[0].weight._data)
    assert not sd["body.0.weight"].requires_grad
    b.load_state_dict(sd)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_array_equal(p._data, q._data, err_msg=n)
        assert not np.shares_memory(p._data, q._data)  # copied, not aliased
    # ndarrays work too, and float64 arrays are cast to the parameter's float32
    b.load_state_dict({k: v._data.astype(np.float64) * 2 for k, v in sd.items()})
    np.testing.assert_allclose(b.heads[1].weight._data, 2 * a.heads[1].weight._data)
    assert b.heads[1].weight.dtype == np.float32


def test_load_state_dict_errors_name_key_and_shapes():
    net = Net()
    sd = {k: v._data for k, v in net.state_dict().items()}
    bad = dict(sd, **{"heads.1.weight": np.zeros((5, 3), np.float32)})
    with pytest.raises(ValueError, match=r"'heads.1.weight'.*\(5, 3\).*\(2, 3\)"):
        net.load_state_dict(bad)
    missing = {k: v for k, v in sd.items() if k != "scale"}
    with pytest.raises(ValueError, match=r"missing key 'scale' \(model shape \(3,\)\)"):
        net.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected key 'extra' \(checkpoint shape \(2,\)\)"):
        net.load_state_dict(dict(sd, extra=np.zeros(2)))
    before = net.scale._data.copy()
    res = net.load_state_dict({"scale": np.full(3, 7.0), "extra": np.zeros(2)}, strict=False)
    assert res.unexpected_keys == ["extra"] and "body.0.weight" in res.missing_keys
    np.testing.assert_array_equal(net.scale._data, np.full(3, 7.0, np.float32))
    assert not np.array_equal(before, net.scale._data)
    # a failing load changes nothing
    w = net.body[0].weight._data.copy()
    with pytest.raises(ValueError):
        net.load_state_dict(dict(sd, **{"body.0.weight": np.zeros((3, 2)), "scale": np.zeros(4)}))
    np.testing.assert_array_equal(net.body[0].weight._data, w)


def test_load_torch_state_dict_directly(torch):
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    ours = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(x)._data, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_repr_shows_tree_and_shapes():
    r = repr(cr.models.MLP([3, 5, 2]))
    assert "(layers): Sequential(" in r
    assert "(0): Linear(in_features=3, out_features=5, bias=True)" in r
    assert "weight(5, 3)" in r and "bias(2,)" in r
    assert "(scale): Parameter(3,) float32" in repr(Net())


def test_module_without_forward_and_without_super_init():
    class Bare(nn.Module):
        def __init__(self):  # no super().__init__(): reflection still works
            self.w = nn.Parameter(np.zeros(2))

    m = Bare()
    assert [n for n, _ in m.named_parameters()] == ["w"] and m.training
    with pytest.raises(NotImplementedError, match="forward"):
        m(1)


def test_cyclic_reference_does_not_recurse_forever():
    a = nn.Sequential(nn.Linear(2, 2))
    a.me = a
    assert len(list(a.parameters())) == 2


def test_containers_behave_like_torch():
    ml = nn.ModuleList([nn.ReLU(), nn.Tanh()])
    ml.append(nn.Linear(2, 2))
    ml.insert(0, nn.Linear(2, 3))
    assert [type(m).__name__ for m in ml] == ["Linear", "ReLU", "Tanh", "Linear"]
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "3.weight", "3.bias"]
    del ml[1]
    assert len(ml) == 3 and [n for n, _ in ml.named_parameters()][-1] == "2.bias"
    assert isinstance(ml[-1], nn.Linear)
    with pytest.raises(IndexError, match="out of range"):
        ml[5]
    md = nn.ModuleDict({"x": nn.Linear(1, 1)})
    md["y"] = nn.ReLU()
    assert list(md) == ["x", "y"] and "y" in md
    with pytest.raises(TypeError, match="must be a Module"):
        md["z"] = 3
    seq = nn.Sequential(OrderedDict(fc=nn.Linear(2, 2), act=nn.ReLU()))
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias"] and isinstance(seq["act"], nn.ReLU)
    assert isinstance(seq[:1], nn.Sequential) and len(seq[:1]) == 1


def test_float64_input_tensor_into_float32_model_is_an_error_ndarray_is_cast():
    lin = nn.Linear(3, 2)
    assert lin(np.ones((1, 3))).dtype == np.float32  # float64 ndarray cast to the weights' dtype
    with pytest.raises(TypeError, match="float64 but the weights are float32"):
        lin(cr.tensor(np.ones((1, 3)), dtype=np.float64))
    assert lin.double()(cr.tensor(np.ones((1, 3)), dtype=np.float64)).dtype == np.float64


def test_layer_constructor_validation():
    with pytest.raises(ValueError, match="in_features must be a positive integer, got 0"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match=r"p \(the drop probability\) must be in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")


# ----- dropout --------------------------------------------------------------------------------------
def test_dropout_fraction_and_scaling():
    # n = 200,000 Bernoulli(p) draws: std of the dropped fraction is sqrt(p(1-p)/n) ~ 0.001,
    # so a tolerance of 0.006 is ~6 sigma.
    cr.manual_seed(0)
    d = nn.Dropout(0.3)
    x = cr.ones(400, 500)
    y = d(x)._data
    dropped = (y == 0).mean()
    assert abs(dropped - 0.3) < 0.006
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)  # survivors scaled by 1/(1-p)
    assert y.dtype == np.float32
    assert d.eval()(x) is x  # identity in eval


def test_dropout_masks_gradient():
    cr.manual_seed(1)
    x = cr.randn(50, 40, requires_grad=True)
    y = nn.Dropout(0.5)(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad._data, np.where(y._data != 0, 2.0, 0.0))


def test_dropout_scaled_and_lecture_forms_agree_in_expectation():
    # Inverted dropout (scale=True) and the lecture's form (scale=False: no rescaling in training,
    # multiply by the keep probability 1-p at prediction) must both give E[train] = eval output.
    # For each of the n = 200 samples per element the train output is x * Bernoulli(1-p) (* 1/(1-p));
    # averaging 200 x 1000 = 200,000 draws of a scalar with relative std sqrt(p/(1-p)) ~ 0.65 gives
    # a relative std error of the mean ~ 0.0015; 0.01 is > 6 sigma.
    cr.manual_seed(0)
    x = cr.tensor(np.random.default_rng(0).uniform(1, 2, 1000))
    for scale in (True, False):
        d = nn.Dropout(0.3, scale=scale)
        train_mean = np.mean([d(x)._data for _ in range(200)])
        eval_out = d.eval()(x)._data
        np.testing.assert_allclose(train_mean, eval_out.mean(), rtol=0.01)
        np.testing.assert_allclose(eval_out, x._data * (1.0 if scale else 0.7), rtol=1e-6)
        d.train()


def test_dropout_p_zero_and_one():
    x = cr.randn(10, 10)
    assert nn.Dropout(0.0)(x) is x
    assert np.all(nn.Dropout(1.0)(x)._data == 0)


# ----- init -----------------------------------------------------------------------------------------
N_OUT, N_IN = 300, 200  # 60,000 samples


def _check_moments(w, var, mean=0.0):
    # For n iid samples, std(sample mean) = sigma/sqrt(n) ~ 0.004 sigma; std(sample variance)
    # <= sigma^2 sqrt(2/(n-1)) ~ 0.006 sigma^2 (normal; uniform is smaller). Tolerances ~5 sigma.
    n, sigma = w.numel(), math.sqrt(var)
    assert abs(w._data.mean() - mean) < 5 * sigma / math.sqrt(n) + 1e-12
    assert abs(w._data.var() - var) < 5 * var * math.sqrt(2 / (n - 1))


@pytest.mark.parametrize("fn,kwargs,var", [
    (init.uniform_, dict(a=-2.0, b=2.0), 16 / 12),
    (init.normal_, dict(std=0.5), 0.25),
    (init.xavier_uniform_, dict(gain=2.0), 4 * 2 / (N_IN + N_OUT)),
    (init.xavier_normal_, dict(), 2 / (N_IN + N_OUT)),
    (init.kaiming_uniform_, dict(nonlinearity="relu"), 2 / N_IN),
    (init.kaiming_uniform_, dict(a=math.sqrt(5)), 1 / (3 * N_IN)),
    (init.kaiming_normal_, dict(mode="fan_out", nonlinearity="relu"), 2 / N_OUT),
    (init.kaiming_normal_, dict(a=0.2, nonlinearity="leaky_relu"), 2 / (1.04 * N_IN)),
])
def test_init_moments(fn, kwargs, var):
    cr.manual_seed(0)
    w = cr.zeros(N_OUT, N_IN, requires_grad=True)
    assert fn(w, **kwargs) is w
    assert w.dtype == np.float32
    _check_moments(w, var)


def test_init_normal_mean_and_constants_and_seed():
    cr.manual_seed(0)
    w = cr.zeros(N_OUT, N_IN)
    _check_moments(init.normal_(w, mean=3.0, std=2.0), 4.0, mean=3.0)
    assert np.all(init.constant_(w, 0.5)._data == 0.5)
    assert np.all(init.ones_(w)._data == 1) and np.all(init.zeros_(w)._data == 0)
    cr.manual_seed(5)
    a = init.xavier_uniform_(cr.zeros(3, 4))._data.copy()
    cr.manual_seed(5)
    np.testing.assert_array_equal(a, init.xavier_uniform_(cr.zeros(3, 4))._data)


def test_init_uniform_bounds_match_torch_formulas(torch):
    # the bound of a uniform init is max |w| up to sampling: check against torch's own bound
    for fn, kw in [("xavier_uniform_", dict(gain=1.5)), ("kaiming_uniform_", dict(a=math.sqrt(5))),
                   ("kaiming_uniform_", dict(mode="fan_out", nonlinearity="tanh"))]:
        cr.manual_seed(0)
        torch.manual_seed(0)
        ours = getattr(init, fn)(cr.zeros(N_OUT, N_IN), **kw)._data
        theirs = getattr(torch.nn.init, fn)(torch.zeros(N_OUT, N_IN), **kw).numpy()
        np.testing.assert_allclose(np.abs(ours).max(), np.abs(theirs).max(), rtol=1e-3)


def test_calculate_gain_matches_torch(torch):
    for nl, param in [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                      ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None), ("conv2d", None)]:
        assert init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.xavier_uniform_(cr.zeros(3))


def test_init_fan_of_conv_shaped_tensor():
    cr.manual_seed(0)
    w = init.kaiming_normal_(cr.zeros(64, 16, 5, 5), nonlinearity="relu")
    _check_moments(w, 2 / (16 * 25))


# ----- l2 penalty -----------------------------------------------------------------------------------
def test_l2_penalty_value_and_gradient_equals_weight_decay():
    cr.manual_seed(0)
    m = cr.models.MLP([3, 4, 2])
    lam = 0.1
    pen = nn.l2_penalty(m, lam)
    W1, W2 = m.layers[0].weight._data.astype(np.float64), m.layers[2].weight._data.astype(np.float64)
    np.testing.assert_allclose(pen.item(), lam / 2 * ((W1 ** 2).sum() + (W2 ** 2).sum()), rtol=1e-6)
    pen.backward()
    np.testing.assert_allclose(m.layers[0].weight.grad._data, lam * m.layers[0].weight._data, rtol=1e-6)
    assert m.layers[0].bias.grad is None  # biases excluded by default
    allp = nn.l2_penalty(m, lam, include_bias=True).item()
    b = sum((p._data.astype(np.float64) ** 2).sum() for n, p in m.named_parameters() if n.endswith("bias"))
    np.testing.assert_allclose(allp - pen.item(), lam / 2 * b, rtol=1e-5)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        nn.l2_penalty(m, -1)


def test_l2_penalty_gradient_equals_torch_sgd_weight_decay(torch):
    # one SGD step on (data loss + penalty) == one torch SGD step with weight_decay=lam on the
    # weights (biases in a group without decay)
    cr.manual_seed(0)
    ours = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    copy_to_torch(torch, ours, theirs)
    x = np.random.default_rng(0).standard_normal((6, 3))
    lam, lr = 0.3, 0.1
    loss = (ours(cr.tensor(x, dtype=np.float64)) ** 2).mean() + nn.l2_penalty(ours, lam)
    loss.backward()
    with cr.no_grad():
        for p in ours.parameters():
            p -= lr * p.grad
    opt = torch.optim.SGD([{"params": [p for n, p in theirs.named_parameters() if n.endswith("weight")],
                            "weight_decay": lam},
                           {"params": [p for n, p in theirs.named_parameters() if n.endswith("bias")]}], lr=lr)
    (theirs(torch.from_numpy(x)) ** 2).mean().backward()
    opt.step()
    for (n, p) in ours.named_parameters():
        np.testing.assert_allclose(p._data, dict(theirs.named_parameters())[n].detach().numpy(), rtol=1e-12, err_msg=n)


def test_nn_functional_alias():
    import chainrule.nn.functional as F

    assert F.cross_entropy is cr.functional.cross_entropy and F.softmax is cr.functional.softmax
    assert F.dropout is cr.functional.dropout


def test_parameter_dtype_float32_by_default_and_sharing():
    assert nn.Parameter(np.ones(3)).dtype == np.float32  # np.ones is float64: must not creep in
    assert nn.Parameter([0.5, 1.5]).dtype == np.float32
    a = np.zeros(3, np.float32)
    p = nn.Parameter(a)
    assert np.shares_memory(p._data, a) and p.requires_grad and isinstance(p, cr.Tensor)
    assert nn.Parameter(cr.tensor([1.0], dtype=np.float64)).dtype == np.float64  # explicit Tensor dtype kept
    with pytest.raises(TypeError, match="floating-point"):
        nn.Parameter(np.arange(3))
    assert type(p * 2) is cr.Tensor  # results of ops are plain tensors, not parameters


# ----- Sequential fuses Linear + activation ----------------------------------------------------------
FUSABLE = [("relu", nn.ReLU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid)]


@pytest.mark.parametrize("name,act", FUSABLE, ids=[n for n, _ in FUSABLE])
def test_sequential_fuses_linear_and_activation_with_identical_numbers(name, act):
    """Fused (Sequential) and unfused (module by module) give bit-identical outputs and gradients,
    first and second order, and the fused graph has one node per layer that keeps no pre-activation."""
    cr.manual_seed(0)
    seq = nn.Sequential(nn.Linear(6, 8), act(), nn.Linear(8, 3))
    x = cr.Tensor(np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32), requires_grad=True)

    def unfused(x):
        for m in seq:
            x = m(x)
        return x

    results = []
    for f in (seq, unfused):
        out = f(x)
        gx, *gp = cr.grad((out * out).sum(), [x, *seq.parameters()], create_graph=True)
        hv = cr.grad((gx * gx).sum(), list(seq.parameters()))  # double backward through the activation
        results.append([out._data, gx._data, *(g._data for g in gp), *(h._data for h in hv)])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    hidden = seq(x)._ctx.inputs[0]  # the second Linear's input: the activation's output
    assert hidden._ctx.op.name == name and hidden._ctx.attrs == {"inplace": True}
    z = hidden._ctx.inputs[0]  # the pre-activation: same graph, but its buffer now belongs to `hidden`
    assert z._ctx.op.name == "linear" and z.shape == hidden.shape and z._data.strides == (0, 0)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_fused_linear_gradcheck(name):
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s) for s in [(4, 3), (5, 3), (5,)])
    f = lambda x, w, b: cr.ops.linear_act(x, w, b, activation=name)
    assert cr.gradcheck(f, [x, w, b])
    assert cr.gradgradcheck(f, [x, w, b])


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_fused_linear_matches_torch(torch, name):
    rng = np.random.default_rng(2)
    x, w, b, g = (rng.standard_normal(s).astype(np.float32) for s in [(7, 4), (6, 4), (6,), (7, 6)])
    xs = [cr.Tensor(a, requires_grad=True) for a in (x, w, b)]
    out = cr.ops.linear_act(*xs, activation=name)
    out.backward(g)
    ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    tout = getattr(torch, name)(torch.nn.functional.linear(*ts))
    tout.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out._data, tout.detach().numpy(), rtol=1e-5, atol=1e-6)
    for a, t in zip(xs, ts):
        np.testing.assert_allclose(a.grad._data, t.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_fused_linear_rejects_an_unknown_activation():
    x, w = cr.ones(2, 3), cr.ones(4, 3)
    with pytest.raises(ValueError, match=r"linear_act: activation must be None or one of \('relu', 'tanh', 'sigmoid'\), "
                                         r"got 'gelu'"):
        cr.ops.linear_act(x, w, activation="gelu")


def test_sequential_does_not_fuse_subclasses_or_other_activations():
    class MyReLU(nn.ReLU):
        def forward(self, x):
            return super().forward(x) * 2.0

    cr.manual_seed(0)
    x = cr.randn(3, 4)
    for act in (MyReLU(), nn.LeakyReLU()):
        seq = nn.Sequential(nn.Linear(4, 5), act)
        out = seq(x)
        expected = act(seq[0](x))
        np.testing.assert_array_equal(out._data, expected._data)


def test_relu_backward_keeps_the_gradients_memory_order():
    """Linear's gradients are F-ordered; a C-ordered result made relu's backward 8x slower at batch 1024."""
    rng = np.random.default_rng(3)
    g = np.asfortranarray(rng.standard_normal((6, 5)).astype(np.float32))
    y = np.maximum(rng.standard_normal((6, 5)).astype(np.float32), 0)
    d = cr.ops._relu_backward(g, y)
    assert d.flags.f_contiguous and d.dtype == np.float32
    np.testing.assert_array_equal(d, np.multiply(g, y > 0))


@pytest.mark.parametrize("shape,order,line", [((1024, 96), "F", True), ((96, 1024), "C", True), ((8, 64, 80), "C", True),
                                              ((80, 9, 7), "F", True), ((50, 50), "C", False), ((5000,), "C", True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_relu_compares_with_a_zero_line_or_a_zero_and_gives_the_same_bits(shape, order, line, dtype):
    """relu's forward takes a zero line along a long contiguous axis (NumPy's SIMD loop); the numbers,
    signed zeros and NaNs included, must be those of ``np.maximum(x, 0)``, in place or not."""
    rng = np.random.default_rng(4)
    x = np.asarray(rng.standard_normal(shape).astype(dtype), order=order)
    x.reshape(-1, order="A")[:6] = [-0.0, 0.0, np.nan, -np.inf, np.inf, -1e-30]
    want = np.maximum(x, 0)
    zero = cr.ops._zero_for(x)
    assert zero.dtype == x.dtype and not zero.flags.writeable and (zero.ndim > 0) == line and not zero.any()
    got = cr.ops.relu.forward(x.copy(order="K"))
    assert got.dtype == want.dtype and got.tobytes(order="A") == want.tobytes(order="A")
    inplace = x.copy(order="K")
    assert cr.ops.relu.forward(inplace, inplace=True) is inplace and inplace.tobytes(order="A") == want.tobytes(order="A")


@pytest.mark.parametrize("rows,order,c_out", [(64, "C", True), (8, "C", False), (64, "F", False), (16, "C", True)])
def test_linear_picks_its_orientation_and_gives_dx_in_the_inputs_order(rows, order, c_out):
    """x W^T (C-ordered) for a C-ordered input with at least as many rows as outputs (16), else
    (W x^T)^T (F-ordered); the same numbers as the float64 product, and dL/dx in x's memory order."""
    rng = np.random.default_rng(7)
    x = cr.tensor(np.asarray(rng.standard_normal((rows, 12)), np.float32, order=order), requires_grad=True)
    lin = nn.Linear(12, 16)
    y = lin(x)
    assert y._data.flags.c_contiguous == c_out and y._data.flags.f_contiguous == (not c_out)
    want = x._data.astype(np.float64) @ lin.weight._data.T.astype(np.float64) + lin.bias._data
    np.testing.assert_allclose(y._data, want, rtol=1e-5, atol=1e-5)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(cr.tensor(g))
    assert x.grad._data.flags.f_contiguous == (order == "F" and not x._data.flags.c_contiguous)
    np.testing.assert_allclose(x.grad._data, g.astype(np.float64) @ lin.weight._data, rtol=1e-5, atol=1e-5)


def test_summary_lists_every_layer_with_its_parameters():
    m = cr.nn.Sequential(cr.nn.Linear(4, 3), cr.nn.ReLU(), cr.nn.Linear(3, 2, bias=False))
    m[2].weight.requires_grad_(False)
    text = m.summary()
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "type", "parameters", "count"]
    assert lines[2].split() == ["0", "Linear", "3x4,", "3", "15"]
    assert lines[3].split() == ["1", "ReLU", "-", "0"]
    assert lines[4].split() == ["2", "Linear", "2x3", "6"]
    assert lines[-1] == "21 parameters (15 trainable)"
