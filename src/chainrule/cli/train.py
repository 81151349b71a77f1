"""``chainrule train``: train a model on a bundled or CSV data set and write a run directory.

Options default to None so that we can tell what the user typed: a resumed run takes its settings
from the run's config.json, and only --epochs may change (anything else would not be the same run).
Everything the user can get wrong is one line and exit 2 (see docs/training.md, "What we promise").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from typing import Any

from .. import io, loggers
from .. import train as T
from ..checkpoint import list_checkpoints
from . import rundir as R

DEFAULTS: dict[str, Any] = {
    "data": "digits", "target": None, "task": "auto", "model": "mlp", "hidden": [128], "activation": "relu",
    "dropout": 0.0, "optimizer": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 32,
    "epochs": 20, "early_stopping": 0, "val_fraction": 0.1, "seed": 0,
}

_EXAMPLES = """examples:
  chainrule train                                   # MLP on the bundled digits, 20 epochs
  chainrule train --data mnist1d --hidden 256,256 --epochs 60 --lr 3e-3 --batch-size 128
  chainrule train --model softmax --optimizer sgd --lr 0.1 --batch-size 0   # full-batch GD
  chainrule train --data csv:my.csv --target label --early-stopping 5 --out runs/mine
  chainrule train --data csv:houses.csv --target price --task regression    # R^2 and MAE
  chainrule train --resume runs/mine --epochs 40    # continue an interrupted (or finished) run

A run directory holds config.json, history.json, checkpoints/, loss_curve.png, model.safetensors
and metrics.json. Features are standardised with the training split's mean and std (kept in
config.json); 10% of the training split is held out for validation; the test split is only used
for the final score. --out refuses a directory that holds a run unless --overwrite is given."""


def _hidden(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden wants comma-separated integers like 128,64, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--hidden sizes must be positive integers, got {text!r}")
    return sizes


def _positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if v < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return v
    return parse


def configure(p) -> None:
    """Options of ``chainrule train`` (see ``chainrule train --help``)."""
    p.description = "Train a model on a bundled or CSV data set and write a run directory."
    p.epilog = _EXAMPLES
    d = DEFAULTS
    g = p.add_argument_group("data")
    g.add_argument("--data", help=f"digits|iris|breast_cancer|mnist1d|moons|spirals|xor|csv:PATH (default {d['data']})")
    g.add_argument("--target", help="target column of a CSV (default: the last column)")
    g.add_argument("--task", choices=["auto", "classification", "regression"],
                   help="auto: a numeric target with fractions or many distinct values is regression (default auto)")
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=list(R.MODELS),
                   help=f"default {d['model']}; cnn and gru: the MNIST-1D paper's models, --hidden sets their width")
    g.add_argument("--hidden", type=_hidden, help="hidden layer sizes of the MLP, e.g. 128,64 (default 128)")
    g.add_argument("--activation", help=f"MLP activation: relu, tanh, sigmoid, ... (default {d['activation']})")
    g.add_argument("--dropout", type=_positive(float), help="drop probability after each hidden layer (default 0)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=list(T.OPTIMIZERS), help=f"default {d['optimizer']}")
    g.add_argument("--lr", type=_positive(float), help=f"learning rate (default {d['lr']})")
    g.add_argument("--momentum", type=_positive(float), help=f"for momentum/nesterov (default {d['momentum']})")
    g.add_argument("--weight-decay", type=_positive(float), help="the optimizer's weight decay (default 0)")
    g.add_argument("--batch-size", type=_positive(int), help=f"0 means full batch (GD) (default {d['batch_size']})")
    g.add_argument("--epochs", type=_positive(int), help=f"total epochs, >= 1 (default {d['epochs']})")
    g.add_argument("--early-stopping", type=_positive(int), metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better validation loss; keep the best weights (default off)")
    g.add_argument("--seed", type=int, help=f"seed of the split, the initialisation, dropout and shuffling (default {d['seed']})")
    g = p.add_argument_group("output")
    g.add_argument("--out", help="run directory (default runs/<data>-<model>-<timestamp>)")
    g.add_argument("--overwrite", action="store_true", help="let --out replace the run already in that directory")
    g.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its latest checkpoint")
    g.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI ranks: mpiexec -n 2 chainrule train --distributed ... "
                        '(needs pip install "chainrule[distributed]")')
    g.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    g.add_argument("--eager", action="store_true",
                   help="run every step through the engine instead of replaying it (cr.compile; same numbers)")
    g.add_argument("--log", metavar="csv,tensorboard", default=None,
                   help="also log every epoch to RUN_DIR/history.csv (csv) and RUN_DIR/tensorboard/ (tensorboard)")


# ----- the run directory ------------------------------------------------------------------------
def _holds_run(out: str) -> bool:
    return any(os.path.lexists(os.path.join(out, f)) for f in (*R.RUN_FILES, "checkpoints"))


def _check_out(out: str, overwrite: bool) -> None:
    """A new run gets a directory of its own: never mix two runs' checkpoints."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} exists and is not a directory")
    if os.path.isdir(out) and _holds_run(out) and not overwrite:
        raise ValueError(f"--out {out} already holds a run: continue it with --resume {out}, pick another "
                         "--out, or pass --overwrite to replace it")


