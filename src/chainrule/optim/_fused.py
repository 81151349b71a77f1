"""One-pass optimizer kernels, compiled by numba when it is installed (``pip install chainrule[fast]``).

The NumPy update rules in :mod:`chainrule.optim.adaptive` make a dozen passes over every parameter,
one ufunc per equation. A kernel compiled for the CPU makes one: it reads ``theta``, ``g``, ``m``
and ``v`` once and writes them once, which is what PyTorch's ``Adam(fused=True)`` does. On the
lecture's 784-512-512-10 MLP (670k parameters) the NumPy update takes ~1.3 ms a step and this kernel
~0.4 ms (``bench/bench_optim.py``).

The kernel performs the *same* float operations in the same order as the NumPy rule, in the
parameter's own dtype (constants rounded to it first, as NumPy does with Python scalars), and is
compiled without fast-math, so the two paths give bit-identical parameters
(``tests/test_optim_fused.py``). numba is optional: without it :func:`adam_kernel` returns None and
the optimizers use their NumPy rules. The first call compiles the kernel (about half a second) and
caches it on disk next to this file, so later processes only load it.
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
    import numba
    import numpy as np

    # error_model="numpy": division by zero gives inf/nan like NumPy instead of a per-element check
    # (which would also stop LLVM from vectorising the loop). No fastmath: keep IEEE results.
    jit = numba.njit(cache=True, nogil=True, error_model="numpy")

    @jit
    def adam_direction(pi, gi, wd, maximize, decoupled):  # pragma: no cover - compiled
        gi = -gi if maximize else gi
        if wd != 0 and not decoupled:
            gi = gi + pi * wd                               # g = g + wd theta
        return gi

    # Same operations, same order as Adam._update (adaptive.py), one element at a time. AMSGrad has
    # its own loop: passing a dummy v_max that aliases m would make LLVM give up vectorising.
    @jit
    def adam(p, g, m, v, beta1, one_m_beta1, beta2, one_m_beta2, c1, c2, lr, eps, wd, decay,
             maximize, decoupled):  # pragma: no cover - compiled
        for i in range(p.size):
            if decoupled and wd != 0:
                p[i] = p[i] * decay                         # theta = theta (1 - lr wd)
            gi = adam_direction(p[i], g[i], wd, maximize, decoupled)
            mi = m[i] * beta1 + gi * one_m_beta1            # m = beta1 m + (1 - beta1) g
            vi = v[i] * beta2 + (gi * one_m_beta2) * gi     # v = beta2 v + (1 - beta2) g^2
            m[i] = mi
            v[i] = vi
            denom = np.sqrt(vi / c2) + eps                  # sqrt(v_hat) + eps
            p[i] = p[i] - (mi / c1) / denom * lr            # theta -= lr m_hat / denom

    @jit
    def adam_amsgrad(p, g, m, v, vmax, beta1, one_m_beta1, beta2, one_m_beta2, c1, c2, lr, eps, wd, decay,
                     maximize, decoupled):  # pragma: no cover - compiled
        for i in range(p.size):
            if decoupled and wd != 0:
                p[i] = p[i] * decay
            gi = adam_direction(p[i], g[i], wd, maximize, decoupled)
            mi = m[i] * beta1 + gi * one_m_beta1
            vi = v[i] * beta2 + (gi * one_m_beta2) * gi
            m[i] = mi
            v[i] = vi
            if vmax[i] > vi:
                vi = vmax[i]
            vmax[i] = vi                                    # v_max = max(v_max, v)
            denom = np.sqrt(vi / c2) + eps
            p[i] = p[i] - (mi / c1) / denom * lr

    return {"adam": adam, "adam_amsgrad": adam_amsgrad}
