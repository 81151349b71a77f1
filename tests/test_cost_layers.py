"""chainrule.cost on the layers beyond Linear: convolution, pooling, normalization, embeddings,
recurrent layers, and the built-in CNN1d / GRUClassifier.

Each case runs ``cost.estimate`` (the formulas of cost/layers_conv.py and cost/layers_seq.py, no
arrays) and ``cost.measure`` (the FLOP rules of the primitives that ran, and the arrays the graph
held) and asserts they agree exactly: parameters, forward MACs and FLOPs, inference FLOPs, backward
FLOPs and MACs, the numbers saved for backward, and (where stated) inference memory. Hand-written
formulas (the lecture's street-fighting style, in the tests' own arithmetic) pin a few figures
independently of both."""

import math

import numpy as np
import pytest

import chainrule as cr
import chainrule.functional as F
from chainrule import cost, nn
from chainrule.models import CNN1d, GRUClassifier
from chainrule.optim.adaptive import Adam
from chainrule.optim.sgd import SGD

RNG = np.random.default_rng(0)


def _x(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _both(model, x, n_classes, input_shape=None, grad_x=False, optimizer=None):
    """(estimate, measurement) of one training step of ``model`` on ``x``."""
    y = RNG.integers(0, n_classes, len(x))
    opt = optimizer(model.parameters()) if optimizer else SGD(model.parameters(), lr=0.1, momentum=0.9)
    xin = cr.Tensor(x, requires_grad=True) if grad_x else x
    m = cost.measure(model, xin, y, F.cross_entropy, opt)
    e = cost.estimate(model, len(x), input_shape=input_shape or np.shape(x)[1:], optimizer=opt,
                      input_requires_grad=grad_x)
    return e, m


def _agree(e, m, split=True, inference_memory=True, peak=0.2):
    """Estimate == measurement, figure by figure. ``split=False``: the backward MACs agree in total
    but the measurement files some dX work under dW (see test_adaptive_pooling_input_gradient...)."""
    c, f = e.compute, m.flops
    assert e.parameters == m.parameters
    assert c["forward_macs"] == f["forward"]["macs"]
    assert c["forward_flops"] == f["forward"]["flops"]
    assert c["inference_flops"] == f["inference"]["flops"]
    assert c["backward_flops"] == f["backward"]["flops"]
    bw = c["backward_input_macs"] + c["backward_weight_macs"]
    assert bw == f["backward"]["macs"]
    if split:
        assert c["backward_input_macs"] == f["backward"]["input_macs"]
        assert c["backward_weight_macs"] == f["backward"]["weight_macs"]
    assert e.memory["activations"] == m.saved_by_graph
    if inference_memory:
        assert e.memory["inference_total"] == m.memory["inference"]["total"]
    # the training peak is simulated from per-layer temporaries: close, not exact (on tiny layers the
    # small-array paths, like broadcast_to's copy below 4096 numbers, move it most)
    assert abs(m.training_peak["total"] / e.memory["training_total"] - 1) < peak


def _head(model_body, x, n_classes=5):
    """body + Flatten + Linear, sized from one real forward of the body."""
    n = int(np.prod(model_body.eval()(cr.tensor(x[:2])).shape[1:]))
    model_body.train()
    return nn.Sequential(model_body, nn.Flatten(), nn.Linear(n, n_classes))


# ----- convolution ---------------------------------------------------------------------------------
CONV = [dict(), dict(padding=1), dict(stride=2), dict(stride=3, bias=False), dict(dilation=2), dict(groups=2),
        dict(groups=2, bias=False), dict(padding="same"), dict(kernel_size=1), dict(kernel_size=1, stride=2),
        dict(padding=2, padding_mode="reflect"), dict(stride=3, padding=1, padding_mode="circular")]


@pytest.mark.parametrize("kw", CONV, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "plain")
@pytest.mark.parametrize("first", [True, False], ids=["first", "second"])
@pytest.mark.parametrize("relu", [False, True], ids=["", "relu"])
def test_conv1d_estimate_equals_measurement(kw, first, relu):
    kw = dict(kernel_size=3) | kw
    mods = ([] if first else [nn.Conv1d(4, 4, 1)]) + [nn.Conv1d(4, 6, **kw)] + ([nn.ReLU()] if relu else [])
    x = _x(4, 4, 12)
    e, m = _both(_head(nn.Sequential(*mods), x), x, 5)
    _agree(e, m)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(dilation=(2, 1), padding=(2, 0)),
                                dict(groups=3, bias=False), dict(kernel_size=(3, 1), stride=(1, 2)),
                                dict(padding="same", padding_mode="replicate")], ids=str)
