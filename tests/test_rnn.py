"""Recurrent layers: nn.RNN / GRU / LSTM and their cells against torch 2.13, the rnn_scan primitive
against its step-by-step composite, finite differences (first and second order), errors, learning."""

import numpy as np
import pytest
from test_examples import run as run_example

import chainrule as cr
from chainrule import nn
from chainrule.ops_rnn import GATES, rnn_scan, scan_reference

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
DT = {np.float32: cr.float32, np.float64: cr.float64}


def _pair(torch, name, dtype, **kw):
    """A torch module and its chainrule twin with the same weights (copied from torch)."""
    t = getattr(torch.nn, name)(**kw).to(getattr(torch, np.dtype(dtype).name))
    c = getattr(nn, name)(**kw, dtype=DT[dtype])
    c.load_state_dict(t.state_dict())
    return t, c


def _close(a, b, dtype):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("name,extra", [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("GRU", {}), ("LSTM", {}),
                                        ("GRU", {"bias": False})])
def test_layer_matches_torch(torch, rng, name, extra, num_layers, batch_first, dtype):
    T, B, n_in, H = 5, 3, 4, 6
    tm, cm = _pair(torch, name, dtype, input_size=n_in, hidden_size=H, num_layers=num_layers, batch_first=batch_first,
                   **extra)
    x = rng.standard_normal((B, T, n_in) if batch_first else (T, B, n_in)).astype(dtype)
    states = [rng.standard_normal((num_layers, B, H)).astype(dtype) for _ in range(2 if name == "LSTM" else 1)]
    xt, st = torch.tensor(x, requires_grad=True), [torch.tensor(s, requires_grad=True) for s in states]
    xc, sc = cr.tensor(x, dtype=DT[dtype], requires_grad=True), [cr.tensor(s, dtype=DT[dtype], requires_grad=True)
                                                                 for s in states]
    ot, ht = tm(xt, tuple(st) if name == "LSTM" else st[0])
    oc, hc = cm(xc, tuple(sc) if name == "LSTM" else sc[0])
    ht, hc = (ht if name == "LSTM" else (ht,)), (hc if name == "LSTM" else (hc,))
    _close(oc.numpy(), ot.detach().numpy(), dtype)
    for a, b in zip(hc, ht):
        _close(a.numpy(), b.detach().numpy(), dtype)
    # a loss that weighs every output and final state differently
    gs = [rng.standard_normal(o.shape).astype(dtype) for o in (ot, *ht)]
    sum(((o * torch.tensor(g)).sum() for o, g in zip((ot, *ht), gs))).backward()
    sum((cr.sum(o * cr.tensor(g, dtype=DT[dtype])) for o, g in zip((oc, *hc), gs))).backward()
    _close(xc.grad.numpy(), xt.grad.numpy(), dtype)
    for a, b in zip(sc, st):
        _close(a.grad.numpy(), b.grad.numpy(), dtype)
    for (n, p), (tn, tp) in zip(cm.named_parameters(), tm.named_parameters()):
        assert n == tn
        _close(p.grad.numpy(), tp.grad.numpy(), dtype)


@pytest.mark.parametrize("name", ["RNNCell", "GRUCell", "LSTMCell"])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_matches_torch(torch, rng, name, batched):
    n_in, H, B = 3, 5, 4
    tm, cm = _pair(torch, name, np.float64, input_size=n_in, hidden_size=H)
    shape = (B,) if batched else ()
    x = rng.standard_normal(shape + (n_in,))
    states = [rng.standard_normal(shape + (H,)) for _ in range(2 if name == "LSTMCell" else 1)]
    st = [torch.tensor(s, requires_grad=True) for s in states]
    sc = [cr.tensor(s, dtype=cr.float64, requires_grad=True) for s in states]
    ot = tm(torch.tensor(x), tuple(st) if len(st) == 2 else st[0])
    oc = cm(x, tuple(sc) if len(sc) == 2 else sc[0])
    ot, oc = (ot, oc) if name == "LSTMCell" else ((ot,), (oc,))
    for a, b in zip(oc, ot):
        _close(a.numpy(), b.detach().numpy(), np.float64)
    sum((o * (k + 1)).sum() for k, o in enumerate(ot)).backward()
    sum(cr.sum(o * (k + 1)) for k, o in enumerate(oc)).backward()
    for a, b in zip(sc, st):
        _close(a.grad.numpy(), b.grad.numpy(), np.float64)
    for p, tp in zip(cm.parameters(), tm.parameters()):
        _close(p.grad.numpy(), tp.grad.numpy(), np.float64)
    assert [n for n, _ in cm.named_parameters()] == list(tm.state_dict())


