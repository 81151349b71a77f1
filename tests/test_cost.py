"""chainrule.cost: the lecture's street-fighting math, the full estimate, and the measurement.

Expected figures are derived here from the lecture's formulas (D x 2D network, batch B), never
copied from the code's output."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.functional as F
from chainrule import cost
from chainrule.models import MLP
from chainrule.nn import Linear
from chainrule.optim.adaptive import Adagrad, Adam, RMSprop
from chainrule.optim.sgd import SGD


def _data(B, n_in, n_out, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, n_in)).astype(np.float32), rng.integers(0, n_out, B)


# ----- the lecture's example ---------------------------------------------------------------------
@pytest.mark.parametrize("D,B", [(784, 64), (100, 1), (32, 256), (1000, 7)])
def test_lecture_formulas_reproduced_exactly(D, B):
    e = cost.estimate_mlp([D, 2 * D], B, optimizer="adam")
    lec = e.lecture
    assert lec["parameters"] == D * 2 * D
    assert lec["inference_memory"] == D * 2 * D + B * 2 * D
    assert lec["training_memory"] == D * 2 * D + 2 * D * 2 * D + B * D + B * 2 * D
    assert lec["inference_compute"] == B * D * 2 * D
    assert lec["training_compute"] == 3 * B * D * 2 * D
    text = e.lecture_text()
    assert f"Parameters:          D x 2D = {D} x {2 * D} = {D * 2 * D:,}" in text
    assert f"= {B * D * 2 * D:,} multiply-adds" in text


@pytest.mark.parametrize("D,B", [(784, 64), (50, 3)])
def test_full_estimate_adds_what_the_lecture_leaves_out(D, B):
    e = cost.estimate_mlp([D, 2 * D], B, optimizer="adam", dtype="float32")
    P = D * 2 * D + 2 * D  # weights + biases
    assert e.parameters == P
    assert e.memory["parameters"] == 4 * P
    assert e.memory["gradients"] == 4 * P
    assert e.memory["optimizer_state"] == 2 * 4 * P
    assert e.compute["forward_macs"] == B * D * 2 * D
    # FLOPs are 2 per multiply-add; the bias adds B x 2D more.
    assert e.compute["inference_flops"] == 2 * B * D * 2 * D + B * 2 * D
    # the input needs no gradient, so the only backward matmul is dW = G^T X
    assert e.compute["backward_input_macs"] == 0
    assert e.compute["backward_weight_macs"] == B * D * 2 * D
    assert cost.estimate_mlp([D, 2 * D], B, input_requires_grad=True).compute["backward_input_macs"] == B * D * 2 * D
    assert "ignores the" in str(e) and f"{2 * D:,} biases" in str(e)


@pytest.mark.parametrize("name,k", [("sgd", 0), ("momentum", 1), ("adagrad", 1), ("rmsprop", 1), ("adam", 2)])
def test_optimizer_state_multiplier(name, k):
    sizes = [20, 30, 5]
    P = 20 * 30 + 30 + 30 * 5 + 5
    e = cost.estimate_mlp(sizes, 8, optimizer=name, dtype="float64")
    assert e.memory["optimizer_state"] == k * P * 8
    assert e.lecture["training_memory"] - e.lecture["parameters"] - 8 * sum(sizes) == k * (20 * 30 + 30 * 5)


def test_newton_state_is_p_squared():
    e = cost.estimate_mlp([3, 4], 2, optimizer="newton")
    P = 3 * 4 + 4
    assert e.memory["optimizer_state"] == P * P * 4


def test_estimate_from_model_matches_spec():
    m = MLP([12, 16, 16, 3])
    a, b = cost.estimate(m, 5, optimizer="sgd"), cost.estimate_mlp([12, 16, 16, 3], 5, optimizer="sgd")
    assert a.parameters == b.parameters == sum(p._data.size for p in m.parameters())
    assert a.memory == b.memory and a.compute == b.compute and a.lecture == b.lecture
    assert [lc.name for lc in a.layers][:2] == ["layers.0", "layers.1"]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        cost.estimate_mlp([4, 8], 2, optimizer="lbfgs")
    with pytest.raises(ValueError, match="input_shape"):
        cost.estimate(MLP([12, 4]), 2, input_shape=(3, 5))
    with pytest.raises(ValueError, match="sizes"):
        cost.estimate_mlp([4], 2)


# ----- measurement: FLOPs ------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_measured_linear_forward_flops_exact(bias):
    B, n_in, n_out = 9, 13, 7
    layer = Linear(n_in, n_out, bias=bias)
    x, y = _data(B, n_in, n_out)
    m = cost.measure(layer, x, y, F.cross_entropy, SGD(layer.parameters(), lr=0.1))
    assert m.flops["inference"]["flops"] == 2 * B * n_in * n_out + (B * n_out if bias else 0)
    assert m.flops["inference"]["macs"] == B * n_in * n_out


def test_first_layer_input_gradient_is_not_counted_unless_computed():
    sizes, B = [30, 40, 20, 5], 6
    model = MLP(sizes)
    x, y = _data(B, sizes[0], sizes[-1])
    macs = [a * b * B for a, b in zip(sizes[:-1], sizes[1:])]
    m = cost.measure(model, x, y, F.cross_entropy, SGD(model.parameters(), lr=0.1))
    assert m.flops["backward"]["input_macs"] == sum(macs[1:])
    assert m.flops["backward"]["weight_macs"] == sum(macs)
    xt = cr.Tensor(x, requires_grad=True)
    m2 = cost.measure(model, xt, y, F.cross_entropy, SGD(model.parameters(), lr=0.1))
    assert m2.flops["backward"]["input_macs"] == sum(macs)


def test_backward_is_twice_forward_when_all_input_gradients_are_needed():
    sizes, B = [128, 256, 256, 64], 32
    model = MLP(sizes)
    x, y = _data(B, sizes[0], sizes[-1])
    m = cost.measure(model, cr.Tensor(x, requires_grad=True), y, F.cross_entropy, SGD(model.parameters(), lr=0.1))
    ratio = m.flops["backward"]["flops"] / m.flops["forward"]["flops"]
    assert abs(ratio - 2) <= 0.1


def test_measured_forward_flops_equal_estimate():
    sizes, B = [30, 40, 20, 5], 6
    model = MLP(sizes)
    x, y = _data(B, sizes[0], sizes[-1])
    m = cost.measure(model, x, y, F.cross_entropy, Adam(model.parameters()))
    e = cost.estimate(model, B)
    assert m.flops["forward"]["macs"] == e.compute["forward_macs"]
    assert m.flops["inference"]["flops"] == e.compute["inference_flops"]
    assert m.flops["backward"]["macs"] == e.compute["backward_input_macs"] + e.compute["backward_weight_macs"]


@pytest.mark.parametrize("input_grad", [False, True])
def test_flops_agree_with_torch_flop_counter(torch, input_grad):
    """FlopCounterMode counts matmul-like ops only (addmm/mm, 2 FLOPs per multiply-add, no bias add,
    no elementwise ops), so compare it with chainrule's matmul work: 2 x measured MACs."""
    from torch.utils.flop_counter import FlopCounterMode
    sizes, B = [64, 96, 48, 10], 16
    model = MLP(sizes)
    x, y = _data(B, sizes[0], sizes[-1])
    xin = cr.Tensor(x, requires_grad=True) if input_grad else x
    m = cost.measure(model, xin, y, F.cross_entropy, SGD(model.parameters(), lr=0.1))
    tm = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.ReLU(), torch.nn.Linear(96, 48), torch.nn.ReLU(),
                             torch.nn.Linear(48, 10))
    tx = torch.tensor(x, requires_grad=input_grad)
    with FlopCounterMode(display=False) as fwd:
        loss = torch.nn.functional.cross_entropy(tm(tx), torch.tensor(y))
    with FlopCounterMode(display=False) as bwd:
        loss.backward()
    assert 2 * m.flops["forward"]["macs"] == fwd.get_total_flops()
    assert 2 * m.flops["backward"]["macs"] == bwd.get_total_flops()


