"""Optimizer playground: race optimizers on classic 2-D test functions and draw their paths.

The functions are written with chainrule tensors (they also accept plain arrays, for the contour
plot). The ravine is the lecture's momentum picture: an ill-conditioned quadratic on which plain
SGD zig-zags across the steep direction while momentum builds up speed along the shallow one.

Library::

    from chainrule import playground as pg
    results = pg.run("ravine", ["sgd", "momentum", "adam", "newton"], steps=100)
    pg.plot_trajectories("ravine", results, "ravine.png")

CLI (:mod:`chainrule.cli.optimizers`)::

    chainrule optimizers --function ravine --optimizers sgd,momentum,nesterov,adagrad,rmsprop,adam,newton \\
        --steps 100 --out trajectories.png
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import optim
from ._plot import pyplot
from .tensor import Tensor


@dataclass(frozen=True)
class TestFunction:
    """A 2-D test function ``f(x, y)`` with its minimum, a start point, a plotting window and
    sensible per-optimizer hyperparameters (overridable)."""

    name: str
    f: Callable
    start: tuple[float, float]
    minimum: tuple[float, float]
    f_min: float
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    settings: dict = field(default_factory=dict)
    log_levels: bool = True

    __test__ = False  # not a pytest test class


def _parabola(x, y):
    return x * x + y * y


def _ravine(x, y):
    return 0.5 * (x * x + 25.0 * y * y)  # condition number 25: the lecture's "ravine"


def _rosenbrock(x, y):
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def _beale(x, y):
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2 + (2.625 - x + x * y ** 3) ** 2


def _saddle(x, y):
    return x * x - y * y + 0.25 * y ** 4  # saddle at the origin, minima at (0, +-sqrt 2)


FUNCTIONS = {
    "parabola": TestFunction("parabola", _parabola, (-1.5, 1.0), (0.0, 0.0), 0.0, (-2, 2), (-1.5, 1.5), dict(
        sgd=dict(lr=0.1), momentum=dict(lr=0.05, momentum=0.9), nesterov=dict(lr=0.05, momentum=0.9, nesterov=True),
        adagrad=dict(lr=0.5), rmsprop=dict(lr=0.02), adam=dict(lr=0.1), newton=dict())),
    "ravine": TestFunction("ravine", _ravine, (-9.0, 1.5), (0.0, 0.0), 0.0, (-10, 10), (-2.5, 2.5), dict(
        sgd=dict(lr=0.075), momentum=dict(lr=0.075, momentum=0.6), nesterov=dict(lr=0.05, momentum=0.6, nesterov=True),
        adagrad=dict(lr=2.0), rmsprop=dict(lr=0.1), adam=dict(lr=0.5), newton=dict())),
    "rosenbrock": TestFunction("rosenbrock", _rosenbrock, (-1.2, 1.0), (1.0, 1.0), 0.0, (-2, 2), (-1, 3), dict(
        sgd=dict(lr=2e-3), momentum=dict(lr=1e-3, momentum=0.9), nesterov=dict(lr=1e-3, momentum=0.9, nesterov=True),
        adagrad=dict(lr=0.5), rmsprop=dict(lr=1e-2), adam=dict(lr=0.05), newton=dict(line_search=True))),
    "beale": TestFunction("beale", _beale, (1.0, 1.4), (3.0, 0.5), 0.0, (-0.5, 4.5), (-1.5, 2.0), dict(
        sgd=dict(lr=0.01), momentum=dict(lr=0.005, momentum=0.9), nesterov=dict(lr=0.005, momentum=0.9, nesterov=True),
        adagrad=dict(lr=0.5), rmsprop=dict(lr=0.01), adam=dict(lr=0.05), newton=dict(line_search=True, damping=0.1))),
    "saddle": TestFunction("saddle", _saddle, (-1.5, 1e-3), (0.0, 2.0 ** 0.5), -1.0, (-2, 2), (-2, 2.5), dict(
        sgd=dict(lr=0.05), momentum=dict(lr=0.05, momentum=0.9), nesterov=dict(lr=0.05, momentum=0.9, nesterov=True),
        adagrad=dict(lr=0.5), rmsprop=dict(lr=0.05), adam=dict(lr=0.1), newton=dict(damping=2.0, line_search=True)),
        log_levels=False),
}

# optimizer name -> (class, fixed options); per-function settings add lr and the rest
OPTIMIZERS = {
    "sgd": (optim.SGD, {}),
    "momentum": (optim.SGD, {"momentum": 0.9}),
    "nesterov": (optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (optim.Adagrad, {}),
    "rmsprop": (optim.RMSprop, {}),
    "adam": (optim.Adam, {}),
    "adamw": (optim.AdamW, {}),
    "newton": (optim.Newton, {}),
}


@dataclass
class Result:
    """One optimizer's race: the path (steps + 1, 2), the loss at each point, its settings, and
    the first step at which ``f - f_min < tol`` (None if never)."""

    name: str
    settings: dict
    path: np.ndarray
    losses: np.ndarray
    steps_to_tol: int | None


def get_function(function) -> TestFunction:
    """The 2-D test function named ``function`` (ravine, rosenbrock, beale, saddle, parabola); a
    :class:`TestFunction` passes through."""
    if isinstance(function, TestFunction):
        return function
    if function not in FUNCTIONS:
        raise ValueError(f"unknown function {function!r}: choose one of {', '.join(FUNCTIONS)}")
    return FUNCTIONS[function]


def make_optimizer(name: str, params, function=None, **overrides):
    """The named optimizer with the function's default hyperparameters, updated by ``overrides``."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: choose from {', '.join(OPTIMIZERS)}")
    cls, fixed = OPTIMIZERS[name]
    settings = {**fixed, **(get_function(function).settings.get(name, {}) if function is not None else {}), **overrides}
    return cls(params, **settings), settings