def _claim_out(out: str, overwrite: bool) -> None:
    """Make ``out`` the new run's directory (with ``overwrite``, remove the old run's files first)."""
    _check_out(out, overwrite)
    if os.path.isdir(out) and _holds_run(out):
        for f in R.RUN_FILES:
            if os.path.lexists(p := os.path.join(out, f)):
                os.remove(p)
        shutil.rmtree(os.path.join(out, "checkpoints"), ignore_errors=True)
    os.makedirs(out, exist_ok=True)


def _done_epochs(ckpt_dir: str) -> int:
    found = list_checkpoints(ckpt_dir)
    return int(os.path.basename(found[-1])[6:].split(".")[0]) if found else 0  # epoch-NNNN.safetensors


def _resume_config(args, given: dict, main: bool = True) -> dict:
    cfg = R.read_config(args.resume)
    changed = sorted(k for k in given if k != "epochs" and given[k] != cfg.get(k))
    if changed:
        raise ValueError(f"--resume continues the run as configured; only --epochs may change, not "
                         f"{', '.join('--' + k.replace('_', '-') for k in changed)}")
    done = _done_epochs(os.path.join(args.resume, "checkpoints"))
    if main and not done:  # (other ranks of a distributed run have no checkpoints: rank 0 reads them)
        raise ValueError(f"{args.resume} has no checkpoint yet (interrupted before the end of epoch 1): nothing to "
                         f"resume; start it again with --out {args.resume} --overwrite")
    if main and given.get("epochs", cfg["epochs"]) < done:
        raise ValueError(f"{args.resume} has already trained {done} epochs; --epochs {given['epochs']} is below that, "
                         f"so there is nothing to do (nothing was changed): pass --epochs above {done} to train more")
    cfg.update(given)
    return cfg


def _new_config(args, given: dict) -> tuple[dict, str]:
    cfg = {**DEFAULTS, **given}
    if cfg["model"] in ("logreg", "softmax") and ("hidden" in given or "dropout" in given or "activation" in given):
        raise ValueError(f"--hidden/--dropout/--activation apply to --model mlp (and --hidden/--dropout to cnn, "
                         f"--hidden to gru), not {cfg['model']}")
    if cfg["model"] in ("cnn", "gru") and ("activation" in given or (cfg["model"] == "gru" and "dropout" in given)):
        raise ValueError(f"--model {cfg['model']} takes --hidden (its width)"
                         + (" and --dropout" if cfg["model"] == "cnn" else "") + ", not --activation"
                         + ("/--dropout" if cfg["model"] == "gru" else ""))
    if cfg["model"] in ("cnn", "gru") and "hidden" not in given:
        cfg["hidden"] = [32]  # the MNIST-1D recipes' width (the MLP's default of 128 is not theirs)
    if not 0.0 <= cfg["dropout"] < 1.0:
        raise ValueError(f"--dropout must be in [0, 1), got {cfg['dropout']}")
    if cfg["epochs"] < 1:
        raise ValueError("--epochs must be at least 1 for a new run (0 would train nothing)")
    R.check_config({**cfg, "task": "classification"}, "the options", trained=False)
    out = args.out or os.path.join("runs", f"{cfg['data'].replace('csv:', '').replace(os.sep, '_')}-{cfg['model']}-"
                                   f"{time.strftime('%Y%m%d-%H%M%S')}")
    _check_out(out, args.overwrite)  # before the data is loaded: refusing should be quick
    return cfg, out


# ----- the command ------------------------------------------------------------------------------
def run(args, fit=None, main: bool = True) -> int:
    """``chainrule train``: train, print progress and the test score, write the run directory.

    ``fit`` replaces :func:`chainrule.train.fit` (data-parallel training passes its own); ``main``
    is False on the ranks that neither print nor write."""
    if getattr(args, "distributed", False):  # mpiexec -n K chainrule train --distributed ...
        return _run_distributed(args)
    try:
        return _train(args, fit or T.fit, main)
    except OSError as e:  # a full disk, a file-size limit, a permission: what, where, and what survived
        print(f"chainrule train: error: {R.os_error(e)}", file=sys.stderr)
        return 2


