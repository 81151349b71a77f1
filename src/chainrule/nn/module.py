"""``Module`` and ``Parameter``: parameters found by reflection, named like PyTorch's state_dict.

A :class:`Parameter` is a marker subclass of :class:`~chainrule.tensor.Tensor`. A :class:`Module`
does not register anything in ``__setattr__``: :meth:`Module.named_parameters` looks at the
instance's attributes (in insertion order) and recurses into modules, lists, tuples and dicts. The
dotted names match ``torch.nn``'s (``layers.0.weight``), so weights copy across both ways.
Buffers (state that is not learned, like BatchNorm's running statistics) are the one thing declared:
:meth:`Module.register_buffer` names an attribute, and the state_dict lists it after the module's
parameters, as torch does (``bn.running_mean``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from ..autograd import no_grad, replayed
from ..autograd import state as _engine
from ..creation import as_ndarray
from ..device import as_device, device
from ..tensor import DEFAULT_DTYPE, Tensor

#: Set by :mod:`chainrule.cost` (a layer above this one) when it is imported: ``fn(module, rows, names,
#: input_shape, batch_size) -> note lines`` adds the estimate's per-layer costs to :meth:`Module.summary`.
SUMMARY_COSTS: Callable[..., list[str]] | None = None


class Summary(str):
    """What :meth:`Module.summary` returns: the text table (a ``str``: print it, compare it), shown as
    itself at the prompt and as an HTML table in Jupyter (``rows``: the header, then one list per layer;
    ``notes``: the totals and cost lines under it)."""

    rows: list[list[str]]
    notes: list[str]
    title: str

    def __new__(cls, text: str, rows: list[list[str]], notes: list[str], title: str = "") -> Summary:
        self = super().__new__(cls, text)
        self.rows, self.notes, self.title = rows, notes, title
        return self

    def __repr__(self) -> str:  # the table, not a quoted string with \n escapes
        return str(self)

    def _repr_html_(self) -> str:  # Jupyter: the same cells as the text, the totals under them
        from .._text import html_pre, html_table
        return html_table(self.rows[0], self.rows[1:], caption=self.title or None) + html_pre("\n".join(self.notes))


class Parameter(Tensor):
    """A tensor that is a learnable parameter of a :class:`Module` (requires grad by default).

    ``Parameter(data)`` shares ``data`` when it is a Tensor or a float32 ndarray (like
    ``torch.nn.Parameter``). Other floating NumPy data is converted to float32, chainrule's default
    (``np.ones(3)`` is float64, and one float64 parameter makes the whole model run in float64);
    pass ``cr.tensor(a, dtype=cr.float64)`` to keep float64 on purpose.
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True):
        if isinstance(data, Tensor):
            data = data._data
        else:
            data = np.asarray(data)
            if data.dtype.kind == "f" and data.dtype != DEFAULT_DTYPE:
                data = data.astype(DEFAULT_DTYPE)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` returns (empty lists under ``strict=True``)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _flatten(name: str, value: Any) -> Iterator[tuple[str, Any]]:
    """Yield ``(dotted_name, obj)`` for every Module or Parameter inside ``value``, looking through
    lists, tuples and dicts (``blocks.0``, ``heads.cls``)."""
    if isinstance(value, (Module, Parameter)):
        yield name, value
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _flatten(f"{name}.{i}", v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(f"{name}.{k}", v)


def _as_array(value: Any, key: str) -> np.ndarray:
    """A state_dict value as an ndarray: chainrule Tensors, ndarrays, and anything with
    ``.detach().cpu().numpy()`` (torch tensors), so ``load_state_dict(torch_model.state_dict())`` works."""
    try:
        return as_ndarray(value)
    except Exception as e:  # noqa: BLE001 - re-raised with the key named
        raise TypeError(f"load_state_dict: value for {key!r} is a {type(value).__name__}, "
                        "not an array; pass Tensors or ndarrays") from e


class Module:
    """Base class of every layer and model: subclass it, set attributes, write ``forward``.

    ``module(x)`` calls ``forward(x)``. Parameters and submodules are whatever attributes hold
    :class:`Parameter`\\s and :class:`Module`\\s (also inside lists, tuples and dicts); calling
    ``super().__init__()`` is customary but not required.
    """

    training: bool = True  # class default so subclasses that skip super().__init__() still work

    def __init__(self) -> None:
        self.training = True

    # ----- the forward pass --------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward(); define forward(self, x) in the subclass")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _engine.profiler is not None and hasattr(_engine.profiler, "module"):
            _engine.profiler.module(self)  # a compiled step guards on this module's training flag
        return self.forward(*args, **kwargs)

    # ----- reflection --------------------------------------------------------------------------
    def _child_items(self) -> Iterable[tuple[str, Any]]:
        """The (name, value) pairs searched for parameters and submodules; containers override."""
        return vars(self).items()

    def _members(self) -> Iterator[tuple[str, Any]]:
        for name, value in self._child_items():
            yield from _flatten(name, value)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Immediate submodules with their names, in attribute insertion order."""
        seen: set[int] = set()
        for name, m in self._members():
            if isinstance(m, Module) and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and all its descendants (each once, even if shared or cyclic), depth first."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:  # iterative, children pushed in reverse so they come out in order
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            kids = [(f"{name}.{n}" if name else n, c) for n, c in m.named_children()]
            stack.extend(reversed(kids))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def _named_parameters_all(self) -> Iterator[tuple[str, Parameter]]:
        """Every (name, parameter) pair, shared parameters listed under each name.

        Like torch: a module's own parameters come before its children's."""
        for mname, m in self.named_modules():
            for pname, p in m._members():
                if isinstance(p, Parameter):
                    yield (f"{mname}.{pname}" if mname else pname), p

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(dotted_name, parameter)`` pairs, each parameter once (PyTorch's names and order)."""
        seen: set[int] = set()
        for name, p in self._named_parameters_all():
            if id(p) not in seen:
                seen.add(id(p))
                yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    # ----- buffers -----------------------------------------------------------------------------
    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """Keep ``tensor`` as the attribute ``name``: saved in the state_dict (unless ``persistent=False``)
        and cast by :meth:`to`, but not a parameter (no gradient, not optimized). ``None`` declares the
        buffer without state (torch's ``running_mean`` when ``track_running_stats=False``)."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: a buffer name must be a non-empty string without '.', got {name!r}")
        buffers = self.__dict__.setdefault("_buffers", {})  # name -> persistent
        if name not in buffers and name in vars(self):
            raise KeyError(f"register_buffer: {type(self).__name__} already has an attribute {name!r} "
                           "that is not a buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(np.asarray(tensor))
        buffers[name] = bool(persistent)
        setattr(self, name, tensor)

    def _own_buffers(self, persistent_only: bool = False) -> Iterator[tuple[str, Tensor]]:
        for name, persistent in self.__dict__.get("_buffers", {}).items():
            b = getattr(self, name, None)
            if b is not None and (persistent or not persistent_only):
                yield name, b

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """``(dotted_name, buffer)`` pairs of this module and its descendants (None buffers skipped)."""
        for mname, m in self.named_modules(prefix):
            for bname, b in m._own_buffers():
                yield (f"{mname}.{bname}" if mname else bname), b

    def buffers(self) -> Iterator[Tensor]:
        for _, b in self.named_buffers():
            yield b

    def _state_items(self) -> Iterator[tuple[str, Tensor]]:
        """What the state_dict holds, in torch's order: per module its parameters, then its persistent buffers."""
        for mname, m in self.named_modules():
            for pname, p in m._members():
                if isinstance(p, Parameter):
                    yield (f"{mname}.{pname}" if mname else pname), p
            for bname, b in m._own_buffers(persistent_only=True):
                yield (f"{mname}.{bname}" if mname else bname), b

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total number of scalar parameters (shared parameters counted once)."""
        return int(sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only))

    def summary(self, input_shape: Any = None, batch_size: int = 1) -> Summary:
        """A table of the layers (Keras's ``model.summary()``): each leaf module's name, type,
        parameter shapes and count, then the totals.

        With ``input_shape`` (one example, e.g. ``(1, 28, 28)``; the models of :mod:`chainrule.models`
        know theirs) each row also gets the layer's forward and backward FLOPs and the numbers it keeps
        for backward at ``batch_size``, from :func:`chainrule.cost.estimate` (work a model does between
        its children, like a read-out reshape, gets a row of its own). For memory totals, estimated and
        measured, see ``cr.cost.report(model, batch_size)``. The result is a :class:`Summary`: the text,
        shown as an HTML table in Jupyter."""
        rows = [["layer", "type", "parameters", "count"]]
        names = []
        for name, m in self.named_modules():
            if any(True for _ in m.children()):
                continue
            own = [p for _, p in m.named_parameters()]
            shapes = ", ".join("x".join(map(str, p.shape)) for p in own) or "-"
            names.append(name or type(m).__name__)
            rows.append([names[-1], type(m).__name__, shapes, f"{sum(p.numel() for p in own):,}"])
        note = SUMMARY_COSTS(self, rows, names, input_shape, batch_size) if SUMMARY_COSTS is not None else []
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
        total, trainable = self.num_parameters(), self.num_parameters(trainable_only=True)
        notes = [f"{total:,} parameters ({trainable:,} trainable)", *note]
        text = "\n".join([lines[0], "-" * len(lines[0]), *lines[1:], "-" * len(lines[0]), *notes])
        return Summary(text, rows, notes, title=f"{type(self).__name__} summary")

    # ----- modes and gradients -----------------------------------------------------------------
    @replayed
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active) for this module and all descendants; returns self."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (dropout off): ``train(False)``."""
        return self.train(False)

    @replayed
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear parameter gradients: drop them (default, like torch >= 2.0) or fill them with 0."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad._data[...] = 0

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def add_module(self, name: str, module: Module | None) -> None:
        """Attach ``module`` as the child ``name`` (torch's spelling of ``self.name = module``)."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"add_module: a module name must be a non-empty string without '.', got {name!r}")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module or None, got {type(module).__name__}")
        setattr(self, name, module)

    register_module = add_module

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Attach ``param`` as the parameter ``name`` (torch's spelling of ``self.name = param``)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, got {type(param).__name__}")
        setattr(self, name, param)

    def get_submodule(self, target: str) -> Module:
        """The descendant at the dotted path ``target`` (``"blocks.0.lin"``; ``""`` is self)."""
        m: Module = self
        for part in target.split(".") if target else []:
            children = dict(m.named_children())
            if part not in children:
                raise AttributeError(f"get_submodule: {type(m).__name__} has no submodule {part!r} (in {target!r})")
            m = children[part]
        return m

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at the dotted path ``target`` (``"blocks.0.lin.weight"``)."""
        owner, _, name = target.rpartition(".")
        p = dict(self.get_submodule(owner).named_parameters()).get(name)
        if p is None:
            raise AttributeError(f"get_parameter: no parameter {name!r} in {owner or type(self).__name__!r}")
        return p

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every descendant and then on self (torch's order); returns self."""
        for m in reversed(list(self.modules())):
            fn(m)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)``, as ``torch.nn.Module.to``: cast every
        floating parameter and buffer to ``dtype`` (gradients are dropped; the parameters keep their identity but
        get new arrays, so cast before creating the optimizer). The only device is the CPU."""
        dtype = kwargs.pop("dtype", None)
        as_device(kwargs.pop("device", None))
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"to() got unexpected arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, (str, device)):
                as_device(a)
            elif a is not None:
                dtype = a
        if dtype is not None:
            dtype = np.dtype(dtype)
            for p in [*self.parameters(), *self.buffers()]:
                if p._data.dtype.kind == "f" and p._data.dtype != dtype:
                    p._data, p.grad = p._data.astype(dtype), None
        return self

    def cpu(self) -> Module:
        return self

    def cuda(self, *args: Any, **kwargs: Any) -> Module:
        as_device("cuda")  # raises: there is no CUDA device
        return self

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    def half(self) -> Module:
        return self.to(np.float16)

    # ----- state -------------------------------------------------------------------------------
    def state_dict(self, keep_vars: bool = False) -> OrderedDict[str, Tensor]:
        """Ordered ``name -> Tensor`` sharing each parameter's and buffer's data (torch's keys and
        semantics: editing the arrays edits the model). ``keep_vars=True`` returns the Parameters themselves."""
        return OrderedDict((n, p if keep_vars else Tensor(p._data)) for n, p in self._state_items())

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy arrays into the parameters and buffers (cast to each one's dtype), in place.

        Values may be Tensors, ndarrays or torch tensors. With ``strict=True`` a missing or
        unexpected key is an error; a shape mismatch always is. Nothing is copied unless every
        entry checks out.
        """
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            what = [f"missing key {k!r} (model shape {own[k].shape})" for k in missing]
            what += [f"unexpected key {k!r} (checkpoint shape {np.shape(_as_array(state_dict[k], k))})"
                     for k in unexpected]
            raise ValueError(f"load_state_dict into {type(self).__name__}: {'; '.join(what)}. The model's keys "
                             f"are {list(own)}; rename the keys, or pass strict=False to load a subset")
        pairs = []
        for k, p in own.items():
            if k not in state_dict:
                continue
            arr = _as_array(state_dict[k], k)
            if arr.shape != p.shape:
                raise ValueError(f"load_state_dict: shape mismatch for {k!r}: the checkpoint has {arr.shape}, "
                                 f"the model's parameter has {p.shape}")
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"load_state_dict: {k!r} has non-numeric dtype {arr.dtype}")
            pairs.append((p, arr))
        with no_grad():
            for p, arr in pairs:
                np.copyto(p._data, arr, casting="unsafe")  # e.g. a float64 checkpoint into float32
        return IncompatibleKeys(missing, unexpected)

    # ----- printing ----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """Hyperparameters shown in ``repr`` (override in subclasses)."""
        return ""

    def __repr__(self) -> str:
        own = [(n, p) for n, p in self._members() if isinstance(p, Parameter)]
        head = f"{type(self).__name__}({self.extra_repr()}"
        shapes = ", ".join(f"{n}{tuple(p.shape)}" for n, p in own)
        kids = list(self.named_children())
        if not kids:
            return head + ")" + (f"  [{shapes}]" if shapes else "")
        lines = [head]
        lines += [f"  ({n}): Parameter{tuple(p.shape)} {p.dtype}" for n, p in own]
        for n, m in kids:
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({n}): {body}")
        return "\n".join(lines) + "\n)"