def test_default_state_is_zeros_and_unbatched_input(torch, rng):
    tm, cm = _pair(torch, "GRU", np.float64, input_size=2, hidden_size=3, num_layers=2)
    x = rng.standard_normal((4, 2))  # unbatched (T, I)
    ot, ht = tm(torch.tensor(x))
    oc, hc = cm(x)
    assert oc.shape == (4, 3) and hc.shape == (2, 3)
    _close(oc.numpy(), ot.detach().numpy(), np.float64)
    _close(hc.numpy(), ht.detach().numpy(), np.float64)


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_state_dict_both_ways_and_init(torch, name):
    tm = getattr(torch.nn, name)(3, 8, num_layers=2)
    cm = getattr(nn, name)(3, 8, num_layers=2)
    assert list(cm.state_dict()) == list(tm.state_dict())
    for (k, v), (tk, tv) in zip(cm.state_dict().items(), tm.state_dict().items()):
        assert v.shape == tuple(tv.shape), k
        assert np.abs(v.numpy()).max() <= 1 / np.sqrt(8)  # U(-1/sqrt(H), 1/sqrt(H))
    assert np.std(cm.weight_hh_l0.numpy()) > 0.5 / np.sqrt(8) / np.sqrt(3)  # really uniform, not zeros
    tm.load_state_dict({k: torch.tensor(v.numpy()) for k, v in cm.state_dict().items()})
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), cm.state_dict()[k].numpy())


@pytest.mark.parametrize("mode", sorted(GATES))
def test_scan_equals_its_composite_and_gradchecks(rng, mode):
    T, B, H = 4, 3, 3
    G, S = GATES[mode] * H, (2 if mode == "lstm" else 1) * H
    args = [rng.standard_normal((T, B, G)), rng.standard_normal((B, S)), 0.5 * rng.standard_normal((G, H)),
            rng.standard_normal(G)]
    np.testing.assert_allclose(rnn_scan(*args, mode=mode), scan_reference(*args, mode=mode)[0], rtol=1e-12, atol=1e-13)
    ts = [cr.tensor(a, dtype=cr.float64, requires_grad=True) for a in args]
    assert cr.gradcheck(lambda *a: rnn_scan(*a, mode=mode), ts)
    if mode != "rnn_relu":  # relu's second derivative is zero almost everywhere; nothing to check
        assert cr.gradgradcheck(lambda *a: rnn_scan(*a, mode=mode), ts)


@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_module_gradcheck_float64(rng, name):
    cr.manual_seed(0)
    m = getattr(nn, name)(2, 3, num_layers=2, dtype=cr.float64)
    x = cr.tensor(rng.standard_normal((3, 2, 2)), dtype=cr.float64, requires_grad=True)

    def f(x, *params):
        out, h = m(x)
        return cr.sum(out * out) + cr.sum((h[0] if name == "LSTM" else h) * 3)
    assert cr.gradcheck(f, [x, *m.parameters()])


def test_hessian_vector_product_through_gru(rng):
    # Newton-type methods need Hessian-vector products through the recurrence: (create_graph) vs differences.
    m = nn.GRU(2, 3, dtype=cr.float64)
    x = rng.standard_normal((4, 2, 2))
    w = m.weight_hh_l0
    v = rng.standard_normal(w.shape)

    def grad_at(wv):
        w._data[...] = wv
        m.zero_grad()
        cr.sum(m(x)[0] ** 2).backward()
        return w.grad.numpy().copy()
    w0 = w.numpy().copy()
    eps = 1e-6
    fd = (grad_at(w0 + eps * v) - grad_at(w0 - eps * v)) / (2 * eps)
    w._data[...] = w0
    (g,) = cr.grad(cr.sum(m(x)[0] ** 2), [w], create_graph=True)
    (hv,) = cr.grad(cr.sum(g * cr.tensor(v, dtype=cr.float64)), [w])
    np.testing.assert_allclose(hv.numpy(), fd, rtol=1e-5, atol=1e-7)


