"""The reverse-mode engine: topological order, backward, ``grad``, grad mode, second order.

Backward visits the graph in reverse topological order (lecture: "loop over the nodes in reverse
topological order, starting from the final node"). Each node's gradient rule turns the gradient of
its output into gradients of its inputs; each input's gradient is the sum over its uses. This module
is the only place that un-broadcasts: a rule returns gradients with the output's broadcast shape, and
:func:`unbroadcast` sums them back to each input's shape.

No recursion anywhere (a 10,000-op chain works). Gradients of intermediate nodes are dropped as soon
as they are consumed, and the graph is released after backward unless ``retain_graph=True``.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import os
import traceback
from collections.abc import Callable, Sequence
from heapq import heappop, heappush

import numpy as np

from .tensor import Tensor, _node_counter


class _State:
    """Global engine switches: grad mode, anomaly mode, an optional op profiler, and the phase."""

    __slots__ = ("enabled", "anomaly", "profiler", "phase", "last_inplace")

    def __init__(self):
        self.enabled, self.anomaly, self.profiler, self.phase = True, False, None, "forward"
        self.last_inplace = 0  # the node counter's value at the latest in-place update (tensor._stamp)


state = _State()


# ----- in-place updates: a version stamp per storage (PyTorch's version counter) ----------------------
#: id(storage) -> the node counter's value at its latest in-place update through a Tensor. Keyed by the
#: array that owns the memory, so an update through a view is seen through every other view (PyTorch's
#: version counter, shared per storage). A stale entry (its array freed, the id reused) is harmless:
#: it is older than any node that can read the new array.
_INPLACE_STAMPS: dict[int, int] = {}


def _storage(a) -> int:
    """id of the object that owns ``a``'s memory (views share it)."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return id(a)


def _stamp(t: Tensor) -> None:
    """Mark ``t``'s memory as updated in place now (after every node recorded so far)."""
    if state.profiler is not None:
        untraced("an in-place update of a tensor (+=, add_, copy_, zero_ ... outside an optimizer)")
    if len(_INPLACE_STAMPS) > 100_000:  # bound the table; forgetting only weakens the check
        _INPLACE_STAMPS.clear()
    _INPLACE_STAMPS[_storage(t._data)] = state.last_inplace = next(_node_counter)


def _updated_after(t: Tensor, seq: int) -> bool:
    """Whether ``t``'s memory was updated in place after node number ``seq`` was recorded."""
    return _INPLACE_STAMPS.get(_storage(t._data), 0) > seq


# ----- what a compiled step (chainrule.compile) must know about -------------------------------------
def untraced(what: str) -> None:
    """Tell a step being recorded by ``cr.compile`` that ``what`` happened outside the primitives it
    records (it then runs that step eagerly). Callers check ``state.profiler is not None`` first."""
    note = getattr(state.profiler, "untraced", None)
    if note is not None:
        note(what)


def read(t: Tensor, value) -> None:
    """A value leaves the tensor world (``item()``, ``numpy()``): a step being recorded must know."""
    note = getattr(state.profiler, "read", None)
    if note is not None:
        note(t, value)


def replayed(method):
    """Decorator for a method whose effect a compiled step repeats by calling it again on replay
    (an optimizer's ``step`` and ``zero_grad``, a scheduler's ``step``, ``Module.train``). While a step
    is being recorded the call is noted, then runs with nothing inside it recorded."""
    @functools.wraps(method)
    def call(*args, **kwargs):
        p = state.profiler
        if p is None or not hasattr(p, "effect"):
            return method(*args, **kwargs)
        return p.effect(method, args, kwargs)
    call.__replayed__ = method
    return call


# ----- grad mode ----------------------------------------------------------------------------------
class _GradMode(contextlib.ContextDecorator):
    def __init__(self, mode: bool, before: bool | None = None):
        # prevs is a stack, so a decorated function may recurse; ``before`` is the mode that
        # set_grad_enabled() saw before it switched, restored on exit of its ``with`` block.
        self.mode, self.before, self.prevs = mode, before, []

    def __enter__(self):
        self.prevs.append(state.enabled if self.before is None else self.before)
        self.before, state.enabled = None, self.mode

    def __exit__(self, *exc):
        state.enabled = self.prevs.pop()

    def __call__(self, func):  # used as a decorator: undo set_grad_enabled's immediate switch (torch)
        if self.before is not None:
            state.enabled, self.before = self.before, None
        return super().__call__(func)


