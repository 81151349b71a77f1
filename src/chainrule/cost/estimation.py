"""The estimate: parameters, memory and compute of a network from its layers, without running it.

:func:`estimate` reads a model's leaf modules in order and asks each one's rule in
:mod:`chainrule.cost.layers` for its :class:`~chainrule.cost.layers.LayerCost`; :func:`estimate_mlp`
does the same from a list of sizes without building any array. :func:`totals` then adds up what
the layers do not see: the optimizer's state and scratch, the gradients, the input batch, the peak
of the backward pass (:func:`backward_peak`) and the lecture's own accounting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import ops as _ops
from .._text import grid, human_bytes
from ..nn import layers as L
from . import lecture
from .layers import ACTIVATIONS, Context, LayerCost, activation_cost, cross_entropy_cost, linear_cost, rule_for
from .optimizers import optimizer_spec


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

    def lecture_text(self) -> str:
        """The lecture's formulas with this network's numbers plugged in, then the full figures."""
        return "\n".join(lecture.lines(self))

    def table(self) -> str:
        """Per-layer table, then memory and compute totals (estimate only)."""
        isz = self.dtype.itemsize
        head = ["layer", "shape", "params", "fwd MACs", "fwd FLOPs", "bwd dX MACs", "bwd dW MACs",
                "bwd other FLOPs", "saved for bwd"]
        rows = [[lc.name, f"{lc.n_in} -> {lc.n_out}", f"{lc.params:,}", f"{lc.forward_macs:,}",
                 f"{lc.forward_flops:,}" + ("" if lc.exact else "~"), f"{lc.backward_input_macs:,}",
                 f"{lc.backward_weight_macs:,}", f"{lc.backward_other_flops:,}" + ("" if lc.exact else "~"),
                 human_bytes(lc.saved * isz)] for lc in self.layers]
        c, m = self.compute, self.memory
        rows.append(["total", "", f"{self.parameters:,}", *(f"{c[k]:,}" for k in (
            "forward_macs", "forward_flops", "backward_input_macs", "backward_weight_macs", "backward_other_flops")),
            human_bytes(m["activations"])])
        out = [f"Estimate: batch {self.batch_size}, {self.dtype}, optimizer {self.optimizer} "
               "(MACs = multiply-adds; FLOPs = 2 per MAC + elementwise; ~ = approximate)", grid(head, rows), ""]
        out.append("Memory (bytes)")
        out += [f"  {k:<34}{human_bytes(m[v]):>12}" for k, v in (
            ("inference: parameters", "parameters"), ("inference: activations (peak live)", "inference_activations"),
            ("inference: total", "inference_total"), ("training: parameters", "parameters"),
            ("training: gradients", "gradients"), ("training: optimizer state", "optimizer_state"),
            ("training: optimizer scratch", "optimizer_scratch"),
            ("training: activations saved by graph", "activations"),
            ("training: activations at the peak", "activations_at_peak"),
            ("training: temporaries (backward)", "temporaries"), ("training: total (peak)", "training_total"))]
        out.append("Compute")
        out += [f"  {k:<34}{c[v]:>16,} FLOPs" for k, v in (
            ("inference: forward", "forward_flops"), ("training: forward", "forward_flops"),
            ("training: backward", "backward_flops"), ("training: optimizer step", "step_flops"),
            ("training: total", "training_flops"))]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table() + "\n\n" + self.lecture_text()


def _check_batch(batch_size: Any, who: str) -> int:
    if batch_size is None or isinstance(batch_size, bool) or int(batch_size) != batch_size or int(batch_size) < 1:
        raise ValueError(f"{who}: batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def estimate_mlp(sizes: Sequence[int], batch_size: int, activation: str = "relu", optimizer: Any = "adam",
                 dtype: Any = "float32", bias: bool = True, loss: str | None = "cross_entropy",
                 input_requires_grad: bool = False) -> Estimate:
    """Estimate an MLP ``sizes = [in, h1, ..., out]`` from its sizes alone (no arrays are built).

    The lecture's ``D x 2D`` network is ``estimate_mlp([D, 2 * D], B)``. ``loss`` is the training
    loss on the output (``'cross_entropy'`` or None for none); ``input_requires_grad`` says whether
    the first layer's input gradient is needed (it is not, normally, and the engine skips it). The
    layers are those of ``models.MLP``: a Sequential, so ReLU, Tanh and Sigmoid are fused.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(f"estimate_mlp: sizes must be at least [in, out] of positive integers, got {sizes}")
    act = activation.lower().replace("_", "")
    if act not in ACTIVATIONS:
        raise ValueError(f"estimate_mlp: unknown activation {activation!r}; use one of {sorted(ACTIVATIONS)}")
    B, isz = _check_batch(batch_size, "estimate_mlp"), np.dtype(dtype).itemsize
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        first = i == 0 and not input_requires_grad
        layers.append(linear_cost(n_in, n_out, bias, Context(B, isz, f"linear{i + 1}", needs_input_grad=not first)))
        if i < len(sizes) - 2 and act != "identity":
            ctx = Context(B, isz, f"{act}{i + 1}", fused=act in _ops.LINEAR_ACTIVATIONS)
            layers.append(activation_cost(act, n_out, ctx))
    return totals(layers, sizes, B, optimizer, dtype, loss, input_requires_grad)


