"""The measurement: one real training step and one inference forward under instrumentation.

FLOPs come from the FLOP rules of the primitives that actually ran (``autograd.state.profiler``),
and memory from the arrays that were actually alive (each array the primitives produce is followed
with ``weakref.finalize``; ``tracemalloc`` gives an independent total).
"""

from __future__ import annotations

import time
import tracemalloc
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import autograd as _ag
from .._text import grid, human_bytes
from ..ops import is_overwritten
from ..ops_conv import scratch_off
from ..tensor import Tensor, _unwrap


def _owner(a: np.ndarray) -> np.ndarray:
    """The array that owns the memory behind ``a`` (views cost nothing; their base does). A view made
    by ``as_strided`` (unfold's windows) has a NumPy ``DummyArray`` as its base, whose own ``base`` is
    the array it views: followed too, or a read-only window view would count as a copy of its size."""
    while True:
        b = a.base
        if not isinstance(b, np.ndarray):
            b = getattr(b, "base", None)
            if not isinstance(b, np.ndarray):
                return a
        a = b


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
        for a in (out if isinstance(out, tuple) else (out,)):  # rnn_scan_backward returns three arrays
            self.add(a, phase)
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
               grid(["phase", "FLOPs", "MACs", "peak live", "ms"], rows), "Training peak by category:"]
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
            v = _unwrap(v)
            if isinstance(v, np.ndarray) and v.shape == p.shape:
                state.append(v)
    for bufs in getattr(optimizer, "_scratch", {}).values():
        scratch += [b for b in bufs if isinstance(b, np.ndarray)]
    return state, scratch


def measure(model: Any, x: Any, y: Any, loss_fn: Callable, optimizer: Any, warmup: int = 2,
            restore: bool = True, use_tracemalloc: bool = True) -> Measurement:
    """Run one instrumented training step (forward, backward, optimizer step) and one inference
    forward under ``no_grad``, and report what actually ran and what was actually alive.

    ``warmup`` uninstrumented steps run first, so the optimizer's state exists (the steady state the
    lecture describes; PyTorch and chainrule both create it lazily on the first step) and every
    compiled update kernel the measured step needs is compiled (momentum's first step and its later
    ones run different kernels; compiling one inside the measurement would count numba's memory). With
    ``restore`` the parameters, gradients and optimizer state are put back afterwards, so measuring
    does not train the model. Convolution's scratch pool is off while measuring: the buffers it keeps for the
    next step are a cache, as torch's caching allocator's are. FLOPs of the optimizer step are counted only if
    it runs primitives (chainrule's optimizers update with NumPy in place, so their step is reported as not
    counted).
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
        with scratch_off():  # convolution's buffer pool is a cache, not memory in use (ops_conv.scratch_off)
            return _measure_step(model, params, x, y, loss_fn, optimizer, use_tracemalloc)
    finally:
        if saved is not None:
            for p, d, g in zip(params, saved[0], saved[1]):
                np.copyto(p._data, d)
                p.grad = g
            if saved[2] is not None:
                optimizer.load_state_dict(saved[2])


def _enter_persistent(rec: _Recorder, params, optimizer, x, y) -> int:
    """Enter what exists before the step (parameters, gradients, optimizer arrays, the batch); their bytes."""
    state, scratch = _state_arrays(optimizer)
    rec.start("setup")
    for p in params:
        rec.add(p._data, "parameters")
        if p.grad is not None:
            rec.add(p.grad._data, "gradients")
    for origin, arrays in (("optimizer_state", state), ("optimizer_scratch", scratch), ("input", (x, y))):
        for a in arrays:
            rec.add(_unwrap(a), origin)
    return rec.total


class _Tracemalloc:
    """tracemalloc's peak of each phase above the level at the start (does nothing when off)."""

    def __init__(self, on: bool):
        self.on, self.started, self.base, self.peaks = on, False, 0, []

    def __enter__(self) -> _Tracemalloc:
        if self.on:
            self.started = not tracemalloc.is_tracing()
            if self.started:
                tracemalloc.start()
            self.base = tracemalloc.get_traced_memory()[0]
        return self

    def reset(self) -> None:
        if self.on:
            tracemalloc.reset_peak()

    def record(self) -> None:
        if self.on:
            self.peaks.append(tracemalloc.get_traced_memory()[1] - self.base)

    def __exit__(self, *exc) -> None:
        if self.started:
            tracemalloc.stop()