def _train(args, fit, main: bool) -> int:
    given = {k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None}
    if args.resume:
        cfg, out = _resume_config(args, given, main), args.resume
    else:
        cfg, out = _new_config(args, given)
    ds, scaler, y_scaler, train, val, test = R.prepare(cfg)
    if ds.task == "regression" and cfg["task"] == "auto" and main:
        print(f"chainrule train: the target {ds.target_names[0]!r} is numeric with "
              f"{len(set(ds.y_train.tolist()))} distinct values: training a regressor (R^2, MAE); "
              "pass --task classification to treat it as classes", file=sys.stderr)
    cfg["task"] = ds.task
    T.manual_seed(cfg["seed"])
    model = R.build_model(cfg, ds.n_features, ds.n_classes)
    optimizer = T.make_optimizer(cfg["optimizer"], model.parameters(), cfg["lr"], cfg["momentum"], cfg["weight_decay"])
    cfg.update(n_features=ds.n_features, n_classes=ds.n_classes, feature_names=ds.feature_names,
               target_names=ds.target_names, scaler=scaler, y_scaler=y_scaler, model_config=model.config(),
               data_sha256=R.fingerprint(ds))
    config = _WriteConfig(os.path.join(out, "config.json"), cfg, main)
    if not args.resume:
        _claim_out(out, args.overwrite)
        config.on_train_begin()  # a new run's directory is marked as taken at once
    es = [T.EarlyStopping(patience=cfg["early_stopping"])] if cfg["early_stopping"] else []
    ckpt = os.path.join(out, "checkpoints")
    logs = loggers.from_spec(args.log, out)
    if main:
        print(f"chainrule train: {ds!r}; {type(model).__name__} with {sum(p.numel() for p in model.parameters()):,} "
              f"parameters; {cfg['optimizer']} lr={cfg['lr']}; run directory {out}", flush=True)
    try:
        with _sigterm_as_interrupt():
            history = fit(model, R.loss_for(model, cfg["task"]), optimizer, train, val, epochs=cfg["epochs"],
                          batch_size=cfg["batch_size"] or None, metrics=R.metrics_for(cfg["task"]),
                          callbacks=[*es, config, *logs] if args.resume else [*es, *logs],
                          checkpoint_dir=ckpt, resume=ckpt if args.resume else None, seed=cfg["seed"],
                          verbose=main and not args.quiet,
                          **({"compile": not args.eager} if fit is T.fit else {}))  # data-parallel steps run eagerly
    except KeyboardInterrupt as e:
        terminated = isinstance(e, _Terminated)
        if main:
            _interrupted(out, ckpt, "terminated (SIGTERM)" if terminated else "interrupted")
        return 128 + signal.SIGTERM if terminated else 130
    except FloatingPointError as e:
        raise ValueError(str(e)) from None
    if main:
        _report_early_stopping(es)
    return _finish(out, cfg, model, ds, history, test, main)


class _WriteConfig(T.Callback):
    """config.json is written when training begins: after a resumed run's checkpoint was read and
    checked (a bad checkpoint changes nothing), before the first epoch (an interrupted run can resume).
    A resumed run then says where it continues."""

    def __init__(self, path: str, cfg: dict, main: bool = True):
        self.path, self.cfg, self.main = path, cfg, main

    def on_train_begin(self, logs: dict | None = None) -> None:
        R.write_json(self.path, self.cfg)
        t = getattr(self, "trainer", None)
        if not (self.main and t is not None and t.resumed_from):
            return
        where = f"resuming {os.path.dirname(self.path)} from {os.path.basename(t.resumed_from)}"
        if t.stop_training:
            print(f"{where}: early stopping had ended it after epoch {t.epoch}; nothing more to train", flush=True)
        elif t.epoch < t.target_epochs:
            print(f"{where}: epochs {t.epoch + 1}..{t.target_epochs}", flush=True)
        else:
            print(f"{where}: all {t.epoch} epochs are done; writing the results", flush=True)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch scheduler's stop) during training: handled as Ctrl-C is."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Turn SIGTERM into :class:`_Terminated` while training, so a terminated run says which
    checkpoint survived instead of vanishing without a word. Interrupting a checkpoint write is
    safe: :func:`chainrule.io.write_atomic` removes its temporary and leaves the old file."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers: main thread only
        yield
        return

    def stop(signum, frame):
        raise _Terminated
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(out: str, ckpt: str, how: str = "interrupted") -> None:
    done = _done_epochs(ckpt)
    if done:
        print(f"chainrule train: {how}; the last checkpoint is epoch {done}: continue with: "
              f"chainrule train --resume {out}", file=sys.stderr)
    else:
        print(f"chainrule train: {how} before the first checkpoint (end of epoch 1): nothing to resume; "
              f"start again with --out {out} --overwrite", file=sys.stderr)


