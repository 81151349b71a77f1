"""``chainrule evaluate``: score a trained run on its test split or on a labelled CSV."""

from __future__ import annotations

import sys
import warnings

import numpy as np

from .. import datasets
from .. import train as T
from . import rundir as R


def configure(p) -> None:
    p.description = "Evaluate a trained run on its test split (or on a labelled CSV)."
    p.epilog = """examples:
  chainrule evaluate runs/digits-mlp-20250101-120000
  chainrule evaluate runs/mine --data csv:new_labelled.csv"""
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by chainrule train")
    p.add_argument("--data", help="csv:PATH with the training target column (default: the run's test split)")


def _csv_data(path: str, run: R.Run):
    cfg = run.config
    header, body = datasets._read_csv(path)
    target = cfg["target"] or ([c for c in header if c not in cfg["feature_names"]] or [None])[0]
    if target is None or target not in header:
        raise ValueError(f"{path}: no target column {target or ''} besides the features {cfg['feature_names']}")
    X = R.standardize(datasets.read_csv_features(path, cfg["feature_names"]), cfg["scaler"])
    labels = [r[header.index(target)].strip() for r in body]
    if run.task == "regression":
        try:
            y = np.array(labels, np.float64)
        except ValueError:
            raise ValueError(f"{path}: the target column {target!r} must hold numbers for this regression run") from None
        ys = cfg["y_scaler"]
        return X, ((y - ys["mean"]) / ys["scale"]).astype(np.float32)
    index = {name: k for k, name in enumerate(cfg["target_names"])}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(f"{path}: labels {unknown[:5]} were not seen in training (classes {cfg['target_names']})")
    return X, np.array([index[v] for v in labels], np.int64)


def run(args) -> int:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            code = _evaluate(args)
    except OSError as e:
        print(f"chainrule evaluate: error: {R.os_error(e)}", file=sys.stderr)
        return 2
    for w in caught:  # e.g. NaN weights: one line each, not the warnings module's two
        print(f"chainrule evaluate: warning: {w.message}", file=sys.stderr)
    return code


def _evaluate(args) -> int:
    run_ = R.load_run(args.run_dir)
    if args.data:
        if not args.data.startswith("csv:"):
            raise ValueError(f"--data must be csv:PATH for evaluate, got {args.data!r}")
        data, where = _csv_data(args.data[4:], run_), args.data[4:]
    else:
        data, where = R.prepare(run_.config)[5], f"the {run_.config['data']} test split"
    loss = R.loss_for(run_.model, run_.task)
    if run_.task == "regression":
        res = T.evaluate(run_.model, loss, data, ("r2", "mae"))
        print(f"R^2 {res['r2']:.4f}  MAE {res['mae'] * run_.config['y_scaler']['scale']:.4g}  "
              f"({len(data[1])} samples of {where})")
    else:
        res = T.evaluate(run_.model, loss, data)
        print(f"accuracy {res['accuracy']:.4f}  loss {res['loss']:.4f}  ({len(data[1])} samples of {where})")
    if not np.isfinite(res["loss"]):
        warnings.warn(f"the loss is {res['loss']}: the model in {run_.source} does not compute finite numbers",
                      RuntimeWarning, stacklevel=2)
    return 0
