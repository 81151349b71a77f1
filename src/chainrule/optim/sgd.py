"""Stochastic gradient descent with momentum and Nesterov momentum (lecture: "How do we actually
update the weights?", Concept #2: Momentum)."""

from __future__ import annotations

import numpy as np

from ..autograd import _stamp
from . import _fused
from .optimizer import Optimizer, _fmt, check_range


class SGD(Optimizer):
    r"""Gradient descent: ``theta = theta - lr * g``, optionally with momentum.

    Full-batch gradient descent, pure (one-example) SGD and minibatch gradient descent are all this
    one optimizer: they differ only in how many examples the loss that produced ``g`` averaged over
    (the whole training set, one example ``j``, or a minibatch ``J``). The batch size belongs to the
    data loader, not to the optimizer. (The lecture's minibatch rule sums the per-example gradients;
    with a ``reduction="mean"`` loss the sum is divided by ``|J|``, which only rescales ``lr``.)

    The update, one equation per line (``g`` is the gradient of the loss at ``theta``)::

        g = -g                                     if maximize
        g = g + weight_decay * theta               if weight_decay != 0
        b = momentum * b + (1 - dampening) * g     if momentum != 0   (b = g on the first step)
        g = g + momentum * b   if nesterov, else   g = b
        theta = theta - lr * g

    Arguments and defaults are PyTorch's (``torch.optim.SGD``), in PyTorch's order.

    .. note:: **Momentum form.** The lecture keeps a velocity that includes the learning rate,
       ``v_t = gamma v_{t-1} + lr g_t; theta_{t+1} = theta_t - v_t``. PyTorch (and the default
       here) keeps the buffer without it, ``b_t = mu b_{t-1} + g_t; theta_{t+1} = theta_t - lr b_t``.
       With a constant ``lr`` the two are identical (``v_t = lr b_t``; see
       ``test_momentum_lecture_form_equals_pytorch_form_for_constant_lr``). When ``lr`` changes
       during the run (a learning-rate schedule) they differ: the lecture's velocity keeps old steps
       at the old ``lr``, PyTorch rescales the whole buffer at once. ``lr_in_velocity=True`` runs the
       lecture's form (``test_momentum_forms_differ_under_a_schedule``).

    .. note:: **Nesterov.** The lecture evaluates the gradient at the look-ahead point,
       ``v_t = gamma v_{t-1} + lr grad f(theta_t - gamma v_{t-1}); theta_{t+1} = theta_t - v_t``.
       That needs a second gradient evaluation per step; PyTorch (and the default here) uses the
       change of variables ``phi_t = theta_t - gamma v_{t-1}`` (the parameters *are* the look-ahead
       point), under which the update becomes ``phi_{t+1} = phi_t - lr (g_t + gamma b_t)`` with
       ``b_t = gamma b_{t-1} + g_t`` and ``g_t = grad f(phi_t)``. Same trajectory, shifted by
       ``gamma v_{t-1}``: ``test_nesterov_lookahead_formula_matches_reparametrised_sgd``.

    ``fused`` (PyTorch's name): ``None`` (default) runs the update as one compiled pass per
    parameter when numba is installed (``pip install chainrule[fast]``), else as NumPy ufuncs;
    ``True`` requires numba; ``False`` always uses the ufuncs. Both give bit-identical results
    (the kernel does the same float operations in the same order; ``chainrule.optim._fused``).
    Non-contiguous parameters and float16 always take the ufuncs.
    """

    _n_scratch = 2

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 lr_in_velocity: bool = False, fused: bool | None = None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, lr_in_velocity=lr_in_velocity)
        super().__init__(params, defaults, fused)

    def step(self, closure=None):
        """One update of every parameter that has a gradient (see :meth:`Optimizer.step`)."""
        if closure is not None:
            return super().step(closure)
        groups = self.param_groups
        for group in groups:
            if group["momentum"] != 0 or group["weight_decay"] != 0 or group["maximize"]:
                return super().step()
        # Plain SGD, theta = theta - lr * g: the two ufuncs of _update, called directly on parameters
        # small enough for them (the base class would take this same path after a few calls of
        # Python bookkeeping that cost more than the update on a small model).
        state, views_of = self.state, self._views
        for group in groups:
            lr = group["lr"]
            for p in group["params"]:
                gt = p.grad
                if gt is None:
                    continue
                x, g = p._data, gt._data
                shape = x.shape
                if x.size >= 8192 or g.shape != shape or not x.flags.c_contiguous:
                    self._step_param(p, group)  # compiled kernel, blocks, or the shape error
                    continue
                if p not in state:
                    state[p] = {}  # as _step_param: a (stateless) entry per stepped parameter
                views = views_of.get((x.dtype, shape))
                if views is None:
                    self._step_param(p, group)  # creates the scratch views (the first step)
                    continue
                s = views[1]
                np.multiply(g, lr, s)       # lr * g, rounded to the parameter's dtype as in _update
                np.subtract(x, s, x)        # theta = theta - lr * g
                _stamp(p)                   # as _step_param: an in-place update
        return None

    def _fused_update(self, x, g, group, state):
        mu = group["momentum"]
        if mu == 0 and x.size < 8192:
            # Plain SGD is two ufunc passes: below ~8K elements they beat the kernel's call overhead
            # (1.8 vs 2.2 us at 1K elements, 4.4 vs 3.7 us at 16K, bench/bench_optim.py --elements;
            # both paths give the same bits).
            return False
        lr, wd, maximize = group["lr"], group["weight_decay"], bool(group["maximize"])
        f = x.dtype.type  # constants rounded to the parameter's dtype, as NumPy does
        if mu == 0:
            if not _fused.usable(x, g):
                return False
            self._kernel["sgd"](x.reshape(-1), g.reshape(-1), f(lr), f(wd), maximize)
            return True
        b = state["momentum_buffer"]
        if not _fused.usable(x, g, b):
            return False
        liv = bool(group["lr_in_velocity"])
        scale = lr if liv else 1.0
        self._kernel["sgd_momentum"](x.reshape(-1), g.reshape(-1), b.reshape(-1), f(lr), f(mu),
                                     f((1.0 - group["dampening"]) * scale), f(scale), f(wd), maximize,
                                     bool(state.get("first")), bool(group["nesterov"]), liv)
        return True

    def _validate(self, group):
        check_range("lr", group["lr"])
        check_range("momentum", group["momentum"])
        check_range("dampening", group["dampening"], 0.0, 1.0)
        check_range("weight_decay", group["weight_decay"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"nesterov=True needs momentum > 0 and dampening = 0, got momentum={group['momentum']!r}, "
                             f"dampening={group['dampening']!r}")

    def _begin(self, p, group, state):
        if group["momentum"] != 0 and state.get("momentum_buffer") is None:
            state["momentum_buffer"] = np.empty_like(p)
            return {"first": True}  # b = g on the first step (not (1 - dampening) g)
        return None

    def _update(self, p, g, group, state, scratch):
        lr, mu, dampening, weight_decay = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
        d, s = scratch
        if group["maximize"]:
            g = np.negative(g, out=d)                           # g = -g
        if weight_decay != 0:
            g = np.add(g, np.multiply(p, weight_decay, out=s), out=d)   # g = g + weight_decay * theta
        if mu == 0:
            step = np.multiply(g, lr, out=s)                    # lr * g
        else:
            scale = lr if group["lr_in_velocity"] else 1.0     # lecture: v = lr b
            b = state["momentum_buffer"]
            if state.get("first"):
                np.multiply(g, scale, out=b)                    # b = g on the first step
            else:
                np.multiply(b, mu, out=b)                       # b = mu * b ...
                np.add(b, np.multiply(g, (1.0 - dampening) * scale, out=s), out=b)  # ... + (1 - dampening) g
            if group["nesterov"]:
                step = np.multiply(b, mu, out=s)                # mu * b
                if group["lr_in_velocity"]:
                    np.add(step, np.multiply(g, lr, out=d), out=step)        # lr g + mu v
                else:
                    np.multiply(np.add(step, g, out=step), lr, out=step)     # lr (g + mu b)
            else:
                step = b if group["lr_in_velocity"] else np.multiply(b, lr, out=s)  # v, or lr * b
        np.subtract(p, step, out=p)                             # theta = theta - step

    def _equations(self, group):
        lr, mu, wd = (_fmt(group[k]) for k in ("lr", "momentum", "weight_decay"))
        eqs = ["g = grad f(theta)"]
        if group["maximize"]:
            eqs.append("g = -g                                  (maximize)")
        if group["weight_decay"] != 0:
            eqs.append(f"g = g + {wd} * theta")
        if group["momentum"] == 0:
            return eqs + [f"theta = theta - {lr} * g"]
        if group["lr_in_velocity"]:
            eqs.append(f"v = {mu} * v + {_fmt(1 - group['dampening'])} * {lr} * g        (v = {lr} * g at t = 1)")
            last = f"theta = theta - ({lr} * g + {mu} * v)" if group["nesterov"] else "theta = theta - v"
            return eqs + [last]
        eqs.append(f"b = {mu} * b + {_fmt(1 - group['dampening'])} * g        (b = g at t = 1)")
        last = f"theta = theta - {lr} * (g + {mu} * b)" if group["nesterov"] else f"theta = theta - {lr} * b"
        return eqs + [last]