def _training_phases(rec: _Recorder, tm: _Tracemalloc, model, x, y, loss_fn, optimizer, seconds) -> int:
    """Forward, backward and step, each its own phase; returns the bytes the graph saved for backward."""
    rec.start("forward")
    tm.reset()
    t0 = time.perf_counter()
    loss = loss_fn(model(x), y)
    seconds["forward"] = time.perf_counter() - t0
    rec.finish()
    tm.record()
    saved_by_graph = _graph_bytes(loss, rec.param_ids)
    for phase, run in (("backward", loss.backward), ("step", optimizer.step)):
        tm.reset()
        rec.start(phase)
        t0 = time.perf_counter()
        run()
        seconds[phase] = time.perf_counter() - t0
        rec.finish()
        tm.record()
    return saved_by_graph


def _measure_step(model, params, x, y, loss_fn, optimizer, use_tracemalloc) -> Measurement:
    rec = _Recorder(params, _ag.state.profiler)
    persistent = _enter_persistent(rec, params, optimizer, x, y)
    seconds: dict[str, float] = {}
    with _Tracemalloc(use_tracemalloc) as tm:
        _ag.state.profiler = rec
        try:
            saved_by_graph = _training_phases(rec, tm, model, x, y, loss_fn, optimizer, seconds)
            rec.start("inference")
            t0 = time.perf_counter()
            with _ag.no_grad():
                out = model(x)
            seconds["inference"] = time.perf_counter() - t0
            del out
            rec.finish()
        finally:
            _ag.state.profiler = rec.prev
            rec.close()
    state_after, scratch_after = _state_arrays(optimizer)
    memory = dict(rec.breakdown)
    inf = dict(memory["inference"])  # inference needs neither optimizer state nor gradients
    for k in ("optimizer_state", "optimizer_scratch", "gradients", "temporaries"):
        inf["total"] -= inf[k]
        inf[k] = 0
    labels = _unwrap(y)  # ... nor the labels, which measure was given for the training step
    if isinstance(labels, np.ndarray):
        inf["activations"] -= _owner(labels).nbytes
        inf["total"] -= _owner(labels).nbytes
    memory["inference"] = inf
    return Measurement(
        batch_size=int(np.shape(_unwrap(x))[0]),
        parameters=sum(p._data.size for p in params), flops=rec.flops, ops=rec.ops, memory=memory,
        seconds=seconds, saved_by_graph=saved_by_graph,
        optimizer_state=sum(a.nbytes for a in state_after), optimizer_scratch=sum(a.nbytes for a in scratch_after),
        tracemalloc_peak=persistent + max(tm.peaks) if tm.peaks else None,
        step_counted=bool(rec.flops.get("step", {}).get("flops")))


def _graph_bytes(root: Tensor, skip: set[int]) -> int:
    """Bytes of the distinct arrays the graph behind ``root`` references (what is saved for backward),
    parameters excluded. Iterative, like the engine. Not counted: 0-d constants (the scalars of
    ``x / n`` or ``v + eps``, made arrays to enter the graph) and the placeholder a fused activation
    leaves in the pre-activation it overwrote (:func:`chainrule.ops.linear_act`): neither is an
    activation."""
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
                elif isinstance(i, np.ndarray) and i.ndim:
                    arrays.append(i)
            if isinstance(t._ctx.saved, np.ndarray):  # e.g. the softmax kept by softmax_cross_entropy
                arrays.append(t._ctx.saved)
        for a in arrays:
            own = _owner(a)
            if id(own) not in seen_a and id(own) not in skip and not is_overwritten(a):
                seen_a.add(id(own))
                total += own.nbytes
    return total

