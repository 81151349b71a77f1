"""Export chainrule models to ONNX, so a model trained here runs in onnxruntime, TensorRT, OpenVINO...

``cr.onnx.export(model, example_input, "model.onnx")`` writes an ONNX graph (opset 17 by default)
with one input ``input`` and one output ``output`` (``output_0``, ``output_1``, ... for a module that
returns a tuple, such as an RNN). With ``dynamic_batch=True`` the first axis of both is symbolic
(``batch``), so the file takes any batch size. The model is exported as it runs under ``model.eval()``:
dropout is the identity (or, for ``Dropout(scale=False)``, the multiplication by the keep probability)
and batch norm uses its running statistics.

The graph is built by walking the modules. Each layer class has a converter, found by the class's
*name* (``"Linear"``, ``"Conv2d"``...) and reading PyTorch's attribute names (``in_channels``,
``kernel_size``, ``running_mean``...). A converter is ``fn(g, module, name, inp, x) -> out``: it
adds the layer's nodes to the :class:`Graph` ``g`` from input value ``inp`` (an ONNX value name; ``x``
is the example Tensor flowing into the layer, for its shape) and returns the name of its output.
New layers add one function with :func:`register`. A layer that cannot be exported raises
:class:`ExportError` naming the layer, its path in the model and why.

Needs ``pip install "chainrule[onnx]"`` (onnx, onnxruntime); nothing here imports them until used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..autograd import no_grad
from ..creation import as_ndarray as _np  # parameters and buffers; torch tensors too (modules that wrap torch's)
from ..nn.module import Module
from ..tensor import Tensor

__all__ = ["export", "build", "check", "register", "converters", "ExportError", "Graph"]

DEFAULT_OPSET = 17  # LayerNormalization is in 17; every onnxruntime since 1.11 runs it
MIN_OPSET = 17

Converter = Callable[["Graph", Module, str, str, Any], Any]
_CONVERTERS: dict[str, Converter] = {}


class ExportError(ValueError):
    """A module (or one of its settings) has no ONNX equivalent."""


def register(*class_names: str) -> Callable[[Converter], Converter]:
    """Decorator: ``@register("MyLayer")`` makes ``fn(g, module, name, inp, x) -> out`` the converter
    of modules whose class is named ``MyLayer`` (or a subclass that keeps its ``forward``)."""
    def deco(fn: Converter) -> Converter:
        for n in class_names:
            _CONVERTERS[n] = fn
        return fn
    return deco


def converters() -> list[str]:
    """The class names that have a converter."""
    return sorted(_CONVERTERS)


def _converter_for(module: Module) -> Converter | None:
    """The converter of the module's class, else of the nearest base class whose ``forward`` the
    module still uses (a subclass that overrides ``forward`` computes something else)."""
    cls = type(module)
    if cls.__name__ in _CONVERTERS:
        return _CONVERTERS[cls.__name__]
    for base in cls.__mro__[1:]:
        if base.__name__ in _CONVERTERS and getattr(base, "forward", None) is getattr(cls, "forward", None):
            return _CONVERTERS[base.__name__]
    return None


class Graph:
    """The ONNX graph under construction: nodes, initializers (weights) and unique value names.

    Converters call :meth:`node` (one node, returns its output name(s)), :meth:`const` (an initializer)
    and :meth:`convert` (a child module: returns its output name and its example output)."""

    def __init__(self, opset: int, dtype: np.dtype):
        from onnx import helper, numpy_helper
        self.helper, self.numpy_helper = helper, numpy_helper
        self.opset, self.dtype = int(opset), np.dtype(dtype)
        self.nodes: list = []
        self.initializers: list = []
        self._used: set[str] = set()

    def fresh(self, base: str) -> str:
        """A value name not used yet, derived from ``base``."""
        base = base or "v"
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    def const(self, name: str, value: Any, dtype: Any = None) -> str:
        """Add ``value`` as an initializer (in the graph's float dtype unless ``dtype`` says otherwise)."""
        arr = np.asarray(_np(value), dtype=self.dtype if dtype is None else dtype)
        name = self.fresh(name)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def ints(self, name: str, values: Any) -> str:
        """An int64 initializer (shapes, axes, pads, indices)."""
        return self.const(name, np.asarray(values, np.int64), np.int64)

    def node(self, op: str, inputs: list[str], name: str, outputs: int = 1, **attrs: Any) -> Any:
        """Add one ``op`` node; returns its output name (a list of names when ``outputs`` > 1)."""
        outs = [self.fresh(f"{name}/{op}" + (f":{i}" if outputs > 1 else "")) for i in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.helper.make_node(op, inputs, outs, name=self.fresh(f"{name}/{op}#node"), **attrs))
        return outs if outputs > 1 else outs[0]

    def reduce(self, op: str, x: str, axes: list[int], name: str, keepdims: int = 1) -> str:
        """A Reduce* node: ``axes`` an attribute before opset 18, an input from 18 on."""
        if self.opset >= 18:
            return self.node(op, [x, self.ints(f"{name}.axes", axes)], name, keepdims=keepdims)
        return self.node(op, [x], name, axes=list(axes), keepdims=keepdims)

    def convert(self, module: Module, name: str, inp: Any, x: Any) -> tuple[Any, Any]:
        """Convert ``module`` (at path ``name``) applied to value ``inp`` with example input ``x``;
        returns (output value name(s), example output)."""
        fn = _converter_for(module)
        label = f"{name or '<model>'} ({type(module).__name__})"
        if fn is None:
            raise ExportError(f"onnx.export: cannot export {label}: no ONNX converter for {type(module).__name__} "
                              f"(its forward is Python code chainrule cannot trace). Converters exist for "
                              f"{', '.join(converters())}; add one with @chainrule.onnx.register("
                              f"{type(module).__name__!r})")
        try:
            out = fn(self, module, name, inp, x)
            y = module(x)
        except ExportError as e:
            if str(e).startswith("onnx.export:"):
                raise
            raise ExportError(f"onnx.export: cannot export {label}: {e}") from None
        except AttributeError as e:  # a layer without the torch attribute names its converter reads
            raise ExportError(f"onnx.export: cannot export {label}: its converter reads PyTorch's attribute "
                              f"names and {e}") from None
        return out, y


def _flat(v: Any) -> list:
    return [u for w in v for u in _flat(w)] if isinstance(v, (tuple, list)) else [v]


def _value_info(helper, name: str, arr: np.ndarray, dynamic: Any = ()):
    """A graph input/output of ``arr``'s dtype and shape; the axes in ``dynamic`` are named ``batch``."""
    shape: list = list(arr.shape)
    for k in dynamic:
        shape[k] = "batch"
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(arr.dtype), shape)


