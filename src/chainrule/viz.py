"""Pictures and ledgers of computation graphs (and :func:`plot_decision_regions`, a 2-D classifier's picture).

The lecture draws a computation graph with one node per value and one edge per function argument,
visits it in topological order for the forward pass and in reverse topological order for the
backward pass. :func:`graph` turns the graph recorded behind a tensor into exactly that picture:

* every tensor is a node, numbered in forward topological order (inputs before outputs);
* an edge ``a -> b`` says ``a`` is an argument of the op that produced ``b``;
* each node shows its op, shape and dtype and, once gradients exist, ``||dL/d node||``;
* nodes that take part in backward also show their step in the backward order (step 1 is the loss).

:func:`backprop_trace` is the lecture's worked example as a ledger: one row per (op, input) edge, in
the order backward visits them, with the local derivative ``d out / d in``, the incoming gradient
``dL / d out``, their product (the chain rule) and the input's gradient accumulated so far, so a
hand derivation can be checked line by line::

    x = cr.tensor(3.0, dtype=cr.float64, requires_grad=True); x.name = "x"
    y = cr.log(x ** 2 + 1)
    print(cr.viz.backprop_trace(y))     # last row: dL/dx = 2x / (x^2 + 1) = 0.6
    cr.viz.graph(y, grads=True).render("graph.svg")   # needs Graphviz's `dot`

Both read the graph without changing it (a graph already freed by ``backward()`` cannot be read:
call them before backward, or after ``backward(retain_graph=True)``). Graphviz is optional: DOT text
is always available; SVG/PNG/PDF rendering needs the ``dot`` program (``apt-get install graphviz``,
``brew install graphviz`` or ``conda install graphviz``; ``pip install graphviz`` adds only the
Python bindings, not the program).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import autograd as _ag
from . import ops as _ops
from ._plot import pyplot, save
from .tensor import Tensor, _unwrap

__all__ = ["Graph", "GraphNode", "Trace", "TraceRow", "graph", "backprop_trace", "dot_available", "plot_decision_regions"]

_INSTALL_HINT = ("the Graphviz `dot` program is not installed: apt-get install graphviz (Debian/Ubuntu), "
                 "brew install graphviz (macOS) or conda install graphviz; Graph.to_dot() works without it")


def dot_available() -> bool:
    """True when Graphviz's ``dot`` program is on PATH (needed only for :meth:`Graph.render`)."""
    return shutil.which("dot") is not None


# ----- graph traversal that sees every tensor, not only those requiring grad -------------------------
def _inputs_of(t: Tensor) -> tuple:
    ctx = t._ctx
    if ctx is None:
        return ()
    if ctx.inputs is None:
        raise RuntimeError(
            f"the graph behind this tensor was freed by backward() (at op {ctx.op.name}): call "
            "cr.viz.graph()/backprop_trace() before backward, or use backward(retain_graph=True)")
    return ctx.inputs


def _forward_order(roots: Sequence[Tensor]) -> list[Tensor]:
    """All tensors leading to ``roots`` (requiring grad or not), inputs first; iterative DFS, so a
    10,000-op chain is fine. Children are visited in argument order, so numbering is stable."""
    order, seen = [], set()
    stack = [(r, False) for r in reversed(list(roots))]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        for i in reversed(_inputs_of(t)):
            if isinstance(i, Tensor) and id(i) not in seen:
                stack.append((i, False))
    return order


def _norm(g) -> float:
    g = np.asarray(_unwrap(g))
    return float(np.linalg.norm(g.astype(np.float64).ravel()))


def _describe(v, digits: int = 4) -> str:
    """A compact printable value: the number for one-element arrays, else shape and norm."""
    if v is None:
        return "-"
    a = np.asarray(_unwrap(v))
    if _ops.is_overwritten(a):  # ops.linear_act's pre-activation: its buffer went to the activation
        return f"{a.shape} (overwritten in place by the activation)"
    if a.size == 1:
        return f"{float(a.reshape(-1)[0]):.{digits}g}"
    if a.size <= 4:
        return np.array2string(a.astype(np.float64), precision=digits, separator=",").replace("\n", "")
    return f"{a.shape} |.|={np.linalg.norm(a.astype(np.float64).ravel()):.{digits}g}"


