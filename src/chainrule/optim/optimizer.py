"""The optimizer base class: parameter groups, state, checkpoints, and the update loop.

An optimizer owns a list of *parameter groups*, each a dict with ``"params"`` (the tensors) and
its own hyperparameters (``lr``, ``momentum``...), and a per-parameter ``state`` dict (momentum
buffers, moment estimates, step counts). A subclass gives its update as ``rule``, an
:class:`~chainrule.optim.rule.UpdateRule` made from a function written as the lecture writes it
(``m = beta1 * m + (1 - beta1) * g``); the base class runs that rule's compiled kernel or its NumPy
program on each parameter (big tensors block by block), creates the state arrays the rule reads on
a parameter's first step, and prints the rule's lines in :meth:`describe`. Parameter groups are
read at every step, so editing ``opt.param_groups[i]["lr"]`` (what schedulers do) takes effect at
the next one.

``state_dict()`` has PyTorch's shape, so a run can stop and resume exactly::

    {"state": {0: {"step": 12, "exp_avg": ndarray, ...}, ...},
     "param_groups": [{"lr": 0.001, ..., "params": [0, 1, 2]}]}

Parameters are numbered in the order they appear across the groups; state keys are PyTorch's
(``momentum_buffer``, ``exp_avg``, ``exp_avg_sq``, ``sum``, ``square_avg``...), so a state dict
saved by ``torch.optim`` loads here (tensors are converted to arrays).
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable

import numpy as np

from ..autograd import _stamp, _stamp_storages, _storage, enable_grad, replayed
from ..autograd import state as _grad_state
from ..tensor import Tensor
from . import _fused
from .rule import UpdateRule, _fmt  # noqa: F401 - _fmt: newton.py formats its equations with it


def _zero_d(entry: list) -> tuple:
    """A prepared entry's constants as read-only 0-d arrays, for its NumPy program (made at its first
    use: a compiled kernel takes the scalars). The same numbers and dtype, which NumPy promotes alike,
    and a ufunc takes a 0-d array ~0.35 us faster than a NumPy scalar."""
    if entry[2] is None:
        arrays = tuple(np.asarray(c) for c in entry[1])
        for a in arrays:
            a.flags.writeable = False
        entry[2] = arrays
    return entry[2]


def check_range(name: str, value, lo: float = 0.0, hi: float = math.inf, hi_open: bool = False) -> None:
    """Raise ``ValueError: <name> must be ...`` unless ``lo <= value <= hi`` (``< hi`` if hi_open)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    ok = lo <= value and (value < hi if hi_open else value <= hi)
    if not ok:
        if hi == math.inf:
            raise ValueError(f"{name} must be >= {lo:g}, got {value!r}")
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}{')' if hi_open else ']'}, got {value!r}")


def _replay_overrides(cls) -> None:
    """A subclass's own ``step`` / ``zero_grad`` (a user's optimizer too) are repeated by a compiled
    step's replay like the base class's (``autograd.replayed``)."""
    for name in ("step", "zero_grad"):
        f = cls.__dict__.get(name)
        if f is not None and not hasattr(f, "__replayed__"):
            setattr(cls, name, replayed(f))


