"""Recurrent primitives: a whole sequence of RNN, GRU or LSTM steps as one node.

:func:`rnn_scan` runs the recurrence ``s_t = cell(xp_t, s_{t-1})`` over the time-major input
projections ``xp`` of shape (T, B, G) (``x_t W_ih^T + b_ih`` for every step, computed before the loop
in ONE product by the caller), ``G = gates * H``. Per step it does one product ``h_{t-1} W_hh^T`` and the
gate arithmetic in place in NumPy; the graph gets one node per layer instead of a dozen per step.

Its gradient rule is backpropagation through time written in chainrule's primitives: the local
derivatives of the gates are computed for all steps at once before the loop, so a step of the
backward is one product ``dhp_t W_hh`` and a few elementwise primitives; ``dW_hh`` is one product
over the whole sequence after it. Written in primitives, the rule is differentiable too
(``create_graph=True``): the gates are then rebuilt as Tensors by :func:`scan_reference`, the
same recurrence composed from primitives, so Hessian-vector products work through recurrent layers.

Equations (PyTorch's, gate order as in its weights):

- ``rnn_tanh`` / ``rnn_relu``: ``h' = g(xp + W_hh h + b_hh)``
- ``gru`` (r, z, n): ``r = s(xp_r + hp_r)``, ``z = s(xp_z + hp_z)``, ``n = tanh(xp_n + r * hp_n)``,
  ``h' = (1 - z) n + z h`` with ``hp = W_hh h + b_hh``
- ``lstm`` (i, f, g, o): ``a = xp + W_hh h + b_hh``, ``c' = s(a_f) c + s(a_i) tanh(a_g)``,
  ``h' = s(a_o) tanh(c')``; the state is ``[h | c]`` of width 2H.
"""

from __future__ import annotations

import numpy as np

from . import _blas
from .ops import add, concatenate, greater, matmul, mul, primitive, relu, reshape, sigmoid, sub, sum, tanh, transpose

#: gates per hidden unit of each mode
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}


def _sig_(a: np.ndarray) -> np.ndarray:
    """sigma(a) in place, as ``(1 + tanh(a / 2)) / 2``: one transcendental pass, no overflow."""
    np.multiply(a, 0.5, out=a)
    np.tanh(a, out=a)
    np.multiply(a, 0.5, out=a)
    return np.add(a, 0.5, out=a)


#: FLOPs per hidden unit and step of the gate arithmetic, one per elementwise operation (sigma and
#: tanh one each, as their primitives count them), as the loops below run it:
#: rnn: xp + a, g(.) (2); gru: xp + a on r, z (2), sigma (2), r hn, + xp_n, tanh, h - n, * z, + n (6);
#: lstm: a + xp on 4 gates (4), sigma on i, f, o (3), tanh g (1), f c, i g, + (3), tanh c', o * (2).
SCAN_FLOPS = {"rnn_tanh": 2, "rnn_relu": 2, "gru": 10, "lstm": 13}
#: ... and of the backward step (:func:`_scan_backward`): dh = carry + g (1 per state number: 2 for
#: the LSTM's [h | c]); rnn_tanh y y, 1 -, * dh (3); rnn_relu y > 0, * dh (2); gru 15 in _gru_back and
#: the carry's + dh z (1); lstm 6 for dc, 4 per gate (16), dc f (1).
SCAN_BACKWARD_FLOPS = {"rnn_tanh": 4, "rnn_relu": 3, "gru": 17, "lstm": 25}


def _scan_macs(out, xp, h0, w, b=None, mode="gru"):
    T, B, G = xp.shape
    return T * B * w.shape[1] * G  # h_{t-1} W_hh^T per step


def _scan_flops(out, xp, h0, w, b=None, mode="gru"):
    # per step: the product h W_hh^T (2 B H G), the bias (B G), and the gate arithmetic per unit
    T, B, G = xp.shape
    H = w.shape[1]
    return 2 * _scan_macs(out, xp, h0, w, b, mode) + T * ((B * G if b is not None else 0) + SCAN_FLOPS[mode] * B * H)


