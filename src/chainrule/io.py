"""Saving and loading weights in the safetensors format: no pickle, nothing in a file is executed.

A safetensors file is ``[8-byte little-endian header length n][n bytes of JSON header][raw data]``;
the header maps each tensor name to ``{dtype, shape, data_offsets}`` and may hold a
``__metadata__`` string-to-string map. chainrule stores the JSON architecture of its models
(:meth:`chainrule.models.MLP.config`) there under ``"chainrule.model"``, so :func:`load_model` can
rebuild them. Files load in PyTorch with ``safetensors.torch.load_file`` (``"layers." + torch_key``
names for an MLP, see :class:`chainrule.models.MLP`).

Every file is checked before the ``safetensors`` library sees it (length, JSON, metadata types),
and every failure, ours or the library's, is a ``ValueError`` naming the file and the problem.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from .nn.module import Module
from .tensor import Tensor

ARCH_KEY = "chainrule.model"
MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit
_DTYPES = {"F16", "F32", "F64", "I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64", "BOOL"}


def _safetensors():
    try:
        import safetensors.numpy as stn
    except ImportError as e:  # pragma: no cover - an optional dependency
        raise ImportError("saving and loading need the safetensors package: pip install 'chainrule[train]'") from e
    return stn


def _arrays(obj: Any) -> OrderedDict[str, np.ndarray]:
    state = obj.state_dict() if isinstance(obj, Module) else obj
    if not isinstance(state, Mapping):
        raise TypeError(f"save: expected a Module or a mapping name -> Tensor, got {type(obj).__name__}")
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    for k, v in state.items():
        if not isinstance(k, str):
            raise TypeError(f"save: tensor names must be strings, got {k!r}")
        arr = v._data if isinstance(v, Tensor) else np.asarray(v)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"save: {k!r} has dtype {arr.dtype}; only numeric arrays can be saved")
        out[k] = np.ascontiguousarray(arr)
    return out


def save(obj: Module | Mapping[str, Any], path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Write a module's state_dict (or a mapping name -> Tensor/ndarray) to ``path`` as safetensors.

    ``metadata`` is a str -> str map stored in the header. For chainrule's models (MLP,
    LogisticRegression, SoftmaxRegression with no or a PolynomialFeatures feature function) the
    architecture is stored too, so :func:`load_model` can rebuild the model. The file is written to
    a temporary file next to ``path`` and moved into place (atomic: a crash never leaves half a file).
    """
    meta: dict[str, str] = {"format": "pt"}  # what transformers and friends expect
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError(f"save: metadata must map str to str (safetensors' format), got {k!r}: {v!r}; "
                             "encode other values with json.dumps")
        meta[k] = v
    config = getattr(obj, "config", None)
    if isinstance(obj, Module) and callable(config) and config() is not None:
        meta[ARCH_KEY] = json.dumps(config())
    data = _safetensors().save(dict(_arrays(obj)), metadata=meta)
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".chainrule-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: str | os.PathLike) -> tuple[bytes, dict]:
    """The file's bytes and its parsed header, after checks that refuse anything malformed."""
    where = f"{os.fspath(path)!r} is not a valid safetensors file"
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{where}: it has {len(raw)} bytes, fewer than the 8-byte header length (truncated?)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8 or n > MAX_HEADER:
        hint = " (a pickle or zip file, e.g. from torch.save? chainrule never unpickles)" if raw[:1] in (b"\x80", b"P") else ""
        raise ValueError(f"{where}: its header claims {n} bytes but the file has {len(raw) - 8} after the "
                         f"length field{hint}")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{where}: the header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where}: the header must be a JSON object, got {type(header).__name__}")
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise ValueError(f"{where}: __metadata__ must map strings to strings, got {meta!r:.200}")
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        ok = (isinstance(spec, dict) and spec.get("dtype") in _DTYPES
              and isinstance(spec.get("shape"), list) and all(type(s) is int and s >= 0 for s in spec["shape"])
              and isinstance(spec.get("data_offsets"), list) and len(spec["data_offsets"]) == 2
              and all(type(o) is int and o >= 0 for o in spec["data_offsets"]))
        if not ok:
            raise ValueError(f"{where}: bad entry for tensor {name!r}: {spec!r:.200} (need dtype in "
                             f"{sorted(_DTYPES)}, a shape of non-negative ints and two data offsets)")
    return raw, header


def _deserialize(path: str | os.PathLike) -> tuple[OrderedDict[str, Tensor], dict[str, str]]:
    raw, header = _read(path)
    try:
        arrays = _safetensors().load(raw)
    except Exception as e:  # noqa: BLE001 - the library's SafetensorError is not a ValueError
        raise ValueError(f"{os.fspath(path)!r} is not a valid safetensors file: {e}") from None
    out: OrderedDict[str, Tensor] = OrderedDict()
    for name in header:  # header order (the order the tensors were written in, for our files)
        if name != "__metadata__":
            out[name] = Tensor(np.array(arrays[name], copy=True))  # writable, owned, dtype kept
    return out, dict(header.get("__metadata__", {}))


