"""What one layer costs: the per-layer rules of the estimate, in a registry keyed by layer type.

A rule is a function ``rule(layer, in_shape, ctx) -> (LayerCost | None, out_shape)``:

- ``layer`` is the module (``nn.Linear(784, 512)``), ``in_shape`` the shape of ONE example entering
  it (``(784,)``; ``None`` when nothing before it fixed the shape), ``ctx`` a :class:`Context`: the
  batch size, the dtype's item size, whether the engine needs the gradient of the layer's input
  (the first layer's is never computed), whether the layer is fused into the Linear before it, and
  the layer's dotted name;
- it returns the layer's :class:`LayerCost` for the whole batch (``None`` when the layer costs
  nothing, like ``Identity``) and the shape of one example leaving it.

Register a rule with ``@register(nn.Conv2d)``; :func:`rule_for` finds it through the layer's class
hierarchy, so a subclass inherits its parent's rule. Adding a layer to the estimate is one function.
A rule may also return a list of LayerCosts (a model priced whole, like ``models.GRUClassifier``, whose
forward does work between its children); a module with children and a rule is priced by its rule,
its children are not visited. The rules of convolution and pooling live in
:mod:`~chainrule.cost.layers_conv`, those of normalization, embeddings and recurrent layers in
:mod:`~chainrule.cost.layers_seq`.
A rule's figures must agree with the FLOP rules of the primitives the layer runs and with what its
nodes keep for backward: ``tests/test_cost.py`` measures each modelled layer and compares.

The counting conventions: ``forward_macs`` are the multiply-adds of matrix products (2 FLOPs
each, included in ``forward_flops``); ``backward_input_macs`` is ``dX = G W``, ``backward_weight_macs``
``dW = G^T X``; ``backward_other_flops`` the elementwise work of the backward pass; ``saved`` the
numbers the layer's nodes keep for backward; ``backward_temp_bytes`` what its rule allocates while it
runs (the incoming gradient included).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..nn import layers as L


@dataclass
class LayerCost:
    """One layer's share of the estimate, for the whole batch (counts, not bytes, except temporaries)."""

    name: str
    kind: str  # 'linear', an activation name, or 'loss'
    n_in: int  # features of one example entering the layer
    n_out: int  # ... and leaving it
    params: int = 0
    forward_macs: int = 0
    forward_flops: int = 0  # including the matmul's 2 x MACs
    backward_input_macs: int = 0  # dX = G W
    backward_weight_macs: int = 0  # dW = G^T X
    backward_other_flops: int = 0  # bias gradient, activation derivative, loss gradient
    saved: int = 0  # numbers this node keeps for the backward pass
    exact: bool = True
    backward_temp_bytes: int = 0  # allocated while this layer's rule runs, incoming gradient included
    keeps_input: bool = True  # ``saved`` includes the layer's input (a first conv's copies it into columns)
    input_bytes: int | None = None  # the batch entering it, when not B x n_in floats (an embedding's indices)
    forward_temp: int = 0  # numbers alive while the forward runs besides its input and output (columns)
    saved_bytes: int = 0  # bytes of non-float arrays kept for backward (boolean masks)
    in_place: bool = False  # an activation fused into the layer before it: it took over that one's output

    @property
    def backward_flops(self) -> int:
        return 2 * (self.backward_input_macs + self.backward_weight_macs) + self.backward_other_flops


@dataclass
class Context:
    """What a rule needs besides the layer and its input shape."""

    batch_size: int
    itemsize: int
    name: str
    needs_input_grad: bool = True  # False for the first layer: the engine skips dX
    fused: bool = False  # folded into the Linear before it (nn.Sequential): keeps no input
    activation: str | None = None  # the activation nn.Sequential folds into this layer ('relu'), if any


Rule = Callable[[Any, "tuple[int, ...] | None", Context], "tuple[LayerCost | None, tuple[int, ...] | None]"]
RULES: dict[type, Rule] = {}


def register(*types: type) -> Callable[[Rule], Rule]:
    """Decorator: ``@register(nn.Conv2d)`` makes the function the cost rule of those layer types."""
    def deco(fn: Rule) -> Rule:
        for t in types:
            RULES[t] = fn
        return fn
    return deco


def rule_for(layer: Any) -> Rule | None:
    """The rule of ``layer``'s class or of its nearest registered base class."""
    return next((RULES[c] for c in type(layer).__mro__ if c in RULES), None)


# ----- Linear -------------------------------------------------------------------------------------
def linear_cost(n_in: int, n_out: int, bias: bool, ctx: Context, rows: int = 1) -> LayerCost:
    """``Y = X W^T + b`` on ``B x rows`` vectors: ``B rows n_in n_out`` multiply-adds forward, the same
    for ``dW = G^T X`` and (unless it is the first layer) ``dX = G W``; the bias adds one FLOP per
    output forward and its gradient a row sum. It keeps its input ``X`` for ``dW``."""
    B = ctx.batch_size * rows
    macs = B * n_in * n_out
    dx = ctx.needs_input_grad
    return LayerCost(ctx.name, "linear", rows * n_in, rows * n_out, params=n_in * n_out + (n_out if bias else 0),
                     forward_macs=macs, forward_flops=2 * macs + (B * n_out if bias else 0),
                     backward_input_macs=macs if dx else 0, backward_weight_macs=macs,
                     backward_other_flops=B * n_out if bias else 0, saved=B * n_in,
                     backward_temp_bytes=(B * n_out + (B * n_in if dx else 0)) * ctx.itemsize)