@pytest.mark.parametrize("grad_x", [False, True], ids=["", "dx"])
def test_conv2d_estimate_equals_measurement(kw, grad_x):
    kw = dict(kernel_size=3) | kw
    x = _x(3, 3, 9, 8)
    body = nn.Sequential(nn.Conv2d(3, 6, **kw), nn.Tanh())
    e, m = _both(_head(body, x), x, 4, grad_x=grad_x)
    _agree(e, m)


@pytest.mark.parametrize("groups,bias", [(1, True), (2, False), (4, True)])
def test_conv_formulas_by_hand(groups, bias):
    """Params O (C/G) K + O; forward N L O (C/G) K multiply-adds; it keeps C K N L columns (and, grouped,
    the product before the bias is added: N L O)."""
    N, C, O, S, k, s, p = 5, 4, 8, 11, 3, 2, 1  # noqa: E741 - the docstring's letters
    conv = nn.Conv1d(C, O, k, stride=s, padding=p, groups=groups, bias=bias)
    L = (S + 2 * p - k) // s + 1
    lc = cost.estimate(nn.Sequential(conv), N, input_shape=(C, S), loss=None).layers[0]
    assert lc.params == O * (C // groups) * k + (O if bias else 0) == sum(q.numel() for q in conv.parameters())
    assert lc.forward_macs == N * L * O * (C // groups) * k
    assert lc.forward_flops == 2 * lc.forward_macs + (N * L * O if bias else 0)
    assert lc.backward_weight_macs == lc.forward_macs and lc.backward_input_macs == 0  # first layer: no dX
    assert lc.saved == C * k * N * L + (N * L * O if groups > 1 and bias else 0)  # its input needs no gradient


def test_unpadded_disjoint_windows_are_a_view_and_keep_only_the_input():
    """Stride >= kernel and no padding: unfold returns a view; a 1x1 conv keeps the input itself."""
    x = _x(4, 3, 8, 8)
    e, m = _both(_head(nn.Sequential(nn.Conv2d(3, 5, 1)), x), x, 3)
    _agree(e, m)
    assert e.layers[0].saved == 4 * 3 * 8 * 8  # the batch, not a copy


# ----- pooling -------------------------------------------------------------------------------------
POOL1 = [nn.MaxPool1d(2), nn.MaxPool1d(3, stride=2), nn.MaxPool1d(3, padding=1), nn.MaxPool1d(2, ceil_mode=True),
         nn.MaxPool1d(2, dilation=2), nn.AvgPool1d(2), nn.AvgPool1d(3, stride=2, padding=1),
         nn.AvgPool1d(3, padding=1, count_include_pad=False), nn.AvgPool1d(2, ceil_mode=True)]
POOL2 = [nn.MaxPool2d(2), nn.MaxPool2d((3, 2), stride=(2, 1), padding=1), nn.AvgPool2d(2, divisor_override=3),
         nn.AvgPool2d(3, stride=2, ceil_mode=True)]


@pytest.mark.parametrize("pool", POOL1 + POOL2, ids=repr)
@pytest.mark.parametrize("first", [True, False], ids=["first", "after-conv"])
def test_pooling_estimate_equals_measurement(pool, first):
    x = _x(4, 3, 13) if isinstance(pool, (nn.MaxPool1d, nn.AvgPool1d)) else _x(4, 3, 9, 8)
    conv = nn.Conv1d(3, 3, 1) if x.ndim == 3 else nn.Conv2d(3, 3, 1)
    e, m = _both(_head(nn.Sequential(*([] if first else [conv]), pool), x), x, 5)
    _agree(e, m, inference_memory=not isinstance(pool, (nn.AvgPool1d, nn.AvgPool2d)))


def test_max_pool_formulas_by_hand():
    """Max pooling after a conv: C K N L comparisons forward, 5 C K N L backward (mask, count, share,
    divide, fold); windows that tile the input (stride = kernel) take the blocks path, whose backward is
    3 C S N (two per input for the share, one product)."""
    N, C, S, k = 6, 3, 12, 3
    L = S // k
    e = cost.estimate(nn.Sequential(nn.Conv1d(2, C, 1), nn.MaxPool1d(k)), N, input_shape=(2, S), loss=None)
    pool = e.layers[1]
    assert pool.forward_flops == C * k * N * L and pool.backward_flops == 3 * C * S * N
    L = (S - k) // 2 + 1  # stride 2: overlapping windows, the unfold path
    e = cost.estimate(nn.Sequential(nn.Conv1d(2, C, 1), nn.MaxPool1d(k, 2)), N, input_shape=(2, S), loss=None)
    pool = e.layers[1]
    assert pool.forward_flops == C * k * N * L and pool.backward_flops == 5 * C * k * N * L


@pytest.mark.parametrize("pool", [nn.AdaptiveAvgPool1d(4), nn.AdaptiveAvgPool1d(1)], ids=repr)
@pytest.mark.parametrize("first", [True, False], ids=["first", "after-conv"])
def test_adaptive_pooling_1d(pool, first):
    x = _x(4, 3, 13)
    e, m = _both(_head(nn.Sequential(*([] if first else [nn.Conv1d(3, 3, 1)]), pool), x), x, 5)
    _agree(e, m, split=first)


@pytest.mark.parametrize("pool", [nn.AdaptiveAvgPool2d((2, 3)), nn.AdaptiveAvgPool2d(1),
                                  nn.AdaptiveAvgPool2d((None, 2))], ids=repr)
@pytest.mark.parametrize("grad_x", [False, True], ids=["", "dx"])
def test_adaptive_pooling_2d(pool, grad_x):
    x = _x(4, 3, 9, 8)
    e, m = _both(_head(nn.Sequential(nn.Conv2d(3, 3, 1), pool), x), x, 5, grad_x=grad_x)
    _agree(e, m, split=False)


def test_adaptive_pooling_input_gradient_is_filed_under_dw_by_the_measurement():
    """The measurement calls a backward product dX when it reads a parameter, dW otherwise. Adaptive
    pooling's input gradient ``G P`` reads a constant averaging matrix, so the measurement files its
    N C L O multiply-adds under dW; the estimate calls them dX. The totals agree; the split differs
    by exactly that much."""
    N, C, L, O = 4, 3, 13, 4  # noqa: E741
    x = _x(N, C, L)
    e, m = _both(_head(nn.Sequential(nn.Conv1d(C, C, 1), nn.AdaptiveAvgPool1d(O)), x), x, 5)
    gap = N * C * L * O
    assert e.compute["backward_input_macs"] - m.flops["backward"]["input_macs"] == gap
    assert m.flops["backward"]["weight_macs"] - e.compute["backward_weight_macs"] == gap


# ----- normalization -------------------------------------------------------------------------------
NORMS = [
    (lambda: [nn.Conv1d(3, 3, 1), nn.BatchNorm1d(3)], (3, 5)),
    (lambda: [nn.Conv1d(3, 3, 1), nn.BatchNorm1d(3, affine=False)], (3, 5)),
    (lambda: [nn.Conv1d(3, 3, 1), nn.BatchNorm1d(3, bias=False)], (3, 5)),
    (lambda: [nn.BatchNorm1d(3)], (3, 5)),
    (lambda: [nn.Conv1d(3, 3, 1), nn.LayerNorm(5)], (3, 5)),
    (lambda: [nn.Conv1d(3, 3, 1), nn.LayerNorm((3, 5))], (3, 5)),
    (lambda: [nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3), nn.ReLU()], (3, 4, 5)),
    (lambda: [nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU()], (5,)),
    (lambda: [nn.Linear(5, 6), nn.LayerNorm(6)], (5,)),
]


@pytest.mark.parametrize("make,shape", NORMS, ids=lambda v: "" if isinstance(v, tuple) else
                         "-".join(type(m).__name__ for m in v()))
def test_normalization_estimate_equals_measurement(make, shape):
    x = _x(4, *shape)
    e, m = _both(_head(nn.Sequential(*make()), x), x, 5)
    _agree(e, m)


def test_batch_norm_formulas_by_hand():
    """BatchNorm on E = N C L numbers of C channels: 2C parameters, 7E + 4C FLOPs forward,
    16E + 4C backward, and it keeps 5E + 6C numbers (input, x - mean, its square, x_hat, weight x_hat;
    the six per-channel statistics)."""
    N, C, L = 8, 4, 6
    E = N * C * L
    est = cost.estimate(nn.Sequential(nn.Conv1d(2, C, 1), nn.BatchNorm1d(C)), N, input_shape=(2, L), loss=None)
    bn = est.layers[1]
    assert bn.params == 2 * C
    assert bn.forward_flops == 7 * E + 4 * C
    assert bn.backward_flops == 16 * E + 4 * C
    assert bn.saved == 5 * E + 6 * C


# ----- embeddings ----------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: nn.Embedding(20, 6), lambda: nn.Embedding(20, 6, padding_idx=0)],
                         ids=["plain", "padding_idx"])