def test_dropout_between_layers_only_in_training(rng):
    cr.manual_seed(0)
    m = nn.GRU(2, 4, num_layers=2, dropout=0.5)
    x = rng.standard_normal((5, 3, 2)).astype(np.float32)
    a, b = m(x)[0].numpy(), m(x)[0].numpy()
    assert not np.allclose(a, b)  # two dropout masks
    m.eval()
    np.testing.assert_array_equal(m(x)[0].numpy(), m(x)[0].numpy())
    one = nn.GRU(2, 4, num_layers=1, dropout=0.5)  # no layer after the last: nothing dropped
    np.testing.assert_array_equal(one(x)[0].numpy(), one(x)[0].numpy())


def test_errors():
    with pytest.raises(ValueError, match="bidirectional=True is not supported"):
        nn.GRU(1, 4, bidirectional=True)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer, got 0"):
        nn.LSTM(1, 0)
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"):
        nn.RNN(1, 2, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\], got 2"):
        nn.GRU(1, 2, dropout=2)
    m = nn.GRU(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"input has 5 features \(shape \(7, 2, 5\)\) but input_size=3"):
        m(np.zeros((7, 2, 5)))
    with pytest.raises(ValueError, match=r"hx must have shape \(2, 2, 4\)"):
        m(np.zeros((7, 2, 3)), np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match="hx must be a tuple"):
        nn.LSTM(3, 4)(np.zeros((7, 2, 3)), np.zeros((1, 2, 4)))
    with pytest.raises(TypeError, match="input is float64 but the weights are float32"):
        m(cr.tensor(np.zeros((7, 2, 3)), dtype=cr.float64))
    with pytest.raises(ValueError, match=r"GRUCell: input must be \(batch, 3\) or \(3,\), got shape \(2, 4\)"):
        nn.GRUCell(3, 4)(np.zeros((2, 4)))


def test_mnist1d_gru_recipe_learns():
    # examples/10_mnist1d_gru.py in quick mode: six of its 20 epochs (~10 s on one core), far above
    # chance (10%) and the paper's logistic regression (32%) and MLP (68%); the full run reaches >= 91%.
    r = run_example("10_mnist1d_gru.py")
    assert r["test_acc"] > 0.75, r
    assert r["val_acc"][-1] > r["val_acc"][0]


@pytest.mark.parametrize("mode", sorted(GATES))
def test_fast_backward_equals_the_composite(rng, mode):
    # the rule's in-place NumPy path (training) and its primitive composite (create_graph) agree
    from chainrule.ops_rnn import _composite_bptt, _scan_backward
    T, B, H = 5, 3, 4
    G, S = GATES[mode] * H, (2 if mode == "lstm" else 1) * H
    xp, h0, w = rng.standard_normal((T, B, G)), rng.standard_normal((B, S)), 0.5 * rng.standard_normal((G, H))
    out, saved = rnn_scan.forward(xp, h0, w, mode=mode)
    g = rng.standard_normal(out.shape)
    for fast, slow in zip(_scan_backward(g, out, h0, w, saved, mode=mode), _composite_bptt(g, out, h0, w, saved, mode)):
        np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)


def test_backward_refuses_states_updated_in_place():
    # rnn_scan's rule reads the states it returned (reads_out): changing them in place must be caught
    m = nn.GRU(2, 3)
    out, _ = m(np.ones((4, 1, 2), np.float32))
    loss = cr.sum(out)  # sum's rule reads nothing: only rnn_scan's can object
    with cr.no_grad():
        out += 1.0
    with pytest.raises(RuntimeError, match="rnn_scan: .*updated in place"):
        loss.backward()


def test_gru_classifier_shapes_readouts_and_errors(rng):
    x = rng.standard_normal((5, 40))
    for readout, n_head in (("all", 40 * 8), ("last", 8)):
        m = cr.models.GRUClassifier(40, 3, hidden_size=8, readout=readout)
        assert m.head.in_features == n_head and m(x).shape == (5, 3)
        np.testing.assert_allclose(m.predict_proba(x).sum(1), 1, rtol=1e-6)
        assert m.predict(x).dtype == np.int64 and m.config()["readout"] == readout
    two = cr.models.GRUClassifier(40, 3, hidden_size=4, input_size=2)  # 20 steps of 2 values
    assert two.steps == 20 and two(x).shape == (5, 3)
    with pytest.raises(ValueError, match="n_features=40 is not a multiple of input_size=3"):
        cr.models.GRUClassifier(40, 3, input_size=3)
    with pytest.raises(ValueError, match="readout must be 'all' or 'last'"):
        cr.models.GRUClassifier(readout="mean")
