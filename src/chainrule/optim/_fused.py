"""One-pass optimizer kernels, compiled by numba when it is installed (``pip install chainrule[fast]``).

The NumPy program of an update rule (:mod:`chainrule.optim.rule`) makes a dozen passes over every
parameter, one ufunc per operation. A kernel compiled for the CPU makes one: it reads ``theta``,
``g`` and the state once and writes them once, which is what PyTorch's ``Adam(fused=True)`` does
(``bench/bench_optim.py`` times both against torch; docs/performance.md has the figures).

The kernel is generated from the same rule as the NumPy program: the same float operations in the
same order, in the parameter's own dtype (constants rounded to it first, as NumPy does with Python
scalars), compiled without fast-math, so the two paths give bit-identical parameters
(``tests/test_optim_fused.py``). numba is optional: without it :func:`kernels` returns None and the
optimizers run the NumPy programs. A kernel is compiled on the first step that needs it and numba
caches it on disk (in ``__pycache__`` beside the rule's file, under a name that changes with its
code), so later processes only load it.
"""

from __future__ import annotations

import importlib.util
import os

from .rule import Program, define

_AVAILABLE: bool | None = None  # numba importable and not switched off; decided on first use
_KERNELS: dict = {}  # program name -> compiled kernel


def available() -> bool:
    """True when numba is installed and not switched off with ``CHAINRULE_FUSED=0`` (numba itself
    is imported only when the first kernel is compiled)."""
    global _AVAILABLE
    if _AVAILABLE is None:
        _AVAILABLE = os.environ.get("CHAINRULE_FUSED", "1") != "0" and importlib.util.find_spec("numba") is not None
    return _AVAILABLE


def kernels() -> dict | None:
    """The compiled kernels by program name (``"adam"``, ``"adam[amsgrad]"``, ``"sgd[momentum == 0]"``...),
    filled as optimizers step (:func:`kernel`), or None without numba."""
    return _KERNELS if available() else None


def kernel(registry: dict, program: Program):
    """The compiled kernel of ``program`` from ``registry``, compiled and entered on first use."""
    k = registry.get(program.name)
    if k is None:
        import numba
        name = program.kernel_name
        fn = define(program.kernel_source(name), name, filename=program.rule.filename)
        # error_model="numpy": division by zero gives inf/nan like NumPy instead of a per-element check
        # (which would also stop LLVM from vectorising the loop). No fastmath: keep IEEE results.
        k = registry[program.name] = numba.njit(cache=True, nogil=True, error_model="numpy")(fn)
    return k


def select(owner: str, fused) -> dict | None:
    """The kernels an optimizer constructed with ``fused`` (torch's argument) should use: None
    (NumPy ufuncs) for ``fused=False`` or when numba is missing and ``fused=None``; ``ValueError``
    for anything but None/True/False, ``RuntimeError`` for ``fused=True`` without numba."""
    if fused not in (None, True, False):
        raise ValueError(f"fused must be None, True or False, got {fused!r}")
    if fused is True and not available():
        raise RuntimeError(f"{owner}(fused=True) needs numba, which is not installed "
                           "(or CHAINRULE_FUSED=0 is set): pip install 'chainrule[fast]', or use fused=None")
    return None if fused is False else kernels()


def usable(x, g, *state) -> bool:
    """Whether a kernel can update parameter ``x`` in place: float32/float64, and ``x``, ``g`` and
    the state arrays all C-contiguous in ``x``'s dtype (else the NumPy program runs)."""
    if not (x.dtype.kind == "f" and x.dtype.itemsize in (4, 8) and x.flags.c_contiguous
            and g.dtype == x.dtype and g.flags.c_contiguous):
        return False
    return all(a.flags.c_contiguous and a.dtype == x.dtype for a in state)
