"""Read files written by ``torch.save`` (state_dicts, tensors, dicts of tensors) without torch and without running code.

A ``torch.save`` file (PyTorch >= 1.6) is a zip archive::

    <name>/data.pkl        a pickle of the saved object; each tensor is a call
                           torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)
                           whose storage is a *persistent id* ('storage', torch.FloatStorage, key, location, numel)
    <name>/data/<key>      the raw little-endian bytes of storage <key> (stored, not compressed)
    <name>/byteorder       "little" or "big"

A pickle is a program: an unrestricted ``pickle.load`` calls whatever callables the file names
(``os.system`` via ``__reduce__``). :class:`_RestrictedUnpickler` resolves names only from an
explicit allowlist (``_ALLOWED``), each mapped to a chainrule function that builds plain data, and
refuses everything else with ``pickle.UnpicklingError`` before anything is called: torch's
``weights_only=True`` semantics, without importing torch. Tensors are rebuilt as NumPy views of
their storage with the stored shape, strides and offset, so tensors that shared a storage in torch
share memory here too (``x`` and ``x.t()`` saved together stay one buffer). Where the tensor lived
(``cpu``/``cuda:0``) is ignored: everything loads on the CPU. ``bfloat16``, which NumPy lacks, is
widened exactly to float32.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from collections import Counter, OrderedDict
from typing import IO, Any

import numpy as np

from .tensor import Size, Tensor

__all__ = ["is_torch_file", "load"]

ZIP_MAGIC = b"PK\x03\x04"

# torch dtype name -> NumPy dtype ("bfloat16" is read as its bits and widened to float32).
_DTYPES = {"float32": "f4", "float": "f4", "float64": "f8", "double": "f8", "float16": "f2", "half": "f2",
           "bfloat16": "bf16", "int64": "i8", "long": "i8", "int32": "i4", "int": "i4", "int16": "i2", "short": "i2",
           "int8": "i1", "uint8": "u1", "uint16": "u2", "uint32": "u4", "uint64": "u8", "bool": "?",
           "complex64": "c8", "complex128": "c16"}
# Legacy typed storage classes, as pickled by torch.save: torch.FloatStorage etc.
_STORAGES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
             "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
             "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
             "ComplexDoubleStorage": "complex128"}


class _StorageType:
    """What ``torch.FloatStorage`` (or ``torch.storage.UntypedStorage``: bytes) stands for: a dtype name."""

    def __init__(self, dtype: str):
        self.dtype = dtype


class _DType:
    """A pickled ``torch.float32``: its name (turned into a NumPy dtype where one is returned to the user)."""

    def __init__(self, name: str):
        self.name = name


class _Storage:
    """One storage read from the archive: a flat writable ndarray of its dtype, and the file's byte order."""

    def __init__(self, flat: np.ndarray, dtype: str, order: str):
        self.flat, self.dtype, self.order = flat, dtype, order


def _numpy_dtype(name: str, order: str) -> np.dtype:
    code = _DTYPES[name]
    return np.dtype(("<" if order == "little" else ">") + ("u2" if code == "bf16" else code))


