"""Street-fighting math: estimate parameters, memory and compute of a network, and measure them.

The lecture ends with a back-of-the-envelope estimate for a network of size ``D x 2D`` trained on
batches of ``B`` examples:

- parameters: ``D x 2D``
- memory (inference): ``D x 2D`` (parameters) ``+ B x 2D`` (biggest activation)
- memory (training): ``D x 2D`` (parameters) ``+ 2 x D x 2D`` (Adam's ``m`` and ``v``)
  ``+ B x D + B x 2D`` (all activations)
- compute (inference): ``B x D x 2D`` (forward pass)
- compute (training): ``B x D x 2D`` (forward) ``+ 2 x B x D x 2D`` (backward: "because we compute
  derivatives with respect to both the weights and the input")

Compute is counted in multiply-adds there. :func:`estimate` (from a model) and :func:`estimate_mlp`
(from a list of layer sizes, no arrays built) give the lecture's figure *and* a full one that adds
what the lecture leaves out: biases, gradients (one number per parameter), the optimizer's scratch
buffers, the input batch, the inputs that an unfused activation keeps for its backward pass, the loss, the elementwise
work, and the first layer's input gradient that nobody needs (so the engine never computes it).
FLOPs are 2 per multiply-add.

:func:`measure` runs one real training step and one inference forward under instrumentation: FLOPs
come from the FLOP rules of the primitives that actually ran (``autograd.state.profiler``), and
memory from the arrays that were actually alive (each array the primitives produce is followed with
``weakref.finalize``; ``tracemalloc`` gives an independent total). :func:`report` prints estimate and
measurement side by side and explains every gap larger than 10%.
"""

from __future__ import annotations

import math
import sys
import time
import tracemalloc
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import autograd as _ag
from . import ops as _ops
from .tensor import Tensor

__all__ = ["Estimate", "LayerCost", "Measurement", "estimate", "estimate_mlp", "measure", "report",
           "configure_cost", "run_cost", "human_bytes"]

# ----- optimizers ---------------------------------------------------------------------------------
# name -> (state arrays per parameter, FLOPs per parameter of one step, chainrule class name)
# State: SGD keeps nothing, momentum one buffer b, Adagrad the sum G, RMSProp the average E[g^2],
# Adam m and v. Step FLOPs count the update equations one operation per element, e.g. Adam:
# m = b1 m + (1-b1) g (3), v = b2 v + (1-b2) g^2 (4), m_hat, v_hat (2), theta -= lr m_hat/(sqrt v_hat + eps) (5).
OPTIMIZERS: dict[str, tuple[int, int, str]] = {
    "sgd": (0, 2, "SGD"),
    "momentum": (1, 4, "SGD"),
    "nesterov": (1, 6, "SGD"),
    "adagrad": (1, 7, "Adagrad"),
    "rmsprop": (1, 9, "RMSprop"),
    "adam": (2, 14, "Adam"),
    "adamw": (2, 16, "AdamW"),
    "newton": (-1, 0, ""),  # exact Hessian: P x P numbers of state; see _optimizer_spec
    "newton-cg": (3, 10, ""),  # Hessian-free: conjugate-gradient vectors r, p, H p (per CG iteration)
}

# activation -> (forward FLOPs per element, backward FLOPs per element, elements saved per element,
# True when the figures follow the primitives' FLOP rules exactly rather than approximately).
# ReLU: max(0, z) forward; g * (out > 0) backward (a compare and a multiply). A standalone node
# keeps its input z (the next Linear keeps its output), so it adds B x width saved numbers per
# layer; fused into the Linear before it (what nn.Sequential does for ReLU, Tanh and Sigmoid,
# ops.LINEAR_ACTIVATIONS) it keeps nothing: z never outlives the op.
ACTIVATIONS: dict[str, tuple[int, int, int, bool]] = {
    "relu": (1, 2, 1, True), "sigmoid": (1, 3, 1, True), "tanh": (1, 3, 1, True),
    "leakyrelu": (3, 3, 2, False), "gelu": (12, 12, 2, False), "identity": (0, 0, 0, True),
    "dropout": (2, 1, 1, False), "flatten": (0, 0, 0, True),
}

# softmax cross-entropy per logit: the fused log-sum-exp (which also keeps softmax(z)); backward
# (p - onehot) * g / N from the kept p.
_LOSS_FWD, _LOSS_BWD = 5, 2


def human_bytes(n: float) -> str:
    """``1536 -> '1.50 KiB'``: binary units, labelled."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"  # pragma: no cover


def _optimizer_spec(optimizer: Any) -> tuple[str, int, int, int, int | None]:
    """(name, state arrays per parameter (-1: a P x P Hessian), step FLOPs per parameter, scratch
    arrays, scratch block size or None when each parameter gets its own) from a name ('adam') or an
    optimizer object."""
    if optimizer is None:
        optimizer = "adam"
    if isinstance(optimizer, str):
        name = optimizer.lower().replace("_", "-")
        name = name if name in OPTIMIZERS else name.replace("-", "")
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; use one of {sorted(OPTIMIZERS)} or pass an "
                             "optimizer object")
        cls = _optim_class(OPTIMIZERS[name][2])
    else:
        cls = type(optimizer)
        name = cls.__name__.lower()
        group = optimizer.param_groups[0] if getattr(optimizer, "param_groups", None) else {}
        if name == "sgd" and group.get("momentum", 0):
            name = "nesterov" if group.get("nesterov") else "momentum"
        if name == "newton" and sum(p._data.size for g in optimizer.param_groups for p in g["params"]) > group.get(
                "exact_max_params", math.inf):
            name = "newton-cg"
        if name not in OPTIMIZERS:
            raise ValueError(f"don't know the state of optimizer {cls.__name__}; pass its kind by name, one of "
                             f"{sorted(OPTIMIZERS)}")
    k, step, _ = OPTIMIZERS[name]
    if name == "rmsprop" and not isinstance(optimizer, str):
        group = optimizer.param_groups[0]
        k += bool(group.get("momentum", 0)) + bool(group.get("centered", False))
    if name.startswith("adam") and not isinstance(optimizer, str) and optimizer.param_groups[0].get("amsgrad"):
        k += 1
    scratch = int(getattr(cls, "_n_scratch", 0)) if cls is not None else 0
    chunk = getattr(cls, "CHUNK", None) if cls is not None else None
    # All but Newton have a compiled one-pass update (optim/_fused.py), which needs no scratch. Plain
    # SGD uses it only for parameters of 8K+ elements, so with any bias the shared scratch exists.
    if OPTIMIZERS[name][2] and name != "sgd" and _compiled_update(optimizer):
        scratch = 0
    return name, k, step, scratch, chunk


def _compiled_update(optimizer: Any) -> bool:
    """Whether this optimizer (or a default one of its kind, for a name) runs the compiled kernel
    (SGD, Adagrad, RMSprop, Adam, AdamW with numba) instead of ufuncs."""
    if not isinstance(optimizer, str):
        return getattr(optimizer, "_kernel", None) is not None
    from .optim import _fused
    return _fused.available()


def _optim_class(name: str):
    if not name:
        return None
    try:
        from .optim import adaptive, sgd
    except ImportError:
        return None
    return getattr(sgd, name, None) or getattr(adaptive, name, None)


# ----- the estimate -------------------------------------------------------------------------------
@dataclass
class LayerCost:
    """One layer's share of the estimate (counts, not bytes)."""

    name: str
    kind: str  # 'linear', an activation name, or 'loss'
    n_in: int
    n_out: int
    params: int = 0
    forward_macs: int = 0
    forward_flops: int = 0  # including the matmul's 2 x MACs
    backward_input_macs: int = 0  # dX = G W
    backward_weight_macs: int = 0  # dW = G^T X
    backward_other_flops: int = 0  # bias gradient, activation derivative, loss gradient
    saved: int = 0  # numbers this node keeps for the backward pass
    exact: bool = True

    @property
    def backward_flops(self) -> int:
        return 2 * (self.backward_input_macs + self.backward_weight_macs) + self.backward_other_flops


