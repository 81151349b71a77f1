"""The playground's side panels: the backprop ledger, the street-fighting cost table and the
optimizer race. Each turns a session (or a few settings) into JSON with chainrule's own tools:
:func:`chainrule.viz.backprop_trace` and :func:`chainrule.viz.graph`, :mod:`chainrule.cost`, and
:mod:`chainrule.playground`.
"""

from __future__ import annotations

import math

import numpy as np

from .. import cost as _cost
from .. import playground as pg
from .. import viz
from ..tensor import Tensor
from .session import Session, rgba_b64

RACE_FUNCTIONS = ("ravine", "rosenbrock", "beale", "saddle", "parabola")
RACE_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "newton")
MAX_RACE_STEPS = 500


def example_loss(session: Session, index: int) -> Tensor:
    """The data loss of training example ``index`` alone, with dropout off: the graph the
    backprop panel replays. The input is named ``phi(x)``, the loss ``L``, the parameters by their
    state_dict names (``layers.0.weight``)."""
    n = len(session.Ftr)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise ValueError(f"backprop: example must be an integer in [0, {n - 1}], got {index!r}")
    x = Tensor(session.Ftr[index:index + 1])
    x.name = "phi(x)"
    session.mode(False)
    loss = session.loss_fn(session.model(x), session._target(session.data.y_train[index:index + 1]))
    loss.name = "L"
    return loss


def backprop(session: Session, index: int = 0) -> dict:
    """The computation graph of one example's loss (nodes with values and ``||dL/d node||``) and
    the backprop ledger, one row per edge in reverse topological order (``viz.backprop_trace``)."""
    loss = example_loss(session, index)
    graph = viz.graph(loss, grads=True, names=session.model)
    trace = viz.backprop_trace(loss, names=session.model)
    nodes = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in n.items()} for n in graph.to_dict()["nodes"]]
    return {"type": "backprop", "example": index, "n_examples": len(session.Ftr),
            "x": session.data.X_train[index].astype(float).round(4).tolist(),
            "y": float(session.data.y_train[index]), "loss": float(loss._data), "step": session.steps,
            "graph": {"root": graph.root, "nodes": nodes, "edges": graph.edges}, "trace": trace.to_dict()}


# the cost rows the panel shows, with the lecture's formula for each (D x 2D network, batch B)
COST_TEX = {
    "parameters": r"P = \sum_l n_{l-1} n_l \;(+\, n_l \text{ biases})",
    "memory: parameters": r"P \times 4 \text{ bytes (float32)}",
    "memory: gradients": r"\nabla_\theta L:\; P \text{ numbers}",
    "memory: optimizer state": r"k P,\; k = 0 \text{ (SGD)}, 1 \text{ (momentum, Adagrad, RMSProp)}, 2 \text{ (Adam: } m, v)",
    "memory: optimizer scratch": r"\text{work arrays of the in-place update}",
    "memory: saved activations": r"B \sum_l n_l \text{ (every layer's output, kept for backward)}",
    "memory: activations at peak": r"B \sum_{l \,\text{not yet reached}} n_l",
    "memory: temporaries at peak": r"\partial L/\partial z \text{ in flight}",
    "memory: training peak": r"D \cdot 2D + 2 \cdot D \cdot 2D + B D + B \cdot 2D",
    "memory: training peak (tracemalloc)": r"\text{NumPy's own count}",
    "memory: inference peak": r"D \cdot 2D + B \cdot 2D",
    "compute: forward MACs": r"B \sum_l n_{l-1} n_l \quad (B \times D \times 2D)",
    "compute: forward FLOPs": r"2 \times \text{MACs} + \text{elementwise}",
    "compute: backward dX MACs": r"\partial L/\partial X = G W:\; B \sum_l n_{l-1} n_l",
    "compute: backward dW MACs": r"\partial L/\partial W = G^\top X:\; B \sum_l n_{l-1} n_l",
    "compute: backward other FLOPs": r"\text{bias sums, } g'(z), \text{ loss gradient}",
    "compute: backward FLOPs": r"\approx 2 \times \text{forward: } 2 \times B \times D \times 2D \text{ MACs}",
    "compute: optimizer step FLOPs": r"c P,\; c = 2 \text{ (SGD)} \ldots 14 \text{ (Adam)}",
    "compute: inference FLOPs": r"2 B \sum_l n_{l-1} n_l + \text{elementwise}",
}