def _check(xp, h0, w, b, mode):
    if mode not in GATES:
        raise ValueError(f"rnn_scan: mode must be one of {sorted(GATES)}, got {mode!r}")
    G, H = w.shape
    S = 2 * H if mode == "lstm" else H
    if G != GATES[mode] * H or xp.ndim != 3 or xp.shape[2] != G or h0.shape != (xp.shape[1], S):
        raise ValueError(f"rnn_scan ({mode}): xp {tuple(xp.shape)} must be (T, B, {GATES[mode]}H), "
                         f"w_hh {tuple(w.shape)} ({GATES[mode]}H, H) and h0 {tuple(h0.shape)} (B, {S})")
    if b is not None and b.shape != (G,):
        raise ValueError(f"rnn_scan ({mode}): b_hh has shape {tuple(b.shape)}, expected ({G},)")


@primitive("rnn_scan", inputs=("input", "hx", "weight_hh", "bias_hh"), flops=_scan_flops, macs=_scan_macs,
           reads="both", saves=True)
def rnn_scan(xp, h0, w, b=None, mode="gru"):
    """All states of a recurrence (see the module docstring): ``out[t] = s_t`` of shape (T, B, S),
    S = H (2H for the LSTM's ``[h | c]``). Fused for speed: one node for the whole sequence."""
    _check(xp, h0, w, b, mode)
    T, B, G = xp.shape
    H = w.shape[1]
    out = np.empty((T, B, h0.shape[1]), np.result_type(xp.dtype, w.dtype))
    # saved for the rule: the activated gates, and for the GRU also W_hn h + b_hn: (T, B, 4H) either way
    gates = np.empty((T, B, 4 * H), out.dtype) if mode in ("gru", "lstm") else None
    s, wt = h0, w.T
    for t in range(T):
        a = _blas.matmul(s[:, :H] if mode == "lstm" else s, wt)
        if b is not None:
            a += b
        if mode == "gru":
            _gru_step(xp[t], a, s, gates[t], out[t], H)
        elif mode == "lstm":
            _lstm_step(xp[t], a, s, gates[t], out[t], H)
        else:
            a += xp[t]
            (np.tanh if mode == "rnn_tanh" else _relu_)(a, out=out[t])
        s = out[t]
    return out, gates


def _relu_(a, out):
    return np.maximum(a, 0, out=out)


def _gru_step(x, a, h, g, out, H):
    rz, n, hn = g[:, :2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
    _sig_(np.add(x[:, :2 * H], a[:, :2 * H], out=rz))
    hn[...] = a[:, 2 * H:]
    np.multiply(g[:, :H], hn, out=n)
    np.tanh(np.add(n, x[:, 2 * H:], out=n), out=n)
    np.subtract(h, n, out=out)  # h' = n + z (h - n)
    np.multiply(out, g[:, H:2 * H], out=out)
    np.add(out, n, out=out)


def _lstm_step(x, a, s, g, out, H):
    np.add(a, x, out=g)
    _sig_(g[:, :2 * H])
    np.tanh(g[:, 2 * H:3 * H], out=g[:, 2 * H:3 * H])
    _sig_(g[:, 3 * H:])
    h, c = out[:, :H], out[:, H:]
    np.multiply(g[:, H:2 * H], s[:, H:], out=c)  # c' = f c + i g
    c += g[:, :H] * g[:, 2 * H:3 * H]
    np.multiply(np.tanh(c, out=h), g[:, 3 * H:], out=h)  # h' = o tanh(c')


def scan_reference(xp, h0, w, b=None, mode="gru"):
    """The recurrence of :func:`rnn_scan` composed step by step from primitives (differentiable
    to any order; slow). Returns ``(out, saved)`` as rnn_scan's forward does; its gradient rule
    calls it to rebuild the gates as Tensors when the backward is recorded."""
    H = w.shape[1]
    s, outs, gs = h0, [], []
    for t in range(xp.shape[0]):
        a = matmul(s[:, :H] if mode == "lstm" else s, transpose(w))
        a, x = (a if b is None else add(a, b)), xp[t]
        if mode == "gru":
            rz = sigmoid(add(x[:, :2 * H], a[:, :2 * H]))
            n = tanh(add(x[:, 2 * H:], mul(rz[:, :H], a[:, 2 * H:])))
            s = add(n, mul(rz[:, H:], sub(s, n)))
            gs.append(concatenate(rz, n, a[:, 2 * H:], axis=-1))
        elif mode == "lstm":
            a = add(a, x)
            ifg = concatenate(sigmoid(a[:, :2 * H]), tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:]), axis=-1)
            c = add(mul(ifg[:, H:2 * H], s[:, H:]), mul(ifg[:, :H], ifg[:, 2 * H:3 * H]))
            s = concatenate(mul(ifg[:, 3 * H:], tanh(c)), c, axis=-1)
            gs.append(ifg)
        else:
            a = add(a, x)
            s = tanh(a) if mode == "rnn_tanh" else relu(a)
        outs.append(s)
    out = _stack(outs)
    return out, (_stack(gs) if gs else None)