def estimate(model: Any, batch_size: int, input_shape: Sequence[int] | None = None, optimizer: Any = "adam",
             dtype: Any = None, loss: str | None = "cross_entropy", input_requires_grad: bool = False) -> Estimate:
    """Estimate a model for a batch from the cost rules of its layers (:mod:`chainrule.cost.layers`).

    The layers are read from ``model.modules()`` in order; a module with parameters and no rule
    raises (measure it with :func:`~chainrule.cost.measure` instead, or register a rule). ``input_shape``
    (one example, e.g. ``(1, 28, 28)``) is checked against the first layer; ``dtype`` defaults to the
    parameters'.
    """
    B = _check_batch(batch_size, "estimate")
    if dtype is None:
        dtype = next((p._data.dtype for p in model.parameters()), np.float32)
    isz = np.dtype(dtype).itemsize
    fused = _fused_pairs(model)
    layers: list[LayerCost] = []
    if input_shape is None and isinstance(getattr(model, "n_features", None), int):
        input_shape = (model.n_features,)  # the models of chainrule.models say what one example is
    shape = None if input_shape is None else tuple(int(s) for s in input_shape)
    n_features, prev = None, None
    leaves = _leaf_modules(model)
    for i, (name, m) in enumerate(leaves):
        rule = rule_for(m)
        if rule is None:
            if any(True for _ in m.parameters()):
                raise ValueError(f"estimate: don't know the cost of {type(m).__name__} ({name}); register a rule "
                                 "with chainrule.cost.layers.register, or use cost.measure(...) for this model")
            prev = m
            continue
        nxt = leaves[i + 1][1] if i + 1 < len(leaves) else None
        ctx = Context(B, isz, name, needs_input_grad=input_requires_grad or any(lc.params for lc in layers),
                      fused=(id(prev), id(m)) in fused,
                      activation=L._FUSED[type(nxt)] if (id(m), id(nxt)) in fused else None)
        lc, shape = rule(m, shape, ctx)
        for one in (lc if isinstance(lc, list) else [] if lc is None else [lc]):
            n_features = one.n_in if n_features is None else n_features
            layers.append(one)
        prev = m
    if not any(lc.params for lc in layers):
        raise ValueError(f"estimate: found no layer with parameters in {type(model).__name__}")
    if input_shape is not None and math.prod(input_shape) != n_features:
        raise ValueError(f"estimate: input_shape {tuple(input_shape)} has {math.prod(input_shape)} features but the "
                         f"first layer takes {n_features}")
    sizes = [n_features] + [lc.n_out for lc in layers if lc.params]
    return totals(layers, sizes, B, optimizer, dtype, loss, input_requires_grad)


def _fused_pairs(model) -> set[tuple[int, int]]:
    """(id(linear), id(activation)) of the adjacent pairs that nn.Sequential runs as one fused op."""
    pairs = set()
    for seq in (model.modules() if hasattr(model, "modules") else [model]):
        if isinstance(seq, L.Sequential):
            kids = list(seq)
            pairs |= {(id(a), id(b)) for a, b in zip(kids, kids[1:])
                      if type(a) in L._FUSES_ACTIVATION and type(b) in L._FUSED}
    return pairs