@dataclass
class Estimate:
    """The result of :func:`estimate`: per-layer :class:`LayerCost` rows, totals, the lecture's figures.

    ``memory`` is in bytes, ``compute`` in multiply-adds (``*_macs``) and FLOPs (``*_flops``),
    ``lecture`` in the lecture's units (numbers for memory, multiply-adds for compute).
    """

    batch_size: int
    dtype: np.dtype
    optimizer: str
    sizes: list[int]
    layers: list[LayerCost]
    memory: dict[str, int] = field(default_factory=dict)
    compute: dict[str, int] = field(default_factory=dict)
    lecture: dict[str, int] = field(default_factory=dict)
    state_per_param: int = 0
    scratch_per_param: int = 0
    input_requires_grad: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def parameters(self) -> int:
        return sum(layer.params for layer in self.layers)

    def as_dict(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "dtype": str(self.dtype), "optimizer": self.optimizer,
                "parameters": self.parameters, "memory_bytes": dict(self.memory),
                "compute": dict(self.compute), "lecture": dict(self.lecture),
                "layers": [vars(layer) | {"backward_flops": layer.backward_flops} for layer in self.layers]}

    # ----- printing ---------------------------------------------------------------------------
    def lecture_text(self) -> str:
        """The lecture's formulas with this network's numbers plugged in, then the full figures."""
        return "\n".join(_lecture_lines(self))

    def table(self) -> str:
        """Per-layer table, then memory and compute totals (estimate only)."""
        isz = self.dtype.itemsize
        head = ["layer", "shape", "params", "fwd MACs", "fwd FLOPs", "bwd dX MACs", "bwd dW MACs",
                "bwd other FLOPs", "saved for bwd"]
        rows = [[lc.name, f"{lc.n_in} -> {lc.n_out}", f"{lc.params:,}", f"{lc.forward_macs:,}",
                 f"{lc.forward_flops:,}" + ("" if lc.exact else "~"), f"{lc.backward_input_macs:,}",
                 f"{lc.backward_weight_macs:,}", f"{lc.backward_other_flops:,}" + ("" if lc.exact else "~"),
                 human_bytes(lc.saved * isz)] for lc in self.layers]
        rows.append(["total", "", f"{self.parameters:,}", f"{self.compute['forward_macs']:,}",
                     f"{self.compute['forward_flops']:,}", f"{self.compute['backward_input_macs']:,}",
                     f"{self.compute['backward_weight_macs']:,}", f"{self.compute['backward_other_flops']:,}",
                     human_bytes(self.memory["activations"])])
        out = [f"Estimate: batch {self.batch_size}, {self.dtype}, optimizer {self.optimizer} "
               "(MACs = multiply-adds; FLOPs = 2 per MAC + elementwise; ~ = approximate)", _grid(head, rows), ""]
        m, c = self.memory, self.compute
        out.append("Memory (bytes)")
        out += [f"  {k:<34}{human_bytes(v):>12}" for k, v in (
            ("inference: parameters", m["parameters"]), ("inference: activations (peak live)", m["inference_activations"]),
            ("inference: total", m["inference_total"]), ("training: parameters", m["parameters"]),
            ("training: gradients", m["gradients"]), ("training: optimizer state", m["optimizer_state"]),
            ("training: optimizer scratch", m["optimizer_scratch"]),
            ("training: activations saved by graph", m["activations"]),
            ("training: activations at the peak", m["activations_at_peak"]),
            ("training: temporaries (backward)", m["temporaries"]), ("training: total (peak)", m["training_total"]))]
        out.append("Compute")
        out += [f"  {k:<34}{v:>16,} {u}" for k, v, u in (
            ("inference: forward", c["forward_flops"], "FLOPs"),
            ("training: forward", c["forward_flops"], "FLOPs"),
            ("training: backward", c["backward_flops"], "FLOPs"),
            ("training: optimizer step", c["step_flops"], "FLOPs"),
            ("training: total", c["training_flops"], "FLOPs"))]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table() + "\n\n" + self.lecture_text()


def _grid(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(head), "  ".join("-" * w for w in widths), *map(fmt, rows)])


def _spec_layers(sizes: Sequence[int], activation: str, bias: bool) -> list[tuple]:
    """[('linear', in, out, bias), ('act', name, width), ...] for an MLP (no activation on the logits)."""
    spec: list[tuple] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        spec.append(("linear", int(n_in), int(n_out), bias, f"linear{i + 1}"))
        if i < len(sizes) - 2 and activation != "identity":  # models.MLP: a Sequential, so fused when it can be
            spec.append(("act", activation, int(n_out), f"{activation}{i + 1}", activation in _ops.LINEAR_ACTIVATIONS))
    return spec


