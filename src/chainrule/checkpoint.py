"""The checkpoint format: everything needed to continue a run bit for bit, in one safetensors file.

A checkpoint ``epoch-0007.safetensors`` holds arrays (weights, optimizer moments, early-stopping's
best weights) under dotted keys (``state.optimizer.state.0.exp_avg``), and everything else (epoch,
history, scheduler, callback and RNG states) as a JSON tree in the header's ``"state"`` entry. Dicts
keep their key types (optimizer state is keyed by int), tuples stay tuples, NumPy scalars keep
their dtype. No pickle, so loading a checkpoint cannot run code.

Reading goes through :func:`chainrule.io.read_safetensors`, the one validated reader of every file
chainrule opens, then :func:`check_state` checks what the trainer will rely on (epoch, RNG, history,
model arrays) before anything is applied: a corrupt or crafted checkpoint is a ValueError naming the
file and the field. Writing goes through :func:`chainrule.io.write_atomic`: a crash, a full disk or
``ulimit -f`` mid-write leaves the previous checkpoint intact and no temporary behind.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np

from .io import parse_json, read_safetensors, remove_stale_tmp, write_atomic
from .tensor import Tensor

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "list_checkpoints", "check_state", "FORMAT"]

FORMAT = "chainrule-checkpoint"
_NAME = re.compile(r"^epoch-(\d+)\.safetensors$")


def _encode(obj: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    """Nested state -> JSON tree; arrays (and NumPy scalars, to keep their dtype) go to ``arrays``
    under their dotted path. Dicts keep their key types (optimizer state is keyed by int)."""
    if isinstance(obj, Tensor):
        obj = obj._data
    if isinstance(obj, np.ndarray):
        arrays[key] = obj if obj.flags.c_contiguous else obj.copy(order="C")  # ascontiguousarray makes 0-d 1-d
        return {"__array__": key}
    if isinstance(obj, np.generic):
        arrays[key] = np.asarray(obj)
        return {"__scalar__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _encode(v, f"{key}.{k}", arrays)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{key}.{i}", arrays) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{key}.{i}", arrays) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint: cannot store {type(obj).__name__} at {key!r} (only arrays, numbers, "
                    "strings, lists, tuples and dicts)")


def _decode(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of :func:`_encode`; a reference to a missing array or a malformed node is a
    ValueError (the tree depth is bounded by the JSON reader, so the recursion is too)."""
    if isinstance(tree, list):
        return [_decode(v, arrays) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if len(tree) != 1:
        raise ValueError(f"malformed node {tree!r:.100} (one of __array__, __scalar__, __tuple__, __dict__)")
    (kind, value), = tree.items()
    if kind in ("__array__", "__scalar__"):
        if not isinstance(value, str) or value not in arrays:
            raise ValueError(f"the state refers to a tensor {value!r:.100} that the file does not hold")
        return arrays[value] if kind == "__array__" else arrays[value][()]
    if kind == "__tuple__" and isinstance(value, list):
        return tuple(_decode(v, arrays) for v in value)
    if kind == "__dict__" and isinstance(value, list) and all(isinstance(i, list) and len(i) == 2 for i in value):
        out = {}
        for k, v in value:
            if isinstance(k, list):
                k = tuple(k)
            if not isinstance(k, (str, int, float, bool, tuple)) and k is not None:
                raise ValueError(f"malformed dict key {k!r:.100}")
            out[k] = _decode(v, arrays)
        return out
    raise ValueError(f"malformed node {tree!r:.100}")


def save_checkpoint(state: dict, path: str | os.PathLike) -> str:
    """Write ``state`` (nested dicts/lists of arrays and JSON values) atomically to ``path``."""
    from safetensors.numpy import save
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(state, "state", arrays)
    data = save(arrays, metadata={"format": FORMAT, "state": json.dumps(tree, allow_nan=True)})
    return write_atomic(path, data, "checkpoint")


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint file, or the newest one in a directory (or in its ``checkpoints/``).

    Raises FileNotFoundError when there is none and ValueError, naming the file and the problem,
    for anything that is not a valid chainrule checkpoint."""
    path = os.fspath(path)
    if os.path.isdir(path) and not _NAME.match(os.path.basename(path)):  # epoch-0003.safetensors/ is refused below
        path = latest_checkpoint(path)
    arrays, meta = read_safetensors(path)
    if meta.get("format") != FORMAT or "state" not in meta:
        raise ValueError(f"{path} is not a chainrule checkpoint (format {meta.get('format')!r}; "
                         f"a model file? load it with cr.load_model)")
    tree = parse_json(meta["state"], f"{path}: the checkpoint state", constants=True)
    try:
        return _decode(tree, arrays)
    except ValueError as e:
        raise ValueError(f"{path}: corrupt checkpoint: {e}") from None


def _bad(path, field: str, problem: str) -> ValueError:
    return ValueError(f"{path}: corrupt checkpoint: {field} {problem}")


def _check_rng(path, rng: Any) -> None:
    """The generator state must be one NumPy accepts for chainrule's generator type."""
    from .creation import get_rng
    probe = type(get_rng().bit_generator)()
    try:
        probe.state = rng
    except (TypeError, ValueError, KeyError) as e:
        raise _bad(path, "rng", f"is not a {type(probe).__name__} generator state ({e})") from None


def check_state(state: Any, path: str | os.PathLike = "checkpoint") -> dict:
    """Check a trainer state (:meth:`chainrule.train.Trainer.state_dict`) before it is applied.

    epoch: an int >= 0 equal to the number of epochs in the history; history: ``{"epochs": [dict,
    ...]}``; model: names -> arrays; optimizer and callbacks of the right types; rng (and the
    loader's) a valid generator state. Returns ``state``; raises ValueError naming the field."""
    path = os.fspath(path)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: corrupt checkpoint: the state is a {type(state).__name__}, not a dict")
    missing = [k for k in ("epoch", "model", "optimizer", "rng", "history") if k not in state]
    if missing:
        raise _bad(path, "the state", f"lacks {missing} (written by another program?)")
    epoch, hist = state["epoch"], state["history"]
    if type(epoch) is not int or epoch < 0:
        raise _bad(path, "epoch", f"must be an integer >= 0, got {epoch!r:.50}")
    if not (isinstance(hist, dict) and isinstance(hist.get("epochs"), list)
            and all(isinstance(e, dict) for e in hist["epochs"])):
        raise _bad(path, "history", f"must be {{'epochs': [dict, ...]}}, got {hist!r:.80}")
    if len(hist["epochs"]) != epoch:
        raise _bad(path, "epoch", f"is {epoch} but the history holds {len(hist['epochs'])} epochs")
    model = state["model"]
    if not (isinstance(model, dict) and all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in model.items())):
        raise _bad(path, "model", "must map parameter names to arrays")
    if not isinstance(state["optimizer"], dict):
        raise _bad(path, "optimizer", f"must be a dict, got {type(state['optimizer']).__name__}")
    _check_rng(path, state["rng"])
    loader = state.get("loader")
    if loader is not None:
        if not (isinstance(loader, dict) and type(loader.get("epoch")) is int and type(loader.get("seed")) is int):
            raise _bad(path, "loader", f"must hold an int epoch and seed, got {loader!r:.80}")
        _check_rng(path, loader.get("rng"))
    cbs = state.get("callbacks", [])
    if not (isinstance(cbs, list) and all(isinstance(c, list) and len(c) == 2 and isinstance(c[0], str)
                                          and isinstance(c[1], dict) for c in cbs)):
        raise _bad(path, "callbacks", "must be a list of [class name, state dict] pairs")
    return state


def list_checkpoints(directory: str | os.PathLike) -> list[str]:
    """The ``epoch-NNNN.safetensors`` files of ``directory``, oldest first (none: empty)."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    found = sorted((int(m.group(1)), n) for n in os.listdir(directory) if (m := _NAME.match(n)))
    return [os.path.join(directory, n) for _, n in found]


def latest_checkpoint(directory: str | os.PathLike) -> str:
    """Path of the newest ``epoch-NNNN.safetensors`` in ``directory`` (or in ``directory/checkpoints``)."""
    found = list_checkpoints(directory) or list_checkpoints(os.path.join(os.fspath(directory), "checkpoints"))
    if not found:
        raise FileNotFoundError(f"no checkpoint (epoch-NNNN.safetensors) in {os.fspath(directory)}")
    return found[-1]


def clean(directory: str | os.PathLike) -> list[str]:
    """Remove what killed writers left in a checkpoint directory (see :func:`chainrule.io.remove_stale_tmp`)."""
    return remove_stale_tmp(directory)
