"""Adaptive learning rates (lecture, Concept #3): Adagrad, RMSprop, Adam, AdamW.

Each keeps per-parameter statistics of past gradients and divides the step by their square root,
so parameters with small or rare gradients get larger steps. Updates run in place on ndarrays with
two scratch buffers per parameter, allocated on the first step.
"""

from __future__ import annotations

import numpy as np

from . import _fused
from .optimizer import Optimizer, _fmt, check_range


def _direction(p, g, group, d, s):
    """``g = -g`` if maximize; ``g = g + weight_decay * theta`` (L2 penalty in the gradient)."""
    if group["maximize"]:
        g = np.negative(g, out=d)
    if group["weight_decay"] != 0:
        g = np.add(g, np.multiply(p, group["weight_decay"], out=s), out=d)
    return g


def _prefix(group) -> list[str]:
    eqs = ["g = grad f(theta)"]
    if group["maximize"]:
        eqs.append("g = -g                                  (maximize)")
    if group["weight_decay"] != 0 and not group.get("decoupled_weight_decay", False):
        eqs.append(f"g = g + {_fmt(group['weight_decay'])} * theta")
    return eqs


class Adagrad(Optimizer):
    r"""Adagrad: per-parameter step sizes from the running *sum* of squared gradients.

    ::

        g = g + weight_decay * theta              if weight_decay != 0
        G = G + g^2                               (G starts at initial_accumulator_value)
        lr_t = lr / (1 + (t - 1) * lr_decay)
        theta = theta - lr_t * g / (sqrt(G) + eps)

    .. note:: The lecture writes ``theta = theta - lr / sqrt(G - eps) * g``. The minus sign is a
       typo: ``eps`` is there to keep the denominator away from zero, and ``sqrt(G - eps)`` is NaN
       for every parameter whose gradients so far are all smaller than ``sqrt(eps)`` (e.g. the
       first step of a parameter with zero gradient). Implemented is PyTorch's
       ``sqrt(G) + eps`` (``test_adagrad_lecture_sqrt_G_minus_eps_is_a_typo``).

    ``fused`` (PyTorch's name): ``None`` (default) runs the update as one compiled pass per
    parameter when numba is installed (``pip install chainrule[fast]``), else as NumPy ufuncs;
    ``True`` requires numba; ``False`` always uses the ufuncs. Both give bit-identical results
    (the kernel does the same float operations in the same order; ``chainrule.optim._fused``).
    Non-contiguous parameters and float16 always take the ufuncs.
    """

    _n_scratch = 2

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False,
                 fused: bool | None = None):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
        super().__init__(params, defaults, fused)

    def _fused_update(self, x, g, group, state):
        G = state["sum"]
        if not _fused.usable(x, g, G):
            return False
        t, f = state["step"], x.dtype.type  # constants rounded to the parameter's dtype, as NumPy does
        lr_t = group["lr"] / (1.0 + (t - 1) * group["lr_decay"])
        self._kernel["adagrad"](x.reshape(-1), g.reshape(-1), G.reshape(-1), f(lr_t), f(group["eps"]),
                                f(group["weight_decay"]), bool(group["maximize"]))
        return True

    def _validate(self, group):
        for k in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_range(k, group[k])

    def _begin(self, p, group, state):
        if not state:
            state["step"] = 0
            state["sum"] = np.full_like(p, group["initial_accumulator_value"])
        state["step"] += 1

    def _update(self, p, g, group, state, scratch):
        d, s = scratch
        t = state["step"]
        g = _direction(p, g, group, d, s)
        G, eps = state["sum"], group["eps"]
        lr_t = group["lr"] / (1.0 + (t - 1) * group["lr_decay"])
        np.add(G, np.multiply(g, g, out=s), out=G)              # G = G + g^2
        denom = np.add(np.sqrt(G, out=s), eps, out=s)           # sqrt(G) + eps
        step = np.multiply(np.divide(g, denom, out=s), lr_t, out=s)   # lr_t * g / (sqrt(G) + eps)
        np.subtract(p, step, out=p)                             # theta = theta - step

    def _equations(self, group):
        lr, decay, eps = _fmt(group["lr"]), _fmt(group["lr_decay"]), _fmt(group["eps"])
        return _prefix(group) + [
            f"G = G + g^2                             (G_0 = {_fmt(group['initial_accumulator_value'])})",
            f"lr_t = {lr} / (1 + (t - 1) * {decay})",
            f"theta = theta - lr_t * g / (sqrt(G) + {eps})",
        ]