def no_grad() -> _GradMode:
    """Context manager and decorator: run without recording a graph (inference, updates)."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Context manager and decorator: record a graph even inside :func:`no_grad`."""
    return _GradMode(True)


def set_grad_enabled(mode: bool) -> _GradMode:
    """Context manager that sets grad mode to ``mode`` (also works as a plain call)."""
    g = _GradMode(bool(mode), before=state.enabled)
    state.enabled = bool(mode)  # like torch, calling it without `with` also switches the mode
    return g


def is_grad_enabled() -> bool:
    """True when operations on tensors that require grad are being recorded (see :func:`no_grad`)."""
    return state.enabled


# ----- anomaly mode -------------------------------------------------------------------------------
@contextlib.contextmanager
def detect_anomaly():
    """Raise at the first op whose forward or backward produces NaN or Inf, naming the op and the
    line that created it. Slower: it records a stack per op and checks every array."""
    prev, state.anomaly = state.anomaly, True
    try:
        yield
    finally:
        state.anomaly = prev


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _where() -> str:
    """The user's frames of the current stack (this package's own frames left out)."""
    frames = [f for f in traceback.extract_stack()[:-3] if not os.path.abspath(f.filename).startswith(_PACKAGE)]
    return "".join(traceback.format_list(frames[-3:]))


def _check_finite(name, phase, arr, ctx):
    arr = arr._data if isinstance(arr, Tensor) else arr
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        where = ctx.where if ctx is not None and ctx.where else "(unknown; created outside anomaly mode)\n"
        raise FloatingPointError(f"detect_anomaly: {name} produced NaN/Inf in its {phase} pass. "
                                 f"The op was created at:\n{where}")


# ----- graph traversal ----------------------------------------------------------------------------
def _released(ctx):
    return RuntimeError(
        f"backward through the graph a second time: the graph of {ctx.op.name} was freed by the first "
        "backward. Pass retain_graph=True to the first backward() if you need to go through it again.")


def _reachable(roots: Sequence[Tensor]) -> list[Tensor]:
    """The recorded (non-leaf) tensors that lead to ``roots``, found by an iterative search."""
    found, seen = [], set()
    stack = [r for r in roots if r._ctx is not None]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        found.append(t)
        inputs = t._ctx.inputs
        if inputs is None:
            raise _released(t._ctx)
        for i in inputs:
            if isinstance(i, Tensor) and i._ctx is not None and i.requires_grad and id(i) not in seen:
                stack.append(i)
    return found


_creation = operator.attrgetter("_ctx.seq")  # a node's creation number (C-level sort key)


def toposort(roots: Sequence[Tensor]) -> list[Tensor]:
    """All tensors that require grad and lead to ``roots``, inputs before outputs.

    Nodes are numbered when created, and an op's inputs are always created before it, so sorting
    the reachable nodes by that number is a topological order (PyTorch orders its engine the same
    way); leaves come first."""
    nodes = sorted(_reachable(roots), key=_creation)
    leaves, seen = [], set()
    for t in nodes:
        for i in t._ctx.inputs:
            if isinstance(i, Tensor) and i.requires_grad and i._ctx is None and id(i) not in seen:
                seen.add(id(i))
                leaves.append(i)
    leaves += [r for r in roots if r._ctx is None and r.requires_grad and id(r) not in seen]
    return leaves + nodes


def unbroadcast(g, shape: tuple, opname: str = "?"):
    """Sum ``g`` over the axes along which an input of ``shape`` was broadcast."""
    gshape = g.shape
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    if lead < 0 or any(s != 1 and s != gs for s, gs in zip(shape, gshape[lead:])):
        raise ValueError(f"{opname}: gradient of shape {gshape} cannot be reduced to the input's "
                         f"shape {shape}: the shapes are not broadcast-compatible")
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and gshape[lead + i] != 1)
    if axes:
        g = _ops.sum(g, axis=axes, keepdims=True)
    return _ops.reshape(g, shape=shape) if g.shape != shape else g