def test_embedding_estimate_equals_measurement(make):
    N, L = 5, 7
    idx = RNG.integers(0, 20, (N, L))
    idx[:, 0] = 0  # padding present (the estimate prices padding_idx as if the batch has some)
    model = nn.Sequential(make(), nn.Flatten(), nn.Linear(L * 6, 3))
    e, m = _both(model, idx, 3, input_shape=(L,))
    _agree(e, m)
    emb = e.layers[0]
    assert emb.params == 20 * 6 and emb.input_bytes == N * L * 8


def test_embedding_formulas_by_hand():
    """V D parameters; nothing forward; N L D additions into the gradient; keeps nothing but its
    N L D output (the next layer's input)."""
    V, D, N, L = 50, 8, 4, 3
    e = cost.estimate(nn.Sequential(nn.Embedding(V, D), nn.Flatten(), nn.Linear(L * D, 2)), N, input_shape=(L,))
    emb, lin = e.layers[0], e.layers[1]
    assert emb.params == V * D and emb.forward_flops == 0 and emb.backward_flops == N * L * D and emb.saved == 0
    assert lin.saved == N * L * D


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_estimate_equals_measurement(mode):
    N, L = 6, 5
    idx = RNG.integers(0, 30, (N, L))
    e, m = _both(nn.Sequential(nn.EmbeddingBag(30, 4, mode=mode), nn.Linear(4, 3)), idx, 3, input_shape=(L,))
    _agree(e, m)


