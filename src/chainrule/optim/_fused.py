"""One-pass optimizer kernels, compiled by numba when it is installed (``pip install chainrule[fast]``).

The NumPy update rules in :mod:`chainrule.optim.adaptive` make a dozen passes over every parameter,
one ufunc per equation. A kernel compiled for the CPU makes one: it reads ``theta``, ``g``, ``m``
and ``v`` once and writes them once, which is what PyTorch's ``Adam(fused=True)`` does. On the
lecture's 784-512-512-10 MLP (670k parameters) the NumPy update takes ~1.3 ms a step and this kernel
~0.4 ms (``bench/bench_optim.py``).

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
    """The compiled one-pass updates by name (``adam``, ``adam_amsgrad``), or None without numba."""
    return _load()


def _compile() -> dict:
    from . import _fused_kernels as k  # imports numba; module-level functions, so numba's disk cache hits
    return {"adam": k.adam, "adam_amsgrad": k.adam_amsgrad}
