"""``cr.compile(step)``: record a training step once, then replay it as straight-line NumPy.

An eager step pays Python for every op twice over: a Tensor and a Node per forward op, a heap walk
and a rule dispatch per backward op. For the lecture's small networks that bookkeeping costs more
than the arithmetic. The compiled step does what ``jax.jit`` and tinygrad's ``TinyJit`` do: run the
step eagerly while recording every primitive it executes (forward, backward, the leaves' gradient
sums), then generate one Python function that calls the same NumPy forwards in the same order on new
data, with no Tensor, Node or graph in between::

    step = cr.compile(lambda x, y: train_step(model, opt, x, y))
    for xb, yb in loader:
        loss = step(xb, yb)           # calls 1 and 2 record, later calls replay
    print(step.code)                  # the generated program, one line per primitive

Effects the engine cannot see as primitives are repeated by calling them again: an optimizer's
``step`` and ``zero_grad``, a scheduler's ``step``, ``Module.train`` / ``zero_grad``, BatchNorm's
running statistics (:func:`chainrule.autograd.replayed`). Dropout draws its mask inside a primitive, so the random
stream advances exactly as in eager mode. Replay calls the same functions on the same values, so
its results equal eager's bit for bit.

**When it runs eagerly.** The first two calls with a given signature (the shapes and dtypes of the
arguments, grad mode) run eagerly and are recorded; the two recordings must agree op for op, and
every array that comes from outside the recorded primitives must be the same object or hold the
same values in both. Anything else means the step depends on something the replay cannot see, and
that signature runs eagerly from then on, with a one-line warning saying why: Python control flow
on a tensor's value (``bool()``, an ``item()`` the step does not return), ``create_graph=True``, a
module buffer changed outside the recorded ops and effects, NumPy computed on tensor values inside
the step. Writes into tensors (``w -= lr * w.grad``, ``x[mask] = 0``, ``p.grad = None``) are
recorded and repeated (tensor.py's writes are ``replayed``). A later call whose modules changed
``training`` mode since the recording runs eagerly. The library's own branches on values
(cross_entropy's lean path when every label is a class: :func:`chainrule.modes.branch`) are checked
again on every replay; a call for which one goes the other way runs eagerly, bit for bit as eager,
or, when the step had already run an update before reaching it, raises ``BranchAfterEffects``.
Python side effects of the step (printing, appending to a list) happen only in the eager calls.
"""

from __future__ import annotations

import functools
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from . import autograd as _ag
from . import ops as _ops
from .autograd import _accumulate_leaf
from .replay import AttrRef, Diverged, fold, generate
from .tensor import Tensor

__all__ = ["compile", "Compiled"]


class _NotReplayable(Exception):
    """The step cannot be replayed; the message says why."""