def estimate_mlp(sizes: Sequence[int], batch_size: int, activation: str = "relu", optimizer: Any = "adam",
                 dtype: Any = "float32", bias: bool = True, loss: str | None = "cross_entropy",
                 input_requires_grad: bool = False) -> Estimate:
    """Estimate an MLP ``sizes = [in, h1, ..., out]`` from its sizes alone (no arrays are built).

    The lecture's ``D x 2D`` network is ``estimate_mlp([D, 2 * D], B)``. ``loss`` is the training
    loss on the output (``'cross_entropy'`` or None for none); ``input_requires_grad`` says whether
    the first layer's input gradient is needed (it is not, normally, and the engine skips it).
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"estimate_mlp: sizes must be at least [in, out] of positive integers, got {sizes}")
    act = activation.lower().replace("_", "")
    if act not in ACTIVATIONS:
        raise ValueError(f"estimate_mlp: unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)}")
    return _estimate(_spec_layers(sizes, act, bias), sizes, batch_size, optimizer, dtype, loss, input_requires_grad)


def estimate(model: Any, batch_size: int, input_shape: Sequence[int] | None = None, optimizer: Any = "adam",
             dtype: Any = None, loss: str | None = "cross_entropy", input_requires_grad: bool = False) -> Estimate:
    """Estimate a model made of Linear layers and activations (an MLP, a Sequential) for a batch.

    The layers are read from ``model.modules()`` in order; a module with parameters that is not a
    Linear raises (measure it with :func:`measure` instead). ``input_shape`` (one example, e.g.
    ``(1, 28, 28)``) is checked against the first layer; ``dtype`` defaults to the parameters'.
    """
    if batch_size is None or int(batch_size) < 1:
        raise ValueError(f"estimate: batch_size must be a positive integer, got {batch_size!r}")
    spec: list[tuple] = []
    fused = _fused_pairs(model)
    prev = None
    for name, m in _leaf_modules(model):
        cls = type(m).__name__.lower()
        if hasattr(m, "in_features") and hasattr(m, "weight") and np.ndim(m.weight._data) == 2:
            spec.append(("linear", int(m.in_features), int(m.out_features), getattr(m, "bias", None) is not None, name))
        elif cls in ACTIVATIONS:
            if cls in ("identity", "flatten") or (cls == "dropout" and not getattr(m, "p", 0)):
                continue
            width = next((s[2] for s in reversed(spec) if s[0] == "linear"), None)
            if width is None:
                raise ValueError(f"estimate: cannot size {type(m).__name__} ({name}) before any Linear layer")
            spec.append(("act", cls, width, name, (id(prev), id(m)) in fused))
        elif any(True for _ in m.parameters()):
            raise ValueError(f"estimate: don't know the cost of {type(m).__name__} ({name}); only Linear layers "
                             "and activations are modelled. Use cost.measure(...) for this model")
        prev = m
    if not spec:
        raise ValueError(f"estimate: found no Linear layer in {type(model).__name__}")
    sizes = [spec[0][1]] + [s[2] for s in spec if s[0] == "linear"]
    if input_shape is not None and math.prod(input_shape) != sizes[0]:
        raise ValueError(f"estimate: input_shape {tuple(input_shape)} has {math.prod(input_shape)} features but the "
                         f"first Linear takes {sizes[0]}")
    if dtype is None:
        dtype = next((p._data.dtype for p in model.parameters()), np.float32)
    return _estimate(spec, sizes, int(batch_size), optimizer, dtype, loss, input_requires_grad)


def _fused_pairs(model) -> set[tuple[int, int]]:
    """(id(linear), id(activation)) of the adjacent pairs that nn.Sequential runs as one fused op."""
    from .nn import layers as L
    pairs = set()
    mods = model.modules() if hasattr(model, "modules") else [model]
    for seq in mods:
        if isinstance(seq, L.Sequential):
            kids = list(seq)
            for a, b in zip(kids, kids[1:]):
                if type(a) is L.Linear and type(b) in L._FUSED:
                    pairs.add((id(a), id(b)))
    return pairs


def _leaf_modules(model) -> list[tuple[str, Any]]:
    named = list(model.named_modules()) if hasattr(model, "named_modules") else [("", model)]
    return [(n or type(m).__name__, m) for n, m in named if not any(True for _ in m.children())]


def _estimate(spec, sizes, B, optimizer, dtype, loss, input_requires_grad) -> Estimate:
    B = int(B)
    if B < 1:
        raise ValueError(f"batch_size must be a positive integer, got {B}")
    dtype = np.dtype(dtype)
    isz = dtype.itemsize
    opt, k_state, step_per_p, k_scratch, chunk = _optimizer_spec(optimizer)
    layers: list[LayerCost] = []
    first = True
    n_lin = n_act = 0
    for s in spec:
        if s[0] == "linear":
            _, n_in, n_out, bias = s[:4]
            n_lin += 1
            macs = B * n_in * n_out
            lc = LayerCost(s[4] if len(s) > 4 else f"linear{n_lin}", "linear", n_in, n_out,
                           params=n_in * n_out + (n_out if bias else 0), forward_macs=macs,
                           forward_flops=2 * macs + (B * n_out if bias else 0),
                           backward_input_macs=macs if (input_requires_grad or not first) else 0,
                           backward_weight_macs=macs, backward_other_flops=B * n_out if bias else 0,
                           saved=B * n_in)  # a Linear keeps its input X for dW = G^T X
            first = False
        else:
            _, act, width = s[:3]
            n_act += 1
            f, b, k, exact = ACTIVATIONS[act]
            fused = len(s) > 4 and s[4]  # folded into the Linear before it: keeps no input
            lc = LayerCost(s[3] if len(s) > 3 else f"{act}{n_act}", act, width, width, forward_flops=f * B * width,
                           backward_other_flops=b * B * width, saved=0 if fused else k * B * width, exact=exact)
        layers.append(lc)
    C = sizes[-1]
    if loss is not None:
        # softmax_cross_entropy keeps the logits (B x C), softmax(z) (B x C) and the targets.
        layers.append(LayerCost("loss", "loss", C, 1, forward_flops=_LOSS_FWD * B * C + B + 1,
                                backward_other_flops=_LOSS_BWD * B * C + 1, saved=2 * B * C, exact=False))
    P = sum(lc.params for lc in layers)
    est = Estimate(B, dtype, opt, sizes, layers, state_per_param=k_state, scratch_per_param=k_scratch,
                   input_requires_grad=input_requires_grad)
    # --- memory -----------------------------------------------------------------------------------
    state = P * P if k_state < 0 else k_state * P
    target_bytes = B * 8 if loss is not None else 0  # int64 class labels
    act_bytes = sum(lc.saved for lc in layers) * isz + target_bytes
    m = est.memory
    m["parameters"] = P * isz
    m["gradients"] = P * isz
    m["optimizer_state"] = state * isz
    # Scratch: either per parameter (k x P) or k blocks of CHUNK elements shared by all parameters.
    m["optimizer_scratch"] = k_scratch * (int(chunk) if chunk else P) * isz
    m["activations"] = act_bytes
    m["input"] = B * sizes[0] * isz
    m["temporaries"], grads_at_peak, m["activations_at_peak"] = _backward_peak(layers, B, isz, target_bytes)
    # The peak comes during backward: gradients pile up while the engine frees each node's saved
    # arrays once its rule has run; parameters, state and scratch persist throughout.
    m["training_total"] = (m["parameters"] + m["optimizer_state"] + m["optimizer_scratch"]
                           + m["activations_at_peak"] + grads_at_peak + m["temporaries"])
    m["gradients_at_peak"] = grads_at_peak
    # Inference: the caller holds the input; each op holds its input and output while it runs.
    live = [0]
    width = sizes[0]
    for lc in layers:
        if lc.kind == "loss":
            continue
        held_in = 0 if (lc is layers[0]) else width
        live.append(B * (held_in + lc.n_out) * isz)
        width = lc.n_out
    m["inference_activations"] = m["input"] + max(live)
    m["inference_total"] = m["parameters"] + m["inference_activations"]
    # --- compute ----------------------------------------------------------------------------------
    c = est.compute
    c["forward_macs"] = sum(lc.forward_macs for lc in layers)
    c["forward_flops"] = sum(lc.forward_flops for lc in layers if lc.kind != "loss")
    c["loss_flops"] = sum(lc.forward_flops for lc in layers if lc.kind == "loss")
    c["inference_flops"] = c["forward_flops"]
    c["forward_flops"] += c["loss_flops"]
    c["backward_input_macs"] = sum(lc.backward_input_macs for lc in layers)
    c["backward_weight_macs"] = sum(lc.backward_weight_macs for lc in layers)
    c["backward_other_flops"] = sum(lc.backward_other_flops for lc in layers)
    c["backward_flops"] = sum(lc.backward_flops for lc in layers)
    # Newton: a P x P solve (LU, 2/3 P^3) plus forming H; Newton-CG: per CG iteration, one HVP not counted
    c["step_flops"] = (2 * P ** 3 // 3 + 2 * P * P) if k_state < 0 else step_per_p * P
    c["training_flops"] = c["forward_flops"] + c["backward_flops"] + c["step_flops"]
    # --- the lecture's accounting (no biases, no gradients, no loss; numbers, not bytes) ------------
    W = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    k_lect = W if k_state < 0 else k_state
    est.lecture = {"parameters": W, "inference_memory": W + B * max(sizes[1:]),
                   "training_memory": W + k_lect * W + B * sum(sizes),
                   "inference_compute": B * W, "training_compute": 3 * B * W}
    return est


def _backward_peak(layers, B, isz, target_bytes) -> tuple[int, int, int]:
    """Walk the backward pass in reverse and return (temporaries, gradients, activations) at the
    moment their sum peaks: the incoming gradient, the gradient being produced, ReLU's boolean mask,
    the parameter gradients accumulated so far, and the activations still saved.

    The engine drops a node's saved arrays once its rule has run, so while layer ``i``'s rule runs
    only layers ``0..i`` still hold theirs (plus the labels, which the caller holds). An activation's
    output is the next Linear's saved input, and the activation's own rule reads it, so it lives
    until the activation is done. The input batch (layer 0's) stays: the caller holds it. The logits
    outlive the loss's rule by one step: the layer that made them gets them as its ``out``."""
    best, best_parts, grads = -1, (0, 0, 0), 0
    logits = B * layers[-1].n_in if layers and layers[-1].kind == "loss" else 0
    for i in range(len(layers) - 1, -1, -1):
        lc = layers[i]
        held = sum(layer.saved for layer in layers[:i + 1])
        if lc.kind not in ("linear", "loss") and i + 1 < len(layers):
            held += layers[i + 1].saved
        if i == len(layers) - 2:
            held += logits
        acts = held * isz + target_bytes
        if lc.kind == "loss":  # (p - onehot) * scale, written into one copy of the kept softmax p
            temps = B * lc.n_in * isz
        elif lc.kind == "linear":
            grads += lc.params * isz
            temps = B * lc.n_out * isz + (B * lc.n_in * isz if lc.backward_input_macs else 0)
        elif lc.kind == "relu":  # g and the masked copy
            temps = 2 * B * lc.n_in * isz
        else:  # g, the derivative (or a mask, 1 byte per element) and their product
            temps = 2 * B * lc.n_in * isz + B * lc.n_in
        if temps + grads + acts > best:
            best, best_parts = temps + grads + acts, (temps, grads, acts)
    return best_parts


def _n(x: int) -> str:
    return f"{x:,}"


def _lecture_lines(est: Estimate) -> list[str]:
    s, B, isz = est.sizes, est.batch_size, est.dtype.itemsize
    lec, m, c = est.lecture, est.memory, est.compute
    dd = len(s) == 2 and s[1] == 2 * s[0]
    if dd:
        D = s[0]
        w_f, w_n = "D x 2D", f"{D} x {2 * D}"
        act_f, act_n = "B x 2D", f"{B} x {2 * D}"
        all_f, all_n = "B x D + B x 2D", f"{B} x {D} + {B} x {2 * D}"
        fw_f, fw_n = "B x D x 2D", f"{B} x {D} x {2 * D}"
    else:
        w_f = "sum of in x out"
        w_n = " + ".join(f"{a} x {b}" for a, b in zip(s[:-1], s[1:]))
        act_f, act_n = "B x max width", f"{B} x {max(s[1:])}"
        all_f, all_n = "B x sum of widths", f"{B} x ({' + '.join(map(str, s))})"
        fw_f, fw_n = "B x sum of in x out", f"{B} x ({w_n})"
    k = est.state_per_param
    st_f = f"({w_f})^2 (exact Hessian)" if k < 0 else f"{k} x {w_f}"
    st = lec["training_memory"] - lec["parameters"] - B * sum(s)
    P = est.parameters
    L = [f"The lecture's street-fighting math (numbers, not bytes; compute in multiply-adds), {est.optimizer}:",
         f"  Parameters:          {w_f} = {w_n} = {_n(lec['parameters'])}",
         f"  Memory (inference):  {w_f} (parameters) + {act_f} (biggest activation)"
         f" = {_n(lec['parameters'])} + {act_n} = {_n(lec['inference_memory'])}"
         f"  ({human_bytes(lec['inference_memory'] * isz)} at {est.dtype})",
         f"  Memory (training):   {w_f} (parameters) + {st_f} (optimizer state) + {all_f} (all activations)"
         f" = {_n(lec['parameters'])} + {_n(st)} + {all_n} = {_n(lec['training_memory'])}"
         f"  ({human_bytes(lec['training_memory'] * isz)})",
         f"  Compute (inference): {fw_f} (forward pass) = {fw_n} = {_n(lec['inference_compute'])} multiply-adds"
         f" = {_n(2 * lec['inference_compute'])} FLOPs",
         f"  Compute (training):  {fw_f} (forward) + 2 x {fw_f} (backward: gradients for weights and inputs)"
         f" = {_n(lec['training_compute'])} multiply-adds = {_n(2 * lec['training_compute'])} FLOPs",
         "",
         "The full estimate, and how it differs from the lecture's:",
         f"  Parameters:          {_n(P)} (the lecture ignores the {_n(P - lec['parameters'])} biases)",
         f"  Memory (inference):  {human_bytes(m['inference_total'])} = parameters {human_bytes(m['parameters'])}"
         f" + input batch {human_bytes(m['input'])} + the largest op's input and output held together"
         f" {human_bytes(m['inference_activations'] - m['input'])} (the lecture counts one activation, no input)",
         f"  Memory (training):   {human_bytes(m['training_total'])} = parameters {human_bytes(m['parameters'])}"
         f" + gradients {human_bytes(m['gradients_at_peak'])} (the lecture has none; one number per parameter)"
         f" + optimizer state {human_bytes(m['optimizer_state'])} + scratch {human_bytes(m['optimizer_scratch'])}"
         f" + activations still saved at the peak {human_bytes(m['activations_at_peak'])} (of"
         f" {human_bytes(m['activations'])} saved by the forward pass: the lecture's {human_bytes(B * sum(s) * isz)},"
         + (" plus each unfused activation's input," if any(lc.saved for lc in est.layers
                                                            if lc.kind not in ("linear", "loss")) else "")
         + " plus softmax(z) and the labels; backward frees them layer by layer)"
         f" + backward temporaries {human_bytes(m['temporaries'])}",
         f"  Compute (inference): {_n(c['inference_flops'])} FLOPs (2 per multiply-add, plus bias and activation"
         " elementwise work)",
         f"  Compute (training):  forward {_n(c['forward_flops'])} + backward {_n(c['backward_flops'])}"
         f" + optimizer step {_n(c['step_flops'])} = {_n(c['training_flops'])} FLOPs"]
    skipped = est.layers[0].forward_macs if not est.input_requires_grad else 0
    if skipped:
        L.append(f"  Backward is not exactly 2x forward: the first layer's input gradient ({_n(skipped)}"
                 " multiply-adds) is not needed, so the engine never computes it.")
    return L


# ----- the measurement ----------------------------------------------------------------------------
def _owner(a: np.ndarray) -> np.ndarray:
    """The array that owns the memory behind ``a`` (views cost nothing; their base does)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


class _Recorder:
    """The profiler callback and the live-array ledger of one measurement.

    Every array a primitive returns is entered in a ledger with its *origin* (the phase that made
    it) and a ``weakref.finalize`` that records when NumPy frees it, so the running total is the
    bytes of arrays alive right now. Allocations and frees are numbered events; each phase remembers
    the event at which its total peaked, and :meth:`classify` later sorts the arrays alive at that
    event: parameters, gradients (arrays that are, or become by the end of the phase, some
    parameter's ``.grad``), optimizer state and scratch, activations (made by the forward pass, so
    held by the graph, plus the input batch) and temporaries (made by the backward pass).
    """

    def __init__(self, params, prev=None):
        self.params = params
        self.param_ids = {id(_owner(p._data)) for p in params}
        self.entries: list[list] = []  # [bytes, origin, allocated at event, freed at event or None]
        self.live: dict[int, int] = {}  # id(array) -> its entry
        self.finalizers: list[weakref.finalize] = []
        self.event = self.total = 0
        self.phase = "forward"
        self.prev = prev
        self.flops: dict[str, dict[str, int]] = {}
        self.ops: dict[str, dict[str, int]] = {}
        self.peak: dict[str, tuple[int, int]] = {}  # phase -> (bytes, event)
        self.breakdown: dict[str, dict[str, int]] = {}

    def add(self, arr, origin: str) -> None:
        if not isinstance(arr, np.ndarray):
            return
        own = _owner(arr)
        if id(own) in self.live:
            return
        self.event += 1
        self.live[id(own)] = len(self.entries)
        self.entries.append([own.nbytes, origin, self.event, None])
        self.total += own.nbytes
        self.finalizers.append(weakref.finalize(own, self._free, id(own)))
        if self.total > self.peak[self.phase][0]:
            self.peak[self.phase] = (self.total, self.event)

    def _free(self, k: int) -> None:
        i = self.live.pop(k, None)
        if i is not None:
            self.event += 1
            self.entries[i][3] = self.event
            self.total -= self.entries[i][0]

    def classify(self, phase: str) -> dict[str, int]:
        """The arrays alive at ``phase``'s peak, in bytes by category."""
        grads = {self.live.get(id(_owner(p.grad._data))) for p in self.params if p.grad is not None}
        at = self.peak[phase][1]
        out = dict.fromkeys(("parameters", "gradients", "optimizer_state", "optimizer_scratch",
                             "activations", "temporaries"), 0)
        for i, (n, origin, born, died) in enumerate(self.entries):
            if born > at or (died is not None and died <= at):
                continue
            if i in grads:
                cat = "gradients"
            elif origin in ("forward", "input", "inference"):
                cat = "activations"
            elif origin in ("parameters", "optimizer_state", "optimizer_scratch", "gradients"):
                cat = origin
            else:
                cat = "temporaries"
            out[cat] += n
        out["total"] = sum(out.values())
        return out

    def start(self, phase: str) -> None:
        self.phase = phase
        self.peak[phase] = (self.total, self.event)

    def finish(self) -> None:
        """Classify the current phase's peak (call when the phase is over)."""
        self.breakdown[self.phase] = self.classify(self.phase)

    def __call__(self, op, out, inputs, attrs) -> None:
        phase = "backward" if _ag.state.phase == "backward" else self.phase
        f = int(op.flops(out, *inputs, **attrs)) if op.flops is not None else 0
        rec = self.flops.setdefault(phase, dict.fromkeys(("flops", "macs", "input_macs", "weight_macs", "other_flops"), 0))
        rec["flops"] += f
        if op.macs is not None:
            macs = int(op.macs(out, *inputs, **attrs))
            rec["macs"] += macs
            rec["other_flops"] += f - 2 * macs  # linear's bias add
            if phase == "backward":  # a matmul that reads a parameter is dX = G W; the others dW = G^T X
                reads_param = any(isinstance(i, np.ndarray) and id(_owner(i)) in self.param_ids for i in inputs)
                rec["input_macs" if reads_param else "weight_macs"] += macs
        else:
            rec["other_flops"] += f
        per = self.ops.setdefault(phase, {})
        per[op.name] = per.get(op.name, 0) + f
        self.add(out, phase)
        if self.prev is not None:
            self.prev(op, out, inputs, attrs)

    def keep(self, arr) -> None:
        """An array a node saved for its rule besides its output (``Primitive.saves``)."""
        self.add(arr, "backward" if _ag.state.phase == "backward" else self.phase)

    def close(self) -> None:
        for f in self.finalizers:
            f.detach()


@dataclass
class Measurement:
    """What :func:`measure` saw. ``flops[phase]`` has ``flops``, ``macs``, ``input_macs`` (dX = G W),
    ``weight_macs`` (dW = G^T X) and ``other_flops``; ``memory[phase]`` the live bytes by category at
    that phase's peak; ``tracemalloc_peak`` NumPy's own accounting of the training step's peak;
    ``seconds[phase]`` wall time (instrumented)."""

    batch_size: int
    parameters: int
    flops: dict[str, dict[str, int]]
    ops: dict[str, dict[str, int]]
    memory: dict[str, dict[str, int]]
    seconds: dict[str, float]
    saved_by_graph: int
    optimizer_state: int
    optimizer_scratch: int
    tracemalloc_peak: int | None
    step_counted: bool

    @property
    def training_peak(self) -> dict[str, int]:
        """The breakdown at the highest of the forward, backward and step peaks."""
        return max((self.memory[p] for p in ("forward", "backward", "step") if p in self.memory),
                   key=lambda d: d["total"])

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self)) | {"training_peak": self.training_peak}

    def table(self) -> str:
        rows = []
        for phase in ("forward", "backward", "step", "inference"):
            f = self.flops.get(phase, {})
            mem = self.memory.get(phase, {})
            rows.append([phase, f"{f.get('flops', 0):,}", f"{f.get('macs', 0):,}", human_bytes(mem.get("total", 0)),
                         f"{1e3 * self.seconds.get(phase, 0):.2f}"])
        out = [f"Measured (batch {self.batch_size}, {self.parameters:,} parameters)",
               _grid(["phase", "FLOPs", "MACs", "peak live", "ms"], rows), "Training peak by category:"]
        out += [f"  {k:<20}{human_bytes(v):>12}" for k, v in self.training_peak.items()]
        if self.tracemalloc_peak is not None:
            out.append(f"  {'(tracemalloc total)':<20}{human_bytes(self.tracemalloc_peak):>12}")
        return "\n".join(out)

    __str__ = table