# ----- measurement: memory -----------------------------------------------------------------------
@pytest.mark.parametrize("make,name,k", [
    (lambda p: SGD(p, lr=0.1), "sgd", 0),
    (lambda p: SGD(p, lr=0.1, momentum=0.9), "momentum", 1),
    (lambda p: Adagrad(p), "adagrad", 1),
    (lambda p: RMSprop(p), "rmsprop", 1),
    (lambda p: Adam(p), "adam", 2),
])
def test_measured_memory_matches_estimate(make, name, k):
    sizes, B = [100, 200, 200, 10], 64
    model = MLP(sizes)
    x, y = _data(B, sizes[0], sizes[-1])
    opt = make(model.parameters())
    m = cost.measure(model, x, y, F.cross_entropy, opt)
    e = cost.estimate(model, B, optimizer=opt)
    P = sum(p._data.size for p in model.parameters())
    assert e.optimizer == name
    assert m.optimizer_state == k * P * 4 == e.memory["optimizer_state"]
    peak = m.training_peak
    assert peak["parameters"] == P * 4
    assert abs(peak["total"] / e.memory["training_total"] - 1) < 0.15
    assert abs(m.tracemalloc_peak / e.memory["training_total"] - 1) < 0.15
    assert abs(m.saved_by_graph / e.memory["activations"] - 1) < 0.05
    assert abs(m.memory["inference"]["total"] / e.memory["inference_total"] - 1) < 0.15


@pytest.mark.parametrize("sizes,B", [([64, 10], 32), ([64, 128, 10], 32), ([64, 128, 10], 512),
                                     ([100, 200, 200, 10], 16), ([100, 200, 200, 10], 1024)])