# ----- the graph ----------------------------------------------------------------------------------
@dataclass
class GraphNode:
    """One value of the computation graph.

    ``index`` is its number in forward topological order; ``kind`` is ``"op"`` (produced by a
    primitive), ``"leaf"`` (a tensor made by the user) or ``"const"`` (a constant argument such as
    the 2 in ``x ** 2``; constants are not tensors and have no gradient). ``inputs`` are the indices
    of its arguments, in argument order. ``backward_step`` is its position in the backward pass
    (1 = the root), None when backward never reaches it (it does not require grad).
    """

    index: int
    kind: str
    op: str | None
    label: str
    shape: tuple
    dtype: str
    inputs: list[int] = field(default_factory=list)
    requires_grad: bool = False
    grad_norm: float | None = None
    backward_step: int | None = None
    value: str = ""

    @property
    def dot_id(self) -> str:
        return f"n{self.index}"


class Graph:
    """The computation graph behind a tensor: :attr:`nodes` in forward topological order and
    :attr:`edges` ``(src, dst)`` by node index. Print it, :meth:`to_dot` it or :meth:`render` it."""

    def __init__(self, nodes: list[GraphNode], root: int):
        self.nodes, self.root = nodes, root

    @property
    def edges(self) -> list[tuple[int, int]]:
        return [(i, n.index) for n in self.nodes for i in n.inputs]

    @property
    def ops(self) -> list[GraphNode]:
        return [n for n in self.nodes if n.kind == "op"]

    @property
    def backward_order(self) -> list[GraphNode]:
        """The nodes backward visits, in the order it visits them (reverse topological order)."""
        return sorted((n for n in self.nodes if n.backward_step is not None), key=lambda n: n.backward_step)

    def to_dict(self) -> dict:
        return {"root": self.root, "nodes": [vars(n).copy() for n in self.nodes], "edges": self.edges}

    # ----- text ---------------------------------------------------------------------------------
    def text(self) -> str:
        """A plain-text listing for terminals: one line per node in forward order."""
        head = ["fwd", "node", "op", "shape", "dtype", "inputs", "|grad|", "bwd"]
        rows = []
        for n in self.nodes:
            rows.append([f"#{n.index}", n.label, n.op or n.kind, str(n.shape), n.dtype,
                         ", ".join(f"#{i}" for i in n.inputs) or "-",
                         "-" if n.grad_norm is None else f"{n.grad_norm:.4g}",
                         "-" if n.backward_step is None else str(n.backward_step)])
        return _table(head, rows)

    __str__ = text

    def __repr__(self) -> str:
        return f"<Graph: {len(self.ops)} ops, {len(self.nodes)} nodes, root #{self.root}>"

    # ----- Graphviz -----------------------------------------------------------------------------
    def to_dot(self, rankdir: str = "LR") -> str:
        """Graphviz DOT source: one node statement per value, one edge statement per argument.

        Ops are boxes, leaves ellipses (filled when they require grad), constants plain text; the
        root is drawn with a double border. Edge labels give the argument position when an op has
        more than one argument (``sub``, ``div`` and ``matmul`` are not symmetric)."""
        lines = ["digraph chainrule {", f"  rankdir={rankdir};",
                 '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=8];']
        for n in self.nodes:
            if n.kind == "const" or n.label.endswith(f"#{n.index}"):  # constants and unnamed ops ("mul#3")
                parts = [n.label]
            else:  # named: "#3 z1 = mul", leaves "#0 x"
                parts = [f"#{n.index} {n.label}" + (f" = {n.op}" if n.op else "")]
            if n.kind != "const":
                parts.append(f"{n.shape} {n.dtype}")
            if n.grad_norm is not None:
                parts.append(f"|grad| = {n.grad_norm:.4g}")
            if n.backward_step is not None:
                parts.append(f"backward step {n.backward_step}")
            label = "\\n".join(_esc(p) for p in parts)
            if n.kind == "op":
                style = 'shape=box, style="rounded,filled", fillcolor="#dbe9f6"'
            elif n.kind == "leaf":
                style = 'shape=ellipse, style=filled, fillcolor="#fde2b8"' if n.requires_grad else "shape=ellipse"
            else:
                style = 'shape=plaintext, fontcolor="#555555"'
            if n.index == self.root:
                style += ", peripheries=2"
            lines.append(f'  {n.dot_id} [label="{label}", {style}];')
        for n in self.nodes:
            for k, i in enumerate(n.inputs):
                attr = f' [label="{k}"]' if len(n.inputs) > 1 else ""
                lines.append(f"  n{i} -> {n.dot_id}{attr};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def render(self, path: str | Path, format: str | None = None) -> Path:  # noqa: A002
        """Write the picture to ``path`` (format from the suffix: .svg, .png, .pdf; .dot/.gv writes
        the DOT text and needs nothing). Raises RuntimeError, saying how to install Graphviz, when
        the ``dot`` program is missing."""
        path = Path(path)
        fmt = (format or path.suffix.lstrip(".") or "svg").lower()
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt in ("dot", "gv"):
            path.write_text(self.to_dot())
            return path
        exe = shutil.which("dot")
        if exe is None:
            raise RuntimeError(f"cannot render {path}: {_INSTALL_HINT}")
        proc = subprocess.run([exe, f"-T{fmt}", "-o", str(path)], input=self.to_dot().encode(),
                              capture_output=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"dot -T{fmt} failed: {proc.stderr.decode(errors='replace').strip()}")
        return path

    def _svg(self) -> str | None:
        exe = shutil.which("dot")
        if exe is None:
            return None
        proc = subprocess.run([exe, "-Tsvg"], input=self.to_dot().encode(), capture_output=True, check=False)
        return proc.stdout.decode() if proc.returncode == 0 else None

    def _repr_svg_(self) -> str | None:  # Jupyter: the picture, drawn by Graphviz's dot when it is installed
        return self._svg()

    def _repr_html_(self) -> str | None:  # Jupyter without dot (no SVG): the listing, and how to get the picture
        if self._svg() is not None:
            return None                   # the SVG is shown instead
        from ._text import html_pre

        return html_pre(self.text()) + f"<p>(no picture: {_INSTALL_HINT})</p>"


def _esc(s: str) -> str:
    return str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[k]) for r in rows)) if rows else len(h) for k, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in out)


