"""What normalization, embedding and recurrent layers cost, counted as their primitives run.

Normalization over E numbers in R groups (BatchNorm: the C channels; LayerNorm: the N x leading rows),
``x_hat = (x - mean) / sqrt(var + eps)`` then ``weight * x_hat + bias`` (:func:`chainrule.nn.functional.batch_norm`):

- parameters ``2 C`` (BatchNorm) or ``2 prod(normalized_shape)`` (LayerNorm), weight and bias optional;
- forward ``5 E + 4 R`` FLOPs (two sums, the subtraction, the square, the division; ``/ n`` twice,
  ``+ eps`` and the square root per group) and ``E`` each for the weight and the bias: ``7 E + 4 R``;
- backward ``16 E + 4 R`` with both (each primitive's rule: ``12 E + 4 R`` through the statistics,
  the three uses of ``x - mean`` and the two of ``x`` summed included, ``3 E`` for the weight's
  gradient, ``E`` for the bias's); ``3 E`` when the input needs no gradient (the affine map only);
- it keeps its input, ``x - mean``, its square, ``x_hat`` and ``weight x_hat`` (``5 E``) and six
  R-sized statistics. BatchNorm is priced in training mode (batch statistics), as ``measure`` runs it.

Embedding(V, D) on N indices is a row lookup: ``V D`` parameters, no forward FLOPs, ``N D`` additions
back into the weight's gradient; it keeps nothing but its output (``N D``), and the indices are no
float. EmbeddingBag on (B, L) bags: the lookup (B, L, D), one product by the bag weights and a sum over
L (``2 B L D``), backward the product and the scatter (``2 B L D``); it keeps the rows, the weighted
rows and the (B, L) weights.

A recurrent layer of G = gates x H rows (RNN 1, GRU 3, LSTM 4) on T steps of B examples of I features:

- parameters ``G I + G H + 2 G`` per layer (``I = H`` above the first);
- forward ``T B I G`` multiply-adds for the input projection (one product), ``T B H G`` for the
  recurrence, plus ``T (B G + e_f B H)`` FLOPs of biases and gate arithmetic (``e_f`` = 2, 10, 13;
  :data:`chainrule.ops_rnn.SCAN_FLOPS`);
- backward ``T B H G`` multiply-adds through the recurrence (``dhp_t W_hh``, dX-like) and
  ``T B H G`` for ``dW_hh``, ``T B I G`` each for ``dW_ih`` and (above the first layer, or when
  the input needs it) ``dX``, plus ``e_b T B H`` (``e_b`` = 4/3, 17, 25) and the bias sums;
- it keeps, per layer, the projections (``T B G``), the states (``T B S``, S = H, 2H for the LSTM's
  ``[h | c]``), the activated gates (``T B 4H``, GRU and LSTM) and the initial state.
"""

from __future__ import annotations

import math

from .. import models as _models
from ..nn import embedding as E
from ..nn import normalization as N
from ..nn import rnn as R
from ..ops_rnn import GATES, SCAN_BACKWARD_FLOPS, SCAN_FLOPS
from .layers import Context, LayerCost, linear_cost, register, rule_for


