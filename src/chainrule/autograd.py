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
import operator
import sys
import traceback
from collections.abc import Callable, Sequence
from heapq import heappop, heappush

import numpy as np

from .tensor import Tensor, _updated_after


class _State:
    """Global engine switches: grad mode, anomaly mode, an optional op profiler, and the phase."""

    __slots__ = ("enabled", "anomaly", "profiler", "phase", "last_inplace")

    def __init__(self):
        self.enabled, self.anomaly, self.profiler, self.phase = True, False, None, "forward"
        self.last_inplace = 0  # the node counter's value at the latest in-place update (tensor._stamp)


state = _State()


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


def _where() -> str:
    frames = [f for f in traceback.extract_stack()[:-3] if "/chainrule/" not in f.filename]
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
    """Propagate ``root_grads`` back through the graph, nodes in decreasing creation order (a
    reverse topological order). Without ``capture``, accumulate into the leaves' ``.grad``; with it
    (a dict id -> None), fill ``capture`` with the gradients of those tensors instead, touching no
    ``.grad`` and skipping every node that cannot reach them."""
    if capture is None and not create_graph:
        _run_plain(roots, root_grads, retain_graph)
        return
    nodes = _reachable(roots)
    nodes.sort(key=_creation, reverse=True)
    useful = None
    if capture is not None:  # prune: only nodes from which a captured tensor is reachable
        useful = set(capture)
        for t in reversed(nodes):
            if any(id(i) in useful for i in t._ctx.inputs if isinstance(i, Tensor)):
                useful.add(id(t))
    grads: dict[int, object] = {}
    leaves: dict[int, Tensor] = {}
    for r, g in zip(roots, root_grads):
        if r.requires_grad:
            _send(r, Tensor(g) if create_graph else g, grads, leaves)
    prev = state.enabled, state.phase
    state.enabled, state.phase = create_graph, "backward"
    try:
        for k in range(len(nodes)):
            # Drop the work list's reference as we go: an intermediate's array (a fused activation's
            # output, read by its own rule) is freed as soon as its node is done, not when backward returns.
            t, nodes[k] = nodes[k], None
            ctx = t._ctx
            g = grads.pop(id(t), None)
            if g is not None:
                if capture is not None and id(t) in capture:
                    capture[id(t)] = g
                if useful is None or id(t) in useful:
                    if state.last_inplace > ctx.seq:
                        _check_unmodified(t, ctx)
                    # A rule that can work in place (relu's) may overwrite g when nothing else
                    # holds it: see _sole_reference.
                    owned = ctx.op.owns and not create_graph and type(g) is np.ndarray and \
                        sys.getrefcount(g) == _SOLE and _sole_reference(g)
                    _apply_rule(t, ctx, g, grads, leaves, create_graph, useful, owned)
            if not retain_graph:
                ctx.inputs = ctx.saved = None  # release: saved arrays can be freed now
        # Leaves are written once, after the pass: a gradient array may still be pending for
        # another node (the add rule hands the same g to both inputs), so no in-place sums before.
        handed: set[int] = set()
        for k, leaf in leaves.items():
            g = grads.pop(k)
            if capture is None:
                _accumulate_leaf(leaf, g, create_graph, handed)
            elif k in capture:
                capture[k] = g
    finally:
        state.enabled, state.phase = prev