def test_estimated_peak_follows_the_engine_freeing_activations(sizes, B):
    # The estimate simulates backward freeing each node's saved arrays; the peak can come at the first
    # layer's rule (small batches: gradients dominate) or earlier (big batches: activations dominate).
    # Same breakdown as the measurement, line by line, on models fused the way nn.Sequential runs them.
    model = MLP(sizes)
    x, y = _data(B, sizes[0], sizes[-1])
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    m = cost.measure(model, x, y, F.cross_entropy, opt)
    e = cost.estimate(model, B, optimizer=opt)
    peak = m.training_peak
    assert e.memory["activations_at_peak"] < e.memory["activations"]  # something was freed before the peak
    for est, meas in ((e.memory["activations_at_peak"], peak["activations"]),
                      (e.memory["gradients_at_peak"], peak["gradients"]),
                      (e.memory["temporaries"], peak["temporaries"]),
                      (e.memory["training_total"], peak["total"])):
        assert abs(meas / est - 1) < 0.02, (est, meas)


def test_measure_restores_the_model_and_optimizer():
    model = MLP([8, 16, 3])
    opt = Adam(model.parameters())
    before = [p._data.copy() for p in model.parameters()]
    x, y = _data(4, 8, 3)
    cost.measure(model, x, y, F.cross_entropy, opt, warmup=2)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p._data, b)
        assert p.grad is None
    assert not opt.state
    assert cr.autograd.state.profiler is None


# ----- report and CLI ----------------------------------------------------------------------------
def test_report_explains_the_gaps(capsys):
    model = MLP([40, 60, 10])
    r = cost.report(model, batch_size=16, optimizer="adam", measure=True)
    out = capsys.readouterr().out
    assert out.strip() == r.text.strip()
    assert r.measurement is not None and r.estimate.batch_size == 16
    assert "Gaps larger than 10%" in out
    assert "first layer's input gradient" in out
    assert "meas/est" in out
    s = cost.report(model, batch_size=16, optimizer="sgd", verbose=False)
    assert "optimizer sgd" in s.text and s.measurement is None
    assert capsys.readouterr().out == ""  # verbose=False prints nothing


def test_cli_cost(capsys):
    from chainrule.cli import main
    assert main(["cost", "--layers", "784,1568", "--batch-size", "64", "--optimizer", "adam"]) == 0
    out = capsys.readouterr().out
    assert f"D x 2D = 784 x 1568 = {784 * 1568:,}" in out
    assert main(["cost", "--layers", "20,30,4", "--batch-size", "8", "--optimizer", "momentum", "--measure"]) == 0
    assert "measured" in capsys.readouterr().out
    assert main(["cost", "--layers", "20,x"]) == 2


@pytest.mark.parametrize("argv", [["--layers", "20,30,4", "--batch-size", "0"], ["--layers", "20,4", "--batch-size", "-3"],
                                  ["--layers", "20,4", "--batch-size", "x"]])
def test_cli_cost_rejects_a_batch_size_below_one(argv, capsys):
    from chainrule.cli import main
    with pytest.raises(SystemExit) as e:
        main(["cost", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--batch-size" in err and ">= 1" in err and argv[-1] in err


def test_a_registered_rule_prices_a_new_layer_and_matches_the_measurement():
    from chainrule.cost.layers import RULES, LayerCost, register
    from chainrule.nn import Module, Parameter, Sequential

    class Scale(Module):  # y = x * s, one scale per feature
        def __init__(self, n):
            super().__init__()
            self.s = Parameter(np.linspace(0.5, 1.5, n, dtype=np.float32))

        def forward(self, x):
            return x * self.s

    @register(Scale)
    def _scale(m, in_shape, ctx):
        n = in_shape[-1]
        return LayerCost(ctx.name, "scale", n, n, params=n, forward_flops=ctx.batch_size * n), in_shape

    try:
        model = Sequential(Linear(6, 4), Scale(4))
        x, y = _data(5, 6, 4)
        e = cost.estimate(model, 5, input_shape=(6,))
        assert [lc.kind for lc in e.layers] == ["linear", "scale", "loss"] and e.parameters == 6 * 4 + 4 + 4
        m = cost.measure(model, x, y, F.cross_entropy, Adam(model.parameters()))
        assert m.flops["inference"]["flops"] == e.compute["inference_flops"]
        assert m.parameters == e.parameters

        class Scale2(Scale):  # a subclass inherits its parent's rule
            pass
        assert cost.estimate(Sequential(Linear(6, 4), Scale2(4)), 5).layers[1].kind == "scale"
    finally:
        RULES.pop(Scale, None)


def test_unmodelled_layers_point_to_measure():
    from chainrule.nn import Module, Parameter

    class Scale(Module):
        def __init__(self):
            super().__init__()
            self.s = Parameter(np.ones(4, np.float32))

        def forward(self, x):
            return x * self.s

    with pytest.raises(ValueError, match="cost.measure"):
        cost.estimate(Scale(), 2)


def test_cli_cost_run_dir(tmp_path, capsys):
    from chainrule.cli import main
    run = tmp_path / "run"
    assert main(["train", "--data", "iris", "--epochs", "1", "--batch-size", "16", "--optimizer", "sgd", "--hidden", "30",
                 "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["cost", str(run)]) == 0
    out = capsys.readouterr().out
    assert "batch 16" in out and "optimizer sgd" in out and f"{4 * 30 + 30 + 30 * 3 + 3:,}" in out