def _root_grad(t: Tensor, grad):
    if grad is None:
        if t._data.size != 1:
            raise RuntimeError(f"backward() needs a scalar; this tensor has shape {t.shape}: "
                               "pass grad=... (same shape) or reduce it first, e.g. loss.sum()")
        return np.array(1, t._data.dtype).reshape(t._data.shape)  # np.ones' Python wrapper costs 3x this
    g = grad._data if isinstance(grad, Tensor) else np.asarray(grad)
    if g.shape != t.shape:
        raise ValueError(f"backward(): grad has shape {g.shape} but the tensor has shape {t.shape}")
    return np.array(g, dtype=t.dtype, copy=True)  # copied: leaves must not alias the caller's array


def _run(roots, root_grads, retain_graph, create_graph, capture=None):
    """Propagate ``root_grads`` back through the graph in one pass, in decreasing creation order (a
    reverse topological order): a node is queued (a heap on its creation number) when its first
    gradient arrives, and run once every node created after it is done, so its gradient is the sum
    over all its uses. Without ``capture``, accumulate into the leaves' ``.grad``; with it (a dict
    id -> None), fill ``capture`` with the gradients of those tensors instead, touching no ``.grad``
    and skipping every node that cannot reach them. With ``create_graph`` the rules run on Tensors,
    so the backward pass is itself recorded."""
    useful = _leading_to(roots, capture) if capture is not None else None
    grads: dict[int, object] = {}
    leaves: dict[int, Tensor] = {}
    queue: list = []  # (-seq, tensor): creation numbers are unique, so tensors are never compared
    for r, g in zip(roots, root_grads):
        if r.requires_grad:
            _send(r, _grad_tensor(g) if create_graph else g, grads, leaves, queue)
    prev = state.enabled, state.phase
    state.enabled, state.phase = create_graph, "backward"
    try:
        while queue:
            t = heappop(queue)[1]
            ctx = t._ctx
            if ctx.inputs is None:
                raise _released(ctx)
            g = grads.pop(id(t))
            if capture is not None and id(t) in capture:
                capture[id(t)] = g
            if g is not None and (useful is None or id(t) in useful):
                if state.last_inplace > ctx.seq:  # something was updated in place after this node recorded
                    _check_unmodified(t, ctx)
                _apply_rule(t, ctx, g, grads, leaves, queue, create_graph, useful)
            g = None  # drop the pending gradient before the node's saved arrays
            if not retain_graph:
                ctx.inputs = ctx.saved = None  # release: saved arrays can be freed now
        # Leaves are written once, after the pass: a gradient array may still be pending for
        # another node (the add rule hands the same g to both inputs), so no in-place sums before.
        handed: set[int] = set()
        if capture is None and hasattr(state.profiler, "accumulate"):  # a compiled step is being recorded
            state.profiler.accumulate([(leaf, grads.pop(k)) for k, leaf in leaves.items()], create_graph)
            leaves = {}
        for k, leaf in leaves.items():
            g = grads.pop(k)
            if capture is None:
                _accumulate_leaf(leaf, g, create_graph, handed)
            elif k in capture:
                capture[k] = g
    finally:
        state.enabled, state.phase = prev


def _leading_to(roots, capture) -> set[int]:
    """ids of the captured tensors and of every recorded tensor from which one of them is reachable."""
    useful = set(capture)
    for t in sorted(_reachable(roots), key=_creation):  # inputs before outputs
        if any(id(i) in useful for i in t._ctx.inputs if isinstance(i, Tensor)):
            useful.add(id(t))
    return useful


def _apply_rule(t, ctx, g, grads, leaves, queue, create_graph, useful):
    """Run one node's gradient rule and send each input its share, un-broadcast and in its dtype."""
    op, inputs = ctx.op, ctx.inputs
    needs, args = [], []
    for i in inputs:  # one pass: which inputs want a gradient, and what the rule reads
        if isinstance(i, Tensor):
            needs.append(i.requires_grad and (useful is None or id(i) in useful))
            args.append(i if create_graph else i._data)  # Tensors when the backward is recorded
        else:
            needs.append(False)
            args.append(i)
    in_grads = op.vjp(g, t if create_graph else t._data, args, needs, None if create_graph else ctx.saved, ctx.attrs)
    for inp, gi, need in zip(inputs, in_grads, needs):
        if not need:
            continue
        if gi is not None:
            data = inp._data
            if gi.shape != data.shape:
                gi = unbroadcast(gi, data.shape, op.name)
            if gi.dtype != data.dtype:
                gi = _ops.astype(gi, dtype=data.dtype)
            if state.anomaly:
                _check_finite(op.name, "backward", gi, ctx)
        _send(inp, gi, grads, leaves, queue)


