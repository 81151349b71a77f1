"""Generate docs/api.md, the public API grouped by module, one line per name from its docstring.

    python docs/make_api.py          # rewrite docs/api.md
    python docs/make_api.py --check  # exit 1 if docs/api.md is stale (tests/test_examples.py does this)

Public = the module's ``__all__`` if it has one, else every name not starting with ``_`` that is a
class, a function or a primitive defined in that module (or its subpackage).
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

MODULES = [
    ("chainrule.tensor", "Tensor (re-exported as `cr.Tensor`)"),
    ("chainrule.creation", "Making tensors: `cr.tensor`, `cr.zeros`, `cr.randn`, ... (torch's signatures; re-exported as `cr.*`)"),
    ("chainrule.device", "Devices (`cr.device`, `cr.cuda.is_available()`): the CPU is the one device"),
    ("chainrule.compat", "torch's dtype names (`cr.float`, `cr.long`, ...), legacy tensor types, `cr.Generator`"),
    ("chainrule.primitive", "The primitive protocol: declared inputs and attributes, gradient rule, FLOP rule"),
    ("chainrule.ops", "Primitives: NumPy forward + gradient rule + FLOP rule (re-exported as `cr.*`)"),
    ("chainrule.autograd", "The engine: backward, `cr.grad` (re-exports the modes and the derivatives below)"),
    ("chainrule.modes", "Grad mode, anomaly mode, and what a compiled step's recorder listens to"),
    ("chainrule.derivatives", "Higher derivatives: `cr.hvp`, `cr.jacobian`, `cr.hessian`"),
    ("chainrule.function", "User-defined functions with a hand-written backward (`cr.autograd.Function`)"),
    ("chainrule.gradcheck", "Finite-difference checks of gradients and Hessian-vector products"),
    ("chainrule.functional", "Composite functions (`import chainrule.nn.functional as F`)"),
    ("chainrule.losses", "Losses (also in `chainrule.functional` and `F`)"),
    ("chainrule.activations", "More activations and similarities (`F.silu`, `F.elu`, `F.normalize`, ...; also in `F`)"),
    ("chainrule.functional_torch", "torch's indexing, sorting and comparison functions (`cr.gather`, `cr.topk`, ...; also Tensor methods)"),
    ("chainrule.ops_scan", "The cumulative sum primitive (`cr.cumsum`)"),
    ("chainrule.ops_einsum", "The einsum primitive (`cr.einsum`)"),
    ("chainrule.linalg", "`torch.linalg`'s norms"),
    ("chainrule.testing", "`torch.testing.assert_close`"),
    ("chainrule.nn", "Module, Parameter, layers, losses, `l2_penalty`"),
    ("chainrule.nn.functional", "Convolution, pooling and normalization functions (`F.conv2d`, `F.max_pool2d`, ...)"),
    ("chainrule.ops_conv", "The im2col primitives behind convolution and pooling: `unfold` and its adjoint `fold`"),
    ("chainrule.nn.init", "Parameter initialisation (PyTorch's schemes)"),
    ("chainrule.nn.utils", "Gradient clipping and parameter vectors (`torch.nn.utils`)"),
    ("chainrule.optim", "Optimizers"),
    ("chainrule.optim.lr_scheduler", "Learning-rate schedules"),
    ("chainrule.models", "The lecture's models"),
    ("chainrule.data", "DataLoader and input checks"),
    ("chainrule.datasets", "Offline data sets"),
    ("chainrule.train", "The fit loop, History, callbacks"),
    ("chainrule.compile", "Compiled steps: record a step once, replay it as generated NumPy (`cr.compile`)"),
    ("chainrule.cost", "Street-fighting math: estimate and measure parameters, memory, compute"),
    ("chainrule.cost.layers", "What each layer costs: the rules the estimate reads, keyed by layer type"),
    ("chainrule.analysis", "Final-project analysis: importance, sample complexity, error correlation"),
    ("chainrule.viz", "Computation-graph pictures and the backprop ledger"),
    ("chainrule.playground", "2-D optimizer races"),
    ("chainrule.io", "Save and load"),
    ("chainrule._blas", "Matrix products: MKL with `chainrule[mkl]`, else NumPy (`cr.blas_info`, `cr.set_blas`)"),
    ("chainrule.sklearn", "scikit-learn estimators"),
    ("chainrule.distributed", "Data-parallel training on MPI"),
    ("chainrule.onnx", "ONNX export (`cr.onnx.export`), one converter per layer class; `pip install \"chainrule[onnx]\"`"),
    ("chainrule.loggers", "Training logs: CSV and TensorBoard callbacks, the History as a DataFrame"),
]

OUT = Path(__file__).resolve().parent / "api.md"


def _summary(obj) -> str:
    doc = getattr(obj, "doc", None) if type(obj).__name__ == "Primitive" else inspect.getdoc(obj)
    doc = inspect.cleandoc(doc) if doc else ""
    fn = getattr(getattr(obj, "forward", None), "__name__", None)
    if fn and doc.startswith(f"{fn}("):  # a NumPy ufunc's docstring opens with the ufunc's own signature
        doc = f"NumPy's `{fn}`, with a gradient rule: " + doc.split("\n\n", 1)[-1]
    para = doc.split("\n\n")[0].replace("\n", " ").strip()
    para = re.sub(r":(?:func|class|meth|mod|attr):`~?([^`]+)`", r"`\1`", para).replace("``", "`")  # RST -> markdown
    return para or "(no docstring)"


def _signature(obj) -> str:
    """How the user calls ``obj``: ``inspect.signature(obj)``, so a class shows its constructor and a
    primitive what it declares as ``Primitive.__signature__`` (its tensor inputs, then its attributes
    as keywords), never the NumPy function behind its forward."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # a builtin without a text signature
        return ""
    empty = inspect.Parameter.empty  # annotations dropped: the names and defaults are what a reader needs
    sig = str(sig.replace(parameters=[q.replace(annotation=empty) for q in sig.parameters.values()],
                          return_annotation=inspect.Signature.empty))
    return sig.replace("self, ", "").replace("(self)", "()")