def _labels(order: list[Tensor], names=None) -> dict[int, str]:
    """``t.name`` when set, else the name given in ``names`` (a Module's parameter names, or a
    mapping name -> tensor), else the op name or ``leaf`` with the forward number (``mul#2``)."""
    given: dict[int, str] = {}
    if names is not None:
        pairs = names.named_parameters() if hasattr(names, "named_parameters") else names.items()
        given = {id(t): str(n) for n, t in pairs}
    return {id(t): (t.name if t.name is not None else given.get(id(t))
                    or f"{t._ctx.op.name if t._ctx is not None else 'leaf'}#{k}")
            for k, t in enumerate(order)}


def _capture_grads(root: Tensor, order: list[Tensor], grad_output) -> dict[int, np.ndarray]:
    """dL/dt for every tensor t that requires grad, by a retained backward of our own that fills a
    capture table instead of ``.grad`` (so the user's gradients are left alone)."""
    needing = [t for t in order if t.requires_grad]
    if not root.requires_grad or not needing:
        return {}
    gs = _ag.grad(root, needing, grad_outputs=grad_output, retain_graph=True, allow_unused=True)
    return {id(t): g._data for t, g in zip(needing, gs) if g is not None}


def graph(tensor: Tensor, grads: bool = False, grad_output=None, constants: bool = True, names=None) -> Graph:
    """The computation graph of everything that produced ``tensor``.

    Without ``grads`` the node gradient norms are those of leaves that already hold ``.grad`` (after
    ``loss.backward(retain_graph=True)``). With ``grads=True`` a separate retained backward pass
    computes ``||dL/dv||`` for every node ``v`` (intermediate values too) without touching
    ``.grad``; ``grad_output`` seeds it for a non-scalar ``tensor``. ``constants=False`` hides the
    constant arguments (the 2 in ``x ** 2``). ``names`` labels tensors without a ``.name``: pass
    the model (its parameters get their state_dict names, ``layers.0.weight``) or a dict name -> tensor.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"graph() needs a Tensor, got {type(tensor).__name__}")
    order = _forward_order([tensor])
    index = {id(t): k for k, t in enumerate(order)}
    labels = _labels(order, names)
    captured = _capture_grads(tensor, order, grad_output) if grads else {}
    # Backward visits the tensors that require grad in reverse of the engine's own topological order.
    bwd = {id(t): s + 1 for s, t in enumerate(reversed(_ag.toposort([tensor])))} if tensor.requires_grad else {}
    nodes: list[GraphNode] = []
    consts: list[GraphNode] = []
    for k, t in enumerate(order):
        ins = []
        for a in _inputs_of(t):
            if isinstance(a, Tensor):
                ins.append(index[id(a)])
            elif constants:
                c = np.asarray(a)
                consts.append(GraphNode(len(order) + len(consts), "const", None, _describe(c), c.shape, str(c.dtype)))
                ins.append(consts[-1].index)
        if id(t) in captured:
            gnorm = _norm(captured[id(t)])
        elif t._ctx is None and t.grad is not None:
            gnorm = _norm(t.grad)
        else:
            gnorm = None
        nodes.append(GraphNode(k, "op" if t._ctx is not None else "leaf",
                               t._ctx.op.name if t._ctx is not None else None, labels[id(t)], tuple(t.shape),
                               str(t.dtype), ins, bool(t.requires_grad), gnorm, bwd.get(id(t)), _describe(t._data)))
    return Graph(nodes + consts, index[id(tensor)])


# ----- the backprop ledger ------------------------------------------------------------------------
@dataclass
class TraceRow:
    """One application of the chain rule: ``contribution = incoming · local``.

    ``local`` is the local Jacobian ``d output / d input`` with shape ``output.shape + input.shape``
    (a plain number for scalars), or None when it would have more than ``max_jacobian`` entries;
    ``incoming`` is ``dL/d output`` (complete: every use of the output has already been visited);
    ``contribution`` is this edge's share of ``dL/d input`` (un-broadcast to the input's shape);
    ``accumulated`` is ``dL/d input`` summed over the edges visited so far — it is final at the
    input's last row.
    """

    step: int
    output: str
    op: str
    input: str
    arg: int
    local: np.ndarray | None
    incoming: np.ndarray
    contribution: np.ndarray
    accumulated: np.ndarray
    output_index: int
    input_index: int

    def to_dict(self) -> dict:
        d = vars(self).copy()
        for k in ("local", "incoming", "contribution", "accumulated"):
            if d[k] is not None:
                d[k] = np.asarray(d[k]).tolist()
        return d


class Trace:
    """The backprop ledger of :func:`backprop_trace`: :attr:`rows` in backward order, the seed
    ``dL/dL`` and the final gradients of the leaves (:attr:`grads`, keyed by label)."""

    def __init__(self, rows: list[TraceRow], seed: np.ndarray, grads: dict[str, np.ndarray], root: str):
        self.rows, self.seed, self.grads, self.root = rows, seed, grads, root

    def row(self, output: str, input: str) -> TraceRow:  # noqa: A002
        """The row of edge ``input -> output`` (by label); the last one if the edge appears twice."""
        found = [r for r in self.rows if r.output == output and r.input == input]
        if not found:
            have = ", ".join(f"{r.input}->{r.output}" for r in self.rows)
            raise KeyError(f"no ledger row for edge {input} -> {output}; the edges are: {have}")
        return found[-1]

    def to_dict(self) -> dict:
        return {"root": self.root, "seed": np.asarray(self.seed).tolist(), "rows": [r.to_dict() for r in self.rows],
                "grads": {k: np.asarray(v).tolist() for k, v in self.grads.items()}}

    def to_csv(self, path) -> Path:
        """One line per row; arrays are written as their JSON lists."""
        import csv
        import json

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [r.to_dict() for r in self.rows]
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["step"])
            w.writeheader()
            for r in rows:
                w.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
        return path

    def text(self) -> str:
        head = ["step", "node = op", "input", "local d(out)/d(in)", "incoming dL/d(out)", "incoming x local",
                "accumulated dL/d(in)"]
        rows = [[str(r.step), f"{r.output} = {r.op}", f"{r.input} (arg {r.arg})", _describe(r.local), _describe(r.incoming),
                 _describe(r.contribution), _describe(r.accumulated)] for r in self.rows]
        lines = [f"backprop ledger for {self.root}: seed dL/dL = {_describe(self.seed)}", _table(head, rows)]
        if self.grads:
            lines.append("gradients: " + ", ".join(f"dL/d{k} = {_describe(v)}" for k, v in self.grads.items()))
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:
        return f"<Trace: {len(self.rows)} rows for {self.root}>"


def _vjp(t: Tensor, g: np.ndarray) -> list:
    """The op's own gradient rule applied to ``g``, un-broadcast: the engine's step for one node."""
    ctx = t._ctx
    inputs = ctx.inputs
    args = [_unwrap(i) for i in inputs]
    needs = tuple(isinstance(i, Tensor) and i.requires_grad for i in inputs)
    with _ag.no_grad():
        res = ctx.op.vjp(g, t._data, args, needs, ctx.saved, ctx.attrs)
    out = []
    for inp, gi, need in zip(inputs, res, needs):
        if not need or gi is None:
            out.append(None)
            continue
        gi = np.asarray(_unwrap(gi))
        if gi.shape != inp._data.shape:
            gi = np.asarray(_ag.unbroadcast(gi, inp._data.shape, ctx.op.name))
        out.append(gi.astype(inp._data.dtype, copy=False))
    return out


def _local_jacobian(t: Tensor, arg: int, max_entries: int):
    """d t / d input[arg], shape ``t.shape + input.shape``, one rule application per output element."""
    x = t._ctx.inputs[arg]
    if t._data.size * x._data.size > max_entries:
        return None
    J = np.zeros((t._data.size, x._data.size), dtype=np.float64)
    for k in range(t._data.size):
        e = np.zeros(t._data.size, dtype=t.dtype)
        e[k] = 1
        gk = _vjp(t, e.reshape(t.shape))[arg]
        if gk is not None:
            J[k] = gk.reshape(-1)
    if J.size == 1:
        return np.asarray(J[0, 0])
    return J.reshape(t.shape + x.shape)


def backprop_trace(loss: Tensor, grad_output=None, max_jacobian: int = 256, names=None) -> Trace:
    """Replay backward on ``loss`` as a ledger, one row per edge in reverse topological order.

    For a node ``out = f(in_1, ..., in_k)`` reached with the complete gradient ``dL/d out``, the row
    for argument ``in_j`` records the chain rule

    .. math:: \\frac{\\partial L}{\\partial \\text{in}_j} \\mathrel{+}=
              \\frac{\\partial L}{\\partial \\text{out}} \\, \\frac{\\partial \\text{out}}{\\partial \\text{in}_j}

    using the op's own gradient rule (so the ledger shows exactly what ``backward()`` computes;
    ``.grad`` is not touched and the graph is not freed). Label tensors by setting ``t.name`` (or
    pass ``names``, as for :func:`graph`).
    """
    if not isinstance(loss, Tensor) or not loss.requires_grad:
        raise ValueError("backprop_trace() needs a tensor that requires grad (did you forget requires_grad=True?)")
    order = _forward_order([loss])
    index = {id(t): k for k, t in enumerate(order)}
    labels = _labels(order, names)
    seed = _ag._root_grad(loss, grad_output)
    grads: dict[int, np.ndarray] = {id(loss): seed}
    rows: list[TraceRow] = []
    for t in reversed(_ag.toposort([loss])):
        g = grads.get(id(t))
        if t._ctx is None or g is None:
            continue
        for j, (inp, gj) in enumerate(zip(t._ctx.inputs, _vjp(t, g))):
            if gj is None:
                continue
            prev = grads.get(id(inp))
            acc = gj.copy() if prev is None else prev + gj
            grads[id(inp)] = acc
            rows.append(TraceRow(len(rows) + 1, labels[id(t)], t._ctx.op.name, labels[id(inp)], j,
                                 _local_jacobian(t, j, max_jacobian), np.array(g), gj, acc.copy(),
                                 index[id(t)], index[id(inp)]))
    leaves = {labels[id(t)]: grads[id(t)] for t in order if t._ctx is None and id(t) in grads}
    return Trace(rows, seed, leaves, labels[id(loss)])


def plot_decision_regions(models: Mapping[str, Any], X, y, path: str | Path, extent: float = 2.0,
                          resolution: int = 121) -> str:
    """``P(y = 1 | x)`` of two-input binary classifiers over the square ``[-extent, extent]^2``, one panel
    per model, with the points ``(X, y)`` on top: what a feature map phi does to a linear model's
    boundary (XOR, moons). Each model needs ``predict_proba(X) -> (n, 2)`` (chainrule's models and
    estimators, scikit-learn's). Writes a PNG and returns its path."""
    X, y = np.asarray(_unwrap(X)), np.asarray(_unwrap(y))
    if X.ndim != 2 or X.shape[1] != 2 or len(X) != len(y):
        raise ValueError(f"plot_decision_regions: X must be (n, 2) with one label each, got X {X.shape} and y {y.shape}")
    if not models:
        raise ValueError("plot_decision_regions: no models to draw")
    plt = pyplot()
    g = np.linspace(-extent, extent, resolution, dtype=np.float32)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    fig, axes = plt.subplots(1, len(models), figsize=(3 * len(models), 2.9), squeeze=False)
    for ax, (name, m) in zip(axes[0], models.items()):
        p = np.asarray(m.predict_proba(grid))[:, 1].reshape(resolution, resolution)
        ax.contourf(g, g, p, levels=10, cmap="RdBu_r", alpha=0.6)
        ax.scatter(*X.T, c=y, cmap="RdBu_r", s=8, edgecolors="k", linewidths=0.3)
        ax.set_title(name, fontsize=9)
    return save(fig, path, dpi=80)
