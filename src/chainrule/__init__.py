"""chainrule: reverse-mode automatic differentiation and neural networks on NumPy.

``import chainrule as cr`` gives a PyTorch-shaped surface. This module only re-exports; the logic
lives in the submodules. Nothing heavy is imported here: scikit-learn, matplotlib, safetensors,
tqdm and mpi4py are imported inside the functions that need them.
"""

# The autodiff core: tensors, primitives, the engine, composites.
from . import functional
from .autograd import (GradcheckError, detect_anomaly, enable_grad, grad, gradcheck, gradgradcheck, hessian, hvp,
                       is_grad_enabled, jacobian, no_grad, set_grad_enabled)
from .functional import (cat, clamp, clip, concatenate, expand, flatten, log_softmax, logsumexp, mean, one_hot, pad,
                         softmax, squeeze, stack, std, unsqueeze, var, where)
from .functional import min  # noqa: A004 - mirrors torch.min
from .ops import (abs, argmax, argmin, broadcast_to, cos, exp, log, log1p, matmul, maximum, minimum, prod, relu, reshape,
                  sigmoid, sign, sin, sqrt, swapaxes, tanh, transpose)
from .ops import max, sum  # noqa: A004 - mirror torch.max / torch.sum
from .tensor import (Tensor, arange, as_tensor, bool_, empty, eye, float16, float32, float64, full, full_like, get_rng,
                     int32, int64, linspace, manual_seed, ones, ones_like, rand, randint, randn, randn_like, tensor, zeros,
                     zeros_like)

# Which library multiplies the matrices: MKL with chainrule[mkl], else NumPy's BLAS.
from ._blas import info as blas_info
from ._blas import use as set_blas

# Models, optimizers, training, and the tools around them.
from . import models, nn, optim
from . import data, datasets
from .io import load, load_model, save
from .train import History, Trainer, evaluate, fit
from . import cost  # street-fighting math: estimate and measure parameters, memory, compute
from . import analysis, viz  # experiment analysis and computation-graph pictures
from . import onnx  # export to ONNX (the onnx package is imported only when exporting)
from . import loggers  # CSV and TensorBoard training logs (fit callbacks)
from . import distributed  # data-parallel training on MPI (mpi4py imported only under mpiexec)

__version__ = "0.1.0"