def _public(mod) -> list[str]:
    names = getattr(mod, "__all__", None)
    if names is not None:
        return sorted(names)
    out = []
    for name, obj in vars(mod).items():
        if name.startswith("_"):
            continue
        if type(obj).__name__ == "Primitive" and mod.__name__ == "chainrule.ops":
            out.append(name)
        elif (inspect.isclass(obj) or inspect.isfunction(obj)) and \
                getattr(obj, "__module__", "").startswith(mod.__name__):
            out.append(name)
    return sorted(out)


def _kind(obj) -> str:
    if inspect.isclass(obj):
        return "class"
    return "primitive" if type(obj).__name__ == "Primitive" else "function"


def render() -> str:
    lines = ["# chainrule API", "",
             "Generated from the docstrings by `python docs/make_api.py`; `tests/test_examples.py` fails when",
             "this file is stale. One line per public name: its signature (a class's constructor) and the first",
             "paragraph of its docstring.", ""]
    for modname, title in MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError as e:  # an optional dependency is missing
            lines += [f"## `{modname}`", "", f"(not importable here: {e})", ""]
            continue
        lines += [f"## `{modname}`", "", title + ".", "", "| name | kind | description |", "|---|---|---|"]
        for name in _public(mod):
            obj = getattr(mod, name)
            desc = _summary(obj).replace("|", r"\|")
            sig = _signature(obj).replace("|", r"\|")
            lines.append(f"| `{name}{sig}` | {_kind(obj)} | {desc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        stale = not OUT.exists() or OUT.read_text() != text
        print("docs/api.md is stale: run python docs/make_api.py" if stale else "docs/api.md is up to date")
        sys.exit(int(stale))
    OUT.write_text(text)
    print(f"wrote {OUT} ({text.count(chr(10))} lines)")