# ----- recording ------------------------------------------------------------------------------------
class _Recorder:
    """What one eager call of the step did, as lines over numbered values.

    A reference to a value is ``("v", n)`` (value n of the program: an argument's array or an output
    of an earlier line), ``("t", tensor)`` (the array a tensor holds when the line runs: parameters)
    or ``("c", obj)`` (a constant: the same object, or equal values, on every call)."""

    def __init__(self, arrays: list, tensors: list):
        self.template_: tuple | None = None
        self.lines: list[tuple] = []
        self.ids: dict[int, tuple] = {}
        self.alive: list = []  # every value seen stays alive while recording, so ids stay unique
        self.owners: dict[int, list] = {}  # id(array owning the memory) -> [(ref, array)]: finds NumPy's views
        self.n = 0
        self.problems: list[str] = []
        self.reads: dict[int, tuple] = {}  # id(value read by item()/numpy()) -> ref of its array
        # Modules by weak reference: one made inside the step (``nn.CrossEntropyLoss()(out, y)``) is gone
        # when the call returns, is made afresh by every call, and so needs no guard (see live()).
        self.modules: dict[int, weakref.ref] = {}
        self.guards: list[tuple] = []  # (weakref to module, training) at its first call
        self.touched: set[int] = set()  # tensors an effect was given (BatchNorm's running statistics)
        self.set_by_step: set[int] = set()  # modules whose mode the step itself sets (train()/eval())
        self.tensor_args = {id(t): k for k, t in enumerate(tensors)}
        for a in arrays:
            self._new(a)

    # -- values
    def _new(self, value) -> tuple:
        ref = ("v", self.n)
        self.n += 1
        self._bind(value, ref)
        return ref

    def _bind(self, value, ref) -> None:
        self.ids[id(value)] = ref
        self.alive.append(value)
        if isinstance(value, np.ndarray) and value.size:
            owner = value if value.base is None else value.base
            self.owners.setdefault(id(owner), []).append((ref, value))

    def ref(self, a) -> tuple:
        r = self.ids.get(id(a))
        if r is not None:
            return r
        if isinstance(a, np.ndarray) and a.size:
            r = self._view(a)
            if r is not None:
                return r
        self.alive.append(a)
        return ("c", a)

    def _view(self, a: np.ndarray) -> tuple | None:
        """A view NumPy made of a known array (``w.T``, ``dx[1:]`` in a rule): a line that makes the same view."""
        if a.base is None or min(a.strides, default=0) < 0:
            return None
        at = a.__array_interface__["data"][0]
        for src, k in self.owners.get(id(a.base), ()):
            offset = at - k.__array_interface__["data"][0]
            if k.dtype != a.dtype or offset < 0:
                continue
            if offset == 0 and a.shape == k.shape[::-1] and a.strides == k.strides[::-1]:
                how = "T"
            elif offset == 0 and a.flags.c_contiguous and k.flags.c_contiguous and a.size == k.size:
                how = "reshape"
            elif k.flags.c_contiguous and offset + sum((n - 1) * s for n, s in zip(a.shape, a.strides)) < k.nbytes:
                how = offset  # bytes into k's buffer
            else:
                continue
            ref = self._new(a)
            self.lines.append(("view", ref, src, how, a.shape, a.strides))
            return ref
        return None

    def _tensor_ref(self, t: Tensor) -> tuple:
        k = self.tensor_args.get(id(t))
        return ("a", k) if k is not None else ("c", t)

    # -- the profiler protocol (primitive.py, autograd.py, tensor.py, nn/module.py)
    def __call__(self, op, out, args, attrs) -> None:  # a primitive on ndarrays (a backward rule's)
        refs = [self.ref(a) for a in args]  # before the output: a view of an input is not one of the output
        ref = self._new(out)
        self.lines.append(("op", op, refs, self._attrs(attrs), [ref], None))
        self._elements(out, ref)

    def _attrs(self, attrs: dict) -> dict:
        """An attribute that is an array of the program (``x[idx]`` with ``idx`` an argument, or an item of a
        tuple index ``x[rows, y]``) is read on every replay, not frozen."""
        if not any(isinstance(v, (np.ndarray, tuple)) for v in attrs.values()):
            return attrs
        return {k: self._attr(v) for k, v in attrs.items()}

    def _attr(self, v):
        if isinstance(v, tuple):
            return tuple(self._attr(x) for x in v)
        if isinstance(v, np.ndarray) and v.size:
            r = self.ids.get(id(v)) or self._view(v)
            if r is not None:
                return AttrRef(r)
        return v

    def _elements(self, value, ref) -> None:
        """A forward that returns a tuple (a backward's several gradients): its items are values too."""
        if isinstance(value, (tuple, list)):
            for k, item in enumerate(value):
                if id(item) not in self.ids and item is not None:
                    sub = self._new(item)
                    self.lines.append(("elem", sub, ref, k))
                    self._elements(item, sub)

    def record(self, op, out, datas, attrs, args, saved) -> None:  # a primitive on Tensors
        for a, d in zip(args, datas):
            if isinstance(a, Tensor):
                if id(d) not in self.ids:
                    self._bind(d, ("t", a))
            elif a is not d and id(a) in self.ids and id(d) not in self.ids:
                # a 0-d array of the program that _apply cast to the op's dtype (``loss / n``): cast it again
                ref = self._new(d)
                self.lines.append(("op", _ops.astype, [self.ids[id(a)]], {"dtype": d.dtype}, [ref], None))
        refs = [self.ref(d) for d in datas]
        outs = [self._new(out)] + ([self._new(saved)] if op.saves else [])
        # what _apply did after the forward: a NumPy scalar made an array, a float64 result narrowed
        post = (out.ndim == 0, out.dtype == np.float64 and "dtype" not in attrs)
        self.lines.append(("op", op, refs, self._attrs(attrs), outs, post))
        if saved is not None:
            self._elements(saved, outs[-1])

    def accumulate(self, pairs, create_graph) -> None:
        if create_graph:
            self.problems.append("backward(create_graph=True) (a recorded backward)")
        handed: set[int] = set()
        done, fresh = [], True
        for leaf, g in pairs:
            old = leaf._grad
            _accumulate_leaf(leaf, g, create_graph, handed)
            if g is not None:
                done.append((self._tensor_ref(leaf), self.ref(g), self._new(leaf._grad._data)))
                # the leaf had no gradient and was handed g itself: the replay's short way (replay._emit)
                fresh = fresh and old is None and leaf._grad._data is (g._data if isinstance(g, Tensor) else g)
        self.lines.append(("acc", done, fresh))

    def effect(self, method, args, kwargs):
        self.touched.update(id(a) for a in (*args, *kwargs.values()) if isinstance(a, Tensor))
        refs = [self._any_ref(a) for a in args]
        kw = {k: self._any_ref(v) for k, v in kwargs.items()}
        self.lines.append(("call", method, refs, kw))
        prev, _ag.state.profiler = _ag.state.profiler, None
        try:
            result = method(*args, **kwargs)
        finally:
            _ag.state.profiler = prev
        if method.__name__ == "train" and hasattr(args[0], "modules"):
            self.set_by_step.update(id(m) for m in args[0].modules())
        return result

    def branch(self, test, args, result: bool, what: str) -> None:
        """A branch of the library on values (:func:`chainrule.modes.branch`): replay re-checks it."""
        refs = [self._any_ref(a) if isinstance(a, (Tensor, np.ndarray)) else ("c", a) for a in args]
        self.lines.append(("check", test, refs, result, what))

    def _any_ref(self, a) -> tuple:
        if isinstance(a, Tensor):
            r = self.ids.get(id(a._data))
            return ("w", r) if r is not None and r[0] == "v" else self._tensor_ref(a)
        return self.ref(a) if isinstance(a, np.ndarray) else ("c", a)

    def module(self, m) -> None:
        known = self.modules.get(id(m))
        if known is None or known() is not m:
            self.modules[id(m)] = r = weakref.ref(m)
            if id(m) not in self.set_by_step:
                self.guards.append((r, m.training))

    def live(self) -> tuple[list, list[tuple]]:
        """The modules that outlive the call, and their guards: (module, training at its first call)."""
        modules = [m for m in (r() for r in self.modules.values()) if m is not None]
        return modules, [(m, t) for m, t in ((r(), t) for r, t in self.guards) if m is not None]

    def read(self, t: Tensor, value) -> None:
        self.alive.append(value)
        self.reads[id(value)] = self.ref(t._data)

    def untraced(self, what: str) -> None:
        self.problems.append(what)

    # -- the result
    def template(self, out) -> tuple:
        """How to rebuild the step's return value from the program's values."""
        if isinstance(out, Tensor):
            if out._ctx is not None and out._ctx.inputs is not None:
                self.problems.append("it returns a tensor whose graph is still needed (backward outside the step)")
            r = self.ids.get(id(out._data))
            return ("tensor", r) if r is not None and r[0] == "v" else ("c", out)
        if id(out) in self.reads:
            return ("item" if not isinstance(out, np.ndarray) else "array", self.reads.pop(id(out)))
        if isinstance(out, (tuple, list)):
            return ("seq", type(out), [self.template(o) for o in out])
        if isinstance(out, dict):
            return ("dict", list(out), [self.template(o) for o in out.values()])
        if isinstance(out, np.ndarray):
            return ("array", self.ref(out))
        return ("c", out)


