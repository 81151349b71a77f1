"""Matrix products through Intel MKL when it is installed (``pip install chainrule[mkl]``), else NumPy.

NumPy's wheels multiply matrices with OpenBLAS; PyTorch's CPU wheels with MKL. On the products
of the lecture's MLPs (784-512-512-10, one thread) OpenBLAS is slower than MKL
(``bench/bench_gemm.py``; figures in docs/performance.md), which is most of what separated a chainrule training step from
PyTorch's. PyPI's ``mkl`` wheel ships MKL's single runtime library ``libmkl_rt``; this module
calls its ``cblas_sgemm`` / ``cblas_dgemm`` through :mod:`ctypes` (which releases the GIL), for
2-D float32/float64 products of at least :data:`MIN_MACS` multiply-adds (:data:`MIN_MACS_ONE_THREAD`
when MKL runs on one thread). Smaller products, other
dtypes, batched operands and layouts BLAS cannot take without a copy go to ``np.matmul``: on small
products the foreign call's few microseconds outweigh MKL's faster kernel.

:func:`matmul` is a drop-in for ``np.matmul``: same values up to float rounding (a different
summation order), same shape and dtype, a fresh C-contiguous result. Transposed operands cost
nothing, as in NumPy: a C-contiguous or F-contiguous operand (or a row-/column-strided view with a
unit inner stride) is passed with BLAS's transpose flag.

MKL's threads follow its own rules (``MKL_NUM_THREADS``, else one per core) and threadpoolctl's
``threadpool_limits``, which sees ``libmkl_rt`` once it is loaded. Two thread pools (OpenBLAS's
pthreads, MKL's OpenMP) spin-waiting on the same cores slow each other down badly, hence
:data:`MIN_MACS`; the same can happen with your own multi-threaded NumPy products in between
(``OPENBLAS_NUM_THREADS=1``, or threadpoolctl's
``ThreadpoolController().select(internal_api="openblas").limit(limits=1)``, avoids it).
By default (``CHAINRULE_BLAS=auto``) MKL is used when the ``mkl`` wheel is installed in the running
environment; ``CHAINRULE_BLAS=numpy`` turns MKL off; ``CHAINRULE_BLAS=mkl`` also takes an MKL found
elsewhere (the loader's path, the base interpreter's prefix), and makes a missing MKL an error instead
of a silent fallback.
"""

from __future__ import annotations

import ctypes
import os
import sys

import numpy as np

__all__ = ["info", "use"]  # re-exported as cr.blas_info, cr.set_blas

#: Products with fewer multiply-adds (``m * n * k``) than this go to NumPy when MKL may use more
#: than one thread. It is OpenBLAS's own threading threshold (65536 x 4): below it OpenBLAS runs on
#: the calling thread, above it it wakes its worker threads, which then spin-wait and fight MKL's
#: OpenMP threads for the cores (with the threshold at 2^20, a 2-thread MLP step at batch 128 was
#: several times slower; docs/performance.md has the figures). So every product that OpenBLAS would
#: thread goes to MKL.
MIN_MACS = 1 << 18
#: The threshold with one thread, where nothing spins: the measured crossover. MKL's call costs a
#: few microseconds, so below ~2^20 multiply-adds NumPy is faster and above it MKL is
#: (``bench/bench_gemm.py``; the products measured are in docs/performance.md).
MIN_MACS_ONE_THREAD = 1 << 20

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_lib: ctypes.CDLL | None = None
_path: str | None = None
_GEMM: dict = {}  # dtype -> cblas_?gemm
_max_threads = None  # MKL_Get_Max_Threads, once loaded


def _find_mkl(system: bool = False) -> str | None:
    """Path of ``libmkl_rt`` from the ``mkl`` wheel installed in *this* environment (its data files land
    in ``sys.prefix``'s ``lib/``; the wheel's metadata lists them), else None. ``system``: also look
    where the loader looks and in the base interpreter's prefix (an MKL nobody installed for this
    environment is used only when asked for by name: ``CHAINRULE_BLAS=mkl`` or ``set_blas("mkl")``)."""
    import glob
    prefixes = (sys.prefix, sys.base_prefix) if system else (sys.prefix,)
    for prefix in prefixes:
        hits = sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")) +
                      glob.glob(os.path.join(prefix, "Library", "bin", "mkl_rt*.dll")))
        if hits:
            return hits[0]
    from importlib import metadata
    try:
        for f in metadata.distribution("mkl").files or ():
            if f.name.startswith(("libmkl_rt", "mkl_rt")):
                return str(f.locate())
    except metadata.PackageNotFoundError:
        pass
    if system:
        import ctypes.util
        return ctypes.util.find_library("mkl_rt")
    return None