def _send(t, g, grads, leaves, queue):
    """Add gradient ``g`` to the running sum for tensor ``t`` (its uses add up). None (a rule that
    returned no gradient) still queues ``t``'s node, so it is released with the rest of the graph."""
    k = id(t)
    if k not in grads:
        grads[k] = g
        if t._ctx is None:
            leaves[k] = t
        else:
            heappush(queue, (-t._ctx.seq, t))
    elif g is not None:
        prev = grads[k]
        grads[k] = g if prev is None else _ops.add(prev, g)  # a primitive, so the profiler counts it


def _check_unmodified(t: Tensor, ctx) -> None:
    """Raise if a tensor this node's gradient rule reads was updated in place after the node was
    recorded: the rule would compute the gradient from the new values, silently wrong. PyTorch's
    version-counter check; an op's ``reads_inputs`` / ``reads_out`` say what its rule reads."""
    op = ctx.op
    if op.reads_out and _updated_after(t, ctx.seq):
        raise RuntimeError(
            f"{op.name}: its output {tuple(t.shape)}, which its gradient needs, was updated in place after it "
            "was computed (+=, add_, zero_(), copy_ ...): recompute it after the update, or update out of place")
    if op.reads_inputs:
        for k, i in enumerate(ctx.inputs):
            if isinstance(i, Tensor) and _updated_after(i, ctx.seq):
                raise RuntimeError(
                    f"{op.name}: input {k} {tuple(i.shape)}, which its gradient needs, was updated in place after "
                    f"this {op.name} used it (+=, add_, zero_(), copy_, an optimizer step ...): run the forward "
                    "again after the update, or update out of place (x = x + y)")


def _grad_tensor(g) -> Tensor:
    """``Tensor(g)`` for an ndarray, without the constructor's checks (a leaf's new ``.grad``)."""
    if isinstance(g, Tensor):
        return g
    t = _new_tensor(Tensor)
    t._data, t._grad, t._ctx, t.name, t.requires_grad = g, None, None, None, False
    return t


_new_tensor = Tensor.__new__


def _accumulate_leaf(t, g, create_graph, handed):
    """Add ``g`` into ``t.grad``: in place into an existing gradient, else as a new one that shares
    memory with no other leaf (``handed`` holds the buffers already given out)."""
    if g is None:
        return
    old = t._grad
    if create_graph:
        g = _grad_tensor(g)
        t._grad = g if old is None else old + g
        return
    g = g._data if isinstance(g, Tensor) else g
    if old is not None and old._ctx is None and old._data.flags.writeable:
        np.add(old._data, g, out=old._data)
        return
    if old is not None:
        g = old._data + g
    owner = id(g if g.base is None else g.base)
    if not g.flags.writeable or owner in handed or g.dtype != t._data.dtype:
        g = np.array(g, dtype=t._data.dtype)  # never let two leaves (or a leaf and a view) share memory
    else:
        handed.add(owner)
    t._grad = _grad_tensor(g)


