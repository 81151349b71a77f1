"""Devices, as PyTorch names them. chainrule computes on the CPU with NumPy, so ``"cpu"`` is the one
real device: code written for ``torch.device``, ``device=`` arguments, ``.to(device)``,
``torch.cuda.is_available()`` and ``torch.accelerator`` runs unchanged, and asking for anything
else says so in one line."""

from __future__ import annotations

from types import SimpleNamespace


class device:  # noqa: N801 - torch.device
    """A device: ``device("cpu")``, ``device("cpu", 0)``, ``device("cpu:0")``. Anything but the CPU
    raises, because NumPy has no other device."""

    __slots__ = ("type", "index")

    def __init__(self, type: str | device = "cpu", index: int | None = None):  # noqa: A002 - torch's name
        if isinstance(type, device):
            type, index = type.type, type.index if index is None else index
        if not isinstance(type, str):
            raise TypeError(f"device: expected a string such as 'cpu', got {type!r}")
        name, _, idx = type.partition(":")
        if name != "cpu":
            raise RuntimeError(f"device {type!r} is not available: chainrule runs on the CPU with NumPy; use 'cpu' "
                               "(torch.cuda.is_available() is False here)")
        self.type, self.index = "cpu", int(idx) if idx else index

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and other.type == self.type

    def __hash__(self) -> int:
        return hash(self.type)

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device(type='{self.type}')" if self.index is None else f"device(type='{self.type}', index={self.index})"


CPU = device("cpu")


def as_device(d) -> device:
    """``d`` (None, a string, an int or a :class:`device`) as a device; only the CPU exists."""
    if d is None or d is CPU:
        return CPU
    if isinstance(d, int):
        raise RuntimeError(f"device {d} is not available: chainrule runs on the CPU with NumPy; use 'cpu'")
    return d if isinstance(d, device) else device(d)


_default = CPU


def set_default_device(d) -> None:
    """Set the device new tensors are made on: only ``"cpu"`` (or None) is accepted."""
    global _default
    _default = as_device(d)


def get_default_device() -> device:
    """The device new tensors are made on: always the CPU."""
    return _default


def _false() -> bool:
    return False


def _zero() -> int:
    return 0


def _no_accelerator():
    raise RuntimeError("no accelerator is available: chainrule runs on the CPU with NumPy")


# torch.cuda, torch.backends.mps and torch.accelerator, as they answer on a machine without them.
cuda = SimpleNamespace(is_available=_false, device_count=_zero, is_initialized=_false, manual_seed=lambda seed: None,
                       manual_seed_all=lambda seed: None, synchronize=lambda device=None: None, empty_cache=lambda: None,
                       current_device=_no_accelerator)
backends = SimpleNamespace(mps=SimpleNamespace(is_available=_false, is_built=_false),
                           cuda=SimpleNamespace(is_built=_false),
                           cudnn=SimpleNamespace(is_available=_false, deterministic=False, benchmark=False))
accelerator = SimpleNamespace(is_available=_false, current_accelerator=lambda check_available=False: None,
                              device_count=_zero, current_device_index=_no_accelerator)
mps = SimpleNamespace(is_available=_false, manual_seed=lambda seed: None)


# ----- threads and determinism ----------------------------------------------------------------------
_thread_limit = None  # the threadpoolctl limiter set_num_threads holds on to (None: the BLAS's own default)


def set_num_threads(n: int) -> None:
    """Limit the BLAS thread pools (NumPy's OpenBLAS, MKL) to ``n`` threads, as torch.set_num_threads
    limits its intra-op pool; needs threadpoolctl (installed with scikit-learn), else does nothing."""
    global _thread_limit
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    _thread_limit = threadpool_limits(limits=n, user_api="blas")


def get_num_threads() -> int:
    """The threads a BLAS product may use: the largest pool's limit (the core count without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        import os
        return os.cpu_count() or 1
    return max((p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"), default=1)


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Accepted for torch code: chainrule's CPU kernels are deterministic already (NumPy, no atomics)."""


def are_deterministic_algorithms_enabled() -> bool:
    """True: every chainrule kernel gives the same bits for the same inputs."""
    return True