# ----- two recordings must agree ----------------------------------------------------------------------
def _same(a, b) -> bool:
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):
        return False


def _merge(r1: tuple, r2: tuple, where: str) -> tuple:
    """The reference the replay uses for two recordings' ``r1`` and ``r2`` of the same argument."""
    if r1 == r2 if r1[0] == "v" else (r1[0] == r2[0] and r1[1] is r2[1]):
        return r2
    if r1[0] in "ct" and r2[0] in "ct":
        a = r1[1]._data if r1[0] == "t" else r1[1]
        b = r2[1]._data if r2[0] == "t" else r2[1]
        if _same(a, b):
            return ("c", b)
    if r1[0] == "w" and r2[0] == "w":
        return ("w", _merge(r1[1], r2[1], where))
    raise _NotReplayable(f"{where} comes from outside the recorded primitives and changed between two calls "
                         "(NumPy on tensor values, or a tensor created from data inside the step)")


def _agree(first: _Recorder, second: _Recorder) -> list[tuple]:
    """``second``'s lines with each reference that must stay fixed checked against ``first``."""
    if len(first.lines) != len(second.lines):
        raise _NotReplayable(f"two calls with the same shapes ran {len(first.lines)} and {len(second.lines)} "
                             "operations (Python control flow that depends on values?)")
    merged = []
    for k, (a, b) in enumerate(zip(first.lines, second.lines)):
        where = f"operation {k} ({_describe(b)})"
        if a[0] != b[0] or a[1] is not b[1] and a[0] in ("op", "call", "check"):
            raise _NotReplayable(f"{where} differs between two calls (Python control flow that depends on values?)")
        if b[0] == "op":
            if not _same(a[3], b[3]) or len(a[2]) != len(b[2]):
                raise _NotReplayable(f"{where}: its attributes changed between two calls")
            refs = [_merge(x, y, f"{where}, input {i},") for i, (x, y) in enumerate(zip(a[2], b[2]))]
            merged.append(("op", b[1], refs, b[3], b[4], b[5]))
        elif b[0] == "check":
            if a[3:] != b[3:]:
                raise _NotReplayable(f"{b[4]} on one call and not on the other (the library's branch differs)")
            merged.append(("check", b[1], [_merge(x, y, where) for x, y in zip(a[2], b[2])], *b[3:]))
        elif b[0] in ("view", "elem"):
            if a[3:] != b[3:]:
                raise _NotReplayable(f"{where} differs between two calls")
            merged.append((b[0], b[1], _merge(a[2], b[2], where), *b[3:]))
        elif b[0] == "acc":
            if len(a[1]) != len(b[1]):
                raise _NotReplayable(f"{where}: gradients reached different tensors on two calls")
            merged.append(("acc", [(_merge(x[0], y[0], where), _merge(x[1], y[1], where), y[2])
                                   for x, y in zip(a[1], b[1])], a[2] and b[2]))
        else:
            if len(a[2]) != len(b[2]) or a[3].keys() != b[3].keys():
                raise _NotReplayable(f"{where} was called with other arguments on two calls")
            merged.append(("call", b[1], [_merge(x, y, where) for x, y in zip(a[2], b[2])],
                           {k: _merge(a[3][k], v, where) for k, v in b[3].items()}))
    return merged