# ----- normalization ------------------------------------------------------------------------------
def norm_cost(ctx: Context, kind: str, width: int, groups: int, weight: bool, bias: bool, n_params: int) -> LayerCost:
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over ``E = B width`` numbers in ``groups`` groups
    (see the module docstring). Inference holds, besides input and output, ``x_hat`` and
    ``weight x_hat`` while the bias is added (and BatchNorm its mean and variance, for the running
    statistics), or ``x - mean`` and three statistics while normalizing."""
    n, r, dx = ctx.batch_size * width, groups, ctx.needs_input_grad
    affine = n * (weight + bias)
    if dx:
        back, saved = 12 * n + 4 * r + 3 * n * weight + n * bias, (3 + weight + bias) * n + 6 * r
    else:  # only the affine map is differentiated: g x_hat for the weight, g for the bias
        back, saved = (2 * n * weight + n * bias), n * (weight + bias) if weight or bias else 0
    return LayerCost(ctx.name, kind, width, width, params=n_params, forward_flops=5 * n + 4 * r + affine,
                     backward_other_flops=back, saved=saved, keeps_input=dx,
                     backward_temp_bytes=3 * n * ctx.itemsize if dx else 0,
                     forward_temp=2 * n + (2 * r if kind == "batchnorm" else 0) if weight and bias else n + 3 * r)


@register(N.BatchNorm1d, N.BatchNorm2d)
def _batch_norm(m, in_shape, ctx: Context):
    if in_shape is None or in_shape[0] != m.num_features:
        raise ValueError(f"estimate: {ctx.name} ({type(m).__name__}({m.num_features})) needs examples of shape "
                         f"({m.num_features}, ...); got {None if in_shape is None else tuple(in_shape)}")
    w, b = m.weight is not None, m.bias is not None
    return norm_cost(ctx, "batchnorm", math.prod(in_shape), m.num_features, w, b, m.num_features * (w + b)), in_shape


@register(N.LayerNorm)
def _layer_norm(m, in_shape, ctx: Context):
    ns = tuple(m.normalized_shape)
    if in_shape is None or tuple(in_shape[len(in_shape) - len(ns):]) != ns:
        raise ValueError(f"estimate: {ctx.name} (LayerNorm{ns}) needs examples ending with {ns}; got "
                         f"{None if in_shape is None else tuple(in_shape)}")
    rows = ctx.batch_size * math.prod(in_shape[:len(in_shape) - len(ns)])
    w, b = m.weight is not None, m.bias is not None
    return norm_cost(ctx, "layernorm", math.prod(in_shape), rows, w, b, math.prod(ns) * (w + b)), in_shape


# ----- embeddings ---------------------------------------------------------------------------------
_INDEX_BYTES = 8  # int64 indices (cr.long)


@register(E.Embedding)
def _embedding(m, in_shape, ctx: Context):
    """The lookup ``W[idx]``: ``B L D`` numbers out, ``B L D`` additions back (``padding_idx`` rows,
    when the batch has any, add a ``where`` of ``B L D`` each way, the frozen row and a (B, L) mask:
    priced as if present, which depends on the data)."""
    shape = () if in_shape is None else tuple(in_shape)
    L, D, B = math.prod(shape), m.embedding_dim, ctx.batch_size
    n = B * L * D
    trains = m.weight.requires_grad
    pad = m.padding_idx is not None
    lc = LayerCost(ctx.name, "embedding", L, L * D, params=m.num_embeddings * D, forward_flops=n if pad else 0,
                   backward_other_flops=(n if trains else 0) + (n if pad and trains else 0),
                   saved=(n + D) if pad and trains else 0, saved_bytes=B * L if pad and trains else 0,
                   exact=not pad, keeps_input=False, input_bytes=B * L * _INDEX_BYTES,
                   backward_temp_bytes=n * ctx.itemsize, forward_temp=n if pad else 0)
    return lc, (*shape, D)


@register(E.EmbeddingBag)
def _embedding_bag(m, in_shape, ctx: Context):
    """Bags of a (B, L) input: rows (B, L, D), weighted and summed over L (mode 'sum', 'mean'); 'max'
    takes the maximum over L instead (``where`` to -inf outside the bag, max, ``where`` for empty bags)."""
    if in_shape is None or len(in_shape) != 1:
        raise ValueError(f"estimate: {ctx.name} (EmbeddingBag) prices (B, L) bags: pass input_shape=(L,), got "
                         f"{None if in_shape is None else tuple(in_shape)}")
    L, D, B = int(in_shape[0]), m.embedding_dim, ctx.batch_size
    n, out = B * L * D, B * D
    if m.mode == "max":  # where (n), max (n), where (B D); back: where, max's 4 n, where, scatter
        fwd, back, saved, masks, temp = 2 * n + out, out + 6 * n, 2 * n + out, B * L + B, 2 * n
    else:  # rows * weights (n), sum (n); back: the product's n and the scatter's n
        fwd, back, saved, masks, temp = 2 * n, 2 * n, 2 * n + B * L, 0, 2 * n + B * L
    trains = m.weight.requires_grad
    lc = LayerCost(ctx.name, "embeddingbag", L, D, params=m.num_embeddings * D, forward_flops=fwd,
                   backward_other_flops=back if trains else 0, saved=saved if trains else 0,
                   saved_bytes=masks if trains else 0, keeps_input=False, input_bytes=B * L * _INDEX_BYTES,
                   backward_temp_bytes=2 * n * ctx.itemsize, forward_temp=temp)
    return lc, (D,)


# ----- recurrent layers ---------------------------------------------------------------------------
def _rnn_layer(k: int, n_in: int, H: int, T: int, mode: str, bias: bool, copies_input: bool, ctx: Context,
               last: bool) -> LayerCost:
    """Layer ``k`` of a stack: the input projection (one product over all steps) and the scan."""
    B, G, lstm = ctx.batch_size, GATES[mode] * H, mode == "lstm"
    S = 2 * H if lstm else H
    dx = ctx.needs_input_grad or k > 0
    proj = linear_cost(n_in, G, bias, Context(B, ctx.itemsize, ctx.name, needs_input_grad=dx), rows=T)
    macs = T * B * H * G
    folded = bias and mode != "gru"  # b_ih + b_hh: one sum of G numbers, fed to the product
    gru_bias = T * B * G if bias and mode == "gru" else 0
    fwd = proj.forward_flops + (G if folded else 0) + 2 * macs + gru_bias + T * SCAN_FLOPS[mode] * B * H
    back = (proj.backward_other_flops + T * SCAN_BACKWARD_FLOPS[mode] * B * H + gru_bias
            + (G * H if T > 1 else 0)       # the two dW_hh products added
            + (T * B * H if lstm else 0))   # h = states[:, :, :H]: its gradient scatters into (T, B, 2H) zeros
    # kept: the input (a copy when it is not time-major; with the original when that needs a gradient),
    # the projections, the states, the gates
    # (GRU: r, z, n and W_hn h + b_hn; LSTM: i, f, g, o) and the initial state
    saved = ((T * B * n_in if copies_input or k == 0 else 0) + (T * B * n_in if copies_input and dx else 0)
             + (G if folded else 0) + T * B * G
             + (T * B * 4 * H if mode in ("gru", "lstm") else 0) + (B * S if lstm else 0)
             + (0 if last and not lstm else T * B * S) - (T * B * H if last and lstm else 0))
    return LayerCost(ctx.name, mode, T * n_in, T * H, params=proj.params + G * H + (G if bias else 0),
                     forward_macs=proj.forward_macs + macs, forward_flops=fwd,
                     backward_input_macs=proj.backward_input_macs + macs,
                     backward_weight_macs=proj.backward_weight_macs + macs, backward_other_flops=back,
                     saved=saved, keeps_input=dx or copies_input or k == 0,
                     # g, dL/dxp and dL/dhp (one array but for the GRU), dL/dh0, and the two dW_hh products
                     backward_temp_bytes=(T * B * (S + (2 if mode == "gru" else 1) * G) + B * S
                                          + (2 if T > 1 else 1) * G * H) * ctx.itemsize,
                     forward_temp=((T * B * n_in if copies_input else 0) + T * B * G + T * B * 4 * H * (mode in ("gru", "lstm"))
                                   + (G if folded else 0) + (T * B * H + B * S if lstm else 0)))


def rnn_costs(m, T: int, ctx: Context, batch_first: bool) -> list[LayerCost]:
    """The LayerCosts of a stacked RNN/GRU/LSTM on T steps, one per layer (an LSTM layer's output is
    the ``[:, :, :H]`` slice of its ``[h | c]`` states: a view, whose gradient scatters)."""
    H, lstm, L = m.hidden_size, m.mode == "lstm", getattr(m, "num_layers", 1)
    out: list[LayerCost] = []
    for k in range(L):
        name = ctx.name if L == 1 else f"{ctx.name}.l{k}"
        n_in = m.input_size if k == 0 else H
        copies = k == 0 and batch_first  # (B, T, I) read time-major; an LSTM's h slice reshapes as a view
        out.append(_rnn_layer(k, n_in, H, T, m.mode, m.bias, copies,
                              Context(ctx.batch_size, ctx.itemsize, name, ctx.needs_input_grad), k == L - 1))
        if k and getattr(m, "dropout", 0) and m.training:  # dropout between layers: x * mask, each way
            n = T * ctx.batch_size * H
            out[-1].forward_flops += n
            out[-1].backward_other_flops += n
            out[-1].saved += 2 * n  # the mask and the dropped-out input of this layer
            out[-1].forward_temp += n  # (the mask is made by NumPy, not a primitive: measure does not see it)
        # the final states h_n (views of each layer's states) keep every layer's states alive
        out[-1].forward_temp += (max(k - 1, 0) * (2 * H if lstm else H) + (H if lstm and k else 0)) * T * ctx.batch_size
    if not lstm:  # the zero initial state: one (num_layers, B, H) array, whose slices every layer reads
        out[0].saved += L * ctx.batch_size * H
    return out


@register(R.RNNBase)
def _rnn(m, in_shape, ctx: Context):
    """RNN, GRU, LSTM on examples of shape (T, I) (``batch_first``) or (T, I) time-major: priced per
    example as (T, input_size); the output is (T, H)."""
    if in_shape is None or len(in_shape) != 2 or in_shape[-1] != m.input_size:
        raise ValueError(f"estimate: {ctx.name} ({type(m).__name__}) needs a sequence (T, {m.input_size}) per "
                         f"example; got {None if in_shape is None else tuple(in_shape)}")
    T = int(in_shape[0])
    return rnn_costs(m, T, ctx, m.batch_first), (T, m.hidden_size)


@register(R.RNNCellBase)
def _cell(m, in_shape, ctx: Context):
    """One step: the layer's formulas with T = 1 (the zero state is one (B, H) array, [h | c] for the LSTM)."""
    if in_shape is None or tuple(in_shape) != (m.input_size,):
        raise ValueError(f"estimate: {ctx.name} ({type(m).__name__}) needs examples of shape ({m.input_size},); "
                         f"got {None if in_shape is None else tuple(in_shape)}")
    return rnn_costs(m, 1, ctx, False), (m.hidden_size,)