def _stack(xs):
    return concatenate(*[reshape(x, shape=(1,) + tuple(x.shape)) for x in xs], axis=0)


def _local_derivatives(out, saved, h0, hprev, mode, H):
    """Per-step factors of the backward that do not depend on the incoming gradient, for all steps
    at once: ``(D, Dh, carry)`` with ``dxp_t = dh_t * D[t]``, ``dhp_t = dh_t * Dh[t]`` (broadcast over the
    gate axis of (T, B, gates, H) arrays) and ``carry[t]`` the direct factor of ``dh_{t-1}``."""
    T, B = out.shape[:2]
    if mode == "rnn_tanh":
        d = sub(1.0, mul(out, out))
        return d, d, None
    if mode == "rnn_relu":
        d = greater(out, 0.0)
        return d, d, None
    if mode == "gru":
        r, z, n, hn = (saved[..., k * H:(k + 1) * H] for k in range(4))
        a = mul(sub(1.0, z), sub(1.0, mul(n, n)))            # d h'/d pre_n
        bz = mul(mul(sub(hprev, n), z), sub(1.0, z))        # d h'/d pre_z
        ar = mul(mul(a, hn), mul(r, sub(1.0, r)))           # d h'/d pre_r
        four = (T, B, 1, H)
        d = concatenate(reshape(ar, shape=four), reshape(bz, shape=four), reshape(a, shape=four), axis=2)
        dh = concatenate(reshape(ar, shape=four), reshape(bz, shape=four), reshape(mul(a, r), shape=four), axis=2)
        return d, dh, z
    gates = saved
    i, f, g, o = (gates[..., k * H:(k + 1) * H] for k in range(4))
    c = out[..., H:]
    cprev = concatenate(reshape(h0[:, H:], shape=(1, B, H)), c[:-1], axis=0)
    tc = tanh(c)
    p = mul(o, sub(1.0, mul(tc, tc)))                      # d h'/d c'
    four = (T, B, 1, H)
    d = concatenate(reshape(mul(g, mul(i, sub(1.0, i))), shape=four),  # d c'/d pre_i, pre_f, pre_g
                    reshape(mul(cprev, mul(f, sub(1.0, f))), shape=four),
                    reshape(mul(i, sub(1.0, mul(g, g))), shape=four), axis=2)
    return (d, p, mul(tc, mul(o, sub(1.0, o)))), f


@rnn_scan.defgrad
def _scan_grad(g, out, xp, h0, w, b=None, needs=(True,) * 4, saved=None, mode="gru"):
    T, B, G = xp.shape
    H = w.shape[1]
    if isinstance(out, np.ndarray) and isinstance(g, np.ndarray) and (saved is not None or mode.startswith("rnn")):
        dxp, dhp, ds0 = _scan_backward(g, out, h0, w, saved, mode=mode)  # the training loop's case
    else:  # the backward is recorded (create_graph): the same BPTT in primitives
        if saved is None and mode in ("gru", "lstm"):  # rebuild the gates as Tensors
            out, saved = scan_reference(xp, h0, w, b, mode)
        dxp, dhp, ds0 = _composite_bptt(g, out, h0, w, saved, mode)
    gw = None
    if needs[2]:  # dW_hh = sum_t dhp_t^T h_{t-1}: two products over the whole sequence, after the loop
        gw = matmul(transpose(dhp[0]), h0[:, :H])
        if T > 1:
            gw = add(gw, matmul(transpose(reshape(dhp[1:], shape=((T - 1) * B, G))),
                                reshape(out[:-1, :, :H], shape=((T - 1) * B, H))))
    gb = sum(dhp, axis=(0, 1)) if len(needs) > 3 and needs[3] else None
    return dxp, ds0, gw, gb


