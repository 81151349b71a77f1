"""User-defined differentiable functions with a hand-written backward: ``torch.autograd.Function``.

The lecture's backprop by hand, as a first-class op::

    class Cube(cr.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):          # g = dL/dy; return dL/dx = g * 3x^2
            (x,) = ctx.saved_tensors
            return g * 3 * x ** 2

    y = Cube.apply(x)

``forward`` runs without recording; ``apply`` records one node whose gradient rule is ``backward``
(one gradient per argument of ``forward``, None for the non-tensors). ``backward`` is written with
tensor operations, so with ``create_graph=True`` it is itself recorded and second derivatives work.
"""

from __future__ import annotations

from . import autograd as _ag
from . import primitive as _prim
from .tensor import Node, Tensor, _leaf


class FunctionCtx:
    """What ``forward`` hands to ``backward``: ``save_for_backward(*tensors)`` / ``saved_tensors``,
    ``needs_input_grad`` (one bool per argument), and any attribute you set."""

    def __init__(self, needs_input_grad: tuple[bool, ...]):
        self.needs_input_grad = needs_input_grad
        self.to_save: tuple = ()
        self.materialize_grads = True

    def save_for_backward(self, *tensors) -> None:
        self.to_save = tensors

    @property
    def saved_tensors(self) -> tuple:
        return self.to_save

    def mark_non_differentiable(self, *tensors) -> None:
        """Accepted for torch compatibility: integer outputs never require grad here anyway."""

    def mark_dirty(self, *tensors) -> None:
        """Accepted for torch compatibility (in-place forwards are not tracked)."""

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = value


def _make_op(cls) -> _prim.Primitive:
    def forward(*inputs, ctx=None):
        raise RuntimeError(f"{cls.__name__}: call {cls.__name__}.apply(...), not the op directly")

    op = _prim.Primitive(cls.__name__, forward, "*inputs", reads="nothing", register=False)
    op.rule = op.vjp = lambda g, out, args, needs, saved, attrs: _backward(cls, g, attrs["ctx"])
    return op


def _backward(cls, g, ctx):
    recording = _ag.state.enabled  # create_graph=True: the user's backward is recorded
    grads = cls.backward(ctx, g if isinstance(g, Tensor) else _leaf(g))
    grads = grads if isinstance(grads, tuple) else (grads,)
    n = len(ctx.needs_input_grad)
    if len(grads) < n:
        raise RuntimeError(f"{cls.__name__}.backward returned {len(grads)} gradient(s) for {n} forward argument(s): "
                           "return one per argument (None for arguments that need none)")
    out = []
    for gi in grads[:n]:
        if isinstance(gi, Tensor) and not recording:
            gi = gi._data
        out.append(gi)
    return tuple(out)


class Function:
    """Subclass it with static ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)``, then
    call ``YourFunction.apply(*args)`` (see the module docstring)."""

    _op: _prim.Primitive | None = None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls._op = None

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("a Function subclass must define forward(ctx, ...)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("a Function subclass must define backward(ctx, ...) to be differentiated")

    @classmethod
    def apply(cls, *args, **kwargs):
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx = FunctionCtx(needs)
        with _ag.no_grad():
            out = cls.forward(ctx, *args, **kwargs)
        if isinstance(out, tuple):
            raise TypeError(f"{cls.__name__}.forward returned a tuple: chainrule's Function supports one output tensor")
        out = out if isinstance(out, Tensor) else _leaf(Tensor(out)._data)
        if not (any(needs) and _ag.state.enabled and out._data.dtype.kind == "f"):
            return out
        if any(out is a for a in args) or out._ctx is not None:  # never rewrite an input's (or another node's) history
            out = _leaf(out._data)
        if cls._op is None:
            cls._op = _make_op(cls)
        out._ctx = Node(cls._op, args, {"ctx": ctx}, _ag._where() if _ag.process.anomaly else None)
        out.requires_grad = True
        return out


def once_differentiable(fn):
    """torch.autograd.function.once_differentiable: accepted as is (the backward still runs on tensors)."""
    return fn