def _run_plain(roots, root_grads, retain_graph):
    """:func:`_run` for the training loop's ``loss.backward()``: nothing captured, backward not
    recorded. The rules run in the same order on the same arrays (so the numbers are the same),
    but the graph is walked in one pass: a node is queued (a heap on its creation number) when its
    first gradient arrives and run once every node created after it is done, instead of a search
    for the reachable nodes and a sort before the walk. On a small model (logistic regression: two
    nodes) the engine's Python cost as much as the gradient rules themselves."""
    grads: dict[int, object] = {}
    leaves: dict[int, Tensor] = {}
    queue: list = []  # (-seq, tensor): creation numbers are unique, so tensors are never compared
    for r, g in zip(roots, root_grads):
        if r.requires_grad:
            key, ctx = id(r), r._ctx
            if key in grads:
                grads[key] = _ops.add(grads[key], g)
            else:
                grads[key] = g
                if ctx is None:
                    leaves[key] = r
                else:
                    heappush(queue, (-ctx.seq, r))
    prev = state.enabled, state.phase
    state.enabled, state.phase = False, "backward"
    anomaly, last_inplace = state.anomaly, state.last_inplace
    pop, get = grads.pop, grads.get
    try:
        while queue:
            t = heappop(queue)[1]
            ctx = t._ctx
            inputs = ctx.inputs
            if inputs is None:
                raise _released(ctx)
            g = pop(id(t))
            op = ctx.op
            if last_inplace > ctx.seq:  # something was updated in place after this node recorded
                _check_unmodified(t, ctx)
            needs, args = [], []
            for i in inputs:  # one pass: which inputs want a gradient, and what the rule reads
                if isinstance(i, Tensor):
                    needs.append(i.requires_grad)
                    args.append(i._data)
                else:
                    needs.append(False)
                    args.append(i)
            if g is None:  # queued only to be released (a rule returned no gradient for it)
                in_grads = (None,) * len(needs)
            elif op.saves:
                in_grads = op.rule(g, t._data, *args, needs=needs, saved=ctx.saved, **ctx.attrs)
            elif op.needs:
                in_grads = op.rule(g, t._data, *args, needs=needs, **ctx.attrs)
            elif op.owns and type(g) is np.ndarray and sys.getrefcount(g) == _SOLE and _sole_reference(g):
                in_grads = op.rule(g, t._data, *args, owned=True, **ctx.attrs)  # see _sole_reference
            else:
                in_grads = op.rule(g, t._data, *args, **ctx.attrs)
            for inp, gi, need in zip(inputs, in_grads, needs):
                if not need:
                    continue
                key = id(inp)
                if gi is None:  # nothing flows, but the node behind inp is part of this graph
                    if inp._ctx is not None and key not in grads:
                        grads[key] = None
                        heappush(queue, (-inp._ctx.seq, inp))
                    continue
                data = inp._data
                if gi.shape != data.shape:
                    gi = unbroadcast(gi, data.shape, op.name)
                if gi.dtype is not data.dtype and gi.dtype != data.dtype:  # `is`: the usual case, cheaply
                    gi = _ops.astype(gi, dtype=data.dtype)
                if anomaly:
                    _check_finite(op.name, "backward", gi, ctx)
                prev_g = get(key, _NOTHING)  # _send, inlined
                if prev_g is _NOTHING or prev_g is None:
                    grads[key] = gi
                    if inp._ctx is None:
                        leaves[key] = inp
                    elif prev_g is _NOTHING:
                        heappush(queue, (-inp._ctx.seq, inp))
                else:
                    grads[key] = _ops.add(prev_g, gi)  # a primitive, so the profiler counts it
            # No local may keep a pending gradient: a rule that works in place (relu's) gets to
            # overwrite its g only when the engine's own reference is the last one (_sole_reference).
            g = in_grads = gi = prev_g = None
            if not retain_graph:
                ctx.inputs = ctx.saved = None  # release: saved arrays can be freed now
        # Leaves are written once, after the pass (see _run).
        handed: set[int] = set()
        for key, leaf in leaves.items():
            g = pop(key)
            if leaf.grad is None and type(g) is np.ndarray and g.dtype is leaf._data.dtype and g.flags.writeable:
                owner = id(g if g.base is None else g.base)  # _accumulate_leaf's first-gradient case
                if owner not in handed:
                    handed.add(owner)
                    leaf.grad = _grad_tensor(g)
                    continue
            _accumulate_leaf(leaf, g, False, handed)
    finally:
        state.enabled, state.phase = prev


_NOTHING = object()


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


def _grad_tensor(g: np.ndarray) -> Tensor:
    """``Tensor(g)`` for an ndarray, without the constructor's checks (a leaf's new ``.grad``)."""
    t = _new_tensor(Tensor)
    t._data, t.grad, t._ctx, t.name, t.requires_grad = g, None, None, None, False
    return t


_new_tensor = Tensor.__new__


def _send(t, g, grads, leaves):
    """Add gradient ``g`` to the running sum for tensor ``t`` (its uses add up)."""
    k = id(t)
    prev = grads.get(k)
    grads[k] = g if prev is None else _ops.add(prev, g)  # a primitive, so the profiler counts it
    if t._ctx is None:
        leaves[k] = t


def _calibrate() -> int:
    g = np.empty(1)
    return sys.getrefcount(g)  # the count of an array held by one local variable, as in _run


# Reference counts tell when a gradient array is held by nothing but the engine's local variable (as
# NumPy itself decides when it may reuse a temporary). Only on CPython before 3.14, where the count
# is exact; 3.14 may borrow references on the stack and report less, so there rules never work in place.
_SOLE = _calibrate() if sys.implementation.name == "cpython" and sys.version_info < (3, 14) else -1


def _sole_reference(g: np.ndarray) -> bool:
    """g (already known to be referenced only by the caller's local) owns its memory alone: it is
    writeable and either owns its buffer or is the only view of a base that nobody else holds. Then
    no other pending gradient, captured result or user array can see a write into it."""
    if not g.flags.writeable:
        return False
    base = g.base
    if base is None:
        return True
    # refs to base: g's pointer, the local `base`, getrefcount's argument
    return type(base) is np.ndarray and base.base is None and sys.getrefcount(base) == _SOLE + 1