def _composite_bptt(g, out, h0, w, saved, mode):
    """BPTT in primitives (Tensors or ndarrays): (dL/dxp, dL/dhp, dL/ds0)."""
    T, B, G = g.shape[0], g.shape[1], w.shape[0]
    H = w.shape[1]
    hprev = concatenate(reshape(h0[:, :H], shape=(1, B, H)), out[:-1, :, :H], axis=0)  # h_{t-1} per step
    if mode == "lstm":
        (d, p, ro), f = _local_derivatives(out, saved, h0, hprev, mode, H)
        dhp, ds0 = _lstm_bptt(g, d, p, ro, f, w, H)
        return dhp, dhp, ds0[0]
    d, dh, z = _local_derivatives(out, saved, h0, hprev, mode, H)
    dhp, ds0 = _bptt(g, d, dh, z, w, mode)
    dxp = dhp
    if mode == "gru":  # the input path skips the reset gate's product: dxp_n = dh * a, not dh * a * r
        dxp = reshape(mul(reshape(_stack(ds0[1]), shape=(T, B, 1, H)), d), shape=(T, B, G))
    return dxp, dhp, ds0[0]


def _backward_macs(out, g, y, h0, w, saved, mode):
    return g.shape[0] * g.shape[1] * w.shape[0] * w.shape[1]  # dhp_t W_hh per step


def _backward_flops(out, g, y, h0, w, saved, mode):
    # per step the product dhp_t W_hh (2 B G H) and the gate arithmetic, one FLOP per elementwise op
    T, B = g.shape[:2]
    return 2 * _backward_macs(out, g, y, h0, w, saved, mode) + T * SCAN_BACKWARD_FLOPS[mode] * B * w.shape[1]


@primitive("rnn_scan_backward", inputs=("grad", "output", "hx", "weight_hh", "saved"), flops=_backward_flops,
           macs=_backward_macs)
def _scan_backward(g, y, h0, w, saved, mode):
    """rnn_scan's rule on ndarrays, one step at a time in place on (B, H) buffers that stay in cache:
    ``(dL/dxp, dL/dhp, dL/ds0)`` (dxp and dhp are one array except for the GRU, whose input path
    skips the reset gate). Internal: the fast path of the rule; the numbers of its composite."""
    T, B, S = g.shape
    G, H = w.shape
    dxp = np.empty((T, B, G), g.dtype)
    dhp = np.empty_like(dxp) if mode == "gru" else dxp
    carry, ds, tmp = np.zeros((B, S), g.dtype), np.empty((B, S), g.dtype), np.empty((B, 2 * H), g.dtype)
    for t in range(T - 1, -1, -1):
        np.add(carry, g[t], out=ds)
        sprev = y[t - 1] if t else h0
        if mode == "gru":
            _gru_back(ds, saved[t], sprev, dxp[t], dhp[t], tmp[:, :H], H)
        elif mode == "lstm":
            _lstm_back(ds, saved[t], y[t, :, H:], sprev[:, H:], dxp[t], tmp, H)
        elif mode == "rnn_tanh":
            np.multiply(y[t], y[t], out=dxp[t])
            np.multiply(np.subtract(1.0, dxp[t], out=dxp[t]), ds, out=dxp[t])
        else:
            np.multiply(ds, y[t] > 0, out=dxp[t])
        if mode == "gru":
            carry = np.add(_blas.matmul(dhp[t], w), tmp[:, :H], out=carry)  # dh_{t-1} = dhp W + dh z
        elif mode == "lstm":
            carry[:, :H] = _blas.matmul(dxp[t], w)
            np.multiply(ds[:, H:], saved[t, :, H:2 * H], out=carry[:, H:])  # dc_{t-1} = dc f
        else:
            carry = _blas.matmul(dxp[t], w)
    return dxp, dhp, carry


