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

import contextlib
import json
import math
import os
import re
import stat
import struct
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from .creation import as_ndarray
from .nn.module import Module
from .tensor import Tensor

ARCH_KEY = "chainrule.model"
MAX_HEADER = 16 * 1024 * 1024   # bytes of JSON header; real files (thousands of tensors) need well under 1 MB
MAX_TENSORS = 65_536             # a million zero-size tensors would take minutes and gigabytes to index
MAX_DEPTH = 64                   # JSON nesting; our deepest (a checkpoint's state tree) is about 10
MAX_DIMS = 64                    # NumPy's limit on an array's dimensions
TMP_MARK = ".tmp-"               # write_atomic's temporaries: .NAME.tmp-PID
_DTYPES = {k: np.dtype(v) for k, v in {"F16": "<f2", "F32": "<f4", "F64": "<f8", "I8": "i1", "I16": "<i2",
                                       "I32": "<i4", "I64": "<i8", "U8": "u1", "U16": "<u2", "U32": "<u4",
                                       "U64": "<u8", "BOOL": "?"}.items()}


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
        arr = as_ndarray(v)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"save: {k!r} has dtype {arr.dtype}; only numeric arrays can be saved")
        out[k] = arr if arr.flags.c_contiguous else arr.copy(order="C")  # np.ascontiguousarray makes 0-d 1-d
    return out


def save(obj: Module | Mapping[str, Any], path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Write a module's state_dict (or a mapping name -> Tensor/ndarray) to ``path`` as safetensors.

    A mapping that holds more than tensors (torch's checkpoint idiom ``{"model": model.state_dict(),
    "optimizer": opt.state_dict(), "epoch": 3}``) is written in the checkpoint format
    (:mod:`chainrule.checkpoint`: tensors as safetensors, the rest as JSON), and :func:`load` returns it.

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
    if isinstance(obj, Mapping) and not all(isinstance(v, (Tensor, np.ndarray)) for v in obj.values()):
        # torch's "general checkpoint" idiom, {"model": sd, "optimizer": opt_sd, "epoch": 3}: the nested tree
        # goes in the checkpoint format (arrays as tensors, the rest as JSON), which load() reads back
        from .checkpoint import save_checkpoint
        save_checkpoint(dict(obj), path)
        return
    config = getattr(obj, "config", None)
    if isinstance(obj, Module) and callable(config) and config() is not None:
        meta[ARCH_KEY] = json.dumps(config())
    write_atomic(path, _safetensors().save(dict(_arrays(obj)), metadata=meta), "model file")


def _fail(path, problem: str) -> ValueError:
    return ValueError(f"{os.fspath(path)!r} is not a valid safetensors file: {problem}")


