"""The primitive protocol: a NumPy forward with, declared beside it, everything the engine needs.

A primitive is declared once, next to its forward::

    @primitive("mul", inputs=("input", "other"), flops=elementwise)
    def mul(a, b):
        return np.multiply(a, b)

    @mul.defgrad
    def _(g, out, a, b, needs):
        return mul(g, b) if needs[0] else None, mul(g, a) if needs[1] else None

- ``inputs``: the names of its tensor arguments, in order (PyTorch's names, so ``matmul(input=a,
  other=b)`` works); ``"*tensors"`` for a variadic primitive (concatenate). Every other parameter of
  the forward is an **attribute**: a constant that configures the op (``axis``, ``shape``). Callers
  may pass attributes by position or keyword (``sum(x, 0)``, ``sum(x, axis=0)``, torch's
  ``sum(x, dim=0, keepdim=True)``), and they are never turned into tensors.
- the **gradient rule** ``rule(g, out, *inputs, **attrs) -> grads``: one vector-Jacobian product
  ``g · d(out)/d(input)`` per input, with the output's broadcast shape (the engine unbroadcasts). A
  rule that declares a ``needs`` parameter gets a tuple saying which inputs want a gradient (to
  skip work); one that declares ``saved`` gets what a ``saves=True`` forward returned besides its
  output (``(out, saved)``), or None when the backward is being recorded.
- ``flops(out, *inputs, **attrs)``: floating-point operations of the forward; ``macs``: its
  multiply-adds, for the products that have them.
- ``reads``: what the rule reads besides ``g`` and shapes: ``"inputs"`` (the default), ``"output"``,
  ``"both"`` or ``"nothing"``. The engine's in-place check (PyTorch's version counter) uses it.

Called on ndarrays a primitive is plain NumPy (nothing recorded); called with at least one
:class:`~chainrule.tensor.Tensor` it returns a Tensor and, when an input requires grad and grad mode
is on, records a :class:`~chainrule.tensor.Node`. Rules are written with primitives, so the backward
of a backward is recorded when ``create_graph=True`` (Hessian-vector products, Newton's method).
"""

from __future__ import annotations

import inspect
import numbers
import sys

import numpy as np

from . import autograd as _ag
from .tensor import Node, Tensor

_state, _process = _ag.state, _ag.process
#: Every primitive by name.
REGISTRY: dict[str, Primitive] = {}
#: PyTorch's spellings of attribute names.
ALIASES = {"dim": "axis", "keepdim": "keepdims"}
_READS = {"inputs": (True, False), "output": (False, True), "both": (True, True), "nothing": (False, False)}
_F64 = np.dtype(np.float64)


