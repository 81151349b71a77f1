"""Optimizers (``cr.optim``): the lecture's update rules with PyTorch's names and defaults.

``SGD`` (gradient descent, momentum, Nesterov), ``Adagrad``, ``RMSprop``, ``Adam``, ``AdamW`` and
``Newton`` (second order: exact Hessian or Hessian-free Newton-CG); learning-rate schedules live in
:mod:`chainrule.optim.lr_scheduler`. ``print(opt.describe())`` shows the equations an optimizer runs.

Each elementwise optimizer's update is one function written as the lecture writes it (``adam`` in
adaptive.py: ``m = beta1 * m + (1 - beta1) * g``...); :mod:`chainrule.optim.rule` turns it into the
NumPy program, the compiled one-pass kernel and the ``describe()`` text. To add an optimizer: write
its rule function (arrays ``theta, g, *state`` positional, scalars keyword-only, variants as flags,
ending ``return theta, *state``), and a subclass of :class:`Optimizer` with
``rule = UpdateRule(fn, state={"m": "exp_avg", ...})`` (torch's state keys), its ``__init__``
(torch's arguments and defaults) and ``_validate``; a ``{rule}`` line in its docstring shows the rule.
"""

from .optimizer import Optimizer
from .sgd import SGD
from .adaptive import Adagrad, Adam, AdamW, RMSprop
from .newton import Newton
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Newton", "lr_scheduler"]
