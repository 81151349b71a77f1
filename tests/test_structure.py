"""The shape of the package: lower layers never import higher ones, and no source file grows past
600 lines. Both checks read the source (``ast``), so they cover imports inside functions too.

The layers, from the bottom (docs/architecture.md explains each). A module may import its own
layer and the layers below it; the core (layer 0) may import itself freely.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "chainrule"
MAX_LINES = 600

LAYERS: list[set[str]] = [
    # the core (the protocol, the primitives and their composites, the engine, tensors and how they are
    # made, torch's names for dtypes and devices, user-defined Functions, derivative checks), and text and plot helpers
    {"primitive", "ops", "ops_const", "ops_loss", "ops_conv", "ops_rnn", "_blas", "autograd", "modes", "derivatives",
     "tensor", "writes", "creation", "device", "compat", "losses", "activations", "functional_torch", "ops_scan",
     "ops_einsum", "tensor_methods", "linalg", "testing",
     "function", "gradcheck", "functional", "_text", "_plot", "_version"},
    {"nn", "optim", "compile", "replay"},
    {"data", "datasets", "io", "checkpoint", "models", "metrics", "history", "utils", "torch_format"},
    {"train", "callbacks", "cost", "analysis", "viz", "playground", "onnx", "sklearn"},
    {"distributed", "loggers"},  # loggers write on rank 0 only
    {"web", "cli"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}
TOP = len(LAYERS)  # `import chainrule` itself: the public surface, above everything

# Files over MAX_LINES that are being split elsewhere. The test also fails when an entry is no
# longer over the limit: remove it then.
KNOWN_OVER: set[str] = set()

# Upward imports that are being removed elsewhere, as (importing module, imported unit). The test
# also fails when one is gone: remove its entry then.
KNOWN_UP = {
    ("chainrule.distributed.__main__", "cli"),  # `python -m chainrule.distributed`: the entry script runs the CLI on every rank
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _unit(module: str) -> str:
    """'chainrule.cost.layers' -> 'cost'; 'chainrule' -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(unit: str) -> int:
    if unit == "":
        return TOP
    if unit not in LAYER:
        raise AssertionError(f"chainrule.{unit} is in no layer: add it to LAYERS in tests/test_structure.py "
                             "and to the table in docs/architecture.md")
    return LAYER[unit]


def _imports(module: str, path: Path) -> set[str]:
    """Every chainrule module ``module`` imports, at any depth (function-level imports included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "chainrule"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "chainrule":
                continue
            # `from . import cost` imports the module chainrule.cost; `from . import Tensor` only the package
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES}
            found |= subs or {base}
    return found


def _upward() -> set[tuple[str, str]]:
    up = set()
    for module, path in MODULES.items():
        if module == "chainrule":  # the public surface re-exports every layer
            continue
        own = _layer(_unit(module))
        for imported in _imports(module, path):
            unit = _unit(imported)
            if unit != _unit(module) and _layer(unit) > own:
                up.add((module, unit or "chainrule"))
    return up


def test_every_module_is_in_a_layer():
    for module in MODULES:
        if module != "chainrule":
            _layer(_unit(module))


def test_no_import_goes_up_a_layer():
    up = _upward()
    new = sorted(up - KNOWN_UP)
    assert not new, ("imports that go up a layer (lower layers must never import higher ones, not even inside a "
                     "function; move the code up or pass it in):\n"
                     + "\n".join(f"  {m} imports chainrule.{u} (layer {_layer(u if u != 'chainrule' else '')} > "
                                 f"{_layer(_unit(m))})" for m, u in new))


def test_known_upward_imports_are_still_there():
    stale = sorted(KNOWN_UP - _upward())
    assert not stale, f"fixed upward imports still listed in KNOWN_UP (remove them): {stale}"


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


@pytest.mark.parametrize("module", sorted(MODULES))
def test_source_files_stay_short(module):
    path = MODULES[module]
    rel = str(path.relative_to(SRC))
    if rel in KNOWN_OVER:
        assert _lines(path) > MAX_LINES, f"{rel} has {_lines(path)} lines now: remove it from KNOWN_OVER"
    else:
        assert _lines(path) <= MAX_LINES, (f"{rel} has {_lines(path)} lines (limit {MAX_LINES}): split it by idea "
                                           "(one idea per file)")


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    code = ("from .. import ops\nfrom . import layers\nfrom .module import Module\n\n"
            "def f():\n    from ..cli import main\n    import chainrule.train\n")
    path = tmp_path / "x.py"
    path.write_text(code)
    found = _imports("chainrule.nn.x", path)
    assert found == {"chainrule.ops", "chainrule.nn.layers", "chainrule.nn.module", "chainrule.cli", "chainrule.train"}
    assert _layer(_unit("chainrule.cli")) > _layer(_unit("chainrule.nn.x"))  # so f's import would be flagged
