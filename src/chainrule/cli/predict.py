"""``chainrule predict``: predictions for the rows of a CSV, as CSV on stdout."""

from __future__ import annotations

import csv
import os
import sys
import warnings

import numpy as np

from .. import datasets
from . import rundir as R


def configure(p) -> None:
    p.description = "Predict classes (or values) for the rows of a CSV with a trained run; writes CSV to stdout."
    p.epilog = """examples:
  chainrule predict runs/mine --data csv:new.csv > predictions.csv
  chainrule predict runs/mine --data csv:new.csv --proba

The CSV needs the training feature columns (by name, any order); other columns are ignored."""
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by chainrule train")
    p.add_argument("--data", required=True, help="csv:PATH of the rows to predict")
    p.add_argument("--proba", action="store_true", help="add one probability column per class (classification)")


def _rows(run: R.Run, X: np.ndarray, proba: bool):
    if run.task == "regression":
        if proba:
            raise ValueError("--proba is for classification runs; this run is a regression")
        values = R.predict_values(run, X)
        return ["prediction"], ([f"{v:.6g}"] for v in values), values
    p = np.asarray(run.model.predict_proba(X), np.float64)
    if p.ndim == 1:  # binary logistic regression: P(y = 1)
        p = np.stack([1.0 - p, p], axis=1)
    names = run.config["target_names"]
    head = ["prediction"] + ([f"p_{n}" for n in names] if proba else [])
    return head, ([names[int(r.argmax())]] + ([f"{v:.6g}" for v in r] if proba else []) for r in p), p


def run(args) -> int:
    try:
        with warnings.catch_warnings(record=True):  # NaN weights: the refusal below says it in one line
            warnings.simplefilter("always", RuntimeWarning)
            return _predict(args)
    except OSError as e:
        print(f"chainrule predict: error: {R.os_error(e)}", file=sys.stderr)
        return 2


def _predict(args) -> int:
    if not args.data.startswith("csv:"):
        raise ValueError(f"--data must be csv:PATH, got {args.data!r}")
    run_ = R.load_run(args.run_dir)
    X = R.standardize(datasets.read_csv_features(args.data[4:], run_.config["feature_names"]), run_.config["scaler"])
    head, rows, values = _rows(run_, X, args.proba)
    bad = ~np.isfinite(values).reshape(len(X), -1).all(axis=1)
    if bad.any():  # NaN weights: refuse rather than write rows of nan with exit 0
        raise ValueError(f"the model in {run_.source} gives non-finite outputs for {int(bad.sum())} of {len(X)} rows "
                         "(its weights hold NaN/Inf?): retrain, or resume from an earlier checkpoint")
    w = csv.writer(sys.stdout, lineterminator="\n")
    try:
        w.writerow(head)
        w.writerows(rows)
        sys.stdout.flush()
    except BrokenPipeError:  # `chainrule predict ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