class RMSprop(Optimizer):
    r"""RMSProp: Adagrad with a decaying average ``E[g^2]`` instead of a sum.

    ::

        g = g + weight_decay * theta              if weight_decay != 0
        E[g^2] = alpha * E[g^2] + (1 - alpha) * g^2
        E[g] = alpha * E[g] + (1 - alpha) * g     if centered
        s = E[g^2] - E[g]^2   if centered, else   s = E[g^2]
        denom = sqrt(s) + eps        (sqrt(s + eps) if eps_in_sqrt)
        b = momentum * b + g / denom; theta = theta - lr * b      if momentum > 0
        theta = theta - lr * g / denom                            otherwise

    .. note:: The lecture writes ``theta = theta - lr / sqrt(E[g^2] + eps) * g`` with
       ``alpha = 0.9``: epsilon *inside* the square root. PyTorch (and the default here) adds it
       outside, ``sqrt(E[g^2]) + eps``, and uses ``alpha = 0.99``. The two differ whenever
       ``E[g^2]`` is comparable to ``eps`` (inside, the floor on the denominator is ``sqrt(eps) =
       1e-4``; outside it is ``1e-8``). ``eps_in_sqrt=True`` runs the lecture's form
       (``test_rmsprop_eps_in_sqrt_is_the_lecture_form``).

    ``fused`` (PyTorch's name): ``None`` (default) runs the update as one compiled pass per
    parameter when numba is installed (``pip install chainrule[fast]``), else as NumPy ufuncs;
    ``True`` requires numba; ``False`` always uses the ufuncs. Both give bit-identical results
    (the kernel does the same float operations in the same order; ``chainrule.optim._fused``).
    Non-contiguous parameters and float16 always take the ufuncs.
    """

    _n_scratch = 2

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, *, maximize: bool = False, eps_in_sqrt: bool = False,
                 fused: bool | None = None):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize, eps_in_sqrt=eps_in_sqrt)
        super().__init__(params, defaults, fused)

    def _fused_update(self, x, g, group, state):
        lr, alpha, eps, mu = group["lr"], group["alpha"], group["eps"], group["momentum"]
        centered = group["centered"]
        arrays = [x, g, state["square_avg"]] + ([state["grad_avg"]] if centered else []) \
            + ([state["momentum_buffer"]] if mu > 0 else [])
        if not _fused.usable(*arrays):
            return False
        f = x.dtype.type  # constants rounded to the parameter's dtype, as NumPy does
        flat = [a.reshape(-1) for a in arrays]
        consts = (f(lr), f(alpha), f(1.0 - alpha), f(eps)) + ((f(mu),) if mu > 0 else ()) \
            + (f(group["weight_decay"]), bool(group["maximize"]), bool(group["eps_in_sqrt"]))
        name = "rmsprop" + ("_centered" if centered else "") + ("_momentum" if mu > 0 else "")
        self._kernel[name](*flat, *consts)
        return True

    def _validate(self, group):
        check_range("lr", group["lr"])
        check_range("alpha", group["alpha"], 0.0, 1.0)
        check_range("eps", group["eps"])
        check_range("weight_decay", group["weight_decay"])
        check_range("momentum", group["momentum"])

    def _begin(self, p, group, state):
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = np.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(p)
        state["step"] += 1

    def _update(self, p, g, group, state, scratch):
        d, s = scratch
        lr, alpha, eps, mu = group["lr"], group["alpha"], group["eps"], group["momentum"]
        g = _direction(p, g, group, d, s)
        Eg2 = state["square_avg"]
        np.multiply(Eg2, alpha, out=Eg2)                                    # E[g^2] = alpha E[g^2] ...
        np.add(Eg2, np.multiply(np.multiply(g, g, out=s), 1.0 - alpha, out=s), out=Eg2)  # ... + (1-alpha) g^2
        if group["centered"]:
            Eg = state["grad_avg"]
            np.multiply(Eg, alpha, out=Eg)                                  # E[g] = alpha E[g] ...
            np.add(Eg, np.multiply(g, 1.0 - alpha, out=s), out=Eg)          # ... + (1-alpha) g
            var = np.subtract(Eg2, np.multiply(Eg, Eg, out=s), out=s)       # E[g^2] - E[g]^2
        else:
            var = Eg2
        if group["eps_in_sqrt"]:
            denom = np.sqrt(np.add(var, eps, out=s), out=s)                 # sqrt(E[g^2] + eps)
        else:
            denom = np.add(np.sqrt(var, out=s), eps, out=s)                 # sqrt(E[g^2]) + eps
        if mu > 0:
            b = state["momentum_buffer"]
            np.multiply(b, mu, out=b)                                       # b = mu b ...
            np.add(b, np.divide(g, denom, out=s), out=b)                    # ... + g / denom
            step = np.multiply(b, lr, out=s)                                # lr b
        else:
            step = np.multiply(np.divide(g, denom, out=s), lr, out=s)       # lr g / denom
        np.subtract(p, step, out=p)                                         # theta = theta - step

    def _equations(self, group):
        a, eps = _fmt(group["alpha"]), _fmt(group["eps"])
        eqs = _prefix(group) + [f"E[g^2] = {a} * E[g^2] + {_fmt(1 - group['alpha'])} * g^2"]
        s = "E[g^2]"
        if group["centered"]:
            eqs.append(f"E[g] = {a} * E[g] + {_fmt(1 - group['alpha'])} * g")
            s = "(E[g^2] - E[g]^2)"
        eqs.append(f"denom = sqrt({s} + {eps})" if group["eps_in_sqrt"] else f"denom = sqrt({s}) + {eps}")
        if group["momentum"] > 0:
            return eqs + [f"b = {_fmt(group['momentum'])} * b + g / denom", f"theta = theta - {_fmt(group['lr'])} * b"]
        return eqs + [f"theta = theta - {_fmt(group['lr'])} * g / denom"]


