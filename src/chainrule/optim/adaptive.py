"""Adaptive learning rates (lecture, Concept #3): Adagrad, RMSprop, Adam, AdamW.

Each keeps per-parameter statistics of past gradients and divides the step by their square root,
so parameters with small or rare gradients get larger steps. Each update rule is the function
below its name, written once: the optimizer runs it as one compiled pass or as NumPy ufuncs
(:mod:`chainrule.optim.rule`) and prints it in ``describe()``.
"""

from __future__ import annotations

import numpy as np

from .optimizer import Optimizer, check_range
from .rule import UpdateRule, maximum, sqrt


def adagrad(theta, g, G, *, lr, lr_decay, weight_decay, eps, t, maximize):
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * theta
    G = G + g * g
    lr_t = lr / (1 + (t - 1) * lr_decay)
    theta = theta - lr_t * (g / (sqrt(G) + eps))
    return theta, G


class Adagrad(Optimizer):
    r"""Adagrad: per-parameter step sizes from the running *sum* of squared gradients.

    ``G`` starts at ``initial_accumulator_value``; the update, as it runs::

        {rule}

    .. note:: The lecture writes ``theta = theta - lr / sqrt(G - eps) * g``. The minus sign is a
       typo: ``eps`` is there to keep the denominator away from zero, and ``sqrt(G - eps)`` is NaN
       for every parameter whose gradients so far are all smaller than ``sqrt(eps)`` (e.g. the
       first step of a parameter with zero gradient). Implemented is PyTorch's
       ``sqrt(G) + eps`` (``test_adagrad_lecture_sqrt_G_minus_eps_is_a_typo``).

    ``fused``: as for :class:`~chainrule.optim.SGD` (one compiled pass when numba is installed,
    else NumPy ufuncs; both run the rule above, bit for bit).
    """

    rule = UpdateRule(adagrad, state={"G": "sum"})
    _n_scratch = 1

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False,
                 fused: bool | None = None):
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
        super().__init__(params, defaults, fused)

    def _validate(self, group):
        for k in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_range(k, group[k])

    def _initial(self, key, x, kw):
        return np.full_like(x, kw["initial_accumulator_value"])  # G_0


def rmsprop(theta, g, Eg2, Eg, b, *, lr, alpha, eps, weight_decay, momentum, centered, maximize, eps_in_sqrt):
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * theta
    Eg2 = alpha * Eg2 + (1 - alpha) * (g * g)
    if centered:
        Eg = alpha * Eg + (1 - alpha) * g
    s = Eg2 - Eg * Eg if centered else Eg2
    denom = sqrt(s + eps) if eps_in_sqrt else sqrt(s) + eps
    if momentum > 0:
        b = momentum * b + g / denom
        theta = theta - lr * b
    else:
        theta = theta - lr * (g / denom)
    return theta, Eg2, Eg, b


class RMSprop(Optimizer):
    r"""RMSProp: Adagrad with a decaying average ``E[g^2]`` instead of a sum.

    ``Eg2`` is ``E[g^2]`` and ``Eg`` is ``E[g]`` (as :meth:`describe` prints them)::

        {rule}

    .. note:: The lecture writes ``theta = theta - lr / sqrt(E[g^2] + eps) * g`` with
       ``alpha = 0.9``: epsilon *inside* the square root. PyTorch (and the default here) adds it
       outside, ``sqrt(E[g^2]) + eps``, and uses ``alpha = 0.99``. The two differ whenever
       ``E[g^2]`` is comparable to ``eps`` (inside, the floor on the denominator is ``sqrt(eps) =
       1e-4``; outside it is ``1e-8``). ``eps_in_sqrt=True`` runs the lecture's form
       (``test_rmsprop_eps_in_sqrt_is_the_lecture_form``).

    ``fused``: as for :class:`~chainrule.optim.SGD` (one compiled pass when numba is installed,
    else NumPy ufuncs; both run the rule above, bit for bit).
    """

    rule = UpdateRule(rmsprop, state={"Eg2": "square_avg", "Eg": "grad_avg", "b": "momentum_buffer"},
                      symbols={"Eg2": "E[g^2]", "Eg": "E[g]"})
    _n_scratch = 1

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, *, maximize: bool = False, eps_in_sqrt: bool = False,
                 fused: bool | None = None):
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize, eps_in_sqrt=eps_in_sqrt)
        super().__init__(params, defaults, fused)

    def _validate(self, group):
        check_range("lr", group["lr"])
        check_range("alpha", group["alpha"], 0.0, 1.0)
        check_range("eps", group["eps"])
        check_range("weight_decay", group["weight_decay"])
        check_range("momentum", group["momentum"])


def adam(theta, g, m, v, v_max, *, lr, beta1, beta2, eps, weight_decay, t, amsgrad, maximize, decoupled_weight_decay):
    if maximize:
        g = -g
    if decoupled_weight_decay and weight_decay != 0:
        theta = (1 - lr * weight_decay) * theta  # decoupled weight decay (AdamW)
    elif weight_decay != 0:
        g = g + weight_decay * theta
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    if amsgrad:
        v_max = maximum(v_max, v)  # amsgrad: the largest v so far
    m_hat = m / (1 - beta1**t)
    v_hat = (v_max if amsgrad else v) / (1 - beta2**t)
    theta = theta - lr * (m_hat / (sqrt(v_hat) + eps))
    return theta, m, v, v_max


class Adam(Optimizer):
    r"""Adam: momentum (first moment ``m``) plus RMSProp (second moment ``v``), bias-corrected.

    ::

        {rule}

    This is the lecture's form, with the bias corrections ``m_hat``, ``v_hat`` written out.
    (``(1 - beta2) * g * g`` multiplies in PyTorch's order, ``((1 - beta2) * g) * g``.)

    .. note:: PyTorch folds the corrections into scalars,
       ``theta -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``: the same
       number up to rounding (over 100 steps float64 trajectories agree to ~1e-13 relative,
       float32 to ~1e-5; ``test_matches_torch``). No flag: the results are equal.

    ``fused``: as for :class:`~chainrule.optim.SGD` (one compiled pass when numba is installed,
    else NumPy ufuncs; both run the rule above, bit for bit).
    """

    rule = UpdateRule(adam, state={"m": "exp_avg", "v": "exp_avg_sq", "v_max": "max_exp_avg_sq"})

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False, fused: bool | None = None):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults, fused)

    def _validate(self, group):
        check_range("lr", group["lr"])
        check_range("eps", group["eps"])
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        check_range("betas[0]", betas[0], 0.0, 1.0, hi_open=True)
        check_range("betas[1]", betas[1], 0.0, 1.0, hi_open=True)
        check_range("weight_decay", group["weight_decay"])

    def _rule_kwargs(self, group):
        beta1, beta2 = group["betas"]
        return {**group, "beta1": beta1, "beta2": beta2}


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter): the decay shrinks the weights
    directly, ``theta = theta - lr * weight_decay * theta``, instead of entering ``g`` (where
    Adam's ``1 / sqrt(v_hat)`` would rescale it). PyTorch's defaults: ``weight_decay=1e-2``."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 fused: bool | None = None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True,
                         fused=fused)