class Primitive:
    """A named NumPy function with its gradient rule, FLOP rule and declared arguments (see the module docstring)."""

    __slots__ = ("name", "forward", "rule", "vjp", "flops", "macs", "saves", "doc", "inputs", "n_in", "min_in",
                 "variadic", "attrs", "reads_inputs", "reads_out")

    def __init__(self, name: str, forward, inputs=("input",), flops=None, macs=None, reads: str = "inputs",
                 saves: bool = False, doc: str | None = None, register: bool = True):
        self.name, self.forward, self.flops, self.macs, self.saves = name, forward, flops, macs, saves
        self.inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        self.variadic = bool(self.inputs) and self.inputs[0].startswith("*")  # inputs=(): random_draw
        params = list(inspect.signature(forward).parameters.values())
        k = 1 if self.variadic else len(self.inputs)
        self.attrs = {p.name: p.default for p in params[k:]}
        # how many tensors a call may pass by position (trailing inputs with a default are optional: linear's bias)
        self.n_in = sys.maxsize if self.variadic else k
        self.min_in = 0 if self.variadic else sum(p.default is p.empty for p in params[:k])
        self.reads_inputs, self.reads_out = _READS[reads]
        self.rule = self.vjp = None
        self.doc = doc or forward.__doc__
        if register:
            REGISTRY[name] = self

    def defgrad(self, rule):
        """Decorator: attach the gradient rule. What it declares (``needs``, ``saved``) is what it gets."""
        wants = inspect.signature(rule).parameters
        n, s = "needs" in wants, "saved" in wants
        if n and s:
            self.vjp = lambda g, out, args, needs, saved, attrs: self.rule(g, out, *args, needs=needs, saved=saved, **attrs)
        elif n:
            self.vjp = lambda g, out, args, needs, saved, attrs: self.rule(g, out, *args, needs=needs, **attrs)
        elif s:
            self.vjp = lambda g, out, args, needs, saved, attrs: self.rule(g, out, *args, saved=saved, **attrs)
        else:
            self.vjp = lambda g, out, args, needs, saved, attrs: self.rule(g, out, *args, **attrs)
        self.rule = rule
        return self

    @property
    def __signature__(self) -> inspect.Signature:
        """The signature users call: the tensor inputs, then the attributes with their defaults."""
        P = inspect.Parameter
        ps = [P(self.inputs[0][1:], P.VAR_POSITIONAL)] if self.variadic else [
            P(n, P.POSITIONAL_OR_KEYWORD) for n in self.inputs]
        kind = P.KEYWORD_ONLY if self.variadic else P.POSITIONAL_OR_KEYWORD
        ps += [P(k, kind, default=d) for k, d in self.attrs.items()]
        return inspect.Signature(ps)

    def __repr__(self):
        return f"<primitive {self.name}>"

    def __call__(self, *args, **attrs):
        if not self.min_in <= len(args) <= self.n_in or (attrs and not self.attrs.keys() >= attrs.keys()):
            if "out" in attrs and "out" not in self.attrs:
                return _into(attrs.pop("out"), self(*args, **attrs))
            args, attrs = self._bind(args, attrs)
        for a in args:
            if isinstance(a, Tensor):
                return self._apply(args, attrs)
        out = self.forward(*args, **attrs)
        if self.saves:
            out = out[0]
        if _state.profiler is not None:
            _state.profiler(self, out, args, attrs)
        return out

    def _bind(self, args, kw):
        """Sort a call's arguments into tensor inputs and attributes, by position or name."""
        n = len(args) if self.variadic else self.n_in
        if len(args) > n:
            extra, args = args[n:], args[:n]
            if len(extra) > len(self.attrs):
                raise TypeError(f"{self.name}() takes {n} tensor argument(s) and the attributes "
                                f"{list(self.attrs)}; got {n + len(extra)} positional arguments")
            for k, v in zip(self.attrs, extra):
                if k in kw:
                    raise TypeError(f"{self.name}() got multiple values for argument {k!r}")
                kw[k] = v
        if len(args) < n:  # tensor inputs passed by name: matmul(input=a, other=b)
            missing = [m for m in self.inputs[len(args):self.min_in] if m not in kw]
            if missing:
                raise TypeError(f"{self.name}() missing tensor argument(s) {missing}")
            for m in self.inputs[len(args):]:
                if m not in kw:
                    break
                args = args + (kw.pop(m),)
        for k in [k for k in kw if k not in self.attrs]:
            a = ALIASES.get(k)
            if a is None or a not in self.attrs or a in kw:
                raise TypeError(f"{self.name}() got an unexpected argument {k!r}; its attributes are {list(self.attrs)}")
            kw[a] = kw.pop(k)
        return args, kw

    def _apply(self, args, attrs):
        datas, req, consts = [], False, False
        for a in args:
            if isinstance(a, Tensor):
                datas.append(a._data)
                if a.requires_grad:
                    req = True
            else:
                datas.append(a)
                if type(a) is not np.ndarray or not a.ndim:  # arrays (e.g. class labels) pass as they are
                    consts = True
        if consts:  # scalars take the dtype of the first floating tensor, wherever it stands
            dtype = next((d.dtype for a, d in zip(args, datas) if isinstance(a, Tensor) and d.dtype.kind == "f"), None)
            datas = [d if isinstance(a, Tensor) else _const(a, dtype, self.name) for a, d in zip(args, datas)]
        out = self.forward(*datas, **attrs)
        saved = None
        if self.saves:
            out, saved = out
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        if out.dtype is _F64 and "dtype" not in attrs:  # only a float64 result can be a widening
            out = _int_does_not_widen(out, datas)
        if _state.profiler is not None:
            _profile(self, out, datas, attrs, args, saved)
        t = Tensor.__new__(Tensor)
        t._data, t._grad, t.name, t._ctx, t.requires_grad = out, None, None, None, False
        if req and _state.enabled and self.rule is not None and out.dtype.kind == "f":
            inputs = tuple(a if isinstance(a, Tensor) else d for a, d in zip(args, datas)) if consts else args
            t._ctx = Node(self, inputs, attrs, _ag._where() if _process.anomaly else None, saved)
            t.requires_grad = True
        if _process.anomaly:
            _ag._check_finite(self.name, "forward", out, t._ctx)
        return t


