"""The optimizer base class: parameter groups, state, checkpoints, and the update loop.

An optimizer owns a list of *parameter groups*, each a dict with ``"params"`` (the tensors) and
its own hyperparameters (``lr``, ``momentum``...), and a per-parameter ``state`` dict (momentum
buffers, moment estimates, step counts). Subclasses write ``_update(p, g, group,
state, scratch)``: the lecture's update rule for one parameter, in place, on ndarrays (big
tensors are handed over block by block), and ``_begin(p, group, state)``, which creates the state
on the first step and advances the step count ``t``.

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

from ..autograd import _stamp, enable_grad
from ..autograd import state as _grad_state
from ..tensor import Tensor
from . import _fused


def check_range(name: str, value, lo: float = 0.0, hi: float = math.inf, hi_open: bool = False) -> None:
    """Raise ``ValueError: <name> must be ...`` unless ``lo <= value <= hi`` (``< hi`` if hi_open)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    ok = lo <= value and (value < hi if hi_open else value <= hi)
    if not ok:
        if hi == math.inf:
            raise ValueError(f"{name} must be >= {lo:g}, got {value!r}")
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}{')' if hi_open else ']'}, got {value!r}")


def _fmt(x) -> str:
    """A hyperparameter as it should read in an equation: 0.001, 1e-08, 0.9."""
    return f"{x:g}" if isinstance(x, float) else str(x)


class Optimizer:
    """Base class. ``params`` is a Tensor, an iterable of Tensors that require grad, or an
    iterable of dicts (parameter groups) each holding ``"params"`` and optional per-group
    hyperparameters that override ``defaults``."""

    def __init__(self, params, defaults: dict, fused: bool | None = False):
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict] = {}  # keyed by the parameter itself (Tensor hash is identity)
        self.param_groups: list[dict] = []
        self._scratch: dict = {}  # dtype (shared blocks) or parameter (non-contiguous) -> work arrays
        self._views: dict = {}  # (dtype, shape) -> views of the shared blocks, made once
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
            if not p.requires_grad:
                raise ValueError(f"parameter {i} of the group (shape {p.shape}) does not require grad: "
                                 "create it with requires_grad=True or use nn.Parameter")
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
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``p.grad = None`` (default), or fill them with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                elif p.grad._ctx is not None or not p.grad._data.flags.writeable:
                    p.grad = Tensor(np.zeros_like(p._data))
                else:
                    p.grad._data.fill(0)

    def step(self, closure: Callable[[], Tensor] | None = None):
        """One update of every parameter that has a gradient. ``closure`` (optional) re-evaluates
        the model and returns the loss; it runs with gradients enabled and its loss is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        prev, _grad_state.enabled = _grad_state.enabled, False  # no_grad(), without a context object per step
        try:
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._step_param(p, group)
        finally:
            _grad_state.enabled = prev
        return loss

    #: Elements per block. Big tensors are updated block by block so that the dozen passes of an
    #: update rule run over arrays that sit in cache (about 1.5x faster than whole-array passes on 1M parameters).
    CHUNK = 32768

    def _step_param(self, p: Tensor, group: dict) -> None:
        g, x = p.grad._data, p._data
        _stamp(p)  # updated in place: a graph recorded before this step must not backpropagate through p
        if g.shape != x.shape:
            raise ValueError(f"{type(self).__name__}.step: gradient of shape {g.shape} does not match its "
                             f"parameter's shape {x.shape}")
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = {}
        extra = self._begin(x, group, state)  # lazy state, t = t + 1: once per step, not per block
        step_state = {**state, **extra} if extra else state
        if self._kernel is not None and self._fused_update(x, g, group, step_state):
            return
        n = x.size
        c_contiguous = x.flags.c_contiguous
        if c_contiguous and n <= self.CHUNK:  # small parameters (the common case in the lecture's models): one call
            views = self._views.get((x.dtype, x.shape))
            if views is None:
                views = self._views[x.dtype, x.shape] = [s[:n].reshape(x.shape) for s in self._shared_scratch(x.dtype)]
            self._update(x, g, group, step_state, views)
            return
        if not c_contiguous:  # rare (a transposed view): whole-array passes, own scratch
            bufs = self._scratch.get(p)
            if bufs is None or bufs[0].shape != x.shape:
                bufs = self._scratch[p] = [np.empty_like(x) for _ in range(self._n_scratch)]
            self._update(x, g, group, step_state, bufs)
            return
        scratch = self._shared_scratch(x.dtype)
        xf, gf = x.reshape(-1), np.ascontiguousarray(g).reshape(-1)
        arrays = {}
        for k, v in state.items():
            if isinstance(v, np.ndarray):
                if not v.flags.c_contiguous:
                    v = state[k] = np.ascontiguousarray(v)
                arrays[k] = v.reshape(-1)
        block = dict(step_state)
        for a in range(0, n, self.CHUNK):
            b = min(a + self.CHUNK, n)
            for k, v in arrays.items():
                block[k] = v[a:b]
            self._update(xf[a:b], gf[a:b], group, block, scratch if b - a == self.CHUNK else [s[:b - a] for s in scratch])

    def _shared_scratch(self, dtype) -> list[np.ndarray]:
        """Scratch blocks shared by all parameters of a dtype, allocated once: ``_n_scratch`` arrays
        of ``CHUNK`` elements (so scratch memory does not grow with the model)."""
        bufs = self._scratch.get(dtype)
        if bufs is None:
            bufs = self._scratch[dtype] = [np.empty(self.CHUNK, dtype) for _ in range(self._n_scratch)]
        return bufs

    _n_scratch = 1

    def _fused_update(self, x: np.ndarray, g: np.ndarray, group: dict, state: dict) -> bool:
        """Run the compiled kernel on the whole parameter; False when it cannot (then the NumPy rule runs)."""
        return False

    def _begin(self, p: np.ndarray, group: dict, state: dict) -> dict | None:
        """Once per parameter per step, before the update: create the state on the first step,
        advance the step count. May return per-step extras handed to ``_update`` in ``state``."""

    def _update(self, p: np.ndarray, g: np.ndarray, group: dict, state: dict, scratch: list[np.ndarray]) -> None:
        """The update rule on (a block of) one parameter, in place. ``state`` holds the state
        arrays (views of the same block) and scalars; ``scratch`` two or so work arrays."""
        raise NotImplementedError

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
        return []

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
            self.state[p] = {key: self._load_value(key, v, p) for key, v in s.items()}
        for i, theirs in enumerate(saved):
            group = {key: v for key, v in self.param_groups[i].items() if key != "params"}  # keys torch lacks
            group.update({key: copy.deepcopy(v) for key, v in theirs.items() if key != "params"})
            group = {key: (tuple(v) if isinstance(v, list) and key == "betas" else v) for key, v in group.items()}
            group["params"] = self.param_groups[i]["params"]
            self.param_groups[i] = group

    @staticmethod
    def _load_value(key, v, p: Tensor):
        if v is None or isinstance(v, (bool, numbers.Number)):
            return v
        arr = np.array(v.detach().cpu().numpy() if hasattr(v, "detach") else v)  # torch tensors too
        if key == "step" or (arr.ndim == 0 and p._data.ndim != 0):
            x = arr.item()
            return int(x) if key == "step" and float(x).is_integer() else x
        if arr.shape != p._data.shape:
            raise ValueError(f"load_state_dict: state '{key}' has shape {arr.shape} but its parameter has "
                             f"shape {p._data.shape}")
        return np.array(arr, dtype=p._data.dtype, copy=True)

