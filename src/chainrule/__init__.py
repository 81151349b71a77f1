"""chainrule: reverse-mode automatic differentiation and neural networks on NumPy.

``import chainrule as cr`` gives a PyTorch-shaped surface. This module only re-exports; the logic
lives in the submodules. Nothing heavy is imported here: scikit-learn, matplotlib, safetensors,
tqdm and mpi4py are imported inside the functions that need them.
"""

# The autodiff core: tensors, primitives, the engine, composites.
from . import functional
from .autograd import (detect_anomaly, enable_grad, grad, hessian, hvp, is_grad_enabled, jacobian, no_grad,
                       set_grad_enabled)
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .functional import (amin, cat, clamp, clip, concatenate, dot, expand, flatten, log_softmax, logsumexp, mean, mm,
                         norm, one_hot, pad, permute, softmax, squeeze, stack, std, t, transpose, unsqueeze, var, where)
from .functional import max, min  # noqa: A004 - mirror torch.max / torch.min
from .ops import pow  # noqa: A004 - mirrors torch.pow
from .ops import (abs, add, argmax, argmin, broadcast_to, cos, div, exp, floor, log, log1p, matmul, maximum, minimum, mul,
                  neg, prod, relu, reshape, sigmoid, sign, sin, sqrt, sub, swapaxes, tanh)
from .ops import round  # noqa: A004 - mirrors torch.round
from .ops import max as amax
from .ops import sum  # noqa: A004 - mirrors torch.sum
from .functional_torch import (allclose, argsort, bmm, ceil, chunk, cumsum, diag, einsum, equal, flip, gather,
                               index_select, isclose, isfinite, isinf, isnan, masked_fill, masked_select, nonzero, outer,
                               reciprocal, roll, rsqrt, scatter, scatter_add, sort, split, square, topk, tril, triu, unique)
from . import tensor_methods  # noqa: F401 - binds more of torch's Tensor methods
from .tensor import Size, Tensor, bool_, float16, float32, float64, int32, int64
from .creation import bernoulli, multinomial
from .creation import (arange, as_tensor, empty, empty_like, eye, from_numpy, full, full_like, get_default_dtype,
                       get_rng, is_tensor, linspace, manual_seed, normal, numel, ones, ones_like, rand, rand_like, randint,
                       randn, randn_like, randperm, seed, set_default_dtype, tensor, zeros, zeros_like)
# PyTorch's spellings, so `import chainrule as torch` runs torch code: dtype aliases, devices.
from .compat import *  # noqa: F403
from .device import accelerator, backends, cuda, device, get_default_device, mps, set_default_device
from .device import (are_deterministic_algorithms_enabled, get_num_threads, set_num_threads,
                     use_deterministic_algorithms)
from . import autograd
from .compile import Compiled, compile  # noqa: A004 - mirrors torch.compile

# Which library multiplies the matrices: MKL with chainrule[mkl], else NumPy's BLAS.
from ._blas import info as blas_info
from ._blas import use as set_blas

# Models, optimizers, training, and the tools around them.
from . import models, nn, optim
from . import linalg, testing  # torch.linalg.norm, torch.testing.assert_close
from . import data, datasets, utils  # utils.data: torch.utils.data's Dataset/DataLoader
from .io import load, load_model, save
from .train import History, Trainer, evaluate, fit
from . import cost  # street-fighting math: estimate and measure parameters, memory, compute
from . import analysis, viz  # experiment analysis and computation-graph pictures
from . import onnx  # export to ONNX (the onnx package is imported only when exporting)
from . import loggers  # CSV and TensorBoard training logs (fit callbacks)
from . import distributed  # data-parallel training on MPI (mpi4py imported only under mpiexec)

from ._version import __version__
