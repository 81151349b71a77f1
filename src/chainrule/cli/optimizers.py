"""``chainrule optimizers``: race optimizers on a 2-D test function of :mod:`chainrule.playground`,
print steps-to-tolerance, and draw their paths on the contour plot.

    chainrule optimizers --function ravine --optimizers sgd,momentum,adam,newton --steps 100 --out paths.png
"""

from __future__ import annotations

import argparse

from .. import playground as pg


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--function", default="ravine", choices=sorted(pg.FUNCTIONS), help="2-D test function")
    parser.add_argument("--optimizers", default="sgd,momentum,nesterov,adagrad,rmsprop,adam,newton",
                        help=f"comma-separated, from: {','.join(pg.OPTIMIZERS)}")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=None, help="override every optimizer's learning rate")
    parser.add_argument("--start", default=None, help="start point 'x,y' (default: the function's)")
    parser.add_argument("--tol", type=float, default=1e-6, help="tolerance on f - f* for 'steps to tolerance'")
    parser.add_argument("--out", default=None, help="write the contour plot with the paths to this PNG")


def _point(text: str) -> tuple[float, float]:
    try:
        start = tuple(float(s) for s in text.split(","))
    except ValueError:
        start = ()
    if len(start) != 2:
        raise ValueError(f"--start must be 'x,y', got {text!r}")
    return start


def run(args: argparse.Namespace) -> int:
    """Race the optimizers, print the table, write the trajectory plot."""
    start = _point(args.start) if args.start else None
    results = pg.run(args.function, args.optimizers, start=start, steps=args.steps, tol=args.tol, lr=args.lr)
    print(pg.table(args.function, results, args.tol))
    if args.out:
        pg.plot_trajectories(args.function, results, args.out)
        print(f"wrote {args.out}")
    return 0
