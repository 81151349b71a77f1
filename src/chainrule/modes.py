"""The engine's switches: grad mode (per thread), anomaly mode, and the one listener of every primitive call.

``state`` holds one thread's switches: ``state.enabled`` is grad mode (:func:`no_grad`,
:func:`enable_grad`, :func:`set_grad_enabled`), per thread as in torch. ``process.anomaly`` is
:func:`detect_anomaly`, for the whole process. ``state.profiler`` is whoever listens to the primitives:
``cost.measure``'s counter or a step being recorded by ``cr.compile``, which also needs to hear about
what happens outside the primitives (:func:`untraced`, :func:`read`) and which calls to repeat on
replay (:func:`replayed`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import traceback
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # tensor.py imports this module (its writes are ``replayed``)
    from .tensor import Tensor


class _State(threading.local):
    """The switches of one thread: grad mode, the profiler and the phase (as torch's grad mode is per
    thread): a server thread's ``no_grad()`` or a step that ``cr.compile`` records in one thread must
    not change what another thread records, and a new thread starts in grad mode."""

    def __init__(self):
        self.enabled, self.profiler, self.phase = True, None, "forward"


class _Process:
    """The switches of the whole process: anomaly mode (global, as torch's) and the node counter's
    value at the latest in-place update (``tensor._stamp``), which any thread's backward must see."""

    __slots__ = ("anomaly", "last_inplace")

    def __init__(self):
        self.anomaly, self.last_inplace = False, 0


state = _State()
process = _Process()


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


def branch(test, *args, what: str) -> bool:
    """``test(*args)`` as a bool, for a library branch on values (cross_entropy's lean path when every
    label is in range). A step being recorded by ``cr.compile`` notes the test and its outcome, and
    the replay evaluates it again on every call: when the outcome differs, that call runs eagerly
    (``what`` says why), as torch.compile re-checks its guards. ``test`` must be a module-level function
    of NumPy arrays and plain values (the same object on every call)."""
    result = bool(test(*args))
    note = getattr(state.profiler, "branch", None)
    if note is not None:
        note(test, args, result, what)
    return result


def same_values(a, what: str) -> None:
    """An argument's values that the library turns into a structure in NumPy (EmbeddingBag's offsets
    become its bags): a step being recorded by ``cr.compile`` replays only the calls where ``a`` holds
    the recorded values, and runs the others eagerly (``what`` says why). Costs nothing outside a recording."""
    if getattr(state.profiler, "branch", None) is not None:
        branch(np.array_equal, a, np.array(a, copy=True), what=what)


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
    prev, process.anomaly = process.anomaly, True
    try:
        yield
    finally:
        process.anomaly = prev


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _where() -> str:
    """The user's frames of the current stack (this package's own frames left out)."""
    frames = [f for f in traceback.extract_stack()[:-3] if not os.path.abspath(f.filename).startswith(_PACKAGE)]
    return "".join(traceback.format_list(frames[-3:]))


def _check_finite(name, phase, arr, ctx):
    arr = arr if isinstance(arr, np.ndarray) else arr._data  # a Tensor
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        where = ctx.where if ctx is not None and ctx.where else "(unknown; created outside anomaly mode)\n"
        raise FloatingPointError(f"detect_anomaly: {name} produced NaN/Inf in its {phase} pass. "
                                 f"The op was created at:\n{where}")