def _batch_axes(model: Module, x: Tensor, ys: list) -> list[tuple[int, ...]]:
    """Which axes of each output follow the input's first axis: run the model on one more row and
    see which sizes change (an RNN's h_n keeps (layers, N, H) whatever the batch axis of its input)."""
    x2 = Tensor(np.concatenate([x._data, x._data[:1]], axis=0))
    ys2 = [_np(v) for v in _flat(model(x2))]
    return [tuple(k for k, (a, b) in enumerate(zip(np.shape(_np(y)), np.shape(y2))) if a != b) for y, y2 in zip(ys, ys2)]


def _example(model: Module, example_input: Any) -> Tensor:
    x = example_input if isinstance(example_input, Tensor) else Tensor(np.asarray(example_input))
    if x._data.dtype.kind == "f":
        floats = [p._data.dtype for p in model.parameters() if p._data.dtype.kind == "f"]
        if floats and x._data.dtype != floats[0]:  # layers cast ndarray input to their weights' dtype
            x = Tensor(x._data.astype(floats[0]))
    return x


def build(model: Module, example_input: Any, dynamic_batch: bool = True, opset: int = DEFAULT_OPSET,
          name: str = "chainrule"):
    """The ``onnx.ModelProto`` of ``model`` (see :func:`export`), not written anywhere."""
    try:
        import onnx
        from onnx import helper
    except ImportError as e:
        raise ImportError('ONNX export needs the onnx package: pip install "chainrule[onnx]"') from e
    if not MIN_OPSET <= int(opset) <= onnx.defs.onnx_opset_version():
        raise ValueError(f"onnx.export: opset must be in [{MIN_OPSET}, {onnx.defs.onnx_opset_version()}] "
                         f"(this onnx {onnx.__version__}), got {opset}")
    if not isinstance(model, Module):
        raise TypeError(f"onnx.export: model must be a chainrule.nn.Module, got {type(model).__name__}")
    x = _example(model, example_input)
    floats = [p._data.dtype for p in model.parameters() if p._data.dtype.kind == "f"]
    g = Graph(int(opset), floats[0] if floats else (x._data.dtype if x._data.dtype.kind == "f" else np.float32))
    g._used.add("input")
    was_training = model.training
    model.eval()
    dynamic = dynamic_batch and x._data.ndim > 0
    try:
        with no_grad():
            out, y = g.convert(model, "", "input", x)
            outs, ys = _flat(out), _flat(y)
            out_axes = _batch_axes(model, x, ys) if dynamic else [()] * len(ys)
    finally:
        model.train(was_training)
    if len(outs) != len(ys):
        raise ExportError(f"onnx.export: the converter of {type(model).__name__} gave {len(outs)} outputs but the "
                          f"model returns {len(ys)}")
    names = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
    for o, n in zip(outs, names):  # fixed output names, even when the model is the identity
        g.nodes.append(helper.make_node("Identity", [o], [n], name=f"{n}/Identity"))
    graph = helper.make_graph(g.nodes, name, [_value_info(helper, "input", x._data, (0,) if dynamic else ())],
                              [_value_info(helper, n, _np(v), a) for n, v, a in zip(names, ys, out_axes)],
                              initializer=g.initializers)
    ops = [helper.make_opsetid("", int(opset))]
    from .._version import __version__
    return helper.make_model(graph, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops),
                             producer_name="chainrule", producer_version=__version__)


def export(model: Module, example_input: Any, path: str | os.PathLike, dynamic_batch: bool = True,
           opset: int = DEFAULT_OPSET, metadata: dict[str, str] | None = None):
    """Write ``model`` as an ONNX file at ``path`` and return the ``onnx.ModelProto``.

    ``example_input`` (a Tensor or array) fixes every axis but the first, which is symbolic when
    ``dynamic_batch``; float input is exported in the dtype of the model's weights, integer input
    (embeddings) as given. ``metadata`` (str -> str) goes to the model's ``metadata_props``. The file
    passes ``onnx.checker.check_model(full_check=True)``.
    """
    import onnx
    proto = build(model, example_input, dynamic_batch=dynamic_batch, opset=opset)
    onnx.helper.set_model_props(proto, dict(metadata or {}))
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, os.fspath(path))
    return proto


def check(model: Module, path: str | os.PathLike, inputs: Any) -> float:
    """Run the ONNX file at ``path`` in onnxruntime on ``inputs`` and return the largest absolute
    difference from ``model(inputs)`` (eval mode, no grad) over all outputs."""
    import onnxruntime as ort
    x = _example(model, inputs)
    sess = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x._data})
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            want = [_np(v) for v in _flat(model(x))]
    finally:
        model.train(was_training)
    return max((float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0) for a, b in zip(got, want))


from . import _builtin, _rnn, _torch_layers  # noqa: E402 - the converters register themselves