def open_regular(path: str | os.PathLike, what: str = "file") -> int:
    """A read-only descriptor of ``path`` if it is a regular file, else a one-line error.

    ``O_NONBLOCK`` keeps a FIFO from blocking the open; ``fstat`` on the open descriptor (not the
    name, which could change in between) then refuses FIFOs, devices (a symlink to /dev/zero would
    read forever) and directories."""
    p = os.fspath(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"no such {what}: {p}") from None
    except OSError as e:
        raise ValueError(f"cannot open the {what} {p}: {e.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else \
            "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"
        raise ValueError(f"{p} is {kind}, not a {what} (only regular files are read)")
    return fd


def read_regular(path: str | os.PathLike, what: str = "file", limit: int | None = None) -> bytes:
    """The bytes of a regular file (see :func:`open_regular`), refusing files over ``limit`` bytes."""
    fd = open_regular(path, what)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if limit is not None and size > limit:
            raise ValueError(f"{os.fspath(path)}: the {what} has {size:,} bytes, more than the limit of {limit:,}")
        return f.read(size if limit is None else min(size, limit))


def _depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` outside JSON strings (json.loads would recurse that deep)."""
    if "[" not in text and "{" not in text:
        return 0
    bare = _STRINGS.sub("", text).encode()
    a = np.frombuffer(bare, np.uint8)
    step = np.isin(a, _OPEN).astype(np.int64) - np.isin(a, _CLOSE)
    return int(np.cumsum(step).max(initial=0))


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def parse_json(text: str | bytes, where: str, max_depth: int = MAX_DEPTH, constants: bool = False) -> Any:
    """``json.loads`` that refuses nesting deeper than ``max_depth`` (instead of a RecursionError)
    and, unless ``constants``, the non-standard ``NaN``/``Infinity``: every failure is a ValueError
    naming ``where``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{where} is not JSON (not UTF-8: {e})") from None
    if _depth(text) > max_depth:
        raise ValueError(f"{where}: JSON nested deeper than {max_depth} levels")

    def constant(name):
        raise ValueError(f"{where}: JSON holds the non-standard constant {name}")
    try:
        return json.loads(text) if constants else json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where} is not JSON ({e})") from None
    except ValueError as e:  # e.g. an integer of over 4,300 digits (Python's int-string limit)
        raise ValueError(f"{where} is not usable JSON ({e})") from None
    except RecursionError:  # pragma: no cover - _depth caught it first
        raise ValueError(f"{where}: JSON nested too deeply") from None


def _check_entry(path, name, spec, data_len: int) -> None:
    ok = (isinstance(spec, dict) and spec.get("dtype") in _DTYPES
          and isinstance(spec.get("shape"), list) and len(spec["shape"]) <= MAX_DIMS
          and all(type(s) is int and 0 <= s < 1 << 63 for s in spec["shape"])
          and isinstance(spec.get("data_offsets"), list) and len(spec["data_offsets"]) == 2
          and all(type(o) is int and o >= 0 for o in spec["data_offsets"]))
    if not ok:
        raise _fail(path, f"bad entry for tensor {name!r}: {spec!r:.200} (need dtype in {sorted(_DTYPES)}, a "
                          f"shape of at most {MAX_DIMS} non-negative int64s and two data offsets)")
    lo, hi = spec["data_offsets"]
    need = math.prod(spec["shape"]) * _DTYPES[spec["dtype"]].itemsize
    if hi < lo or hi - lo != need or hi > data_len:
        raise _fail(path, f"tensor {name!r} ({spec['dtype']} {spec['shape']}) needs {need} bytes but its offsets "
                          f"are [{lo}, {hi}) in a data section of {data_len} bytes (truncated or corrupt?)")


def _check_cover(path, header: dict, data_len: int) -> None:
    """The format's rule: the tensors tile the data section exactly (no overlap, no hole)."""
    end = 0
    for name, spec in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        lo, hi = spec["data_offsets"]
        if lo != end:
            raise _fail(path, f"tensor {name!r} starts at byte {lo} of the data, expected {end} "
                              f"({'an overlap' if lo < end else 'a hole'} between tensors)")
        end = hi
    if end != data_len:
        raise _fail(path, f"the tensors cover {end} bytes but the data section has {data_len}")


def read_safetensors(path: str | os.PathLike) -> tuple[OrderedDict[str, np.ndarray], dict[str, str]]:
    """The one reader of every safetensors file chainrule opens (models, weights, checkpoints).

    Refuses, with a ValueError naming the file: anything but a regular file, a header longer than
    :data:`MAX_HEADER` or than the file, JSON nested deeper than :data:`MAX_DEPTH`, more than
    :data:`MAX_TENSORS` tensors, entries whose dtype, shape or offsets do not fit the file. Reads
    are bounded by the file's size; tensors are copied out (writable, owned), in header order.
    """
    fd = open_regular(path, "safetensors file")
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise _fail(path, f"it has {size} bytes, fewer than the 8-byte header length (truncated?)")
        first = f.read(8)
        (n,) = struct.unpack("<Q", first)
        if n > size - 8 or n > MAX_HEADER:
            hint = {b"\x80": " (a pickle, e.g. from pickle.dump or an old torch.save? chainrule never unpickles)",
                    b"P": " (a zip file, e.g. from torch.save: only cr.load reads those, and only intact ones)",
                    }.get(first[:1], "")
            raise _fail(path, f"its header claims {n} bytes but the file has {size - 8} after the length field "
                              f"(limit {MAX_HEADER:,}){hint}")
        header = parse_json(f.read(n), f"{os.fspath(path)!r} is not a valid safetensors file: the header")
        if not isinstance(header, dict):
            raise _fail(path, f"the header must be a JSON object, got {type(header).__name__}")
        if len(header) > MAX_TENSORS + 1:
            raise _fail(path, f"it declares {len(header) - 1:,} tensors, more than the limit of {MAX_TENSORS:,}")
        meta = header.pop("__metadata__", {})
        if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise _fail(path, f"__metadata__ must map strings to strings, got {meta!r:.200}")
        data_len = size - 8 - n
        for name, spec in header.items():
            _check_entry(path, name, spec, data_len)
        _check_cover(path, header, data_len)
        data = f.read(data_len)
    arrays: OrderedDict[str, np.ndarray] = OrderedDict()
    for name, spec in header.items():
        lo, hi = spec["data_offsets"]
        a = np.frombuffer(data, _DTYPES[spec["dtype"]], count=(hi - lo) // _DTYPES[spec["dtype"]].itemsize, offset=lo)
        try:  # a zero-size tensor may still declare a shape NumPy cannot index ([0, 2**62, 2**62])
            arrays[name] = a.reshape(spec["shape"]).copy()
        except ValueError as e:
            raise _fail(path, f"tensor {name!r} has the shape {spec['shape']!r:.120}, which NumPy cannot hold ({e})") from None
    return arrays, meta


def write_atomic(path: str | os.PathLike, data: bytes, what: str = "file") -> str:
    """Write ``data`` to ``path`` so that a crash, a full disk or a file-size limit never leaves a
    partial file: write a hidden temporary beside it, fsync, ``os.replace``, fsync the directory
    (so the rename itself survives a power cut). On failure the temporary is removed, the old
    ``path`` is untouched, and the OSError says what could not be written and why."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}{TMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(directory)
    except OSError as e:
        raise OSError(e.errno, f"could not write the {what} {path}: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return path


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):  # some file systems (and Windows) cannot open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_tmp(directory: str | os.PathLike) -> list[str]:
    """Delete temporaries that :func:`write_atomic` left in ``directory`` when a process was
    killed mid-write (those whose process is gone); returns their paths."""
    removed = []
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            head, sep, pid = name.rpartition(TMP_MARK)
            if sep and head.startswith(".") and pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, name))
                    removed.append(os.path.join(os.fspath(directory), name))
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but not ours
        return True
    return True


def warn_nonfinite(arrays: Mapping[str, np.ndarray], where: str) -> None:
    """Warn (once per file) when float tensors hold NaN or Inf: such weights load, but every
    prediction made with them is NaN."""
    bad = {k: int(np.count_nonzero(~np.isfinite(a))) for k, a in arrays.items() if a.dtype.kind == "f"}
    bad = {k: n for k, n in bad.items() if n}
    if bad:
        first = next(iter(bad))
        warnings.warn(f"{where}: {sum(bad.values()):,} NaN/Inf values in {len(bad)} tensor(s) (first: {first!r}); "
                      "predictions made with these weights are not numbers", RuntimeWarning, stacklevel=3)


def _deserialize(path: str | os.PathLike) -> tuple[OrderedDict[str, Tensor], dict[str, str]]:
    arrays, meta = read_safetensors(path)
    warn_nonfinite(arrays, os.fspath(path))
    return OrderedDict((k, Tensor(v)) for k, v in arrays.items()), meta


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
    from .checkpoint import FORMAT, load_checkpoint
    if read_safetensors(path)[1].get("format") == FORMAT:  # a nested dict that save() wrote
        return _tensors(load_checkpoint(path))
    return _deserialize(path)[0]


def _tensors(tree: Any) -> Any:
    """A checkpoint's tree with its arrays as Tensors (what torch.load gives back), containers kept."""
    if isinstance(tree, np.ndarray):
        return Tensor(tree)
    if isinstance(tree, dict):
        return {k: _tensors(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_tensors(v) for v in tree)
    return tree


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The header's ``__metadata__`` map (validated, without reading the tensors)."""
    return read_safetensors(path)[1]


_ARGS = {  # constructor arguments load_model accepts, with their JSON types
    "MLP": {"sizes": list, "activation": str, "dropout": (int, float), "bias": bool, "feature_fn": (dict, type(None))},
    "LogisticRegression": {"n_features": int, "bias": bool, "feature_fn": (dict, type(None))},
    "SoftmaxRegression": {"n_features": int, "n_classes": int, "bias": bool, "feature_fn": (dict, type(None))},
    "CNN1d": {"n_features": int, "n_classes": int, "channels": int, "dropout": (int, float), "batch_norm": bool},
    "GRUClassifier": {"n_features": int, "n_classes": int, "hidden_size": int, "num_layers": int, "input_size": int,
                      "readout": str, "dropout": (int, float)},
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
    cls = models.MODELS[arch["class"]]
    if hasattr(cls, "state_numel"):  # the model computes its size from its arguments
        return _build_counted(cls, kwargs, where, n_stored)
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


def _build_counted(cls, kwargs: dict, where: str, n_stored: int) -> Module:
    """Build a model whose ``state_numel(**kwargs)`` says its size, after checking that size
    against the numbers in the file (a hostile header must not make us allocate a huge model)."""
    if not all(v >= 1 for v in kwargs.values() if type(v) is int):
        raise ValueError(f"{where}: {cls.__name__} sizes must be positive integers, got {kwargs!r:.200}")
    try:
        count = cls.state_numel(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: cannot build {cls.__name__} from the stored architecture: {e}") from None
    if count != n_stored:
        raise ValueError(f"{where}: the architecture {cls.__name__}({kwargs!r:.120}) holds {count} numbers but the "
                         f"file holds {n_stored}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: cannot build {cls.__name__} from the stored architecture: {e}") from None


def load_model(path: str | os.PathLike) -> Module:
    """Rebuild a model saved by :func:`save` from its stored architecture and load its weights.

    Works for chainrule's models (see :func:`save`); for others build the model yourself and call
    ``model.load_state_dict(cr.load(path))``."""
    state, meta = _deserialize(path)
    where = f"load_model({os.fspath(path)!r})"
    if ARCH_KEY not in meta:
        raise ValueError(f"{where}: the file stores no chainrule architecture; build the model and call "
                         "model.load_state_dict(cr.load(path))")
    arch = parse_json(meta[ARCH_KEY], f"{where}: the stored architecture")
    model = _build(arch, where, sum(t.numel() for t in state.values()))
    floats = {t.dtype for t in state.values() if t.dtype.kind == "f"}
    if len(floats) == 1:
        model.to(floats.pop())  # a float64 checkpoint rebuilds a float64 model
    model.load_state_dict(state, strict=True)
    return model