def _apply_rule(t, ctx, g, grads, leaves, create_graph, useful, owned=False):
    op, inputs = ctx.op, ctx.inputs
    needs, args = [], []
    for i in inputs:  # one pass: which inputs want a gradient, and what the rule reads
        if isinstance(i, Tensor):
            needs.append(i.requires_grad and (useful is None or id(i) in useful))
            args.append(i if create_graph else i._data)  # Tensors when the backward is recorded
        else:
            needs.append(False)
            args.append(i)
    out = t if create_graph else t._data
    if op.saves:
        in_grads = op.rule(g, out, *args, needs=needs, saved=None if create_graph else ctx.saved, **ctx.attrs)
    elif op.needs:
        in_grads = op.rule(g, out, *args, needs=needs, **ctx.attrs)
    elif owned:
        in_grads = op.rule(g, out, *args, owned=True, **ctx.attrs)
    else:
        in_grads = op.rule(g, out, *args, **ctx.attrs)
    anomaly = state.anomaly
    for inp, gi, need in zip(inputs, in_grads, needs):
        if not need or gi is None:
            continue
        data = inp._data
        if gi.shape != data.shape:
            gi = unbroadcast(gi, data.shape, op.name)
        if gi.dtype != data.dtype:
            gi = _ops.astype(gi, dtype=data.dtype)
        if anomaly:
            _check_finite(op.name, "backward", gi, ctx)
        _send(inp, gi, grads, leaves)


def _accumulate_leaf(t, g, create_graph, handed):
    if create_graph:
        g = g if isinstance(g, Tensor) else Tensor(g)
        t.grad = g if t.grad is None else t.grad + g
        return
    g = g._data if isinstance(g, Tensor) else g
    if t.grad is not None and t.grad._ctx is None and t.grad._data.flags.writeable:
        np.add(t.grad._data, g, out=t.grad._data)
        return
    if t.grad is not None:
        g = t.grad._data + g
    owner = g if g.base is None else g.base
    if not g.flags.writeable or id(owner) in handed or g.dtype != t.dtype:
        g = np.array(g, dtype=t.dtype)  # never let two leaves (or a leaf and a view) share memory
    else:
        handed.add(id(owner))
    t.grad = Tensor(g)


# ----- public entry points ------------------------------------------------------------------------
def backward(tensor: Tensor, grad=None, retain_graph: bool = False, create_graph: bool = False,
             inputs: Sequence[Tensor] | None = None) -> None:
    """Accumulate d(tensor)/d(leaf) into ``leaf.grad`` (or only into ``inputs`` when given)."""
    if not tensor.requires_grad:
        raise RuntimeError("backward(): this tensor does not require grad and has no graph. Did you "
                           "forget requires_grad=True on an input, or compute it under no_grad()?")
    g0 = _root_grad(tensor, grad)
    if inputs is None:
        if create_graph:
            _run([tensor], [g0], True, True)
        else:
            _run_plain([tensor], [g0], retain_graph)
        return
    gs = grad_(tensor, inputs, Tensor(g0), retain_graph=retain_graph or create_graph,
               create_graph=create_graph, allow_unused=True)
    for x, gx in zip(inputs, gs):
        if gx is not None:
            _accumulate_leaf(x, gx if create_graph else gx._data, create_graph, set())


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
    params = list(params)
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


def jacobian(f: Callable[[Tensor], Tensor], x) -> Tensor:
    """The Jacobian d f(x) / d x, shape ``f(x).shape + x.shape``, one backward pass per output."""
    x = _as_leaf(x)
    y = f(x)
    J = np.zeros((y._data.size, x._data.size), dtype=y.dtype)
    for i in range(y._data.size):
        e = np.zeros(y._data.size, y.dtype)
        e[i] = 1
        (gi,) = grad(y, x, grad_outputs=Tensor(e.reshape(y.shape)), retain_graph=True, allow_unused=True)
        if gi is not None:
            J[i] = gi._data.reshape(-1)
    return Tensor(J.reshape(y.shape + x.shape))


def hessian(f: Callable[[Tensor], Tensor], x) -> Tensor:
    """The Hessian of scalar ``f`` at ``x``, shape ``x.shape + x.shape``: the Jacobian of the
    gradient, computed by double backward (one Hessian-vector product per row)."""
    x = _as_leaf(x)
    (g,) = grad(f(x), x, create_graph=True)
    n = x._data.size
    H = np.zeros((n, n), dtype=x.dtype)
    if g.requires_grad:
        for i in range(n):
            e = np.zeros(n, x.dtype)
            e[i] = 1
            (hi,) = grad(g, x, grad_outputs=Tensor(e.reshape(x.shape)), retain_graph=True, allow_unused=True)
            if hi is not None:
                H[i] = hi._data.reshape(-1)
    return Tensor(H.reshape(x.shape + x.shape))


