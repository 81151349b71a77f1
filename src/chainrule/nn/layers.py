"""Layers, containers and loss modules, each the twin of the ``torch.nn`` class of the same name."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from .. import functional as F
from .. import ops
from ..device import as_device
from ..tensor import DEFAULT_DTYPE, Tensor
from . import init
from ._checks import match_dtype, param, positive_int
from .module import Module


# ----- the affine layer ---------------------------------------------------------------------------
class Linear(Module):
    """Affine map ``y = x W^T + b`` with ``W`` of shape (out_features, in_features), as ``torch.nn.Linear``.

    In the lecture's notation a layer computes ``z = W x + b`` for one column vector x; on a batch of
    rows this is ``X W^T + b`` (one fused primitive, :func:`chainrule.ops.linear`).
    Initialisation is PyTorch's: ``kaiming_uniform_(W, a=sqrt(5))``, i.e. ``W, b ~ U(-1/sqrt(in), 1/sqrt(in))``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: Any = None, dtype: Any = None):
        super().__init__()
        as_device(device)
        self.in_features = positive_int("Linear", "in_features", in_features)
        self.out_features = positive_int("Linear", "out_features", out_features)
        dtype = np.dtype(DEFAULT_DTYPE if dtype is None else dtype)
        self.weight = param(np.empty((self.out_features, self.in_features), dtype))
        self.bias = param(np.empty((self.out_features,), dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Any, activation: str | None = None) -> Tensor:
        """``x W^T + b``; with ``activation`` ('relu', 'tanh', 'sigmoid') ``g(x W^T + b)`` computed in
        place, keeping no pre-activation (``ops.linear_act``; what :class:`Sequential` does for a
        Linear followed by that activation)."""
        w, b = self.weight, self.bias
        if not isinstance(x, Tensor) or x._data.dtype != w._data.dtype:  # the usual case skips the call
            x = match_dtype(type(self).__name__, x, w.dtype)
        if activation is None:
            return ops.linear(x, w) if b is None else ops.linear(x, w, b)
        return ops.linear_act(x, w, b, activation=activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Identity(Module):
    """``y = x``."""

    def __init__(self, *args: Any, **kwargs: Any):  # torch accepts and ignores arguments
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class Flatten(Module):
    """Merge dims ``start_dim..end_dim`` (default: all but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# ----- activations --------------------------------------------------------------------------------
class ReLU(Module):
    """``g(z) = max(0, z)``."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(x)


class Sigmoid(Module):
    """``g(z) = sigma(z) = 1 / (1 + e^{-z})``."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.sigmoid(x)


class Tanh(Module):
    """``g(z) = tanh(z)``."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.tanh(x)


class LeakyReLU(Module):
    """``g(z) = z`` for z > 0, ``negative_slope * z`` otherwise."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class GELU(Module):
    """``g(z) = z Phi(z)`` (``approximate='tanh'`` for the tanh approximation)."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    """``softmax(z)_k = e^{z_k} / sum_j e^{z_j}`` along ``dim``."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """``log softmax(z) = z - logsumexp(z)`` along ``dim``."""

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.dim)


class Dropout(Module):
    """Zero each activation with probability ``p`` while training.

    ``p`` is the probability of *dropping* (PyTorch's convention). The lecture's p is the *keep*
    probability: "with probability (1-p) set an activation to zero ... when making predictions,
    multiply weights by p". So lecture p = 1 - this p.

    ``scale=True`` (default, inverted dropout): survivors are multiplied by 1/(1-p) in training, and
    evaluation is the identity. ``scale=False`` (the lecture's original form): training only zeroes,
    and evaluation multiplies by the keep probability 1-p. Both give the expected activation
    ``E[train output] = eval output``, so the two differ only in where the rescaling happens.
    (The lecture multiplies the next layer's *weights* by p at prediction; for the linear layer
    that follows, scaling its input activations by p is the same thing.)
    """

    def __init__(self, p: float = 0.5, scale: bool = True):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p (the drop probability) must be in [0, 1], got {p!r}")
        self.p, self.scale = float(p), bool(scale)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training, self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}" + ("" if self.scale else ", scale=False")


# ----- containers ---------------------------------------------------------------------------------
class ModuleDict(Module):
    """An ordered ``str -> Module`` mapping whose modules are named by their keys."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None):
        super().__init__()
        self._mods: OrderedDict[str, Module] = OrderedDict()
        if modules is not None:
            self.update(modules)

    def _child_items(self) -> Iterable[tuple[str, Any]]:
        yield from self._mods.items()
        yield from ((k, v) for k, v in vars(self).items() if k != "_mods")

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: {key!r} must be a Module, got {type(module).__name__}")
        self._mods[str(key)] = module

    def __getitem__(self, key: str) -> Module:
        return self._mods[key]

    def add_module(self, name: str, module: Module) -> None:
        """Append ``module`` under the key ``name`` (in a Sequential it runs last, as in torch)."""
        ModuleDict.__setitem__(self, name, module)

    def __getattr__(self, name: str) -> Module:  # torch: children are attributes too (`seq.fc1`, `getattr(seq, "0")`)
        mods = self.__dict__.get("_mods")
        if mods is not None and name in mods:
            return mods[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")

    def __delitem__(self, key: str) -> None:
        del self._mods[key]

    def __contains__(self, key: object) -> bool:
        return key in self._mods

    def __len__(self) -> int:
        return len(self._mods)

    def __iter__(self) -> Iterator[str]:
        return iter(self._mods)

    def keys(self):
        return self._mods.keys()

    def values(self):
        return self._mods.values()

    def items(self):
        return self._mods.items()

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        for k, m in (modules.items() if isinstance(modules, Mapping) else modules):
            self[k] = m


class ModuleList(ModuleDict):
    """A list of modules, named 0, 1, 2, ... like ``torch.nn.ModuleList``."""

    def __init__(self, modules: Iterable[Module] | None = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _renumber(self, mods: list[Module]) -> None:
        self._mods = OrderedDict()
        for m in mods:
            ModuleDict.__setitem__(self, str(len(self._mods)), m)

    def _index(self, i: int) -> int:
        n = len(self._mods)
        if not -n <= i < n:
            raise IndexError(f"{type(self).__name__}: index {i} is out of range for {n} modules")
        return i % n

    def __getitem__(self, i):  # type: ignore[override]
        mods = list(self._mods.values())
        if isinstance(i, slice):
            return type(self)(mods[i])
        return mods[self._index(i)]

    def __setitem__(self, i, module: Module) -> None:  # type: ignore[override]
        if isinstance(i, str) and not i.isdigit():
            raise TypeError(f"{type(self).__name__} indices are integers, got {i!r}")
        ModuleDict.__setitem__(self, str(self._index(int(i))), module)

    def __delitem__(self, i) -> None:  # type: ignore[override]
        mods = list(self._mods.values())
        del mods[i if isinstance(i, slice) else self._index(i)]
        self._renumber(mods)

    def __iter__(self) -> Iterator[Module]:  # type: ignore[override]
        return iter(list(self._mods.values()))

    def __contains__(self, m: object) -> bool:
        return any(m is x for x in self._mods.values())

    def append(self, module: Module) -> ModuleList:
        ModuleDict.__setitem__(self, str(len(self._mods)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        mods = list(self._mods.values())
        mods.insert(index, module)
        self._renumber(mods)


class Sequential(ModuleList):
    """Apply modules in order: ``Sequential(f1, f2, f3)(x) = f3(f2(f1(x)))``; children are named
    0, 1, 2, ... (or by the keys of an OrderedDict), as in ``torch.nn.Sequential``.

    A :class:`Linear` (or a ``Conv1d`` / ``Conv2d``) directly followed by :class:`ReLU`, :class:`Tanh`
    or :class:`Sigmoid` runs through ``ops.linear_act``: the same nodes, numbers and gradients, but the activation runs in
    place on the product, so the pre-activation is not kept for backward (one batch x width array
    less per hidden layer, as in PyTorch). Calling the modules one by one keeps it."""

    def __init__(self, *modules: Module | Mapping[str, Module]):
        Module.__init__(self)
        self._mods = OrderedDict()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for k, m in modules[0].items():
                ModuleDict.__setitem__(self, k, m)
        else:
            self.extend(modules)  # type: ignore[arg-type]

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, str):
            return self._mods[i]
        if isinstance(i, slice):
            return Sequential(OrderedDict(list(self._mods.items())[i]))
        return super().__getitem__(i)

    def forward(self, x: Any) -> Any:
        mods = self._mods
        if len(mods) == 1:  # one layer (logistic regression): nothing to fuse
            for m in mods.values():
                return m(x)
        mods = list(mods.values())
        i, n = 0, len(mods)
        while i < n:
            m = mods[i]
            act = _FUSED.get(type(mods[i + 1])) if i + 1 < n and type(m) in _FUSES_ACTIVATION else None
            if act is None:
                x = m(x)
                i += 1
            else:
                x = m(x, activation=act)
                i += 2
        return x


# Activation modules that Sequential folds into the Linear before them (exact types: a subclass
# may override forward).
_FUSED = {ReLU: "relu", Tanh: "tanh", Sigmoid: "sigmoid"}
# Layers whose forward takes ``activation=`` (exact types again); nn/conv.py adds Conv1d and Conv2d.
_FUSES_ACTIVATION: set[type] = {Linear}


# ----- losses -------------------------------------------------------------------------------------
class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """``l = -z_y + log sum_j e^{z_j}`` on logits z (see :func:`chainrule.functional.cross_entropy`)."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(reduction)
        self.weight, self.ignore_index, self.label_smoothing = weight, ignore_index, label_smoothing

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return F.cross_entropy(input, target, self.weight, self.reduction, self.label_smoothing, self.ignore_index)


class NLLLoss(_Loss):
    """``l = -w_y log p_y`` on log-probabilities."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction)
        self.weight, self.ignore_index = weight, ignore_index

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return F.nll_loss(input, target, self.weight, self.reduction, self.ignore_index)


class BCEWithLogitsLoss(_Loss):
    """The lecture's logistic loss ``-y log sigma(z) - (1-y) log(1 - sigma(z))`` on logits z."""

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None):
        super().__init__(reduction)
        self.weight, self.pos_weight = weight, pos_weight

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)


class BCELoss(_Loss):
    """``-y log p - (1-y) log(1-p)`` on probabilities p (prefer :class:`BCEWithLogitsLoss`)."""

    def __init__(self, weight: Any = None, reduction: str = "mean"):
        super().__init__(reduction)
        self.weight = weight

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)


class MSELoss(_Loss):
    """``(x - y)^2``."""

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return F.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """``|x - y|``."""

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return F.l1_loss(input, target, self.reduction)


class HuberLoss(_Loss):
    """``0.5 d^2`` for |d| < delta, ``delta (|d| - delta/2)`` beyond."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        if delta <= 0:
            raise ValueError(f"HuberLoss: delta must be > 0, got {delta}")
        self.delta = delta

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return F.huber_loss(input, target, self.reduction, self.delta)


class SmoothL1Loss(_Loss):
    """``0.5 d^2 / beta`` for |d| < beta, ``|d| - beta/2`` beyond (Huber divided by ``beta``)."""

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        if beta < 0:
            raise ValueError(f"SmoothL1Loss: beta must be >= 0, got {beta}")
        self.beta = beta

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return F.smooth_l1_loss(input, target, self.reduction, self.beta)


class KLDivLoss(Module):
    """``target (log target - input)`` on log-probabilities (``reduction='batchmean'`` is the KL divergence)."""

    def __init__(self, reduction: str = "mean", log_target: bool = False):
        super().__init__()
        if reduction not in ("mean", "sum", "none", "batchmean"):
            raise ValueError(f"KLDivLoss: reduction must be 'mean', 'sum', 'none' or 'batchmean', got {reduction!r}")
        self.reduction, self.log_target = reduction, log_target

    def forward(self, input: Any, target: Any) -> Tensor:  # noqa: A002
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


# ----- regularisation -----------------------------------------------------------------------------
def l2_penalty(model: Module, lam: float, include_bias: bool = False) -> Tensor:
    """The lecture's weight regulariser ``lam/2 * sum_l ||W^(l)||_F^2``.

    Sums over parameters whose name ends in ``weight`` (all parameters with ``include_bias=True``).
    Add it to the data loss: ``loss = F.cross_entropy(model(x), y) + l2_penalty(model, lam)``.

    Its gradient is ``lam * W``: exactly what ``SGD(..., weight_decay=lam)`` adds to each
    gradient, so the two give the same updates for plain SGD (there weight decay also hits biases,
    unless they are put in a parameter group with ``weight_decay=0``). For adaptive optimizers
    (Adam) the penalty's gradient is rescaled like the rest of the gradient; decoupled decay
    (AdamW) is a different method.
    """
    if lam < 0:
        raise ValueError(f"l2_penalty: lam must be >= 0, got {lam}")
    terms = [ops.sum(p * p) for n, p in model.named_parameters() if include_bias or n.endswith("weight")]
    if not terms:
        raise ValueError(f"l2_penalty: {type(model).__name__} has no parameters named '*weight' "
                         "(pass include_bias=True to penalise every parameter)")
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total * (lam / 2)