def _report_early_stopping(es: list) -> None:
    if not es:
        return
    e = es[0]
    kept = f"kept the weights of epoch {e.restored_epoch} ({e.monitor} {e.best:.4f})" if e.restored_epoch else \
        "kept the last epoch's weights"
    if e.stopped_epoch:
        print(f"early stopping: {e.monitor} did not improve for {e.patience} epochs; stopped after epoch "
              f"{e.stopped_epoch} and {kept}", flush=True)
    elif e.restored_epoch:
        print(f"early stopping did not stop the run; {kept}", flush=True)


def _finish(out, cfg, model, ds, history, test, main: bool) -> int:
    if cfg["task"] == "regression":
        res = T.evaluate(model, R.loss_for(model, "regression"), test, ("r2", "mae"))
        res["mae"] *= cfg["y_scaler"]["scale"]  # in the target's own units
        summary = f"test R^2 {res['r2']:.4f}  test MAE {res['mae']:.4g}"
    else:
        res = T.evaluate(model, R.loss_for(model), test)
        summary = f"test accuracy {res['accuracy']:.4f}  test loss {res['loss']:.4f}"
    if not main:
        return 0
    io.save(model, os.path.join(out, "model.safetensors"), metadata={"chainrule.run": json.dumps(
        {"target_names": ds.target_names, "feature_names": ds.feature_names, "task": cfg["task"]})})
    R.write_json(os.path.join(out, "history.json"), history.to_dict())
    R.write_json(os.path.join(out, "metrics.json"), {"test_" + k: v for k, v in res.items()} | {"epochs": len(history)})
    if len(history):
        history.plot(os.path.join(out, "loss_curve.png"))
    print(f"{summary}  ({len(test[1])} samples, {len(history)} epochs)")
    logged = [f for f in ("history.csv", "tensorboard/") if os.path.exists(os.path.join(out, f))]  # --log's files
    print(f"wrote {out}/ (config.json, history.json, metrics.json, loss_curve.png, model.safetensors, checkpoints/"
          + "".join(f", {f}" for f in logged) + ")")
    if any(f == "tensorboard/" for f in logged):
        print(f"view the curves: tensorboard --logdir {os.path.join(out, 'tensorboard')}")
    return 0


# ----- data-parallel ----------------------------------------------------------------------------
def _run_distributed(args) -> int:
    """``--distributed``: :func:`run` on every rank with :func:`chainrule.distributed.fit`.

    Ranks other than 0 get a private scratch run directory (rank 0's config.json is broadcast to
    them on ``--resume``, so the run directory need only exist on rank 0's host) and print nothing.
    A user error is one line and ends every rank."""
    import tempfile

    from .. import distributed as D
    try:
        D.require_mpi()
    except ImportError as e:
        print(f"chainrule train --distributed: {e}", file=sys.stderr)
        return 2
    D.init()
    args.distributed = False
    with D.guard(), tempfile.TemporaryDirectory(prefix=f"chainrule-rank{D.rank()}-") as scratch:
        try:
            _scratch_for_other_ranks(args, scratch, D)
            rc = _train(args, D.fit, D.is_main())
        except (ValueError, OSError, KeyError) as e:
            msg = R.os_error(e) if isinstance(e, OSError) else e
            if D.world_size() == 1:
                print(f"chainrule train: error: {msg}", file=sys.stderr)
                return 2
            D.abort(f"chainrule train: error: {msg}", 2)
        if rc and D.world_size() > 1:
            D.abort(f"chainrule train exited with status {rc}", rc)
        return rc


def _scratch_for_other_ranks(args, scratch: str, D) -> None:
    config = None
    if args.resume and D.is_main():
        config = R.read_config(args.resume)
    config = D.broadcast_object(config) if args.resume else None
    if D.is_main():
        return
    if args.resume:
        R.write_json(os.path.join(scratch, "config.json"), config)
        args.resume = scratch
    else:
        args.out, args.overwrite = scratch, True