class Optimizer:
    """Base class. ``params`` is a Tensor, an iterable of Tensors that require grad, or an
    iterable of dicts (parameter groups) each holding ``"params"`` and optional per-group
    hyperparameters that override ``defaults``. Parameters that do not require grad are kept and
    skipped while they have no gradient, as in torch (a frozen layer can stay in the list)."""

    #: the update rule (None for an optimizer that writes its own step(), like Newton)
    rule: UpdateRule | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _replay_overrides(cls)
        if cls.rule is not None and cls.__doc__:  # the docstring shows the rule's source at "{rule}"
            cls.__doc__ = cls.rule.document(cls.__doc__)

    def __init__(self, params, defaults: dict, fused: bool | None = False):
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict] = {}  # keyed by the parameter itself (Tensor hash is identity)
        self.param_groups: list[dict] = []
        self._scratch: dict = {}  # dtype (shared blocks) or parameter (non-contiguous) -> work arrays
        self._views: dict = {}  # (dtype, shape) -> views of the shared blocks, made once
        # group index -> (its hyperparameters, {(t, first, dtype): (program, constants)},
        #                 {(shape, dtype): the NumPy program's call for a small parameter of a stateless rule})
        self._prepared: dict = {}
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, dict):
            params = [params]
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list: pass model.parameters() "
                             "or a list of tensors with requires_grad=True")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for g in groups:
            self.add_param_group(g)
        # torch's argument; optimizers with compiled kernels pass theirs (default None), the rest False
        self.fused = fused
        self._kernel = _fused.select(type(self).__name__, fused)

    def __getstate__(self) -> dict:
        """For pickle and deepcopy (an sklearn estimator holding an optimizer): the prepared programs
        and the compiled kernels are remade at the next step, not copied."""
        return {**self.__dict__, "_prepared": {}, "_kernel": self._kernel is not None}

    def __setstate__(self, d: dict) -> None:
        self.__dict__.update(d)
        self._kernel = _fused.kernels() if d["_kernel"] else None

    # ----- parameter groups -------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones take the defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"a parameter group must be a dict with a 'params' key, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError("a parameter group needs a 'params' entry (the tensors to optimize)")
        params = [params] if isinstance(params, Tensor) else list(params)
        if params and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in params):
            group["param_names"] = [name for name, _ in params]  # model.named_parameters(), as in torch
            params = [p for _, p in params]
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__} can only optimize Tensors, but parameter {i} of the "
                                f"group is a {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"can't optimize a non-leaf Tensor (parameter {i}, shape {p.shape}): "
                                 "optimize the leaf it was computed from, or .detach().requires_grad_()")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter group contains the same tensor twice")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = params
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        for k, v in group.items():  # NumPy scalars -> Python numbers: a float64 lr must not upcast float32 math
            if isinstance(v, np.generic):
                group[k] = v.item()
            elif isinstance(v, tuple):
                group[k] = tuple(x.item() if isinstance(x, np.generic) else x for x in v)
        self._validate(group)
        self.param_groups.append(group)

    def _validate(self, group: dict) -> None:
        """Check a group's hyperparameters; subclasses raise ``ValueError`` naming value and range."""

    # ----- the update loop --------------------------------------------------------------------
    @replayed
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``p.grad = None`` (default, as torch 2.x), or fill them with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p._grad is None:
                    continue
                if set_to_none:
                    p._grad = None  # what the setter does with None; zero_grad itself is the replayed write
                elif p.grad._ctx is not None or not p.grad._data.flags.writeable:
                    p.grad = Tensor(np.zeros_like(p._data))
                else:
                    p.grad._data.fill(0)

    @replayed
    def step(self, closure: Callable[[], Tensor] | None = None):
        """One update of every parameter that has a gradient. ``closure`` (optional) re-evaluates
        the model and returns the loss; it runs with gradients enabled and its loss is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        prev, _grad_state.enabled = _grad_state.enabled, False  # no_grad(), without a context object per step
        try:
            for i, group in enumerate(self.param_groups):
                self._step_group(i, group)
        finally:
            _grad_state.enabled = prev
        return loss

    #: Elements per block. Big tensors are updated block by block so that the dozen passes of a NumPy
    #: program run over arrays that sit in cache (docs/performance.md).
    CHUNK = 32768
    #: A stateless update (plain SGD: two ufuncs) runs as ufuncs below this many elements, where they
    #: cost less than a kernel call (``bench/bench_optim.py --elements``); both give the same bits.
    UFUNCS_BELOW = 8192

    def _step_group(self, i: int, group: dict) -> None:
        kw = self._rule_kwargs(group)
        key = self.rule.hyper(kw)
        cached = self._prepared.get(i)
        if cached is None or cached[0] != key:  # new hyperparameters (a scheduler's lr): new constants
            cached = self._prepared[i] = (key, {}, {}, [None, None])
        params = group["params"]
        if cached[3][0] is not None and self._step_lean(cached[3][0], params):
            return
        if cached[3][1] is not None and self._step_kernels(cached[3][1], params, kw, cached[1]):
            return
        ran = []
        for p in params:
            gt = p._grad
            ran.append(None if gt is None else self._step_param(p, gt._data, kw, cached[1], cached[2]))
        lean = cached[2]
        if _grad_state.profiler is None:
            if lean:
                cached[3][0] = self._lean_group(params, lean)
            elif ran and ran[0] is not None:
                cached[3][1] = self._kernel_group(params, ran)

    def _lean_group(self, params, lean: dict) -> tuple | None:
        """The group's step as one list of NumPy calls, when every parameter took the lean path (a
        stateless rule on small parameters): ``(arrays, calls, storages)``, else None."""
        calls = []
        for p in params:
            x, gt = p._data, p._grad
            call = lean.get((x.shape, x.dtype))
            if call is None or gt is None or gt._data.shape != x.shape or gt._data.dtype != x.dtype:
                return None
            calls.append(call)
        return [p._data for p in params], calls, [_storage(p._data) for p in params]

    def _step_lean(self, lean: tuple, params: list) -> bool:
        """Run :meth:`_lean_group`'s calls if nothing they rely on changed (the same parameters, arrays,
        gradient shapes and state, no profiler listening); False (nothing done) otherwise."""
        xs, calls, storages = lean
        if len(params) != len(xs) or _grad_state.profiler is not None:
            return False
        state, gs = self.state, []
        for p, x in zip(params, xs):  # a parameter replaced in the list holds another array
            gt = p._grad
            if gt is None or p._data is not x or p not in state:
                return False
            g = gt._data
            if g.shape != x.shape or g.dtype != x.dtype:
                return False
            gs.append(g)
        _stamp_storages(storages)  # updated in place: a graph recorded before this step must not backpropagate
        for x, g, (fn, views, consts) in zip(xs, gs, calls):
            fn(x, g, (), views, consts)
        return True

    def _kernel_group(self, params, ran: list) -> tuple | None:
        """The group's step as one kernel call per parameter without the lookups, when every parameter
        took the kernel path of the same program at the same step count (Adam on small or big
        parameters): ``(arrays, their flat views, states, state arrays, flat views, program, storages)``."""
        program, dtype = ran[0][0], params[0]._data.dtype
        if any(r is None or r[0] is not program or r[1] != ran[0][1] for r in ran) or \
                any(p._data.dtype != dtype for p in params):
            return None
        keys = program.state_keys
        states = [self.state[p] for p in params]
        arrays = [[st[k] for k in keys] for st in states]
        return ([p._data for p in params], [p._data.reshape(-1) for p in params], states, arrays,
                [[a.reshape(-1) for a in arrs] for arrs in arrays], program, [_storage(p._data) for p in params])

    def _step_kernels(self, lean: tuple, params: list, kw: dict, prepared: dict) -> bool:
        """Run :meth:`_kernel_group`'s calls if nothing they rely on changed (the same parameters,
        arrays, state arrays and equal step counts, C-contiguous gradients of the parameters' shape and
        dtype, no profiler listening); False (nothing done) otherwise."""
        xs, flat, states, arrays, flat_state, program, storages = lean
        if len(params) != len(xs) or _grad_state.profiler is not None or self._kernel is None:
            return False
        state, keys, gs = self.state, program.state_keys, []
        t = states[0].get("step")
        first = not states[0]  # as _step_param decides it (a stateless rule's state stays empty)
        for p, x, st, arrs in zip(params, xs, states, arrays):
            gt = p._grad
            if gt is None or p._data is not x or state.get(p) is not st or st.get("step") != t or (not st) != first:
                return False
            g = gt._data
            if g.shape != x.shape or g.dtype != x.dtype or not g.flags.c_contiguous:
                return False
            for k, a in zip(keys, arrs):
                if st.get(k) is not a:
                    return False
            gs.append(g)
        kernel = self._kernel.get(program.name)
        if t is not None:  # a rule that counts steps (Adam); SGD with momentum keeps no count
            t += 1
        entry = self._entry(prepared, kw, t, first, xs[0].dtype)
        if kernel is None or entry[0] is not program:  # another specialisation this step: the full path
            return False
        if t is not None:
            for st in states:
                st["step"] = t
        _stamp_storages(storages)  # updated in place: a graph recorded before this step must not backpropagate
        consts = entry[1]
        for xf, g, fs in zip(flat, gs, flat_state):
            kernel(xf, g.reshape(-1), *fs, *consts)
        return True

    def _entry(self, prepared: dict, kw: dict, t, first: bool, dtype) -> list:
        """The rule's program and constants for step ``t`` (``first``: a parameter's first step) in
        ``dtype``, as ``[program, constants, their 0-d arrays or None]`` (:func:`_zero_d`); made once
        per group and step (t moves), not per parameter."""
        entry = prepared.get((t, first, dtype))
        if entry is None:
            if len(prepared) > 16:
                prepared.clear()
            entry = prepared[t, first, dtype] = [*self.rule.prepare({**kw, "t": t, "first": first}, dtype), None]
        return entry

    def _step_param(self, p: Tensor, g: np.ndarray, kw: dict, prepared: dict, lean: dict):
        x = p._data
        _stamp(p)  # updated in place: a graph recorded before this step must not backpropagate through p
        # a small parameter of a rule that keeps no state (plain SGD), seen before: the same call, without the lookups
        call = lean.get((x.shape, x.dtype)) if lean else None
        if call is not None and g.shape == x.shape and g.dtype == x.dtype and x.flags.c_contiguous and p in self.state:
            call[0](x, g, (), call[1], call[2])
            return
        if g.shape != x.shape:
            raise ValueError(f"{type(self).__name__}.step: gradient of shape {g.shape} does not match its "
                             f"parameter's shape {x.shape}")
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = {}
        first = not state  # this parameter's first step (or the first since its state was switched on)
        t = None
        if self._counts_steps:
            t = state["step"] = state.get("step", 0) + 1
        entry = self._entry(prepared, kw, t, first, x.dtype)
        program, consts = entry[0], entry[1]
        keys = program.state_keys
        arrays = [state[k] if k in state else self._new_state(state, k, x, kw) for k in keys] if keys else []
        if self._kernel is not None and (keys or x.size >= self.UFUNCS_BELOW) and _fused.usable(x, g, *arrays):
            kernel = self._kernel.get(program.name) or _fused.kernel(self._kernel, program)
            kernel(x.reshape(-1), g.reshape(-1), *[a.reshape(-1) for a in arrays], *consts)
            return program, t  # the kernel path: what _kernel_group needs
        elif x.size <= self.CHUNK and x.flags.c_contiguous:  # small parameters (the common case in the lecture's models)
            views = self._views.get((x.dtype, x.shape))
            if views is None or len(views) < program.n_scratch:
                views = self._views[x.dtype, x.shape] = [s[:x.size].reshape(x.shape)
                                                         for s in self._shared_scratch(x.dtype, program.n_scratch)]
            arrays0 = _zero_d(entry)
            program.numpy(x, g, arrays, views, arrays0)
            if not keys and t is None and g.dtype == x.dtype and (self._kernel is None or x.size < self.UFUNCS_BELOW):
                lean[x.shape, x.dtype] = (program.numpy, views, arrays0)
        else:
            self._run_big(p, x, g, arrays, program, _zero_d(entry), state)

    def _run_big(self, p, x, g, arrays, program, consts, state) -> None:  # consts: the 0-d arrays
        """The NumPy program on a big parameter, block by block, or on a non-contiguous one whole."""
        k = program.n_scratch
        if not x.flags.c_contiguous:  # rare (a transposed view): whole-array passes, own scratch
            bufs = self._scratch.get(p)
            if bufs is None or len(bufs) < k or bufs[0].shape != x.shape:
                bufs = self._scratch[p] = [np.empty_like(x) for _ in range(k)]
            program.numpy(x, g, arrays, bufs, consts)
            return
        scratch = self._shared_scratch(x.dtype, k)
        for key, v in zip(program.state_keys, arrays):
            if not v.flags.c_contiguous:
                state[key] = np.ascontiguousarray(v)
        flat = [state[key].reshape(-1) for key in program.state_keys]
        xf, gf, n = x.reshape(-1), np.ascontiguousarray(g).reshape(-1), x.size
        for a in range(0, n, self.CHUNK):
            b = min(a + self.CHUNK, n)
            blocks = scratch if b - a == self.CHUNK else [s[:b - a] for s in scratch]
            program.numpy(xf[a:b], gf[a:b], [v[a:b] for v in flat], blocks, consts)

    def _shared_scratch(self, dtype, k: int) -> list[np.ndarray]:
        """At least ``k`` scratch blocks of ``CHUNK`` elements shared by all parameters of a dtype,
        allocated once (so scratch memory does not grow with the model)."""
        bufs = self._scratch.setdefault(dtype, [])
        while len(bufs) < k:
            bufs.append(np.empty(self.CHUNK, dtype))
        return bufs

    #: Shared scratch blocks the default program uses (cost.py's memory estimate; a test checks it).
    _n_scratch = 2

    def _rule_kwargs(self, group: dict) -> dict:
        """The rule's keyword arguments from a parameter group (Adam splits ``betas``)."""
        return group

    #: whether the state holds torch's step count ``t`` (``state["step"]``); SGD's does not
    _counts_steps = True

    def _new_state(self, state: dict, key: str, x: np.ndarray, kw: dict) -> np.ndarray:
        """``state[key]`` created on the parameter's first step (or when a flag that needs it is
        switched on): zeros; Adagrad starts its sum at ``initial_accumulator_value``."""
        v = state[key] = self._initial(key, x, kw)
        return v

    def _initial(self, key: str, x: np.ndarray, kw: dict) -> np.ndarray:
        return np.zeros_like(x)

    # ----- describe ---------------------------------------------------------------------------
    def describe(self) -> str:
        """The update equations this optimizer executes, with each group's current hyperparameters
        substituted (``print(opt.describe())``)."""
        lines = []
        for i, group in enumerate(self.param_groups):
            n = sum(p._data.size for p in group["params"])
            steps = {s.get("step") for p in group["params"] if (s := self.state.get(p)) and "step" in s}
            t = f", t = {steps.pop()}" if len(steps) == 1 else ""
            lines.append(f"{type(self).__name__}, group {i} ({len(group['params'])} tensors, {n:,} parameters{t}):")
            lines += ["    " + eq for eq in self._equations(group)]
        return "\n".join(lines)

    def _equations(self, group: dict) -> list[str]:
        """The rule's statements for this group (as after the first step), numbers substituted."""
        kw = {**self._rule_kwargs(group), "t": 2, "first": False}
        return ["g = grad f(theta)"] + self.rule.program(self.rule.flags(kw)).equations(kw)

    def __repr__(self) -> str:
        parts = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            parts.append(f"Parameter Group {i}")
            parts += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(parts) + "\n)"

    # ----- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """A snapshot (arrays are copies) in PyTorch's layout; see the module docstring."""
        index, groups, k = {}, [], 0
        for group in self.param_groups:
            g = {key: copy.deepcopy(v) for key, v in group.items() if key != "params"}
            g["params"] = list(range(k, k + len(group["params"])))
            for p in group["params"]:
                index[id(p)] = k
                k += 1
            groups.append(g)
        state = {index[id(p)]: {key: (v.copy() if isinstance(v, np.ndarray) else copy.deepcopy(v)) for key, v in s.items()}
                 for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict` (ours or ``torch.optim``'s): hyperparameters and state are
        copied, so the checkpoint and this optimizer never share memory."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(f"load_state_dict: the state dict has {len(saved)} parameter groups but this "
                             f"optimizer has {len(self.param_groups)}")
        for i, (mine, theirs) in enumerate(zip(self.param_groups, saved)):
            if len(mine["params"]) != len(theirs["params"]):
                raise ValueError(f"load_state_dict: group {i} has {len(theirs['params'])} parameters in the state "
                                 f"dict but {len(mine['params'])} here")
        id_map = {}
        for mine, theirs in zip(self.param_groups, saved):
            for p, idx in zip(mine["params"], theirs["params"]):
                id_map[idx] = p
        self.state = {}
        for idx, s in state_dict["state"].items():
            p = id_map.get(int(idx))
            if p is None:
                continue
            self.state[p] = {key: self._load_value(key, v, p) for key, v in s.items() if v is not None}
        for i, theirs in enumerate(saved):
            group = {key: v for key, v in self.param_groups[i].items() if key != "params"}  # keys torch lacks
            group.update({key: copy.deepcopy(v) for key, v in theirs.items() if key != "params"})
            group = {key: (tuple(v) if isinstance(v, list) and key == "betas" else v) for key, v in group.items()}
            group["params"] = self.param_groups[i]["params"]
            self.param_groups[i] = group

    @staticmethod
    def _load_value(key, v, p: Tensor):
        if isinstance(v, (bool, numbers.Number)):
            return v
        arr = np.array(v.detach().cpu().numpy() if hasattr(v, "detach") else v)  # torch tensors too
        if key == "step" or (arr.ndim == 0 and p._data.ndim != 0):
            x = arr.item()
            return int(x) if key == "step" and float(x).is_integer() else x
        if arr.shape != p._data.shape:
            raise ValueError(f"load_state_dict: state '{key}' has shape {arr.shape} but its parameter has "
                             f"shape {p._data.shape}")
        return np.array(arr, dtype=p._data.dtype, copy=True)