def _view(flat: np.ndarray, dtype: str, offset: int, size, stride) -> np.ndarray:
    """``flat[offset:]`` seen with torch's shape and strides (in elements), after checking every index is inside."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or any(s < 0 for s in size + stride) or offset < 0:
        raise pickle.UnpicklingError(f"torch file: bad tensor geometry size={size} stride={stride} offset={offset}")
    n = flat.shape[0]
    if 0 not in size:
        last = offset + sum((s - 1) * st for s, st in zip(size, stride))
        if last >= n:
            raise pickle.UnpicklingError(f"torch file: a tensor of size {size}, stride {stride}, offset {offset} "
                                         f"reaches element {last} of a storage of {n} elements")
    base = flat[offset:] if offset < n else flat[:0]
    arr = np.lib.stride_tricks.as_strided(base, shape=size, strides=[s * flat.itemsize for s in stride],
                                          writeable=True) if 0 not in size else np.zeros(size, flat.dtype)
    if dtype == "bfloat16":  # the high 16 bits of a float32: widening is exact
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def _rebuild_tensor(storage: _Storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None) -> Tensor:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"torch file: a tensor's storage is a {type(storage).__name__}, not a storage")
    if hooks:
        raise pickle.UnpicklingError("torch file: tensors with backward hooks are refused (hooks are code)")
    t = Tensor(_view(storage.flat, storage.dtype, int(offset), size, stride))
    if requires_grad:
        t.requires_grad_(True)
    return t


def _rebuild_tensor_v3(storage: _Storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None) -> Tensor:
    # Newer dtypes (uint16...) come as an untyped byte storage plus the dtype: reinterpret the bytes.
    if not isinstance(storage, _Storage) or not isinstance(dtype, _DType) or dtype.name not in _DTYPES:
        raise pickle.UnpicklingError("torch file: _rebuild_tensor_v3 needs a storage and a known dtype")
    flat = storage.flat.view(_numpy_dtype(dtype.name, storage.order))
    return _rebuild_tensor(_Storage(flat, dtype.name, storage.order), offset, size, stride, requires_grad, hooks,
                           metadata)


def _rebuild_parameter(data: Tensor, requires_grad: bool, hooks) -> Tensor:
    from .nn.module import Parameter
    if hooks:
        raise pickle.UnpicklingError("torch file: parameters with backward hooks are refused (hooks are code)")
    return Parameter(data, requires_grad=bool(requires_grad))


def _encode(text: str, encoding: str = "latin1") -> bytes:
    # How protocol 2 pickles bytes: _codecs.encode(str, "latin1"). Only that encoding is accepted.
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"torch file: _codecs.encode({text!r:.40}, {encoding!r}) is not how bytes are stored")
    return text.encode("latin1")


def _device(spec, index=None) -> str:
    return str(spec) if index is None else f"{spec}:{index}"


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "Counter"): Counter,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch", "Size"): Size,
    ("torch", "device"): _device,
    ("torch.storage", "UntypedStorage"): _StorageType("uint8"),
    ("_codecs", "encode"): _encode,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    **{("torch", name): _StorageType(dt) for name, dt in _STORAGES.items()},
    **{("torch", name): _DType(name) for name in _DTYPES},
}


class _RestrictedUnpickler(pickle._Unpickler):
    """Resolves global names only from ``_ALLOWED``; storages come from the archive via ``persistent_load``.

    The pure-Python unpickler, so that BUILD (``__setstate__``/attribute assignment) can be limited
    to what torch writes: the ``_metadata`` attributes of a state_dict's OrderedDict. Setting state
    on anything else (a Tensor's slots, the allowlist's own objects) is refused.
    """

    dispatch = pickle._Unpickler.dispatch.copy()

    def _load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is not OrderedDict or not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise pickle.UnpicklingError(f"{self.where}: refused to set the state of a {type(inst).__name__} "
                                         "(only a state_dict's _metadata can be set)")
        inst.__dict__.update(state)

    dispatch[pickle.BUILD[0]] = _load_build

    def __init__(self, file: IO[bytes], archive: zipfile.ZipFile, prefix: str, byteorder: str, where: str):
        super().__init__(file)
        self.archive, self.prefix, self.byteorder, self.where = archive, prefix, byteorder, where
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 2 (torch.save's) writes Python 2 names (__builtin__.set): translate as pickle itself does.
        if (module, name) in NAME_MAPPING:
            module, name = NAME_MAPPING[(module, name)]
        elif module in IMPORT_MAPPING:
            module = IMPORT_MAPPING[module]
        try:
            found = _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{self.where}: refused to load the global {module}.{name}: only tensors, state_dicts and "
                "plain containers can be read (weights_only=True semantics; nothing in the file is executed)") from None
        # Markers are handed out fresh, so nothing a file does to them can reach another load.
        if isinstance(found, _StorageType):
            return _StorageType(found.dtype)
        return _DType(found.name) if isinstance(found, _DType) else found

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"{self.where}: unknown persistent id {pid!r:.100} (expected a storage)")
        _, kind, key, _location, numel = pid
        if key in self.storages:  # tensors sharing a storage share memory
            return self.storages[key]
        dtype = _numpy_dtype(kind.dtype, self.byteorder)
        entry = f"{self.prefix}/data/{key}"
        try:
            info = self.archive.getinfo(entry)
        except KeyError:
            raise pickle.UnpicklingError(f"{self.where}: storage {key!r} is missing ({entry} not in the archive)") from None
        if not isinstance(numel, int) or info.file_size != numel * dtype.itemsize:
            raise pickle.UnpicklingError(f"{self.where}: storage {key!r} should hold {numel} elements of {kind.dtype} "
                                         f"({numel * dtype.itemsize if isinstance(numel, int) else '?'} bytes) "
                                         f"but {entry} has {info.file_size} bytes")
        flat = np.frombuffer(bytearray(self.archive.read(entry)), dtype=dtype)
        self.storages[key] = _Storage(flat, kind.dtype, self.byteorder)
        return self.storages[key]


def _public(obj: Any) -> Any:
    """Replace the unpickler's markers in the result with user-facing values (dtype names -> NumPy dtypes)."""
    if isinstance(obj, _DType):
        return np.float32 if obj.name == "bfloat16" else np.dtype(_DTYPES[obj.name])
    if isinstance(obj, (_StorageType, _Storage)):
        raise pickle.UnpicklingError("torch file: a bare storage object cannot be loaded; save tensors instead")
    if isinstance(obj, dict):
        for k, v in obj.items():
            obj[k] = _public(v)
        return obj
    if isinstance(obj, list):
        obj[:] = [_public(v) for v in obj]
        return obj
    if type(obj) is tuple:  # torch.Size stays a Size
        return tuple(_public(v) for v in obj)
    return obj