def cost_table(session: Session) -> dict:
    """The lecture's street-fighting estimate, chainrule's full estimate and one measured training
    step, side by side (the rows of ``chainrule cost --measure``), for the current network, batch
    size and optimizer. Measuring restores the weights and optimizer state (it does not train)."""
    B = min(session.config["batch_size"], len(session.Ftr))
    est = _cost.estimate(session.model, B, optimizer=session.opt)
    meas = None
    if session.config["optimizer"] != "newton":
        X, y = session.Ftr[:B], session._target(session.data.y_train[:B])
        session.mode(True)
        meas = _cost.measure(session.model, Tensor(X), y, session.loss_fn, session.opt, use_tracemalloc=False)
    rows = []
    for label, unit, lec, e, m, why in _cost.comparison_rows(est, meas):
        why_lec, why_meas = why if isinstance(why, tuple) else (why, "")
        reasons = [why_lec] if why_lec and lec is not None and lec != e else []
        if meas is not None and e and (m is None or abs(m / e - 1) > 0.1):  # as `chainrule cost` explains a gap
            reasons.append("measured: " + (why_meas or "the estimate's model of this line is off"))
        rows.append({"quantity": label, "unit": unit, "lecture": lec, "estimate": e, "measured": m,
                     "why": "; ".join(reasons), "tex": COST_TEX.get(label, "")})
    return {"type": "cost", "sizes": est.sizes, "batch_size": B, "optimizer": est.optimizer,
            "parameters": est.parameters, "measured": meas is not None, "rows": rows,
            "lecture_text": est.lecture_text()}


def _contours(fn: pg.TestFunction, width: int = 320, height: int = 240) -> str:
    """The function over its window as banded greys (log levels when the function has them)."""
    xs = np.linspace(*fn.xlim, width)
    ys = np.linspace(*fn.ylim, height)[::-1]
    X, Y = np.meshgrid(xs, ys)
    Z = fn.f(X, Y) - fn.f_min
    Z = np.log10(np.maximum(Z, 1e-3)) if fn.log_levels else Z
    t = (Z - Z.min()) / max(Z.max() - Z.min(), 1e-12)
    band = np.floor(t * 24) / 24  # 24 levels: the bands' edges read as contour lines
    edge = np.abs(np.diff(band, axis=1, prepend=band[:, :1])) + np.abs(np.diff(band, axis=0, prepend=band[:1]))
    grey = 250 - 70 * band - np.where(edge > 0, 60, 0)
    return rgba_b64(np.repeat(grey[..., None], 3, axis=2))


def race(function: str = "ravine", optimizers=("sgd", "momentum", "adam"), learning_rate: float | None = None,
         momentum: float = 0.9, steps: int = 100, lr_all: bool = False) -> dict:
    """Race the chosen optimizers from the function's start point (``playground.run``).
    ``learning_rate`` overrides the rate of SGD, momentum and Nesterov (all but Newton with
    ``lr_all``); ``momentum`` is momentum's and Nesterov's coefficient."""
    if function not in RACE_FUNCTIONS:
        raise ValueError(f"race: function must be one of {', '.join(RACE_FUNCTIONS)}, got {function!r}")
    bad = [o for o in optimizers if o not in RACE_OPTIMIZERS] if isinstance(optimizers, list | tuple) else [optimizers]
    if bad or not optimizers:
        raise ValueError(f"race: optimizers must be a non-empty list from {', '.join(RACE_OPTIMIZERS)}, got {optimizers!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_RACE_STEPS:
        raise ValueError(f"race: steps must be an integer in [1, {MAX_RACE_STEPS}], got {steps!r}")
    if learning_rate is not None and not (isinstance(learning_rate, int | float) and 0 < learning_rate <= 10):
        raise ValueError(f"race: learning_rate must be in (0, 10], got {learning_rate!r}")
    if not (isinstance(momentum, int | float) and 0 <= momentum < 1):
        raise ValueError(f"race: momentum must be in [0, 1), got {momentum!r}")
    fn = pg.get_function(function)
    settings = {}
    for name in optimizers:
        s = dict(fn.settings.get(name, {}))
        if learning_rate is not None and (name in ("sgd", "momentum", "nesterov") or (lr_all and name != "newton")):
            s["lr"] = float(learning_rate)
        if name in ("momentum", "nesterov"):
            s["momentum"] = float(momentum)
        settings[name] = s
    results = pg.run(fn, list(optimizers), steps=steps, settings=settings)
    paths = []
    for r in results.values():
        finite = np.isfinite(r.path).all(axis=1)
        stop = int(np.argmin(finite)) if not finite.all() else len(r.path)
        final = float(r.losses[-1])
        diverged = not finite.all() or not math.isfinite(final) or final > 1e6 * (abs(float(r.losses[0])) + 1.0)
        paths.append({"name": r.name, "settings": {k: v for k, v in r.settings.items() if not isinstance(v, bool)},
                      "path": np.round(r.path[:stop], 5).tolist(), "steps_to_tol": r.steps_to_tol,
                      "final_loss": final if math.isfinite(final) else None, "diverged": diverged})
    return {"type": "race", "function": fn.name, "xlim": list(fn.xlim), "ylim": list(fn.ylim),
            "start": list(fn.start), "minimum": list(fn.minimum),
            "contours": {"width": 320, "height": 240, "rgba": _contours(fn)}, "paths": paths, "steps": steps}