# ----- public entry points ------------------------------------------------------------------------
def backward(tensor: Tensor, grad=None, retain_graph: bool | None = None, create_graph: bool = False,
             inputs: Sequence[Tensor] | None = None) -> None:
    """Accumulate d(tensor)/d(leaf) into ``leaf.grad`` (or only into ``inputs`` when given)."""
    if not tensor.requires_grad:
        raise RuntimeError("backward(): this tensor does not require grad and has no graph. Did you "
                           "forget requires_grad=True on an input, or compute it under no_grad()?")
    retain_graph = create_graph if retain_graph is None else retain_graph
    g0 = _root_grad(tensor, grad)
    if inputs is None:
        _run([tensor], [g0], retain_graph, create_graph)
        return
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    gs = grad_(tensor, inputs, _grad_tensor(g0), retain_graph=retain_graph, create_graph=create_graph,
               allow_unused=True)
    for x, gx in zip(inputs, gs):
        _accumulate_leaf(x, gx if create_graph or gx is None else gx._data, create_graph, set())


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, returned (not accumulated), like
    ``torch.autograd.grad``. With ``create_graph=True`` the results are themselves differentiable."""
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    for x in inputs:
        if not x.requires_grad:
            raise RuntimeError("grad(): one of the inputs does not require grad")
    if not any(o.requires_grad for o in outputs):
        raise RuntimeError("grad(): none of the outputs requires grad; nothing connects them to inputs")
    capture = {id(x): None for x in inputs}
    roots = [o for o in outputs if o.requires_grad]
    gs = [_root_grad(o, go) for o, go in zip(outputs, grad_outputs) if o.requires_grad]
    _run(roots, gs, create_graph if retain_graph is None else retain_graph, create_graph, capture)
    result = []
    for x in inputs:
        gx = capture[id(x)]
        if gx is None and not allow_unused:
            raise RuntimeError("grad(): an input is not connected to the outputs; pass allow_unused=True "
                               "to get None for it")
        result.append(None if gx is None else gx if isinstance(gx, Tensor) else Tensor(gx))
    return tuple(result)


grad_ = grad


def hvp(f: Callable[[], Tensor], params: Sequence[Tensor], v: Sequence) -> list[Tensor]:
    """Hessian-vector product ``H v`` of the scalar ``f()`` w.r.t. ``params``, by double backward:

    .. math:: H v = \\nabla_\\theta \\left( \\nabla_\\theta f(\\theta) \\cdot v \\right)

    costing about two backward passes and never forming H (P^2 memory)."""
    if isinstance(params, Tensor):  # one tensor: H v has its shape, returned as a one-element list
        params, v = [params], [v]
    params, v = list(params), list(v)
    if len(v) != len(params) or any(np.shape(vi) != p.shape for vi, p in zip(v, params)):
        raise ValueError(f"hvp: v must match params one to one in shape; got params {[p.shape for p in params]} "
                         f"and v {[np.shape(vi) for vi in v]}")
    gs = grad(f(), params, create_graph=True, allow_unused=True)
    dot = None
    for g, p, vi in zip(gs, params, v):
        if g is not None:
            term = _ops.sum(g * (vi._data if isinstance(vi, Tensor) else np.asarray(vi, p.dtype)))
            dot = term if dot is None else dot + term
    if dot is None or not dot.requires_grad:
        return [Tensor(np.zeros_like(p._data)) for p in params]
    hv = grad(dot, params, allow_unused=True)
    return [Tensor(np.zeros_like(p._data)) if h is None else h for p, h in zip(params, hv)]


def _as_leaf(x) -> Tensor:
    x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float64))
    return Tensor(x._data, requires_grad=True)


def _rows(y: Tensor, x: Tensor) -> Tensor:
    """d y / d x, shape ``y.shape + x.shape``: one backward pass per element of ``y`` (zeros where
    ``y`` does not depend on ``x``, as torch's non-strict jacobian)."""
    J = np.zeros((y._data.size, x._data.size), dtype=y.dtype)
    for i in range(y._data.size if y.requires_grad else 0):
        e = np.zeros(y._data.size, y.dtype)
        e[i] = 1
        (gi,) = grad(y, x, grad_outputs=Tensor(e.reshape(y.shape)), retain_graph=True, allow_unused=True)
        if gi is not None:
            J[i] = gi._data.reshape(-1)
    return Tensor(J.reshape(y.shape + x.shape))


def jacobian(f: Callable[[Tensor], Tensor], x) -> Tensor:
    """The Jacobian d f(x) / d x, shape ``f(x).shape + x.shape``, one backward pass per output."""
    x = _as_leaf(x)
    return _rows(f(x), x)


def hessian(f: Callable[[Tensor], Tensor], x) -> Tensor:
    """The Hessian of scalar ``f`` at ``x``, shape ``x.shape + x.shape``: the Jacobian of the
    gradient, computed by double backward (one Hessian-vector product per row)."""
    x = _as_leaf(x)
    (g,) = grad(f(x), x, create_graph=True)
    return _rows(g, x)


from . import ops as _ops  # noqa: E402
from .function import Function  # noqa: E402,F401 - torch.autograd.Function
from .gradcheck import GradcheckError, gradcheck, gradgradcheck  # noqa: E402,F401 - torch.autograd.gradcheck