class Adam(Optimizer):
    r"""Adam: momentum (first moment ``m``) plus RMSProp (second moment ``v``), bias-corrected.

    ::

        g = g + weight_decay * theta              if weight_decay != 0 (and not decoupled)
        theta = theta - lr * weight_decay * theta if decoupled_weight_decay (AdamW)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        v_max = max(v_max, v); v <- v_max         if amsgrad
        m_hat = m / (1 - beta1^t)
        v_hat = v / (1 - beta2^t)
        theta = theta - lr * m_hat / (sqrt(v_hat) + eps)

    This is the lecture's form, with the bias corrections ``m_hat``, ``v_hat`` written out.

    .. note:: PyTorch folds the corrections into scalars,
       ``theta -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``: the same
       number up to rounding (over 100 steps float64 trajectories agree to ~1e-13 relative,
       float32 to ~1e-5; ``test_matches_torch``). No flag: the results are equal.

    ``fused`` (PyTorch's name): ``None`` (default) runs the update as one compiled pass per
    parameter when numba is installed (``pip install chainrule[fast]``), else as NumPy ufuncs;
    ``True`` requires numba; ``False`` always uses the ufuncs. Both give bit-identical results
    (the kernel does the same float operations in the same order); the compiled pass is ~3x faster
    (``chainrule.optim._fused``). Non-contiguous parameters and float16 always take the ufuncs.
    """

    _n_scratch = 2

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False, fused: bool | None = None):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults, fused)

    def _fused_update(self, x, g, group, state):
        m, v = state["exp_avg"], state["exp_avg_sq"]
        arrays = [x, g, m, v] + ([state["max_exp_avg_sq"]] if group["amsgrad"] else [])
        if not _fused.usable(*arrays):
            return False
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        t, f = state["step"], x.dtype.type  # constants rounded to the parameter's dtype, as NumPy does
        kernel = self._kernel["adam_amsgrad" if group["amsgrad"] else "adam"]
        kernel(*[a.reshape(-1) for a in arrays], f(beta1), f(1.0 - beta1), f(beta2), f(1.0 - beta2),
               f(1.0 - beta1 ** t), f(1.0 - beta2 ** t), f(lr), f(eps), f(wd), f(1.0 - lr * wd),
               bool(group["maximize"]), bool(group["decoupled_weight_decay"]))
        return True

    def _validate(self, group):
        check_range("lr", group["lr"])
        check_range("eps", group["eps"])
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        check_range("betas[0]", betas[0], 0.0, 1.0, hi_open=True)
        check_range("betas[1]", betas[1], 0.0, 1.0, hi_open=True)
        check_range("weight_decay", group["weight_decay"])

    def _begin(self, p, group, state):
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1

    def _update(self, p, g, group, state, scratch):
        d, s = scratch
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        t = state["step"]
        if group["decoupled_weight_decay"]:
            if weight_decay != 0:
                np.multiply(p, 1.0 - lr * weight_decay, out=p)              # theta = theta - lr wd theta
            g = np.negative(g, out=d) if group["maximize"] else g
        else:
            g = _direction(p, g, group, d, s)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        np.multiply(m, beta1, out=m)                                        # m = beta1 m ...
        np.add(m, np.multiply(g, 1.0 - beta1, out=s), out=m)                # ... + (1 - beta1) g
        np.multiply(v, beta2, out=v)                                        # v = beta2 v ...
        np.add(v, np.multiply(np.multiply(g, 1.0 - beta2, out=s), g, out=s), out=v)  # ... + (1 - beta2) g^2
        if group["amsgrad"]:
            v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])  # v_max = max(v_max, v)
        m_hat = np.divide(m, 1.0 - beta1 ** t, out=d)                       # m_hat = m / (1 - beta1^t)
        v_hat = np.divide(v, 1.0 - beta2 ** t, out=s)                       # v_hat = v / (1 - beta2^t)
        denom = np.add(np.sqrt(v_hat, out=s), eps, out=s)                   # sqrt(v_hat) + eps
        step = np.multiply(np.divide(m_hat, denom, out=d), lr, out=d)       # lr m_hat / (sqrt(v_hat) + eps)
        np.subtract(p, step, out=p)                                         # theta = theta - step

    def _equations(self, group):
        lr, (b1, b2), eps = _fmt(group["lr"]), group["betas"], _fmt(group["eps"])
        eqs = _prefix(group)
        if group["decoupled_weight_decay"] and group["weight_decay"] != 0:
            eqs.append(f"theta = theta - {lr} * {_fmt(group['weight_decay'])} * theta      (decoupled)")
        eqs += [f"m = {_fmt(b1)} * m + {_fmt(1 - b1)} * g",
                f"v = {_fmt(b2)} * v + {_fmt(1 - b2)} * g^2"]
        if group["amsgrad"]:
            eqs.append("v = v_max = max(v_max, v)               (amsgrad)")
        return eqs + [f"m_hat = m / (1 - {_fmt(b1)}^t)",
                      f"v_hat = v / (1 - {_fmt(b2)}^t)",
                      f"theta = theta - {lr} * m_hat / (sqrt(v_hat) + {eps})"]


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter): the decay shrinks the weights
    directly, ``theta = theta - lr * weight_decay * theta``, instead of entering ``g`` (where
    Adam's ``1 / sqrt(v_hat)`` would rescale it). PyTorch's defaults: ``weight_decay=1e-2``."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 fused: bool | None = None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True,
                         fused=fused)
