"""One-pass optimizer kernels, compiled by numba when it is installed (``pip install chainrule[fast]``).

The NumPy update rules in :mod:`chainrule.optim.adaptive` make a dozen passes over every parameter,
one ufunc per equation. A kernel compiled for the CPU makes one: it reads ``theta``, ``g``, ``m``
and ``v`` once and writes them once, which is what PyTorch's ``Adam(fused=True)`` does. On 1M
float32 parameters the NumPy Adam update takes ~2.0 ms a step, this kernel ~0.76 ms and torch's fused
Adam ~0.75 ms (``bench/bench_optim.py``, one thread). SGD (with and without momentum), Adagrad and RMSprop have
kernels too, one per state layout (a loop over arrays that may alias does not vectorise).

The kernel performs the *same* float operations in the same order as the NumPy rule, in the
parameter's own dtype (constants rounded to it first, as NumPy does with Python scalars), and is
compiled without fast-math, so the two paths give bit-identical parameters
(``tests/test_optim_fused.py``). numba is optional: without it :func:`kernels` returns None and
the optimizers use their NumPy rules. The kernels live in ``_fused_kernels.py``; the first call of a
signature compiles it (about 0.4 s) and numba caches it on disk next to that file, so later processes
only load it (a few milliseconds).
"""

from __future__ import annotations

import os

_KERNELS: dict | None = None


def available() -> bool:
    """True when numba is importable and not switched off with ``CHAINRULE_FUSED=0``."""
    return _load() is not None


def _load() -> dict | None:
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = {}
        if os.environ.get("CHAINRULE_FUSED", "1") != "0":
            try:
                _KERNELS = _compile()
            except ImportError:
                pass
    return _KERNELS or None


def kernels() -> dict | None:
    """The compiled one-pass updates by name (``adam``, ``adam_amsgrad``, ``sgd``, ``sgd_momentum``,
    ``adagrad``, ``rmsprop``, ``rmsprop_centered``, ``rmsprop_momentum``,
    ``rmsprop_centered_momentum``), or None without numba."""
    return _load()


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
    the state arrays all C-contiguous in ``x``'s dtype (else the NumPy rule runs)."""
    if not (x.dtype.kind == "f" and x.dtype.itemsize in (4, 8) and x.flags.c_contiguous
            and g.dtype == x.dtype and g.flags.c_contiguous):
        return False
    return all(a.flags.c_contiguous and a.dtype == x.dtype for a in state)


def _compile() -> dict:
    from . import _fused_kernels as k  # imports numba; module-level functions, so numba's disk cache hits
    names = ("adam", "adam_amsgrad", "sgd", "sgd_momentum", "adagrad", "rmsprop", "rmsprop_centered",
             "rmsprop_momentum", "rmsprop_centered_momentum")
    return {name: getattr(k, name) for name in names}
