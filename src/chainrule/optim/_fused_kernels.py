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


# ----- SGD (sgd.py, SGD._update) -------------------------------------------------------------------
# Not adam_direction(..., False): a literal False argument types that dispatcher as Literal[bool], and
# numba then refuses to compile Adam's call with a plain bool in the same process.
@_jit
def direction(pi, gi, wd, maximize):  # pragma: no cover - compiled
    gi = -gi if maximize else gi                        # g = -g
    if wd != 0:
        gi = gi + pi * wd                               # g = g + wd theta
    return gi


# Constants arrive rounded to the parameter's dtype: lr, mu, scale (lr or 1), c = (1 - dampening) * scale
# computed in Python float64 first, as NumPy does with the ufunc's Python scalar.
@_jit
def sgd(p, g, lr, wd, maximize):  # pragma: no cover - compiled
    for i in range(p.size):
        gi = direction(p[i], g[i], wd, maximize)   # g = -g; g = g + wd theta
        p[i] = p[i] - gi * lr                                   # theta = theta - lr g


@_jit
def sgd_momentum(p, g, b, lr, mu, c, scale, wd, maximize, first, nesterov, lr_in_velocity):  # pragma: no cover
    for i in range(p.size):
        gi = direction(p[i], g[i], wd, maximize)
        if first:
            bi = gi * scale                                     # b = g (v = lr g) on the first step
        else:
            bi = b[i] * mu + gi * c                             # b = mu b + (1 - dampening) g
        b[i] = bi
        if nesterov:
            if lr_in_velocity:
                step = bi * mu + gi * lr                        # mu v + lr g
            else:
                step = (bi * mu + gi) * lr                      # lr (g + mu b)
        elif lr_in_velocity:
            step = bi                                           # v
        else:
            step = bi * lr                                      # lr b
        p[i] = p[i] - step                                      # theta = theta - step


# ----- Adagrad (adaptive.py, Adagrad._update) ----------------------------------------------------
@_jit
def adagrad(p, g, G, lr_t, eps, wd, maximize):  # pragma: no cover - compiled
    for i in range(p.size):
        gi = direction(p[i], g[i], wd, maximize)
        Gi = G[i] + gi * gi                                     # G = G + g^2
        G[i] = Gi
        p[i] = p[i] - (gi / (np.sqrt(Gi) + eps)) * lr_t         # theta -= lr_t g / (sqrt(G) + eps)


# ----- RMSprop (adaptive.py, RMSprop._update): one loop per state layout (no aliased dummies) --------
@_jit
def rmsprop_denom(var, eps, eps_in_sqrt):  # pragma: no cover - compiled
    if eps_in_sqrt:
        return np.sqrt(var + eps)                               # sqrt(s + eps)
    return np.sqrt(var) + eps                                   # sqrt(s) + eps


@_jit
def rmsprop(p, g, sq, lr, alpha, one_m_alpha, eps, wd, maximize, eps_in_sqrt):  # pragma: no cover
    for i in range(p.size):
        gi = direction(p[i], g[i], wd, maximize)
        si = sq[i] * alpha + (gi * gi) * one_m_alpha            # E[g^2] = alpha E[g^2] + (1 - alpha) g^2
        sq[i] = si
        p[i] = p[i] - (gi / rmsprop_denom(si, eps, eps_in_sqrt)) * lr   # theta -= lr g / denom


@_jit
def rmsprop_centered(p, g, sq, ga, lr, alpha, one_m_alpha, eps, wd, maximize, eps_in_sqrt):  # pragma: no cover
    for i in range(p.size):
        gi = direction(p[i], g[i], wd, maximize)
        si = sq[i] * alpha + (gi * gi) * one_m_alpha
        sq[i] = si
        ai = ga[i] * alpha + gi * one_m_alpha                   # E[g] = alpha E[g] + (1 - alpha) g
        ga[i] = ai
        p[i] = p[i] - (gi / rmsprop_denom(si - ai * ai, eps, eps_in_sqrt)) * lr


@_jit
def rmsprop_momentum(p, g, sq, b, lr, alpha, one_m_alpha, eps, mu, wd, maximize, eps_in_sqrt):  # pragma: no cover
    for i in range(p.size):
        gi = direction(p[i], g[i], wd, maximize)
        si = sq[i] * alpha + (gi * gi) * one_m_alpha
        sq[i] = si
        bi = b[i] * mu + gi / rmsprop_denom(si, eps, eps_in_sqrt)  # b = mu b + g / denom
        b[i] = bi
        p[i] = p[i] - bi * lr                                   # theta = theta - lr b


@_jit
def rmsprop_centered_momentum(p, g, sq, ga, b, lr, alpha, one_m_alpha, eps, mu, wd, maximize,
                              eps_in_sqrt):  # pragma: no cover - compiled
    for i in range(p.size):
        gi = direction(p[i], g[i], wd, maximize)
        si = sq[i] * alpha + (gi * gi) * one_m_alpha
        sq[i] = si
        ai = ga[i] * alpha + gi * one_m_alpha
        ga[i] = ai
        bi = b[i] * mu + gi / rmsprop_denom(si - ai * ai, eps, eps_in_sqrt)
        b[i] = bi
        p[i] = p[i] - bi * lr
