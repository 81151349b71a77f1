"""Optimizers (``cr.optim``): the lecture's update rules with PyTorch's names and defaults.

``SGD`` (gradient descent, momentum, Nesterov), ``Adagrad``, ``RMSprop``, ``Adam``, ``AdamW`` and
``Newton`` (second order: exact Hessian or Hessian-free Newton-CG); learning-rate schedules live in
:mod:`chainrule.optim.lr_scheduler`. ``print(opt.describe())`` shows the equations an optimizer runs.
"""

from .optimizer import Optimizer
from .sgd import SGD
from .adaptive import Adagrad, Adam, AdamW, RMSprop
from .newton import Newton
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Newton", "lr_scheduler"]