def _describe(line) -> str:
    if line[0] == "op":
        return line[1].name
    if line[0] in ("call", "check"):
        return getattr(line[1], "__qualname__", "a call")
    return {"acc": "the leaves' gradients", "view": "a view", "elem": "an item of a result"}[line[0]]


# ----- the compiled step ----------------------------------------------------------------------------------
def _flatten(args, kwargs) -> tuple[tuple, list, list]:
    """The call's signature (shapes, dtypes, plain values), its arrays and its Tensors."""
    if not kwargs:  # the common call, step(x, y) with tensors: the short way
        arrays, key = [], [_ag.state.enabled]
        for a in args:
            if type(a) is not Tensor:
                break
            d = a._data
            arrays.append(d)
            key += (d.shape, d.dtype, a.requires_grad)
        else:
            return tuple(key), arrays, list(args)
    key, arrays, tensors = [], [], []

    def visit(a):
        if isinstance(a, Tensor):
            tensors.append(a)
            arrays.append(a._data)
            key.append(("T", a._data.shape, a._data.dtype.str, a.requires_grad))
        elif isinstance(a, np.ndarray):
            arrays.append(a)
            key.append(("A", a.shape, a.dtype.str))
        elif isinstance(a, (tuple, list)):
            key.append((type(a), len(a)))
            for x in a:
                visit(x)
        elif isinstance(a, dict):
            key.append(("D", tuple(a)))
            for x in a.values():
                visit(x)
        elif a is None or isinstance(a, (bool, int, float, str, np.generic)):
            key.append(("P", type(a), a))
        else:
            raise _NotReplayable(f"an argument of type {type(a).__name__} (pass tensors, arrays or plain numbers)")

    visit(args)
    visit(kwargs)
    key.append(("grad", _ag.state.enabled))
    return tuple(key), arrays, tensors