def _state_arrays(optimizer) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(per-parameter state arrays, scratch arrays) of a chainrule optimizer. State arrays are the
    ones shaped like their parameter (``exp_avg``, ``momentum_buffer``...): step counters are not."""
    state, scratch = [], []
    for p, s in getattr(optimizer, "state", {}).items():
        for v in s.values():
            v = v._data if isinstance(v, Tensor) else v
            if isinstance(v, np.ndarray) and v.shape == p.shape:
                state.append(v)
    for bufs in getattr(optimizer, "_scratch", {}).values():
        scratch += [b for b in bufs if isinstance(b, np.ndarray)]
    return state, scratch


def measure(model: Any, x: Any, y: Any, loss_fn: Callable, optimizer: Any, warmup: int = 1,
            restore: bool = True, use_tracemalloc: bool = True) -> Measurement:
    """Run one instrumented training step (forward, backward, optimizer step) and one inference
    forward under ``no_grad``, and report what actually ran and what was actually alive.

    ``warmup`` uninstrumented steps run first, so the optimizer's state exists (the steady state the
    lecture describes; PyTorch and chainrule both create it lazily on the first step). With
    ``restore`` the parameters, gradients and optimizer state are put back afterwards, so measuring
    does not train the model. FLOPs of the optimizer step are counted only if it runs primitives
    (chainrule's optimizers update with NumPy in place, so their step is reported as not counted).
    """
    params = list(model.parameters())
    saved = None
    if restore:
        saved = ([p._data.copy() for p in params], [None if p.grad is None else p.grad for p in params],
                 optimizer.state_dict() if hasattr(optimizer, "state_dict") else None)
    try:
        for _ in range(int(warmup)):
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        optimizer.zero_grad()
        return _measure_step(model, params, x, y, loss_fn, optimizer, use_tracemalloc)
    finally:
        if saved is not None:
            for p, d, g in zip(params, saved[0], saved[1]):
                np.copyto(p._data, d)
                p.grad = g
            if saved[2] is not None:
                optimizer.load_state_dict(saved[2])


def _measure_step(model, params, x, y, loss_fn, optimizer, use_tracemalloc) -> Measurement:
    state, scratch = _state_arrays(optimizer)
    rec = _Recorder(params, _ag.state.profiler)
    rec.start("setup")
    for p in params:
        rec.add(p._data, "parameters")
        if p.grad is not None:
            rec.add(p.grad._data, "gradients")
    for a in state:
        rec.add(a, "optimizer_state")
    for a in scratch:
        rec.add(a, "optimizer_scratch")
    for a in (x, y):
        rec.add(a._data if isinstance(a, Tensor) else a, "input")
    persistent = rec.total
    seconds: dict[str, float] = {}
    tm_peak = None
    started = False
    if use_tracemalloc:
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
    _ag.state.profiler = rec
    try:
        tm_base = tracemalloc.get_traced_memory()[0] if use_tracemalloc else 0
        tm_peaks = []
        for phase in ("forward", "backward", "step"):
            if use_tracemalloc:
                tracemalloc.reset_peak()
            rec.start(phase)
            t0 = time.perf_counter()
            if phase == "forward":
                loss = loss_fn(model(x), y)
            elif phase == "backward":
                saved_by_graph = _graph_bytes(loss, rec.param_ids)
                loss.backward()
            else:
                optimizer.step()
            seconds[phase] = time.perf_counter() - t0
            rec.finish()
            if use_tracemalloc:
                tm_peaks.append(tracemalloc.get_traced_memory()[1] - tm_base)
        if use_tracemalloc:
            tm_peak = persistent + max(tm_peaks)
        del loss
        rec.start("inference")
        t0 = time.perf_counter()
        with _ag.no_grad():
            out = model(x)
        seconds["inference"] = time.perf_counter() - t0
        del out
        rec.finish()
    finally:
        _ag.state.profiler = rec.prev
        if started:
            tracemalloc.stop()
        rec.close()
    state_after, scratch_after = _state_arrays(optimizer)
    memory = dict(rec.breakdown)
    inf = dict(memory["inference"])  # inference needs neither optimizer state nor gradients
    for k in ("optimizer_state", "optimizer_scratch", "gradients", "temporaries"):
        inf["total"] -= inf[k]
        inf[k] = 0
    memory["inference"] = inf
    return Measurement(
        batch_size=int(np.shape(x._data if isinstance(x, Tensor) else x)[0]),
        parameters=sum(p._data.size for p in params), flops=rec.flops, ops=rec.ops, memory=memory,
        seconds=seconds, saved_by_graph=saved_by_graph,
        optimizer_state=sum(a.nbytes for a in state_after), optimizer_scratch=sum(a.nbytes for a in scratch_after),
        tracemalloc_peak=tm_peak, step_counted=bool(rec.flops.get("step", {}).get("flops")))


def _graph_bytes(root: Tensor, skip: set[int]) -> int:
    """Bytes of the distinct arrays the graph behind ``root`` references (what is saved for backward),
    parameters excluded. Iterative, like the engine."""
    seen_t, seen_a, total = set(), set(), 0
    stack = [root]
    while stack:
        t = stack.pop()
        if id(t) in seen_t:
            continue
        seen_t.add(id(t))
        arrays = [t._data]
        if t._ctx is not None and t._ctx.inputs is not None:
            for i in t._ctx.inputs:
                if isinstance(i, Tensor):
                    stack.append(i)
                elif isinstance(i, np.ndarray):
                    arrays.append(i)
            if isinstance(t._ctx.saved, np.ndarray):  # e.g. the softmax kept by softmax_cross_entropy
                arrays.append(t._ctx.saved)
        for a in arrays:
            own = _owner(a)
            if id(own) not in seen_a and id(own) not in skip:
                seen_a.add(id(own))
                total += own.nbytes
    return total


# ----- the report ---------------------------------------------------------------------------------
@dataclass
class Report:
    """What :func:`report` printed: the estimate, the measurement (or None) and the text."""

    estimate: Estimate
    measurement: Measurement | None
    text: str

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        m = "measured" if self.measurement is not None else "estimate only"
        return f"<cost.Report batch={self.estimate.batch_size} optimizer={self.estimate.optimizer} ({m})>"


def _default_optimizer(model, name: str):
    """A chainrule optimizer for ``name`` (lr 1e-3; 'momentum' is SGD with momentum 0.9)."""
    cls = _optim_class(OPTIMIZERS[name][2])
    if cls is None:
        raise ValueError(f"cannot measure with optimizer {name!r}: chainrule.optim has no class for it")
    kw = {"momentum": 0.9, "nesterov": name == "nesterov"} if name in ("momentum", "nesterov") else {}
    return cls(model.parameters(), lr=1e-3, **kw)


def _comparison_rows(e: Estimate, m: Measurement | None):
    """(label, unit, lecture, estimate, measured, why-if-gap) rows."""
    isz, B, s = e.dtype.itemsize, e.batch_size, e.sizes
    lec, mem, c = e.lecture, e.memory, e.compute
    pk = m.training_peak if m else {}
    f = m.flops if m else {}
    fw, bw = f.get("forward", {}), f.get("backward", {})
    relu_saved = sum(lc.saved for lc in e.layers if lc.kind not in ("linear", "loss"))
    loss_saved = sum(lc.saved for lc in e.layers if lc.kind == "loss")
    first_dx = e.layers[0].forward_macs if not e.input_requires_grad else 0
    why_other = ("gradient rules do their elementwise math (ReLU's g * (out > 0), softmax - onehot) with NumPy "
                 "operators on ndarrays in the fast path; only primitives (matmuls, sums, exp) reach the "
                 "profiler, so that work runs but is not counted")
    rows = [
        ("parameters", "count", lec["parameters"], e.parameters, m.parameters if m else None,
         f"the lecture ignores the {e.parameters - lec['parameters']:,} biases"),
        ("memory: parameters", "bytes", lec["parameters"] * isz, mem["parameters"], pk.get("parameters"), ""),
        ("memory: gradients", "bytes", 0, mem["gradients_at_peak"], pk.get("gradients"),
         "the lecture leaves out the gradients: one number per parameter during backward"),
        ("memory: optimizer state", "bytes", (lec["training_memory"] - lec["parameters"] - B * sum(s)) * isz,
         mem["optimizer_state"], m.optimizer_state if m else None, "biases have optimizer state too"),
        ("memory: optimizer scratch", "bytes", 0, mem["optimizer_scratch"], m.optimizer_scratch if m else None,
         "chainrule's optimizers keep work arrays allocated once (per parameter, or CHUNK-sized blocks "
         "shared by all parameters) so the update runs in place"),
        ("memory: saved activations", "bytes", B * sum(s) * isz, mem["activations"], m.saved_by_graph if m else None,
         (f"each unfused activation's node keeps its input ({human_bytes(relu_saved * isz)}; fused into its "
          "Linear, as nn.Sequential does for ReLU/Tanh/Sigmoid, it keeps nothing, like PyTorch's ReLU); " if relu_saved
          else "activations are fused into their Linear and keep nothing extra (like PyTorch's ReLU); ")
         + f"the loss keeps softmax(z) and the labels ({human_bytes(loss_saved * isz - B * s[-1] * isz + B * 8)})"),
        ("memory: activations at peak", "bytes", B * sum(s) * isz, mem["activations_at_peak"], pk.get("activations"),
         "backward frees each node's saved arrays once its rule has run, so at the peak (while the gradients "
         "pile up) only the layers not yet reached still hold theirs; the input batch and labels stay"),
        ("memory: temporaries at peak", "bytes", 0, mem["temporaries"], pk.get("temporaries"),
         "gradients in flight during backward (the incoming gradient and the one being produced)"),
        ("memory: training peak", "bytes", lec["training_memory"] * isz, mem["training_total"], pk.get("total"),
         "the lines above"),
        ("memory: training peak (tracemalloc)", "bytes", None, mem["training_total"],
         m.tracemalloc_peak if m else None, ("", "NumPy's temporaries inside primitives and Python objects")),
        ("memory: inference peak", "bytes", lec["inference_memory"] * isz, mem["inference_total"],
         m.memory["inference"]["total"] if m else None,
         "the lecture counts one activation; the input batch stays alive and each op holds its input and "
         "output together"),
        ("compute: forward MACs", "MACs", lec["inference_compute"], c["forward_macs"], fw.get("macs"), ""),
        ("compute: forward FLOPs", "FLOPs", 2 * lec["inference_compute"], c["forward_flops"], fw.get("flops"),
         "bias adds, activations and the loss are elementwise FLOPs the lecture leaves out"),
        ("compute: backward dX MACs", "MACs", lec["inference_compute"], c["backward_input_macs"],
         bw.get("input_macs"), f"the first layer's input gradient ({first_dx:,} MACs) is not needed, so the "
         "engine skips it" if first_dx else ""),
        ("compute: backward dW MACs", "MACs", lec["inference_compute"], c["backward_weight_macs"],
         bw.get("weight_macs"), ""),
        ("compute: backward other FLOPs", "FLOPs", 0, c["backward_other_flops"], bw.get("other_flops"),
         ("bias gradients (row sums), the activations' derivatives and the loss's gradient", why_other)),
        ("compute: backward FLOPs", "FLOPs", 4 * lec["inference_compute"], c["backward_flops"], bw.get("flops"),
         ("the first layer's input gradient is skipped; elementwise work is added", why_other)),
        ("compute: optimizer step FLOPs", "FLOPs", None, c["step_flops"],
         (f.get("step", {}).get("flops") if m and m.step_counted else None),
         ("", "the optimizer updates with NumPy in place (no primitives), so its FLOPs are not counted")),
        ("compute: inference FLOPs", "FLOPs", 2 * lec["inference_compute"], c["inference_flops"],
         f.get("inference", {}).get("flops"), "bias adds and activations"),
    ]
    return rows


def _fmt_val(v, unit) -> str:
    if v is None:
        return "-"
    return human_bytes(v) if unit == "bytes" else f"{v:,}"


def _ratio(a, b) -> float | None:
    if a is None or b is None:
        return None
    if a == 0:
        return None if b == 0 else math.inf
    return b / a


def report(model: Any, batch_size: int | None = None, optimizer: Any = None, measure: bool = False,
           input_shape: Sequence[int] | None = None, x: Any = None, y: Any = None, loss_fn: Callable | None = None,
           verbose: bool = True, seed: int = 0, **estimate_kw: Any) -> Report:
    """Print one table: the lecture's figure, the full estimate, and (``measure=True``) a measured
    training step, with measured / estimate ratios and a line for every gap larger than 10%.

    Measuring uses ``x``, ``y`` (random inputs and class labels of ``batch_size`` rows when not
    given), ``loss_fn`` (cross-entropy) and the optimizer (a new chainrule optimizer when given by
    name); the model's parameters and the optimizer's state are restored afterwards.
    """
    batch_size = int(batch_size) if batch_size is not None else (len(x) if x is not None else 1)
    optimizer = "adam" if optimizer is None else optimizer
    est = estimate(model, batch_size, input_shape=input_shape, optimizer=optimizer, **estimate_kw)
    meas = None
    if measure:
        if est.optimizer == "newton":
            raise ValueError("report(measure=True): Newton's method is estimated only (an exact Hessian is P x P)")
        rng = np.random.default_rng(seed)
        if x is None:
            x = rng.standard_normal((batch_size, *(input_shape or (est.sizes[0],)))).astype(est.dtype)
        if y is None:
            y = rng.integers(0, est.sizes[-1], size=len(x))
        if loss_fn is None:
            from .functional import cross_entropy as loss_fn
        opt = _default_optimizer(model, est.optimizer) if isinstance(optimizer, str) else optimizer
        meas = globals()["measure"](model, x, y, loss_fn, opt)
    text = _report_text(est, meas)
    if verbose:
        print(text)
    return Report(est, meas, text)


def _report_text(est: Estimate, meas: Measurement | None) -> str:
    rows = _comparison_rows(est, meas)
    head = ["quantity", "lecture", "estimate"] + (["measured", "meas/est"] if meas else ["est/lecture"])
    grid, gaps = [], []
    for label, unit, lec, e, m, why in rows:
        why_lec, why_meas = why if isinstance(why, tuple) else (why, "the estimate's model of this line is off")
        if meas is None:
            r = _ratio(lec, e)
            grid.append([f"{label} ({unit})", _fmt_val(lec, unit), _fmt_val(e, unit), "-" if r is None else f"{r:.2f}"])
        else:
            r = _ratio(e, m)
            grid.append([f"{label} ({unit})", _fmt_val(lec, unit), _fmt_val(e, unit), _fmt_val(m, unit),
                         "-" if r is None else f"{r:.2f}"])
        rl = _ratio(lec, e)
        if why_lec and rl is not None and abs(rl - 1) > 0.1:
            gaps.append(f"  {label}: estimate/lecture = {'(lecture: 0)' if rl == math.inf else f'{rl:.2f}'}: {why_lec}")
        if meas is not None and e and (m is None or (r is not None and abs(r - 1) > 0.1)):
            gaps.append(f"  {label}: measured/estimate = {'-' if r is None else f'{r:.2f}'}: {why_meas}")
    out = [f"chainrule cost: {' -> '.join(map(str, est.sizes))}, batch {est.batch_size}, {est.dtype}, "
           f"optimizer {est.optimizer} (MACs = multiply-adds, FLOPs = 2 per MAC + elementwise; bytes in KiB/MiB)",
           _grid(head, grid)]
    if meas is not None:
        fw, bw = meas.flops.get("forward", {}), meas.flops.get("backward", {})
        ratio = bw.get("flops", 0) / max(fw.get("flops", 1), 1)
        ec = est.compute
        out.append(f"backward/forward FLOPs: estimate {ec['backward_flops'] / ec['forward_flops']:.2f}, measured "
                   f"{ratio:.2f} (the lecture's 2)")
        out.append("wall time (instrumented): " + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in meas.seconds.items()))
    if gaps:
        out += ["Gaps larger than 10%:", *gaps]
    out += ["", *_lecture_lines(est)]
    return "\n".join(out)


# ----- command line -------------------------------------------------------------------------------
def configure_cost(parser) -> None:
    """``chainrule cost --layers 784,512,512,10 --batch-size 128 --optimizer adam [--measure]``
    or ``chainrule cost RUN_DIR`` (a directory written by ``chainrule train``)."""
    parser.add_argument("run_dir", nargs="?", default=None, help="a run directory written by chainrule train")
    parser.add_argument("--layers", default=None, help="layer sizes, e.g. 784,512,512,10")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size B (default 128, or the run's)")
    parser.add_argument("--optimizer", default=None, help=f"one of {', '.join(OPTIMIZERS)} (default adam, or the run's)")
    parser.add_argument("--activation", default="relu", help="hidden activation (default relu)")
    parser.add_argument("--dtype", default="float32", help="float32 or float64")
    parser.add_argument("--measure", action="store_true", help="also run one instrumented training step")


def run_cost(args) -> int:
    """``chainrule cost``: print the estimate (and, with ``--measure``, the measurement) for a layer spec or a run directory."""
    if args.run_dir is not None:
        model, batch_size, optimizer = _load_run(args.run_dir)
        report(model, batch_size=args.batch_size or batch_size, optimizer=args.optimizer or optimizer,
               measure=args.measure)
        return 0
    if not args.layers:
        raise ValueError("give --layers (e.g. --layers 784,512,512,10) or a run directory")
    try:
        sizes = [int(v) for v in args.layers.split(",")]
    except ValueError:
        raise ValueError(f"--layers must be comma-separated integers, got {args.layers!r}") from None
    B, opt = args.batch_size or 128, args.optimizer or "adam"
    if not args.measure:
        est = estimate_mlp(sizes, B, activation=args.activation, optimizer=opt, dtype=args.dtype)
        print(_report_text(est, None))
        return 0
    from .models import MLP
    model = MLP(sizes, activation=args.activation.lower())
    if np.dtype(args.dtype) != np.float32:
        model.to(np.dtype(args.dtype))
    report(model, batch_size=B, optimizer=opt, measure=True)
    return 0


def _load_run(run_dir: str):
    """(model, batch size, optimizer name) from a ``chainrule train`` run directory."""
    import json
    import os
    cfg_path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.json); train one with chainrule train")
    with open(cfg_path) as fh:
        cfg = json.load(fh)
    try:
        from . import io
        load_model = io.load_model
    except (ImportError, AttributeError):
        import chainrule
        load_model = getattr(chainrule, "load_model", None)
    if load_model is None:
        raise ValueError("chainrule cost RUN_DIR needs cr.load_model, which this installation lacks")
    model_file = os.path.join(run_dir, "model.safetensors")
    if not os.path.isfile(model_file):
        raise FileNotFoundError(f"{run_dir}: no model.safetensors (is the run finished? chainrule train writes it "
                                "at the end)")
    model = load_model(model_file)
    batch_size = cfg.get("batch_size")
    if not batch_size:  # 0 means full-batch gradient descent: the batch is the training set
        batch_size = 128
        print(f"chainrule cost: {run_dir} trained full-batch; estimating for batch 128 (pass --batch-size)",
              file=sys.stderr)
    return model, int(batch_size), str(cfg.get("optimizer", "adam")).lower()
