"""Optimizer playground: the lecture's momentum picture, Newton on quadratics, convergence of
every optimizer on the parabola and on Rosenbrock (one parametrized list), and the CLI."""

import numpy as np
import pytest

from chainrule import optim
from chainrule import playground as pg
from chainrule.cli import main

# every optimizer, with settings under which it converges on each function
CONVERGENCE = [
    ("parabola", "sgd", {}), ("parabola", "momentum", {}), ("parabola", "nesterov", {}),
    ("parabola", "adagrad", {}), ("parabola", "rmsprop", {}), ("parabola", "adam", {}),
    ("parabola", "adamw", {"lr": 0.1, "weight_decay": 0.0}), ("parabola", "newton", {}),
    ("rosenbrock", "sgd", {"lr": 2e-3}), ("rosenbrock", "momentum", {"lr": 1e-3}),
    ("rosenbrock", "nesterov", {"lr": 1e-3}), ("rosenbrock", "adagrad", {"lr": 0.5}),
    ("rosenbrock", "rmsprop", {"lr": 3e-3, "momentum": 0.9}), ("rosenbrock", "adam", {"lr": 0.05}),
    ("rosenbrock", "adamw", {"lr": 0.05}), ("rosenbrock", "newton", {"line_search": True}),
]


@pytest.mark.parametrize("function,name,settings", CONVERGENCE, ids=[f"{f}-{n}" for f, n, _ in CONVERGENCE])
def test_every_optimizer_converges(function, name, settings):
    fn = pg.FUNCTIONS[function]
    start = (0.0, 0.0) if function == "rosenbrock" else None  # Rosenbrock: a shorter walk down the valley
    tol = 1e-6 if function == "parabola" else 1e-2
    r = pg.run(function, [name], start=start, steps=2500, tol=tol, settings={name: settings}, until_tol=True)[name]
    assert r.steps_to_tol is not None, f"{name} did not reach f - f* < {tol} (final loss {r.losses[-1]:.3g})"
    assert np.linalg.norm(r.path[r.steps_to_tol] - np.array(fn.minimum)) < 0.25
    assert np.all(np.isfinite(r.path))


def test_momentum_beats_sgd_in_the_ravine_at_the_same_lr():
    """The lecture's picture: SGD zig-zags across the ravine; momentum damps the zig-zag and
    builds speed along the floor."""
    lr = 0.075
    res = pg.run("ravine", ["sgd", "momentum"], steps=300, lr=lr)
    sgd, mom = res["sgd"], res["momentum"]
    assert sgd.settings["lr"] == mom.settings["lr"] == lr
    assert mom.steps_to_tol is not None and sgd.steps_to_tol is not None
    assert mom.steps_to_tol < sgd.steps_to_tol / 2
    # SGD's zig-zag: the steep coordinate changes sign almost every step
    flips = np.mean(np.sign(sgd.path[1:20, 1]) != np.sign(sgd.path[:19, 1]))
    assert flips > 0.9


@pytest.mark.parametrize("function", ["ravine", "parabola"])
def test_newton_solves_a_quadratic_in_one_step(function):
    r = pg.run(function, ["newton"], steps=3)["newton"]
    assert r.steps_to_tol == 1
    np.testing.assert_allclose(r.path[1], pg.FUNCTIONS[function].minimum, atol=1e-12)


def test_run_returns_paths_and_losses_from_one_start():
    res = pg.run("beale", ["sgd", "adam"], start=(1.0, 1.0), steps=10)
    for r in res.values():
        assert r.path.shape == (11, 2) and r.losses.shape == (11,)
        np.testing.assert_array_equal(r.path[0], [1.0, 1.0])
        np.testing.assert_allclose(r.losses, [pg.FUNCTIONS["beale"].f(*p) for p in r.path], rtol=1e-12)
        assert r.losses[-1] < r.losses[0]
    custom = pg.run("parabola", {"adam lr=0.3": lambda ps: optim.Adam(ps, lr=0.3)}, steps=5)["adam lr=0.3"]
    assert custom.settings["lr"] == 0.3 and custom.path.shape == (6, 2) and custom.losses[-1] < custom.losses[0]
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        pg.run("beale", ["lbfgs"])
    with pytest.raises(ValueError, match="unknown function 'sphere'"):
        pg.run("sphere", ["sgd"])


def test_saddle_is_escaped():
    res = pg.run("saddle", ["sgd", "adam", "newton"], steps=300)
    for r in res.values():
        assert abs(abs(r.path[-1, 1]) - np.sqrt(2)) < 0.05, r.name


def test_cli_writes_png_and_prints_table(tmp_path, capsys):
    out = tmp_path / "trajectories.png"
    code = main(["optimizers", "--function", "ravine", "--optimizers", "sgd,momentum,nesterov,adagrad,rmsprop,adam,newton",
                 "--steps", "100", "--out", str(out)])
    assert code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    text = capsys.readouterr().out
    for name in ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "newton"):
        assert f"| {name} |" in text
    assert "steps to f - f* < 1e-06" in text
    newton_row = next(line for line in text.splitlines() if line.startswith("| newton |"))
    assert newton_row.split("|")[3].strip() == "1"


def test_cli_lr_override_and_bad_input(capsys):
    assert main(["optimizers", "--function", "parabola", "--optimizers", "sgd", "--steps", "5", "--lr", "0.25"]) == 0
    assert "lr=0.25" in capsys.readouterr().out
    assert main(["optimizers", "--optimizers", "sgd", "--start", "1;2"]) == 2
    assert "--start must be 'x,y'" in capsys.readouterr().err