def _profile(op, out, datas, attrs, args, saved):
    """Report one op on Tensors to the profiler: a step recorder (``cr.compile``) gets everything;
    ``cost.measure`` gets the op and, through ``keep``, the arrays the node keeps besides its output."""
    p = _state.profiler
    record = getattr(p, "record", None)
    if record is not None:
        record(op, out, datas, attrs, args, saved)
        return
    p(op, out, datas, attrs)
    if saved is not None and hasattr(p, "keep"):
        p.keep(saved)


def _into(out, result):
    """torch's ``out=``: the result written into the tensor ``out`` (resized when its shape differs)."""
    if _state.profiler is not None:
        _ag.untraced("out=")
    value = result._data if isinstance(result, Tensor) else np.asarray(result)
    if not isinstance(out, Tensor):
        raise TypeError(f"out= must be a Tensor, got {type(out).__name__}")
    if out._data.shape == value.shape and out._data.flags.writeable:
        np.copyto(out._data, value, casting="unsafe")
    else:
        out._data = value.astype(out._data.dtype, copy=True)
    return out


def primitive(name: str, inputs=("input",), flops=None, macs=None, reads: str = "inputs", saves: bool = False):
    """Decorator: make a NumPy function a :class:`Primitive` (see the module docstring)."""
    return lambda fwd: Primitive(name, fwd, inputs, flops, macs, reads, saves)


def _const(a, dtype, opname):
    """Turn a non-Tensor input into an ndarray. Scalars take the tensor's dtype (a NumPy float64
    scalar must not upcast a float32 tensor); arrays keep theirs, as in NumPy/PyTorch promotion."""
    if isinstance(a, np.ndarray):
        if a.ndim == 0 and dtype is not None and a.dtype.kind in "fiub":
            return a.astype(dtype)
        return a
    if isinstance(a, (numbers.Number, np.generic)) and not isinstance(a, complex):
        if dtype is not None:
            return np.asarray(a, dtype=dtype)
        return np.asarray(a, dtype=np.float32 if isinstance(a, (float, np.floating)) else None)
    if isinstance(a, (list, tuple)):
        arr = np.asarray(a)
        if arr.dtype.kind in "fiub":
            return arr.astype(dtype or (np.float32 if arr.dtype.kind == "f" else arr.dtype))
    raise TypeError(f"{opname}: unsupported operand of type {type(a).__name__}; "
                    "use a Tensor, an ndarray or a Python number")


def _int_does_not_widen(out, datas):
    """Integer operands never widen a float result (PyTorch's rule; NumPy makes int64 * float32 and
    int / int float64): the result takes the widest float among the operands, float32 if none."""
    floats = [d.dtype for d in datas if d.dtype.kind == "f"]
    want = np.result_type(*floats) if floats else np.dtype(np.float32)
    return out if out.dtype == want else out.astype(want)