class _Plan:
    __slots__ = ("replay", "code", "guards", "leaves")

    def __init__(self, replay, code, guards, leaves):
        self.replay, self.code, self.guards = replay, code, guards
        self.leaves = leaves  # (tensor, requires_grad) of every tensor the program reads or accumulates into


def _live_tensors(lines) -> list[tuple]:
    found: dict[int, Tensor] = {}
    for line in lines:
        if line[0] == "acc":
            refs = [leaf for leaf, _, _ in line[1]]
        else:
            refs = line[2] if line[0] in ("op", "call", "check") else [line[2]]
        for r in refs:
            if r[0] in "tc" and isinstance(r[1], Tensor):
                found.setdefault(id(r[1]), r[1])
    return [(t, t.requires_grad) for t in found.values()]


class Compiled:
    """A training step that replays its recorded primitives (see :func:`compile`).

    Attributes:
        calls: how many calls ran each way: ``{"recorded": .., "replayed": .., "eager": ..}``.
        reasons: for each signature that runs eagerly, why.
    """

    def __init__(self, fn: Callable, warn: bool = True, fullgraph: bool = False):
        self.fn, self.warn, self.fullgraph = fn, warn, fullgraph
        self._plans: dict[tuple, Any] = {}  # signature -> first _Recorder | _Plan | reason (str)
        self.calls = {"recorded": 0, "replayed": 0, "eager": 0}
        self.reasons: dict[tuple, str] = {}
        self._said: set[str] = set()  # the branches that sent a call back to eager, each warned about once
        functools.update_wrapper(self, fn)

    def __getstate__(self) -> dict:  # generated functions do not pickle: a copy records again
        state = dict(self.__dict__)
        state["_plans"] = {}
        return state

    @property
    def code(self) -> str:
        """The generated source of the latest replayable signature ('' before there is one)."""
        plans = [p for p in self._plans.values() if isinstance(p, _Plan)]
        return plans[-1].code if plans else ""

    def __call__(self, *args, **kwargs):
        try:
            key, arrays, tensors = _flatten(args, kwargs)
        except _NotReplayable as e:
            return self._eager(None, str(e), args, kwargs)
        plan = self._plans.get(key)
        if isinstance(plan, _Plan):
            for m, training in plan.guards:
                if m.training != training:
                    return self._eager(None, f"{type(m).__name__}.training is {m.training} but was {training} "
                                             "when the step was recorded", args, kwargs)
            for t, rg in plan.leaves:
                if t.requires_grad != rg:
                    return self._eager(None, f"a tensor of shape {tuple(t.shape)} has requires_grad={t.requires_grad} "
                                             f"but had {rg} when the step was recorded", args, kwargs)
            try:
                out = plan.replay(*arrays, *tensors)
            except Diverged as e:  # a branch the recording took does not hold for this call: eager, as
                return self._diverged(str(e), args, kwargs)  # torch.compile recompiles on a failed guard
            self.calls["replayed"] += 1
            return out
        if isinstance(plan, str):
            return self._eager(key, plan, args, kwargs)
        if _ag.state.profiler is not None or _ag.process.anomaly:  # cost.measure, detect_anomaly: eager, unrecorded
            return self._eager(None, None, args, kwargs)
        return self._record(key, plan, arrays, tensors, args, kwargs)

    def _eager(self, key, reason, args, kwargs):
        self.calls["eager"] += 1
        if reason is not None and (key is None or key not in self.reasons):
            self._give_up(key, reason)
        return self.fn(*args, **kwargs)

    def _diverged(self, what: str, args, kwargs):
        """This call runs eagerly: ``what`` holds for it, unlike for the recorded calls (said once per ``what``)."""
        self.calls["eager"] += 1
        if self.warn and what not in self._said:
            warnings.warn(f"cr.compile: {getattr(self.fn, '__name__', 'the step')} runs eagerly on this call: {what} "
                          "(the recorded calls took the other branch)", RuntimeWarning, stacklevel=3)
        self._said.add(what)
        return self.fn(*args, **kwargs)

    def _give_up(self, key, reason: str) -> None:
        """Say once why this signature (or, ``key`` None, this call) runs eagerly; ``fullgraph`` raises."""
        name = getattr(self.fn, "__name__", "the step")
        if self.fullgraph:
            raise RuntimeError(f"cr.compile(fullgraph=True): {name} cannot be replayed: {reason}") from None
        if key is not None:
            self.reasons[key] = reason
        if self.warn:
            warnings.warn(f"cr.compile: {name} runs eagerly: {reason}", RuntimeWarning, stacklevel=4)

    def _record(self, key, first, arrays, tensors, args, kwargs):
        rec = _Recorder(arrays, tensors)
        buffers = _buffers(first.live()[0]) if first is not None else []
        before = [b._data.copy() for _, _, b in buffers]
        _ag.state.profiler = rec
        try:
            out = self.fn(*args, **kwargs)
        finally:
            _ag.state.profiler = None
        self.calls["recorded"] += 1
        try:
            template = rec.template(out)
            if rec.reads:
                rec.problems.append("it reads a tensor's value (item(), numpy()) that it does not return")
            for (m, name, b), old in zip(buffers, before):
                if id(b) not in rec.touched and not _same(b._data, old):
                    rec.problems.append(f"{type(m).__name__}.{name} changes outside the recorded primitives")
            if rec.problems:
                raise _NotReplayable(rec.problems[0])
            if first is None:
                rec.template_ = template
                self._plans[key] = rec
            else:
                modules, guards = rec.live()
                if [(id(m), t) for m, t in first.live()[1]] != [(id(m), t) for m, t in guards]:
                    raise _NotReplayable("its modules or their training modes differ between two calls")
                lines = fold(_agree(first, rec))
                if not _same_template(first.template_, template):
                    raise _NotReplayable("it returns differently built results on two calls")
                replay, code = generate(lines, template, len(arrays), len(tensors),
                                        getattr(self.fn, "__name__", "step"), _labels(modules))
                self._plans[key] = _Plan(replay, code, guards, _live_tensors(lines))
        except _NotReplayable as e:
            self._plans[key] = str(e)
            self._give_up(key, str(e))
        return out


