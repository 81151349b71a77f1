"""What an optimizer costs: state arrays per parameter, FLOPs per parameter of one step, scratch.

The table :data:`OPTIMIZERS` is the lecture's accounting (Adam keeps ``m`` and ``v``: 2 numbers per
parameter); :func:`optimizer_spec` refines it for an optimizer object (RMSprop's momentum and
centred buffers, AMSGrad's running maximum, the work arrays of the NumPy update path).
"""

from __future__ import annotations

import math
from typing import Any

from ..optim import _fused, adaptive, sgd

# name -> (state arrays per parameter, FLOPs per parameter of one step, chainrule class name)
# State: SGD keeps nothing, momentum one buffer b, Adagrad the sum G, RMSProp the average E[g^2],
# Adam m and v. Step FLOPs count the update equations one operation per element, e.g. Adam:
# m = b1 m + (1-b1) g (3), v = b2 v + (1-b2) g^2 (4), m_hat, v_hat (2), theta -= lr m_hat/(sqrt v_hat + eps) (5).
OPTIMIZERS: dict[str, tuple[int, int, str]] = {
    "sgd": (0, 2, "SGD"),
    "momentum": (1, 4, "SGD"),
    "nesterov": (1, 6, "SGD"),
    "adagrad": (1, 7, "Adagrad"),
    "rmsprop": (1, 9, "RMSprop"),
    "adam": (2, 14, "Adam"),
    "adamw": (2, 16, "AdamW"),
    "newton": (-1, 0, ""),  # exact Hessian: P x P numbers of state; see optimizer_spec
    "newton-cg": (3, 10, ""),  # Hessian-free: conjugate-gradient vectors r, p, H p (per CG iteration)
}


def optim_class(name: str):
    """The chainrule optimizer class called ``name`` ('Adam'), or None ('' for Newton)."""
    return (getattr(sgd, name, None) or getattr(adaptive, name, None)) if name else None


def _name_of(optimizer: Any) -> str:
    """The :data:`OPTIMIZERS` key of a name ('Adam', 'newton_cg') or an optimizer object."""
    if isinstance(optimizer, str):
        name = optimizer.lower().replace("_", "-")
        name = name if name in OPTIMIZERS else name.replace("-", "")
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; use one of {sorted(OPTIMIZERS)} or pass an "
                             "optimizer object")
        return name
    name = type(optimizer).__name__.lower()
    group = optimizer.param_groups[0] if getattr(optimizer, "param_groups", None) else {}
    if name == "sgd" and group.get("momentum", 0):
        name = "nesterov" if group.get("nesterov") else "momentum"
    n_params = sum(p._data.size for g in getattr(optimizer, "param_groups", []) for p in g["params"])
    if name == "newton" and n_params > group.get("exact_max_params", math.inf):
        name = "newton-cg"
    if name not in OPTIMIZERS:
        raise ValueError(f"don't know the state of optimizer {type(optimizer).__name__}; pass its kind by name, "
                         f"one of {sorted(OPTIMIZERS)}")
    return name


def _extra_state(name: str, optimizer: Any) -> int:
    """State arrays an optimizer object keeps beyond the table's: RMSprop's momentum buffer and
    centred average, AMSGrad's running maximum."""
    if isinstance(optimizer, str):
        return 0
    group = optimizer.param_groups[0]
    if name == "rmsprop":
        return bool(group.get("momentum", 0)) + bool(group.get("centered", False))
    return int(bool(name.startswith("adam") and group.get("amsgrad")))


def compiled_update(optimizer: Any) -> bool:
    """Whether this optimizer (or a default one of its kind, for a name) runs the compiled kernel
    (SGD, Adagrad, RMSprop, Adam, AdamW with numba) instead of ufuncs."""
    if not isinstance(optimizer, str):
        return getattr(optimizer, "_kernel", None) is not None
    return _fused.available()


def optimizer_spec(optimizer: Any) -> tuple[str, int, int, int, int | None]:
    """(name, state arrays per parameter (-1: a P x P Hessian), step FLOPs per parameter, scratch
    arrays, scratch block size or None when each parameter gets its own) from a name ('adam') or an
    optimizer object."""
    name = _name_of("adam" if optimizer is None else optimizer)
    cls = optim_class(OPTIMIZERS[name][2]) if isinstance(optimizer, str) or optimizer is None else type(optimizer)
    k, step, _ = OPTIMIZERS[name]
    k += _extra_state(name, optimizer or "adam")
    scratch = int(getattr(cls, "_n_scratch", 0)) if cls is not None else 0
    chunk = getattr(cls, "CHUNK", None) if cls is not None else None
    # All but Newton have a compiled one-pass update (optim/_fused.py), which needs no scratch. Plain
    # SGD uses it only for parameters of 8K+ elements, so with any bias the shared scratch exists.
    if OPTIMIZERS[name][2] and name != "sgd" and compiled_update(optimizer or "adam"):
        scratch = 0
    return name, k, step, scratch, chunk


def default_optimizer(model, name: str):
    """A chainrule optimizer for ``name`` (lr 1e-3; 'momentum' is SGD with momentum 0.9)."""
    cls = optim_class(OPTIMIZERS[name][2])
    if cls is None:
        raise ValueError(f"cannot measure with optimizer {name!r}: chainrule.optim has no class for it")
    kw = {"momentum": 0.9, "nesterov": name == "nesterov"} if name in ("momentum", "nesterov") else {}
    return cls(model.parameters(), lr=1e-3, **kw)