# ----- recurrent layers ----------------------------------------------------------------------------
def _seq_model(rnn, steps, readout, n_classes=5):
    """GRUClassifier's read-out around any recurrent layer (its rule reads ``model.rnn``)."""
    model = GRUClassifier(steps * rnn.input_size, n_classes, rnn.hidden_size, input_size=rnn.input_size,
                          readout=readout)
    model.rnn = rnn
    return model


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2), dict(num_layers=3, bias=False), dict(input_size=3)],
                         ids=str)
@pytest.mark.parametrize("readout", ["all", "last"])
def test_recurrent_estimate_equals_measurement(kind, kw, readout):
    kw = dict(input_size=1, hidden_size=4) | kw
    extra = dict(nonlinearity="relu") if kind == "RNN" and kw.get("num_layers") == 2 else {}
    rnn = getattr(nn, kind)(batch_first=True, **kw, **extra)
    model = _seq_model(rnn, 6, readout)
    x = _x(4, 6 * kw["input_size"])
    e, m = _both(model, x, 5)
    _agree(e, m)


@pytest.mark.parametrize("grad_x", [False, True], ids=["", "dx"])
def test_recurrent_layer_with_input_gradient(grad_x):
    model = _seq_model(nn.LSTM(2, 3, num_layers=2, batch_first=True), 5, "all")
    x = _x(3, 10)
    e, m = _both(model, x, 4, grad_x=grad_x)
    _agree(e, m)


def test_gru_formulas_by_hand():
    """GRU(I, H): G = 3H rows, G I + G H + 2G parameters; forward T B (I G + H G) multiply-adds; the
    recurrence keeps T B (G + 4H + H) numbers (projections, gates, states) and the zero state."""
    T, B, I, H = 7, 5, 2, 4  # noqa: E741
    G = 3 * H
    lc = cost.estimate(_seq_model(nn.GRU(I, H, batch_first=True), T, "all"), B).layers[0]
    assert lc.params == G * I + G * H + 2 * G
    assert lc.forward_macs == T * B * (I * G + H * G)
    assert lc.backward_input_macs == T * B * H * G  # dX is skipped for the input; dh_{t-1} = dhp W_hh is not
    assert lc.saved == T * B * I + T * B * (G + 4 * H) + B * H  # input copy (batch_first), xp, gates, h0


@pytest.mark.parametrize("cell", [lambda: nn.GRUCell(3, 4), lambda: nn.RNNCell(3, 4), lambda: nn.GRUCell(3, 4, bias=False)],
                         ids=["gru", "rnn", "gru-nobias"])
def test_cells_estimate_equals_measurement(cell):
    x = _x(5, 3)
    e, m = _both(nn.Sequential(cell(), nn.Linear(4, 3)), x, 3)
    _agree(e, m)