def _load(required: bool = False) -> bool:
    """Bind ``cblas_sgemm`` / ``cblas_dgemm`` from MKL; True when it is there. ``required`` (MKL asked
    for by name): also look outside this environment, and raise ImportError instead of returning False."""
    global _lib, _path
    if _lib is not None:
        return True
    path = _find_mkl(system=required)
    try:
        lib = ctypes.CDLL(path) if path else None
    except OSError:
        lib = None
    if lib is None:
        if required:
            raise ImportError("MKL's runtime library libmkl_rt was not found: pip install 'chainrule[mkl]'")
        return False
    ptr, int_ = ctypes.c_void_p, ctypes.c_int
    for dtype, name, scalar in ((np.float32, "cblas_sgemm", ctypes.c_float),
                                (np.float64, "cblas_dgemm", ctypes.c_double)):
        fn = getattr(lib, name)
        fn.argtypes = [int_] * 6 + [scalar, ptr, int_, ptr, int_, scalar, ptr, int_]
        fn.restype = None
        _GEMM[np.dtype(dtype)] = fn
    global _max_threads
    _max_threads = lib.MKL_Get_Max_Threads  # cheap enough per product; follows MKL_NUM_THREADS and threadpool_limits
    _max_threads.argtypes, _max_threads.restype = [], ctypes.c_int
    lib.MKL_Get_Version_String.argtypes, lib.MKL_Get_Version_String.restype = [ctypes.c_char_p, ctypes.c_int], None
    _lib, _path = lib, path
    return True


def _operand(a: np.ndarray, rows: int, cols: int, item: int) -> tuple[int, int] | None:
    """(transpose flag, leading dimension) that describe the (rows, cols) matrix ``a`` to row-major
    BLAS without a copy, or None when its strides do not allow it."""
    s0, s1 = a.strides
    if s1 == item and s0 % item == 0 and s0 >= cols * item:
        return _NO_TRANS, s0 // item
    if s0 == item and s1 % item == 0 and s1 >= rows * item:
        return _TRANS, s1 // item
    return None


def _mkl_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.matmul(a, b)``, by MKL's GEMM when the product is 2-D, float32/64 and at least
    :data:`MIN_MACS` multiply-adds (:data:`MIN_MACS_ONE_THREAD` on one thread); by NumPy otherwise.
    ``C = A B`` with ``A`` (m, k), ``B`` (k, n): ``C_ij = sum_l A_il B_lj``."""
    if a.ndim != 2 or b.ndim != 2:
        return np.matmul(a, b)
    m, k = a.shape
    n = b.shape[1]
    fn = _GEMM.get(a.dtype)
    macs = m * n * k
    if macs < MIN_MACS or fn is None or b.dtype != a.dtype or b.shape[0] != k or macs < _min_macs():
        return np.matmul(a, b)  # NumPy also raises the shape error
    item = a.itemsize
    pa, pb = _operand(a, m, k, item), _operand(b, k, n, item)
    if pa is None or pb is None or max(m, n, k, pa[1], pb[1]) >= 1 << 31:  # LP64 MKL: 32-bit sizes
        return np.matmul(a, b)
    out = np.empty((m, n), a.dtype)
    fn(_ROW_MAJOR, pa[0], pb[0], m, n, k, 1.0, a.ctypes._data, pa[1], b.ctypes._data, pb[1], 0.0, out.ctypes._data, n)
    return out


def _min_macs() -> int:
    """The smallest product MKL takes at its current thread count (:data:`MIN_MACS`)."""
    return MIN_MACS if _max_threads() > 1 else MIN_MACS_ONE_THREAD


#: The product every 2-D matrix product of chainrule goes through (``ops.matmul``, ``ops.linear`` and
#: their gradients): :func:`_mkl_matmul` when MKL is in use, else ``np.matmul`` itself, so the NumPy
#: path costs no extra call.
matmul = np.matmul


def use(name: str) -> str:
    """Switch the library for matrix products: 'mkl' (raises ImportError when MKL is missing) or
    'numpy'. Returns the previous name. The environment variable ``CHAINRULE_BLAS`` sets the
    choice at import."""
    global matmul
    if name not in ("mkl", "numpy"):
        raise ValueError(f"blas: name must be 'mkl' or 'numpy', got {name!r}")
    previous = "numpy" if matmul is np.matmul else "mkl"
    if name == "mkl":
        if _lib is None:
            _load(required=True)
        matmul = _mkl_matmul
    else:
        matmul = np.matmul
    return previous


def info() -> dict:
    """Which library multiplies chainrule's matrices: ``{'name': 'mkl' | 'numpy', 'path', 'version',
    'min_macs', 'threads'}`` (``path``/``version``/``threads`` of MKL's runtime, None with NumPy;
    ``min_macs``: the smallest product MKL takes now, which depends on its thread count)."""
    if matmul is np.matmul:
        return {"name": "numpy", "path": None, "version": None, "min_macs": None, "threads": None}
    buf = ctypes.create_string_buffer(256)
    _lib.MKL_Get_Version_String(buf, len(buf))
    return {"name": "mkl", "path": _path, "version": buf.value.decode(errors="replace").strip(),
            "threads": _max_threads(), "min_macs": _min_macs()}


def _from_environment() -> None:
    want = os.environ.get("CHAINRULE_BLAS", "auto").lower()
    if want not in ("auto", "mkl", "numpy"):
        raise ValueError(f"CHAINRULE_BLAS must be 'auto', 'mkl' or 'numpy', got {want!r}")
    if want == "mkl" or (want == "auto" and _load()):
        use("mkl")


_from_environment()