def _leaf_modules(model) -> list[tuple[str, Any]]:
    """The modules to price, in order: the leaves, and the containers that have a rule of their own
    (priced whole: their children are skipped)."""
    named = list(model.named_modules()) if hasattr(model, "named_modules") else [("", model)]
    out: list[tuple[str, Any]] = []
    whole: list[str] = []
    for n, m in named:
        if any(n == w or n.startswith(w + ".") or w == "" for w in whole):
            continue
        if not any(True for _ in m.children()):
            out.append((n or type(m).__name__, m))
        elif rule_for(m) is not None:
            out.append((n or type(m).__name__, m))
            whole.append(n)
    return out


def totals(layers: list[LayerCost], sizes: list[int], B: int, optimizer: Any, dtype: Any, loss: str | None,
           input_requires_grad: bool) -> Estimate:
    """The :class:`Estimate` of these layers: adds the loss, the optimizer, the memory peaks and the
    lecture's figures to the per-layer rows."""
    dtype = np.dtype(dtype)
    isz = dtype.itemsize
    opt, k_state, step_per_p, k_scratch, chunk = optimizer_spec(optimizer)
    layers = list(layers)
    if loss is not None:
        layers.append(cross_entropy_cost(sizes[-1], Context(B, isz, "loss")))
    est = Estimate(B, dtype, opt, sizes, layers, state_per_param=k_state, scratch_per_param=k_scratch,
                   input_requires_grad=input_requires_grad)
    P = est.parameters
    est.memory = _memory(layers, sizes, B, isz, P, k_state, k_scratch, chunk, loss is not None)
    est.compute = _compute(layers, P, k_state, step_per_p)
    # The lecture's accounting: no biases, no gradients, no loss; numbers, not bytes.
    W = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    k_lect = W if k_state < 0 else k_state
    est.lecture = {"parameters": W, "inference_memory": W + B * max(sizes[1:]),
                   "training_memory": W + k_lect * W + B * sum(sizes),
                   "inference_compute": B * W, "training_compute": 3 * B * W}
    return est


def _memory(layers, sizes, B, isz, P, k_state, k_scratch, chunk, has_loss) -> dict[str, int]:
    # What the caller holds through the step besides the input: the int64 class labels and the loss
    # value (the graph's root, one number).
    target_bytes = B * 8 + isz if has_loss else 0
    m = {"parameters": P * isz, "gradients": P * isz,
         "optimizer_state": (P * P if k_state < 0 else k_state * P) * isz,
         # Scratch: either per parameter (k x P) or k blocks of CHUNK elements shared by all parameters.
         "optimizer_scratch": k_scratch * (int(chunk) if chunk else P) * isz,
         "activations": sum(lc.saved * isz + lc.saved_bytes for lc in layers) + target_bytes,
         "input": B * sizes[0] * isz if layers[0].input_bytes is None else layers[0].input_bytes}
    # The caller holds the batch through the step; when the first layer keeps only a copy (a conv's
    # columns) or nothing of it (an embedding's indices), the graph does not count it.
    held = target_bytes + (0 if layers[0].keeps_input else m["input"])
    m["temporaries"], m["gradients_at_peak"], m["activations_at_peak"] = backward_peak(layers, B, isz, held)
    # The peak comes during backward: gradients pile up while the engine frees each node's saved
    # arrays once its rule has run; parameters, state and scratch persist throughout.
    m["training_total"] = (m["parameters"] + m["optimizer_state"] + m["optimizer_scratch"]
                           + m["activations_at_peak"] + m["gradients_at_peak"] + m["temporaries"])
    # ... unless the forward pass peaks higher (no gradients yet, but a layer's output and temporaries
    # on top of everything saved before it: a first pooling layer's padded windows, say)
    m["forward_peak"] = m["parameters"] + m["optimizer_state"] + m["optimizer_scratch"] + _forward_peak(layers, B, isz, held)
    m["training_total"] = max(m["training_total"], m["forward_peak"])
    # Inference: the caller holds the input; each op holds its input and output while it runs.
    body = [lc for lc in layers if lc.kind != "loss"]
    live = [0] + [(B * ((0 if i == 0 else body[i - 1].n_out) + lc.n_out) + lc.forward_temp) * isz
                  for i, lc in enumerate(body)]
    m["inference_activations"] = m["input"] + max(live)
    m["inference_total"] = m["parameters"] + m["inference_activations"]
    return m