@register(L.Linear)
def _linear(m: L.Linear, in_shape, ctx: Context):
    n_in, n_out = int(m.in_features), int(m.out_features)
    if in_shape is None or tuple(in_shape) == (n_in,) or math.prod(in_shape) == n_in:  # MLPs flatten their input
        rows = 1
    elif in_shape[-1] == n_in:
        rows = math.prod(in_shape[:-1])
    else:
        raise ValueError(f"estimate: {ctx.name} (Linear({n_in}, {n_out})) gets examples of shape {tuple(in_shape)} "
                         f"(from input_shape and the layers before it): {math.prod(in_shape)} features, and a last "
                         f"dimension of {in_shape[-1]}; it takes {n_in}")
    out = (n_out,) if rows == 1 else (*in_shape[:-1], n_out)
    return linear_cost(n_in, n_out, m.bias is not None, ctx, rows), out


# ----- activations and other elementwise layers ---------------------------------------------------
# name -> (forward FLOPs per element, backward FLOPs per element, elements saved per element,
# True when the figures follow the primitives' FLOP rules exactly rather than approximately).
# ReLU: max(0, z) forward; g * (out > 0) backward (a compare and a multiply). A standalone node
# keeps its input z (the next Linear keeps its output), so it adds B x width saved numbers per
# layer; fused into the Linear before it (what nn.Sequential does for ReLU, Tanh and Sigmoid,
# ops.LINEAR_ACTIVATIONS) it keeps nothing: z never outlives the op. Dropout is x * mask (the
# scaled keep mask drawn in NumPy): one product each way, and it keeps x and the mask.
ACTIVATIONS: dict[str, tuple[int, int, int, bool]] = {
    "relu": (1, 2, 1, True), "sigmoid": (1, 3, 1, True), "tanh": (1, 3, 1, True),
    "leakyrelu": (3, 3, 2, False), "gelu": (12, 12, 2, False), "identity": (0, 0, 0, True),
    "dropout": (1, 1, 2, True), "flatten": (0, 0, 0, True),
}


def activation_cost(kind: str, width: int, ctx: Context) -> LayerCost:
    """An elementwise layer on ``B x width`` numbers, from :data:`ACTIVATIONS`. Its backward holds the
    incoming gradient, the derivative (or a 1-byte mask) and their product; ReLU's rule writes the
    comparison straight into its one new float array (no mask)."""
    f, b, k, exact = ACTIVATIONS[kind]
    n = ctx.batch_size * width
    if kind == "relu":
        temps = 2 * n * ctx.itemsize
    else:
        temps = 2 * n * ctx.itemsize + n
    # fused, it runs in place on the product: during inference its input and output are one array
    return LayerCost(ctx.name, kind, width, width, forward_flops=f * n, backward_other_flops=b * n,
                     saved=0 if ctx.fused else k * n, exact=exact, backward_temp_bytes=temps,
                     forward_temp=-n if ctx.fused else 0, in_place=ctx.fused)


@register(L.ReLU, L.Sigmoid, L.Tanh, L.LeakyReLU, L.GELU, L.Dropout)
def _activation(m, in_shape, ctx: Context):
    if in_shape is None:
        raise ValueError(f"estimate: cannot size {type(m).__name__} ({ctx.name}) before any Linear layer")
    if isinstance(m, L.Dropout) and not getattr(m, "p", 0):
        return None, in_shape
    return activation_cost(type(m).__name__.lower(), math.prod(in_shape), ctx), in_shape


@register(L.Identity)
def _identity(m, in_shape, ctx: Context):
    return None, in_shape


@register(L.Flatten)
def _flatten(m, in_shape, ctx: Context):
    """A reshape: a view, no arithmetic, nothing saved; unless the axes cannot merge in memory
    (``layers_conv.Strided``): then it copies, and its node keeps the original."""
    if in_shape is None:
        return None, None
    n = math.prod(in_shape)
    if type(in_shape).__name__ != "Strided":
        return None, (n,)
    keep = ctx.batch_size * n if ctx.needs_input_grad else 0
    return LayerCost(ctx.name, "flatten", n, n, saved=keep, keeps_input=bool(keep),
                     backward_temp_bytes=ctx.batch_size * n * ctx.itemsize), (n,)


# ----- the loss -----------------------------------------------------------------------------------
# softmax cross-entropy (mean over the batch), as ops.softmax_cross_entropy counts it: forward 5 FLOPs
# per logit (shift, exp, sum, divide for softmax(z), and the log-sum-exp), one per row for the
# reduction and one for the mean; backward one copy of the kept p with N subtractions of the one-hot
# (no one-hot matrix: ops._softmax_minus_onehot) and one product per logit by g / N (one division).
_LOSS_FWD = 5


def cross_entropy_cost(n_classes: int, ctx: Context) -> LayerCost:
    """``softmax_cross_entropy`` on ``B x C`` logits: it keeps the logits and softmax(z); its rule
    writes ``(p - onehot) * g / B`` into one copy of ``p``: ``B C + B + 1`` FLOPs."""
    B, C = ctx.batch_size, n_classes
    return LayerCost("loss", "loss", C, 1, forward_flops=_LOSS_FWD * B * C + B + 1,
                     backward_other_flops=B * C + B + 1, saved=2 * B * C,
                     backward_temp_bytes=B * C * ctx.itemsize)