# ----- whole models --------------------------------------------------------------------------------
def _lenet():
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def test_lenet5_end_to_end():
    x = _x(16, 1, 28, 28)
    e, m = _both(_lenet(), x, 10, optimizer=Adam)
    _agree(e, m, peak=0.02)
    # the street-fighting count: the convolutions' multiply-adds, N x L x O x C K per layer
    assert e.compute["forward_macs"] == 16 * (28 * 28 * 6 * 25 + 10 * 10 * 16 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10)


@pytest.mark.parametrize("kw", [dict(), dict(channels=8, batch_norm=True), dict(channels=6, dropout=0.3)], ids=str)
def test_cnn1d_end_to_end(kw):
    model = CNN1d(40, 10, **kw)
    e, m = _both(model, _x(32, 40), 10, optimizer=Adam)
    _agree(e, m, peak=0.02)
    assert e.parameters == CNN1d.state_numel(40, 10, **kw) - (3 * (2 * kw["channels"] + 1) if kw.get("batch_norm") else 0)


@pytest.mark.parametrize("kw", [dict(), dict(readout="last"), dict(num_layers=2, hidden_size=8),
                                dict(input_size=2, hidden_size=6), dict(num_layers=3, hidden_size=8, dropout=0.3)],
                         ids=str)
def test_gru_classifier_end_to_end(kw):
    model = GRUClassifier(40, 10, **kw)
    e, m = _both(model, _x(16, 40), 10, optimizer=Adam)
    _agree(e, m, peak=0.06 if kw.get("dropout") else 0.02)  # dropout's backward temporaries are not modelled
    assert e.parameters == GRUClassifier.state_numel(40, 10, **kw)


def test_summary_lists_the_layers_with_their_costs():
    model = _lenet()
    e = cost.estimate(model, 8, input_shape=(1, 28, 28), loss=None)
    text = model.summary((1, 28, 28), batch_size=8)
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "type", "parameters", "count", "fwd", "FLOPs", "bwd", "FLOPs", "saved"]
    rows = {ln.split()[0]: ln.split() for ln in lines[2:2 + 12]}
    for lc in e.layers:
        r = rows[lc.name]
        assert r[-3:] == [f"{lc.forward_flops:,}", f"{lc.backward_flops:,}", f"{lc.saved:,}"]
    assert rows["0"][1] == "Conv2d" and rows["0"][-4] == f"{6 * 25 + 6:,}"
    assert rows["2"][1] == "MaxPool2d" and rows["5"][1] == "AvgPool2d"
    assert f"forward {e.compute['forward_flops']:,} FLOPs" in lines[-1]
    gru = GRUClassifier(40, 10).summary()  # the models know their input shape
    assert "GRU" in gru and "(reshape)" in gru and "fwd FLOPs" in gru


def test_estimate_errors_name_the_layer_and_the_shape():
    with pytest.raises(ValueError, match=r"0 \(Conv2d\).*\(pass input_shape\)"):
        cost.estimate(_lenet(), 4)
    with pytest.raises(ValueError, match="gets 3 channels"):
        cost.estimate(nn.Sequential(nn.Conv1d(2, 4, 3)), 4, input_shape=(3, 10))
    with pytest.raises(ValueError, match=r"LayerNorm\(6,\)"):
        cost.estimate(nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(6)), 4, input_shape=(4,))


def test_estimate_scales_with_the_batch_like_the_formulas():
    """Doubling the batch doubles every activation-proportional figure of a conv net (the parameters stay)."""
    model = _lenet()
    a, b = (cost.estimate(model, n, input_shape=(1, 28, 28)) for n in (8, 16))
    assert b.parameters == a.parameters
    assert b.compute["forward_macs"] == 2 * a.compute["forward_macs"]
    assert math.isclose(b.memory["activations"] - 16 * 8 - 4, 2 * (a.memory["activations"] - 8 * 8 - 4))


def test_report_on_a_conv_net_agrees_line_by_line():
    r = cost.report(CNN1d(40, 10, channels=6), batch_size=16, optimizer="adam", measure=True, verbose=False)
    rows = {row[0]: row for row in cost.comparison_rows(r.estimate, r.measurement)}
    for label in ("compute: forward FLOPs", "compute: backward FLOPs", "compute: backward dX MACs",
                  "memory: saved activations", "memory: training peak"):
        assert rows[label][3] == rows[label][4], label
    assert "shares its weights" in rows["parameters"][5]