# ----- numerical checks ---------------------------------------------------------------------------
class GradcheckError(AssertionError):
    """Raised when analytic and numerical derivatives disagree."""


def _flat_grads(fn, inputs, u, create_graph=False):
    out = fn(*inputs)
    s = _ops.sum(out * u)
    gs = grad(s, inputs, create_graph=create_graph, allow_unused=True)
    return [np.zeros_like(x._data) if g is None else g for x, g in zip(inputs, gs)]


def _numeric(fn_scalar, inputs, eps):
    """Central differences (f(x + eps e_i) - f(x - eps e_i)) / 2 eps for every input element."""
    result = []
    for x in inputs:
        num = np.zeros_like(x._data)
        flat, nflat = x._data.reshape(-1), num.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            fp = fn_scalar()
            flat[i] = orig - eps
            fm = fn_scalar()
            flat[i] = orig
            nflat[i] = (fp - fm) / (2 * eps)
        result.append(num)
    return result


def _compare(what, analytic, numeric, atol, rtol, raise_exception):
    for k, (a, n) in enumerate(zip(analytic, numeric)):
        if not np.allclose(a, n, atol=atol, rtol=rtol):
            err = np.max(np.abs(a - n))
            if raise_exception:
                raise GradcheckError(f"{what} of input {k} disagree (max abs error {err:.3g}):\n"
                                     f"analytic:\n{a}\nnumerical:\n{n}")
            return False
    return True


def gradcheck(fn: Callable[..., Tensor], inputs, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True, seed: int = 0) -> bool:
    """Check the analytic gradient of ``fn`` against central differences, in float64.

    The output is projected on a random direction u, so one backward pass checks the whole
    vector-Jacobian product: ``d(u . fn(x))/dx`` must match its finite-difference estimate.
    """
    inputs = [_as_leaf(x) if not (isinstance(x, Tensor) and x.requires_grad) else x for x in inputs]
    for x in inputs:
        if x.dtype != np.float64:
            raise ValueError(f"gradcheck needs float64 inputs (float32 finite differences are noise); got {x.dtype}")
    with no_grad():
        out0 = fn(*inputs)
    u = np.random.default_rng(seed).standard_normal(out0.shape)
    analytic = [g._data for g in _flat_grads(fn, inputs, u)]

    def f():
        with no_grad():
            return float(np.sum(fn(*inputs)._data * u))
    return _compare("gradients", analytic, _numeric(f, inputs, eps), atol, rtol, raise_exception)


def gradgradcheck(fn: Callable[..., Tensor], inputs, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, raise_exception: bool = True, seed: int = 0) -> bool:
    """Second-order check: the Hessian-vector product of ``s(x) = u . fn(x)`` by double backward
    against central differences of the analytic gradient, ``(g(x + eps w) - g(x - eps w)) / 2 eps``."""
    inputs = [_as_leaf(x) if not (isinstance(x, Tensor) and x.requires_grad) else x for x in inputs]
    rng = np.random.default_rng(seed)
    with no_grad():
        out0 = fn(*inputs)
    u = rng.standard_normal(out0.shape)
    w = [rng.standard_normal(x.shape) for x in inputs]
    gs = _flat_grads(fn, inputs, u, create_graph=True)
    dot = None
    for g, wi in zip(gs, w):
        if isinstance(g, Tensor) and g.requires_grad:
            term = _ops.sum(g * wi)
            dot = term if dot is None else dot + term
    if dot is None:
        analytic = [np.zeros_like(x._data) for x in inputs]
    else:
        hv = grad(dot, inputs, allow_unused=True)
        analytic = [np.zeros_like(x._data) if h is None else h._data for x, h in zip(inputs, hv)]
    originals = [x._data.copy() for x in inputs]

    def g_at(sign):
        for x, o, wi in zip(inputs, originals, w):
            x._data[...] = o + sign * eps * wi
        r = [np.asarray(g._data if isinstance(g, Tensor) else g) for g in _flat_grads(fn, inputs, u)]
        for x, o in zip(inputs, originals):
            x._data[...] = o
        return r
    numeric = [(p - m) / (2 * eps) for p, m in zip(g_at(+1), g_at(-1))]
    return _compare("Hessian-vector products", analytic, numeric, atol, rtol, raise_exception)


from . import ops as _ops  # noqa: E402