@register(_models.GRUClassifier)
def _gru_classifier(m, in_shape, ctx: Context):
    """The GRU on (T, input_size) steps, then the read-out: all states (a (B, T H) copy of the
    time-major states, which the reshape's node keeps) or the last one (a view: its gradient scatters
    into the zeros of all states), then the Linear head."""
    T, B = m.steps, ctx.batch_size
    layers = rnn_costs(m.rnn, T, Context(B, ctx.itemsize, "rnn", ctx.needs_input_grad), True)
    read = readout_cost(T, m.rnn.hidden_size, m.readout, Context(B, ctx.itemsize, "readout"))
    head, _ = rule_for(m.head)(m.head, (read.n_out,), Context(B, ctx.itemsize, "head", True))
    return [*layers, read, head], (m.n_classes,)


def readout_cost(T: int, H: int, readout: str, ctx: Context) -> LayerCost:
    """What a recurrent model does with the (B, T, H) view of its time-major states before its head:
    ``'all'`` reshapes them to (B, T H), a copy its node keeps the original of; ``'last'`` takes the
    view ``[:, -1]``, whose gradient scatters B H numbers into zeros of all T B H."""
    B, isz = ctx.batch_size, ctx.itemsize
    if readout == "all":
        return LayerCost(ctx.name, "reshape", T * H, T * H, saved=T * B * H, backward_temp_bytes=T * B * H * isz)
    return LayerCost(ctx.name, "getitem", T * H, H, saved=(T - 1) * B * H, backward_other_flops=B * H,
                     backward_temp_bytes=T * B * H * isz)