def run(function, optimizers=("sgd", "momentum", "adam", "newton"), start=None, steps: int = 100, tol: float = 1e-6,
        lr: float | None = None, settings: dict | None = None, until_tol: bool = False) -> dict[str, Result]:
    """Run each optimizer from the same start point for ``steps`` steps (float64).

    ``optimizers`` is a list of names (``sgd momentum nesterov adagrad rmsprop adam adamw newton``)
    or a dict ``{label: factory}`` with ``factory(params) -> Optimizer`` for anything else, e.g.
    ``{"adam lr=0.3": lambda ps: cr.optim.Adam(ps, lr=0.3)}``; ``lr`` overrides every named
    optimizer's learning rate; ``settings`` maps a name to extra hyperparameters;
    ``until_tol`` stops each race as soon as ``f - f_min < tol``."""
    fn = get_function(function)
    if isinstance(optimizers, str):
        optimizers = [o.strip() for o in optimizers.split(",") if o.strip()]
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    start = fn.start if start is None else tuple(float(s) for s in start)
    factories = optimizers if isinstance(optimizers, dict) else dict.fromkeys(optimizers)
    results = {}
    for name, factory in factories.items():
        theta = Tensor(np.array(start, dtype=np.float64), requires_grad=True)
        if factory is not None:
            opt = factory([theta])
            used = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
        else:
            over = dict((settings or {}).get(name, {}))
            if lr is not None:
                over["lr"] = lr
            opt, used = make_optimizer(name, [theta], fn, **over)

        def loss():
            return fn.f(theta[0], theta[1])

        path, losses = [theta._data.copy()], []
        for _ in range(steps):
            if isinstance(opt, optim.Newton):
                losses.append(float(opt.step(loss)._data))
            else:
                opt.zero_grad()
                value = loss()
                value.backward()
                opt.step()
                losses.append(float(value._data))
            path.append(theta._data.copy())
            if not np.isfinite(theta._data).all() or (until_tol and losses[-1] - fn.f_min < tol):
                break
        losses.append(float(fn.f(*path[-1])))
        losses = np.array(losses)
        hit = np.flatnonzero(losses - fn.f_min < tol)
        results[name] = Result(name, used, np.array(path), losses, int(hit[0]) if hit.size else None)
    return results


def table(function, results: dict[str, Result], tol: float = 1e-6) -> str:
    """A markdown table: steps to tolerance, final loss and final point per optimizer."""
    fn = get_function(function)
    rows = [f"| optimizer | settings | steps to f - f* < {tol:g} | final loss | final point |", "|---|---|---|---|---|"]
    for r in results.values():
        s = ", ".join(f"{k}={v}" for k, v in r.settings.items()) or "defaults"
        hit = "-" if r.steps_to_tol is None else str(r.steps_to_tol)
        x, y = r.path[-1]
        rows.append(f"| {r.name} | {s} | {hit} | {r.losses[-1]:.3g} | ({x:.4g}, {y:.4g}) |")
    x0, y0 = next(iter(results.values())).path[0] if results else fn.start
    return f"{fn.name}: minimum f* = {fn.f_min:g} at ({fn.minimum[0]:.4g}, {fn.minimum[1]:.4g}), start ({x0:.4g}, {y0:.4g})\n" \
        + "\n".join(rows)


def plot_trajectories(function, results: dict[str, Result], path=None, ax=None, title: str | None = None):
    """Contour plot of ``function`` with each optimizer's path (like the lecture's "SGD
    without/with momentum" figures). Saves to ``path`` when given; returns the figure."""
    plt = pyplot()
    fn = get_function(function)
    xs, ys = np.linspace(*fn.xlim, 300), np.linspace(*fn.ylim, 300)
    X, Y = np.meshgrid(xs, ys)
    Z = fn.f(X, Y) - fn.f_min
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 6))
    else:
        fig = ax.figure
    if fn.log_levels:
        levels = np.logspace(np.log10(max(Z.min(), 1e-3)), np.log10(Z.max()), 25)
        ax.contour(X, Y, Z, levels=levels, cmap="Greys", linewidths=0.6)
    else:
        ax.contour(X, Y, Z, levels=30, cmap="Greys", linewidths=0.6)
    for r in results.values():
        p = r.path
        ax.plot(p[:, 0], p[:, 1], ".-", lw=1.2, ms=3, label=f"{r.name} ({'-' if r.steps_to_tol is None else r.steps_to_tol})")
    ax.plot(*fn.minimum, "k*", ms=12)
    ax.plot(*fn.start, "ko", ms=5)
    ax.set_xlim(fn.xlim)
    ax.set_ylim(fn.ylim)
    ax.set_title(title or f"{fn.name}: optimizer paths (steps to tolerance)")
    ax.legend(loc="best", fontsize=8)
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
    return fig