def _forward_peak(layers: list[LayerCost], B: int, isz: int, held: int) -> int:
    """Activation bytes at the forward pass's peak: while layer ``i`` runs, what layers ``0..i-1`` saved
    (and ``i``'s saved input) plus its output and temporaries, and what the caller holds."""
    best, before = 0, 0
    for lc in layers:
        best = max(best, (before + max(lc.saved, lc.forward_temp) + B * lc.n_out) * isz + lc.saved_bytes)
        before += lc.saved
    return best + held


def _compute(layers, P, k_state, step_per_p) -> dict[str, int]:
    body = [lc for lc in layers if lc.kind != "loss"]
    c = {"forward_macs": sum(lc.forward_macs for lc in layers),
         "inference_flops": sum(lc.forward_flops for lc in body),
         "loss_flops": sum(lc.forward_flops for lc in layers if lc.kind == "loss")}
    c["forward_flops"] = c["inference_flops"] + c["loss_flops"]
    for k in ("backward_input_macs", "backward_weight_macs", "backward_other_flops", "backward_flops"):
        c[k] = sum(getattr(lc, k) for lc in layers)
    # Newton: a P x P solve (LU, 2/3 P^3) plus forming H; Newton-CG: per CG iteration, one HVP not counted
    c["step_flops"] = (2 * P ** 3 // 3 + 2 * P * P) if k_state < 0 else step_per_p * P
    c["training_flops"] = c["forward_flops"] + c["backward_flops"] + c["step_flops"]
    return c


def backward_peak(layers: list[LayerCost], B: int, isz: int, target_bytes: int) -> tuple[int, int, int]:
    """Walk the backward pass in reverse and return (temporaries, gradients, activations) in bytes at
    the moment their sum peaks: each rule's temporaries (``LayerCost.backward_temp_bytes``), the
    parameter gradients accumulated so far, and the activations still saved.

    The engine drops a node's saved arrays once its rule has run, so while layer ``i``'s rule runs
    only layers ``0..i`` still hold theirs (plus the labels, which the caller holds). Its output lives
    too: the engine holds the tensor whose node it runs (the next layer's saved input, which that
    layer's rule no longer needs), except when an activation fused after it took the buffer over (the
    activation's own rule holds it). The input batch (layer 0's) stays: the caller holds it."""
    best, best_parts, grads = -1, (0, 0, 0), 0
    for i in range(len(layers) - 1, -1, -1):
        lc = layers[i]
        kept = layers[:i + 1]
        own = 0 if lc.kind == "loss" or (i + 1 < len(layers) and layers[i + 1].in_place) else B * lc.n_out
        held = sum(layer.saved for layer in kept) + own
        acts = held * isz + sum(layer.saved_bytes for layer in kept) + target_bytes
        grads += lc.params * isz
        temps = lc.backward_temp_bytes
        if temps + grads + acts > best:
            best, best_parts = temps + grads + acts, (temps, grads, acts)
    return best_parts


def summary_costs(model: Any, rows: list, names: list, input_shape: Any, batch_size: int) -> list[str]:
    """``Module.summary``'s cost columns (installed as ``nn.module.SUMMARY_COSTS``): each row gets the
    forward and backward FLOPs and saved numbers of its layer's LayerCosts (in place), work between
    children gets rows of its own; returns the note lines under the table."""
    if input_shape is None and not isinstance(getattr(model, "n_features", None), int):
        return []
    try:
        est = estimate(model, batch_size, input_shape=input_shape, optimizer="sgd", loss=None)
    except ValueError as e:
        return [f"(no cost estimate: {e})"]
    rows[0] += ["fwd FLOPs", "bwd FLOPs", "saved"]
    used = set()
    for row, name in zip(rows[1:], names):
        mine = [lc for lc in est.layers if lc.name == name or lc.name.startswith(name + ".")]
        used |= {id(lc) for lc in mine}
        row += [f"{sum(lc.forward_flops for lc in mine):,}", f"{sum(lc.backward_flops for lc in mine):,}",
                f"{sum(lc.saved for lc in mine):,}"]
    rows += [[lc.name, f"({lc.kind})", "-", "0", f"{lc.forward_flops:,}", f"{lc.backward_flops:,}", f"{lc.saved:,}"]
             for lc in est.layers if id(lc) not in used]
    c = est.compute
    return [f"batch {batch_size}: forward {c['forward_flops']:,} FLOPs, backward {c['backward_flops']:,} FLOPs, "
            f"{sum(lc.saved for lc in est.layers):,} numbers saved for backward (cr.cost.estimate)"]