def _pickle_name(buf: IO[bytes]) -> str | None:
    """The ``<name>/data.pkl`` entry of a torch zip archive, or None when ``buf`` is not one."""
    buf.seek(0)
    if buf.read(4) != ZIP_MAGIC or not zipfile.is_zipfile(buf):
        return None
    with zipfile.ZipFile(buf) as z:
        return next((n for n in z.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")), None)


def _open(path: str | os.PathLike) -> IO[bytes]:
    """``path`` opened for reading through io's one reader: regular files only (a FIFO or a device is
    refused at once, never read)."""
    from .io import open_regular
    return os.fdopen(open_regular(path, "model file"), "rb")


def is_torch_file(f: str | os.PathLike | IO[bytes]) -> bool:
    """True for a zip archive holding ``<name>/data.pkl`` (what ``torch.save`` writes). Nothing is unpickled."""
    if hasattr(f, "read"):
        return _pickle_name(f) is not None
    with _open(f) as fh:
        return _pickle_name(fh) is not None


def load(f: str | os.PathLike | IO[bytes], map_location: Any = None, weights_only: bool = True) -> Any:
    """``torch.load(f, weights_only=True)`` without torch: the saved object with chainrule Tensors in it.

    ``f`` is a path or a binary file object. ``map_location`` may be ``None`` or ``"cpu"`` (chainrule
    has only the CPU; tensors saved from CUDA load there too). ``weights_only=False`` is refused:
    it would mean executing the pickle. Raises ``pickle.UnpicklingError`` for a name outside the
    allowlist or a malformed storage, ``ValueError`` for a file that is not a torch zip archive."""
    if not weights_only:
        raise ValueError("load: weights_only=False would execute the pickle inside the file; chainrule only reads "
                         "tensors and containers (weights_only=True)")
    if map_location is not None and str(map_location) != "cpu":
        raise ValueError(f"load: map_location={map_location!r}: chainrule runs on the CPU only; use None or 'cpu'")
    if hasattr(f, "read"):
        buf = f if hasattr(f, "seek") and f.seekable() else io.BytesIO(f.read())
        return _load_archive(buf, f"torch file {getattr(f, 'name', type(f).__name__)!r}")
    with _open(f) as fh:
        return _load_archive(fh, repr(os.fspath(f)))


def _load_archive(buf: IO[bytes], where: str) -> Any:
    pkl = _pickle_name(buf)
    if pkl is None:
        raise ValueError(f"{where} is not a torch.save zip archive (no <name>/data.pkl inside); files from "
                         "torch.save(..., _use_new_zipfile_serialization=False) and torch < 1.6 are not supported")
    buf.seek(0)
    with zipfile.ZipFile(buf) as z:
        prefix = pkl.rsplit("/", 1)[0]
        names = set(z.namelist())
        order = z.read(f"{prefix}/byteorder").decode().strip() if f"{prefix}/byteorder" in names else "little"
        if order not in ("little", "big"):
            raise ValueError(f"{where}: byteorder is {order!r}, expected 'little' or 'big'")
        obj = _RestrictedUnpickler(io.BytesIO(z.read(pkl)), z, prefix, order, where).load()
    return _public(obj)
