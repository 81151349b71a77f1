"""The reverse-mode engine: topological order, backward, ``grad``, second order.

Backward visits the graph in reverse topological order (lecture: "loop over the nodes in reverse
topological order, starting from the final node"). Each node's gradient rule turns the gradient of
its output into gradients of its inputs; each input's gradient is the sum over its uses. This module
is the only place that un-broadcasts: a rule returns gradients with the output's broadcast shape, and
:func:`unbroadcast` sums them back to each input's shape.

No recursion anywhere (a 10,000-op chain works). Gradients of intermediate nodes are dropped as soon
as they are consumed, and the graph is released after backward unless ``retain_graph=True``. Grad
and anomaly modes live in :mod:`chainrule.modes`; ``hvp``, ``jacobian``, ``hessian`` in
:mod:`chainrule.derivatives` (all re-exported here).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from heapq import heappop, heappush

import numpy as np

from .modes import (  # noqa: F401
    _check_finite,
    _where,
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
    process,
    read,
    replayed,
    set_grad_enabled,
    state,
    untraced,
)
from .tensor import Tensor, _node_counter

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
        untraced("an in-place update of a tensor outside the recorded writes (tensor.py) and optimizers")
    _stamp_storage(t._data)


def _stamp_storage(a: np.ndarray) -> None:
    """Mark the memory of ``a`` as updated in place now (a tensor's write: tensor.py)."""
    _stamp_storages((_storage(a),))


def _stamp_storages(ids) -> None:
    """Mark several storages (their :func:`_storage` ids) as updated in place now: an optimizer's step."""
    if len(_INPLACE_STAMPS) > 100_000:  # bound the table; forgetting only weakens the check
        _INPLACE_STAMPS.clear()
    n = process.last_inplace = next(_node_counter)
    for i in ids:
        _INPLACE_STAMPS[i] = n


def _updated_after(t: Tensor, seq: int) -> bool:
    """Whether ``t``'s memory was updated in place after node number ``seq`` was recorded."""
    return _INPLACE_STAMPS.get(_storage(t._data), 0) > seq


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
                if process.last_inplace > ctx.seq:  # something was updated in place after this node recorded
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
            if process.anomaly:
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


from . import ops as _ops  # noqa: E402
from .derivatives import _as_leaf, hessian, hvp, jacobian  # noqa: E402,F401 - torch.autograd.functional
from .function import Function  # noqa: E402,F401 - torch.autograd.Function
from .gradcheck import GradcheckError, gradcheck, gradgradcheck  # noqa: E402,F401 - torch.autograd.gradcheck