def _gru_back(dh, gt, hprev, dx, dp, tmp, H):
    r, z, n, hn = (gt[:, k * H:(k + 1) * H] for k in range(4))
    dr, dz, dn = dx[:, :H], dx[:, H:2 * H], dx[:, 2 * H:]
    np.subtract(1.0, np.multiply(n, n, out=dn), out=dn)          # 1 - n^2
    np.subtract(1.0, z, out=tmp)
    np.multiply(np.multiply(dn, tmp, out=dn), dh, out=dn)        # d pre_n = dh (1 - z)(1 - n^2)
    np.subtract(hprev, n, out=dz)
    dz *= dh
    dz *= z
    dz *= tmp                                                   # d pre_z = dh (h - n) z (1 - z)
    np.subtract(1.0, r, out=dr)
    dr *= r
    dr *= hn
    dr *= dn                                                    # d pre_r = d pre_n hn r (1 - r)
    dp[:, :2 * H] = dx[:, :2 * H]
    np.multiply(dn, r, out=dp[:, 2 * H:])                        # d hp_n = d pre_n r
    np.multiply(dh, z, out=tmp)                                  # the direct path of dh_{t-1}


def _lstm_back(ds, gt, c, cprev, da, tmp, H):
    dh, dc = ds[:, :H], ds[:, H:]
    i, f, g, o = (gt[:, k * H:(k + 1) * H] for k in range(4))
    tc, t2 = tmp[:, :H], tmp[:, H:]
    np.tanh(c, out=tc)
    np.subtract(1.0, np.multiply(tc, tc, out=t2), out=t2)
    t2 *= o
    t2 *= dh
    dc += t2                                                    # dc_t += dh o (1 - tanh^2 c)
    for k, (x, other) in enumerate(((i, g), (f, cprev), (g, i), (o, tc))):
        d = da[:, k * H:(k + 1) * H]
        if k == 2:                                               # tanh gate: 1 - g^2
            np.subtract(1.0, np.multiply(x, x, out=d), out=d)
        else:                                                    # sigmoid gates: x (1 - x)
            np.multiply(np.subtract(1.0, x, out=d), x, out=d)
        d *= other
        d *= dh if k == 3 else dc


def _bptt(g, d, dh_factor, z, w, mode):
    """Backward through the RNN or GRU recurrence: dL/dhp for every step and dL/dh0 (with, for the
    GRU, the per-step dL/dh_t that its input-path gradient needs)."""
    T, B, H = g.shape
    gru, carry, dhps, dhs = mode == "gru", None, [], []
    for t in range(T - 1, -1, -1):
        dh = g[t] if carry is None else add(carry, g[t])
        if gru:
            dhp = reshape(mul(reshape(dh, shape=(B, 1, H)), dh_factor[t]), shape=(B, 3 * H))
            carry = add(mul(dh, z[t]), matmul(dhp, w))
            dhs.append(dh)
        else:
            dhp = mul(dh, d[t])
            carry = matmul(dhp, w)
        dhps.append(dhp)
    return _stack(dhps[::-1]), (carry, dhs[::-1])


def _lstm_bptt(g, d, p, ro, f, w, H):
    """Backward through the LSTM: dL/da for every step (= dL/dxp = dL/dhp) and dL/d[h0 | c0]."""
    T, B = g.shape[:2]
    ch = cc = None
    das = []
    for t in range(T - 1, -1, -1):
        gt = g[t]
        dh = gt[:, :H] if ch is None else add(ch, gt[:, :H])
        dc = gt[:, H:] if cc is None else add(cc, gt[:, H:])
        dc = add(dc, mul(dh, p[t]))
        ifg = reshape(mul(reshape(dc, shape=(B, 1, H)), d[t]), shape=(B, 3 * H))
        da = concatenate(ifg, mul(dh, ro[t]), axis=-1)
        ch, cc = matmul(da, w), mul(dc, f[t])
        das.append(da)
    return _stack(das[::-1]), (concatenate(ch, cc, axis=-1), None)


