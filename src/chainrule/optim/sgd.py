"""Stochastic gradient descent with momentum and Nesterov momentum (lecture: "How do we actually
update the weights?", Concept #2: Momentum)."""

from __future__ import annotations

from .optimizer import Optimizer, check_range
from .rule import UpdateRule


def sgd(theta, g, b, *, lr, momentum, dampening, weight_decay, nesterov, maximize, lr_in_velocity, first):
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * theta
    if momentum == 0:
        theta = theta - lr * g
    elif lr_in_velocity:  # the lecture's velocity v = lr * b, kept in b
        b = lr * g if first else momentum * b + (1 - dampening) * lr * g  # b = lr * g on the first step
        theta = theta - (momentum * b + lr * g if nesterov else b)
    else:
        b = g if first else momentum * b + (1 - dampening) * g  # b = g on the first step
        theta = theta - lr * (g + momentum * b if nesterov else b)
    return theta, b


class SGD(Optimizer):
    r"""Gradient descent: ``theta = theta - lr * g``, optionally with momentum.

    Full-batch gradient descent, pure (one-example) SGD and minibatch gradient descent are all this
    one optimizer: they differ only in how many examples the loss that produced ``g`` averaged over
    (the whole training set, one example ``j``, or a minibatch ``J``). The batch size belongs to the
    data loader, not to the optimizer. (The lecture's minibatch rule sums the per-example gradients;
    with a ``reduction="mean"`` loss the sum is divided by ``|J|``, which only rescales ``lr``.)

    The update, one equation per line (``g`` is the gradient of the loss at ``theta``, ``b`` the
    momentum buffer; this function is what runs, and what :meth:`describe` prints)::

        {rule}

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
    ``True`` requires numba; ``False`` always uses the ufuncs. Both run the rule above and give
    bit-identical results (``chainrule.optim._fused``). Non-contiguous parameters and float16
    always take the ufuncs, and so does plain SGD on parameters below 8K elements (two ufuncs
    cost less than a kernel call there).
    """

    rule = UpdateRule(sgd, state={"b": "momentum_buffer"})
    _n_scratch = 1

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 lr_in_velocity: bool = False, fused: bool | None = None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, lr_in_velocity=lr_in_velocity)
        super().__init__(params, defaults, fused)

    def _validate(self, group):
        check_range("lr", group["lr"])
        check_range("momentum", group["momentum"])
        check_range("dampening", group["dampening"], 0.0, 1.0)
        check_range("weight_decay", group["weight_decay"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"nesterov=True needs momentum > 0 and dampening = 0, got momentum={group['momentum']!r}, "
                             f"dampening={group['dampening']!r}")

    _counts_steps = False  # torch's SGD keeps no step count; b = g on a parameter's first step
