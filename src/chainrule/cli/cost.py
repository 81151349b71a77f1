"""``chainrule cost``: the lecture's street-fighting math for a layer spec or a trained run.

    chainrule cost --layers 784,512,512,10 --batch-size 128 --optimizer adam [--measure]
    chainrule cost RUN_DIR            (a directory written by chainrule train)
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .. import cost
from ..models import MLP
from ._types import at_least
from .rundir import load_run  # the run-directory reader chainrule evaluate and predict use

_DEFAULT_BATCH = 128


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", nargs="?", default=None, help="a run directory written by chainrule train")
    parser.add_argument("--layers", default=None, help="layer sizes, e.g. 784,512,512,10")
    parser.add_argument("--batch-size", type=at_least(int, 1, " (the number of examples per step)"), default=None,
                        help=f"batch size B >= 1 (default {_DEFAULT_BATCH}, or the run's)")
    parser.add_argument("--optimizer", default=None,
                        help=f"one of {', '.join(cost.OPTIMIZERS)} (default adam, or the run's)")
    parser.add_argument("--activation", default="relu", help="hidden activation (default relu)")
    parser.add_argument("--dtype", default="float32", help="float32 or float64")
    parser.add_argument("--measure", action="store_true", help="also run one instrumented training step")


def run(args: argparse.Namespace) -> int:
    """Print the estimate (and, with ``--measure``, the measurement) for a layer spec or a run directory."""
    if args.run_dir is not None:
        model, batch_size, optimizer = _run_model(args.run_dir)
        cost.report(model, batch_size=args.batch_size or batch_size, optimizer=args.optimizer or optimizer,
                    measure=args.measure)
        return 0
    if not args.layers:
        raise ValueError("give --layers (e.g. --layers 784,512,512,10) or a run directory")
    try:
        sizes = [int(v) for v in args.layers.split(",")]
    except ValueError:
        raise ValueError(f"--layers must be comma-separated integers, got {args.layers!r}") from None
    B, opt = args.batch_size or _DEFAULT_BATCH, args.optimizer or "adam"
    if not args.measure:
        est = cost.estimate_mlp(sizes, B, activation=args.activation, optimizer=opt, dtype=args.dtype)
        print(cost.reporting.text(est, None))
        return 0
    model = MLP(sizes, activation=args.activation.lower())
    if np.dtype(args.dtype) != np.float32:
        model.to(np.dtype(args.dtype))
    cost.report(model, batch_size=B, optimizer=opt, measure=True)
    return 0


def _run_model(run_dir: str):
    """(model, batch size, optimizer name) of a ``chainrule train`` run directory (its final model,
    or the latest checkpoint of an interrupted run)."""
    run = load_run(run_dir)
    model, cfg = run.model, run.config
    batch_size = cfg.get("batch_size")
    if not batch_size:  # 0 means full-batch gradient descent: the batch is the training set
        batch_size = _DEFAULT_BATCH
        print(f"chainrule cost: {run_dir} trained full-batch; estimating for batch {_DEFAULT_BATCH} (pass --batch-size)",
              file=sys.stderr)
    return model, int(batch_size), str(cfg.get("optimizer", "adam")).lower()
