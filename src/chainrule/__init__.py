"""chainrule: reverse-mode automatic differentiation and neural networks on NumPy.

``import chainrule as cr`` gives a PyTorch-shaped surface: tensors, autograd, ``cr.nn``,
``cr.optim``. This module only re-exports; the logic lives in the submodules.
"""

from . import functional
from .autograd import (
                       GradcheckError,
                       detect_anomaly,
                       enable_grad,
                       grad,
                       gradcheck,
                       gradgradcheck,
                       hessian,
                       hvp,
                       is_grad_enabled,
                       jacobian,
                       no_grad,
                       set_grad_enabled,
)
from .functional import (
                       cat,
                       clamp,
                       clip,
                       concatenate,
                       expand,
                       flatten,
                       log_softmax,
                       logsumexp,
                       mean,
                       min,  # noqa: A004
                       one_hot,
                       pad,
                       softmax,
                       squeeze,
                       stack,
                       std,
                       unsqueeze,
                       var,
                       where,
)
from .ops import (  # noqa: A004 - mirror torch.max / torch.sum
                       abs,
                       argmax,
                       argmin,
                       broadcast_to,
                       cos,
                       exp,
                       log,
                       log1p,
                       matmul,
                       max,
                       maximum,
                       minimum,
                       prod,
                       relu,
                       reshape,
                       sigmoid,
                       sign,
                       sin,
                       sqrt,
                       sum,
                       swapaxes,
                       tanh,
                       transpose,
)
from .tensor import (
                       Tensor,
                       arange,
                       as_tensor,
                       bool_,
                       empty,
                       eye,
                       float16,
                       float32,
                       float64,
                       full,
                       full_like,
                       get_rng,
                       int32,
                       int64,
                       linspace,
                       manual_seed,
                       ones,
                       ones_like,
                       rand,
                       randint,
                       randn,
                       randn_like,
                       tensor,
                       zeros,
                       zeros_like,
)

from . import models, nn
from .io import load, load_model, save

from . import optim  # noqa: E402

__version__ = "0.1.0"

from . import analysis, viz  # noqa: E402 - experiment analysis and graph pictures (matplotlib, sklearn imported lazily)
from . import distributed  # data-parallel training on MPI; imports mpi4py lazily, only when launched by mpiexec
from . import cost  # noqa: E402 - street-fighting math: estimate and measure parameters, memory, compute
from . import data, datasets  # noqa: E402 - DataLoader and offline data sets (scikit-learn imported lazily)
from .train import History, Trainer, evaluate, fit  # noqa: E402 - the fit loop