def load(path: str | os.PathLike, map_location: Any = None, weights_only: bool = True) -> Any:
    """Read a safetensors file into an ordered ``name -> Tensor`` dict (dtypes as stored), or a file
    that ``torch.save`` wrote (a zip archive, told apart by its magic bytes and ``data.pkl`` entry)
    into the object it holds, as ``torch.load(path, weights_only=True)`` would.

    ``model.load_state_dict(cr.load(path))`` restores weights from either. A truncated, corrupt or
    hostile file raises ``ValueError`` (``pickle.UnpicklingError`` for a torch file naming anything
    but tensors and containers); nothing in it is ever executed, so ``weights_only=False`` is
    refused. ``map_location`` may be ``None`` or ``"cpu"``. See :mod:`chainrule.torch_format`."""
    from . import torch_format

    if hasattr(path, "read") or torch_format.is_torch_file(path):
        return torch_format.load(path, map_location=map_location, weights_only=weights_only)
    if not weights_only:
        raise ValueError("load: weights_only=False is not supported: chainrule never executes code from a file")
    return _deserialize(path)[0]


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The header's ``__metadata__`` map (validated, without reading the tensors)."""
    return dict(_read(path)[1].get("__metadata__", {}))


_ARGS = {  # constructor arguments load_model accepts, with their JSON types
    "MLP": {"sizes": list, "activation": str, "dropout": (int, float), "bias": bool, "feature_fn": (dict, type(None))},
    "LogisticRegression": {"n_features": int, "bias": bool, "feature_fn": (dict, type(None))},
    "SoftmaxRegression": {"n_features": int, "n_classes": int, "bias": bool, "feature_fn": (dict, type(None))},
}


def _build(arch: Any, where: str, n_stored: int) -> Module:
    from . import models

    if not isinstance(arch, dict) or arch.get("class") not in _ARGS:
        raise ValueError(f"{where}: unknown architecture {arch!r:.200}; known classes are {sorted(_ARGS)}")
    kinds = _ARGS[arch["class"]]
    kwargs = {k: v for k, v in arch.items() if k != "class"}
    for k, v in kwargs.items():
        if k not in kinds or not isinstance(v, kinds[k]) or (isinstance(v, bool) and kinds[k] is not bool):
            raise ValueError(f"{where}: bad architecture argument {k}={v!r:.100} for {arch['class']}")
    fcfg = kwargs.pop("feature_fn", None)
    if fcfg is not None:
        pf = fcfg.get("PolynomialFeatures")
        if len(fcfg) != 1 or not isinstance(pf, dict) or set(pf) - {"degree", "interaction_only", "include_bias"}:
            raise ValueError(f"{where}: unknown feature function {fcfg!r:.200}")
        kwargs["feature_fn"] = models.PolynomialFeatures(**pf)
    if "sizes" in kwargs and not all(type(s) is int for s in kwargs["sizes"]):
        raise ValueError(f"{where}: MLP sizes must be integers, got {kwargs['sizes']!r:.100}")
    dims = kwargs.get("sizes", [kwargs.get("n_features"), kwargs.get("n_classes", 1)])
    if not all(type(s) is int and s >= 1 for s in dims):
        raise ValueError(f"{where}: layer sizes must be positive integers, got {dims!r:.100}")
    # A hostile header could ask for a huge model: check the parameter count against the tensors
    # actually in the file before allocating anything.
    bias = kwargs.get("bias", True)
    count = sum(a * b + (b if bias else 0) for a, b in zip(dims[:-1], dims[1:]))
    if count != n_stored:
        raise ValueError(f"{where}: the architecture {arch['class']}{dims} has {count} parameters but the "
                         f"file holds {n_stored} numbers")
    if fcfg is not None and not 0 <= fcfg["PolynomialFeatures"].get("degree", 2) <= 20:
        raise ValueError(f"{where}: implausible PolynomialFeatures degree in {fcfg!r:.100}")
    try:
        return models.MODELS[arch["class"]](**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: cannot build {arch['class']} from the stored architecture: {e}") from None


def load_model(path: str | os.PathLike) -> Module:
    """Rebuild a model saved by :func:`save` from its stored architecture and load its weights.

    Works for chainrule's models (see :func:`save`); for others build the model yourself and call
    ``model.load_state_dict(cr.load(path))``."""
    state, meta = _deserialize(path)
    where = f"load_model({os.fspath(path)!r})"
    if ARCH_KEY not in meta:
        raise ValueError(f"{where}: the file stores no chainrule architecture; build the model and call "
                         "model.load_state_dict(cr.load(path))")
    try:
        arch = json.loads(meta[ARCH_KEY])
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: the stored architecture is not JSON ({e})") from None
    model = _build(arch, where, sum(t.numel() for t in state.values()))
    floats = {t.dtype for t in state.values() if t.dtype.kind == "f"}
    if len(floats) == 1:
        model.to(floats.pop())  # a float64 checkpoint rebuilds a float64 model
    model.load_state_dict(state, strict=True)
    return model
