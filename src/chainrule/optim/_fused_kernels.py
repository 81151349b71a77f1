"""The numba kernels behind :mod:`chainrule.optim._fused` (imported only when numba is installed).

Module-level functions, so that ``cache=True`` finds them again in a new process (numba's cache does
not hit for functions defined inside another function). Each performs the same float operations in
the same order as the NumPy rule it replaces, one element at a time.
"""

import numba
import numpy as np

# error_model="numpy": division by zero gives inf/nan like NumPy instead of a per-element check
# (which would also stop LLVM from vectorising the loop). No fastmath: keep IEEE results.
_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def adam_direction(pi, gi, wd, maximize, decoupled):  # pragma: no cover - compiled
    gi = -gi if maximize else gi
    if wd != 0 and not decoupled:
        gi = gi + pi * wd                               # g = g + wd theta
    return gi


# Same operations, same order as Adam._update (adaptive.py). AMSGrad has its own loop: passing a
# dummy v_max that aliases m would make LLVM give up vectorising.
@_jit
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


@_jit
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