def _same_template(a, b) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] in ("seq", "dict"):
        return a[1] == b[1] and len(a[2]) == len(b[2]) and all(_same_template(x, y) for x, y in zip(a[2], b[2]))
    if a[0] == "c":
        return _same(a[1], b[1])
    return a[1] == b[1]


def _labels(modules) -> dict[int, str]:
    """Readable names for the program's parameters: ``p_0_weight`` for the outermost module's ``0.weight``."""
    labels: dict[int, str] = {}
    for m in modules:  # outermost first: a module is noted when it is called
        for name, p in m.named_parameters():
            labels.setdefault(id(p), "p_" + name.replace(".", "_"))
    return labels


def _buffers(modules) -> list[tuple]:
    found, seen = [], set()
    for m in modules:
        for name, b in m.named_buffers():
            if id(b) not in seen and isinstance(b, Tensor):
                seen.add(id(b))
                found.append((m, name, b))
    return found


def compile(fn: Callable | None = None, *, warn: bool = True, fullgraph: bool = False, disable: bool = False,  # noqa: A001
            dynamic: bool | None = None, backend: Any = None, mode: str | None = None, options: dict | None = None):
    """Compile a training step: calls 1 and 2 run eagerly and record, later calls replay the recorded
    primitives as one generated NumPy function, bit for bit equal to eager (see the module docstring).

    Usable as ``cr.compile(step)`` or as a decorator, ``@cr.compile`` / ``@cr.compile(warn=False)``.
    ``warn=False`` keeps the one-line "runs eagerly: why" warnings quiet (``.reasons`` still has them).

    torch.compile's arguments are accepted, so a PyTorch script runs unchanged: ``fullgraph=True``
    raises where the step would run eagerly (torch raises on a graph break); ``disable=True`` returns
    ``fn`` itself; ``dynamic``, ``backend``, ``mode``, ``options`` choose among torch's compilers and
    mean nothing here. A :class:`~chainrule.nn.Module` is returned as it is: its forward alone has no
    update to replay, and the module's own attributes (``parameters()``, ``state_dict()``) stay at hand;
    compile the training step instead.
    """
    def make(f):
        if disable or hasattr(f, "parameters") and hasattr(f, "state_dict"):  # a Module: eager (see above)
            return f
        return Compiled(f, warn, fullgraph)
    return make if fn is None else make(fn)
