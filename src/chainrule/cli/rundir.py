"""The run directory of ``chainrule train``, shared by train, evaluate and predict.

A run directory holds ``config.json`` (settings, feature and class names, the scalers), ``history.json``,
``metrics.json``, ``checkpoints/``, ``loss_curve.png`` and ``model.safetensors``. Everything read
from it is validated first: a hand-edited or corrupt ``config.json`` is one line naming the key,
never a traceback or a model too large to allocate.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import functional as F
from .. import io, ops
from ..checkpoint import latest_checkpoint, load_checkpoint
from ..models import ACTIVATIONS
from ..train import OPTIMIZERS

MAX_PARAMETERS = 200_000_000  # 800 MB of float32 weights: past this a config.json is a typo or hostile
RUN_FILES = ("config.json", "history.json", "metrics.json", "loss_curve.png", "model.safetensors")
TASKS = ("classification", "regression")


def _is(kind, low=None, high=None, none=False):
    """A check ``value -> bool`` for a JSON value of type ``kind`` within [low, high)."""
    def check(v):
        if v is None:
            return none
        if isinstance(v, bool) and kind is not bool or not isinstance(v, kind):
            return False
        return (low is None or v >= low) and (high is None or v < high)
    return check


def _ints(v) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(_is(int, 1)(s) for s in v)


def _strings(v) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


#: ``--model`` choices. cnn and gru are the MNIST-1D paper's convolutional and recurrent models
#: (models.CNN1d with BatchNorm, models.GRUClassifier); their width is ``--hidden`` (its first entry).
MODELS = ("logreg", "softmax", "mlp", "cnn", "gru")


_NUM = (int, float)
SCHEMA: dict[str, tuple[Any, str]] = {  # key -> (check, what it must be)
    "data": (_is(str), "a data set name or csv:PATH"),
    "target": (_is(str, none=True), "a column name or null"),
    "task": (lambda v: v in TASKS, f"one of {list(TASKS)}"),
    "model": (lambda v: v in MODELS, ", ".join(MODELS)),
    "hidden": (_ints, "a list of positive integers"),
    "activation": (lambda v: v in ACTIVATIONS, f"one of {sorted(ACTIVATIONS)}"),
    "dropout": (_is(_NUM, 0, 1), "a number in [0, 1)"),
    "optimizer": (lambda v: v in OPTIMIZERS, f"one of {list(OPTIMIZERS)}"),
    "lr": (_is(_NUM, 0), "a number >= 0"),
    "momentum": (_is(_NUM, 0), "a number >= 0"),
    "weight_decay": (_is(_NUM, 0), "a number >= 0"),
    "batch_size": (_is(int, 0), "an integer >= 0 (0: full batch)"),
    "epochs": (_is(int, 0), "an integer >= 0"),
    "early_stopping": (_is(int, 0), "an integer >= 0"),
    "val_fraction": (lambda v: _is(_NUM, 0.0, 1.0)(v) and v > 0, "a number in (0, 1)"),
    "seed": (_is(int), "an integer"),
}
TRAINED: dict[str, tuple[Any, str]] = {  # written once the data is known
    "n_features": (_is(int, 1), "an integer >= 1"),
    "n_classes": (_is(int, 1), "an integer >= 1"),
    "feature_names": (_strings, "a list of strings"),
    "target_names": (_strings, "a list of strings"),
    "scaler": (lambda v: isinstance(v, dict) and {"mean", "scale"} <= set(v), "{mean: [...], scale: [...]}"),
}


def _sequence_model(cfg: dict, n_features: int, n_outputs: int):
    """(class, keyword arguments) of the cnn or gru model a config describes."""
    from .. import models
    width = int(cfg["hidden"][0]) if cfg["hidden"] else 32
    if cfg["model"] == "cnn":
        return models.CNN1d, dict(n_features=n_features, n_classes=n_outputs, channels=width,
                                  dropout=float(cfg["dropout"]), batch_norm=True)
    return models.GRUClassifier, dict(n_features=n_features, n_classes=n_outputs, hidden_size=width)


def parameter_count(cfg: dict, n_features: int, n_outputs: int) -> int:
    """Weights and biases of the model a config describes (for the size limit, before allocating)."""
    if cfg["model"] in ("cnn", "gru"):
        cls, kw = _sequence_model(cfg, n_features, n_outputs)
        return cls.state_numel(**kw)
    sizes = [n_features, *cfg["hidden"], n_outputs] if cfg["model"] == "mlp" else [n_features, n_outputs]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def check_config(cfg: Any, where: str, trained: bool = True) -> dict:
    """Validate a run configuration (``trained``: with the data-dependent keys); returns it."""
    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: must be a JSON object of settings, got a {type(cfg).__name__}")
    cfg.setdefault("task", "classification")  # runs written before regression existed
    schema = {**SCHEMA, **TRAINED} if trained else SCHEMA
    for key, (ok, what) in schema.items():
        if key not in cfg:
            raise ValueError(f"{where}: the key {key!r} is missing (it must be {what})")
        if not ok(cfg[key]):
            raise ValueError(f"{where}: {key} must be {what}, got {cfg[key]!r:.80}")
    fp = cfg.get("data_sha256")
    if fp is not None and not (isinstance(fp, str) and len(fp) == 64 and set(fp) <= set("0123456789abcdef")):
        raise ValueError(f"{where}: data_sha256 must be 64 hex digits (the data's fingerprint), got {fp!r:.80}")
    if trained:
        _check_trained(cfg, where)
    return cfg


def _check_trained(cfg: dict, where: str) -> None:
    d = cfg["n_features"]
    if len(cfg["feature_names"]) != d:
        raise ValueError(f"{where}: {len(cfg['feature_names'])} feature_names for n_features={d}")
    for part in ("mean", "scale"):
        v = cfg["scaler"][part]
        if not (isinstance(v, list) and len(v) == d and all(_is(_NUM)(x) and np.isfinite(x) for x in v)):
            raise ValueError(f"{where}: scaler.{part} must be {d} finite numbers")
    if not all(x > 0 for x in cfg["scaler"]["scale"]):
        raise ValueError(f"{where}: scaler.scale must be positive")
    ys = cfg.get("y_scaler")
    if cfg["task"] == "regression" and not (isinstance(ys, dict) and _is(_NUM)(ys.get("mean"))
                                            and _is(_NUM)(ys.get("scale")) and ys["scale"] > 0
                                            and np.isfinite([ys["mean"], ys["scale"]]).all()):
        raise ValueError(f"{where}: a regression run needs y_scaler {{mean, scale > 0}}, got {ys!r:.80}")
    count = parameter_count(cfg, d, n_outputs(cfg))
    if count > MAX_PARAMETERS:
        raise ValueError(f"{where}: the model would have {count:,} parameters, more than the limit of "
                         f"{MAX_PARAMETERS:,} (hidden={cfg['hidden']!r:.60})")


def check_size(cfg: dict, n_features: int, n_outputs_: int) -> None:
    """Refuse a model over :data:`MAX_PARAMETERS` before it is allocated (``--hidden 30000000``)."""
    count = parameter_count(cfg, n_features, n_outputs_)
    if count > MAX_PARAMETERS:
        raise ValueError(f"the model would have {count:,} parameters, more than the limit of {MAX_PARAMETERS:,}: "
                         "use smaller --hidden sizes")


def n_outputs(cfg: dict) -> int:
    return 1 if cfg["task"] == "regression" else cfg["n_classes"]


def read_config(run_dir: str) -> dict:
    """The validated ``config.json`` of a run directory."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.lexists(path):
        raise FileNotFoundError(f"no {path}: {run_dir} is not a chainrule run directory; "
                                "give the --out directory of a 'chainrule train' run")
    raw = io.read_regular(path, "config.json", limit=64 << 20)
    return check_config(io.parse_json(raw, path), path)


def os_error(e: OSError) -> str:
    """An OSError as one line: ours carry the whole sentence in ``strerror``; the system's keep their path."""
    return e.strerror if e.errno is not None and e.strerror and e.filename is None else str(e)


def write_json(path: str, obj: Any) -> None:
    """Standard JSON (NaN/Inf refused: other readers reject them), written atomically."""
    io.write_atomic(path, json.dumps(obj, indent=2, allow_nan=False).encode(), os.path.basename(path))


def standardize(X: np.ndarray, scaler: dict) -> np.ndarray:
    return ((X - np.asarray(scaler["mean"], np.float32)) / np.asarray(scaler["scale"], np.float32)).astype(np.float32)


def build_model(cfg: dict, n_features: int, n_classes: int):
    """The model a config describes. Logistic regression with more than two classes is the
    multinomial model (softmax regression), as in scikit-learn; a regression model has one output."""
    from .. import models
    outputs = 1 if cfg.get("task") == "regression" else n_classes
    check_size(cfg, n_features, outputs)
    if cfg["model"] == "mlp":
        return models.MLP([n_features, *cfg["hidden"], outputs], activation=cfg["activation"], dropout=cfg["dropout"])
    if cfg["model"] in ("cnn", "gru"):
        cls, kw = _sequence_model(cfg, n_features, outputs)
        return cls(**kw)
    if cfg["model"] == "logreg" and outputs == 2:
        return models.LogisticRegression(n_features)
    return models.SoftmaxRegression(n_features, outputs)


def _binary_loss(out, y):
    return F.binary_cross_entropy_with_logits(out, y.astype(out.dtype))


def _regression_loss(out, y):
    return F.mse_loss(ops.reshape(out, shape=(-1,)), y.astype(out.dtype))


def loss_for(model, task: str = "classification"):
    if task == "regression":
        return _regression_loss
    return _binary_loss if type(model).__name__ == "LogisticRegression" else F.cross_entropy


def metrics_for(task: str) -> tuple[str, ...]:
    return ("r2",) if task == "regression" else ("accuracy",)


@dataclass
class Run:
    """A trained (or interrupted) run: its model and validated config."""

    model: Any
    config: dict
    source: str  # the file the weights came from

    @property
    def task(self) -> str:
        return self.config["task"]


def _arch(config: Any) -> str:
    """A model config in one short phrase: ``MLP [4, 8, 3]``."""
    if not isinstance(config, dict):
        return f"{config!r:.60}"
    sizes = config.get("sizes") or [v for k, v in config.items() if k.startswith("n_")]
    return f"{config.get('class')} {sizes!r:.60}"


def load_run(run_dir: str) -> Run:
    """Model and config of a run: the final model file, else (interrupted run) the latest checkpoint."""
    cfg = read_config(run_dir)
    final = os.path.join(run_dir, "model.safetensors")
    if os.path.lexists(final):
        model = io.load_model(final)
        want = cfg.get("model_config")
        if want is not None and json.loads(json.dumps(model.config())) != want:
            raise ValueError(f"{final} holds {_arch(model.config())} but {run_dir}/config.json describes "
                             f"{_arch(want)}: the file is from another run; put back this run's model.safetensors "
                             "(or delete it to evaluate the latest checkpoint)")
        return Run(model, cfg, final)
    model = build_model(cfg, cfg["n_features"], cfg["n_classes"])
    path = latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    state = load_checkpoint(path)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: the checkpoint's weights do not fit the model of {run_dir}/config.json ({e})") from None
    io.warn_nonfinite({k: v._data for k, v in model.state_dict().items()}, path)
    return Run(model, cfg, path)


def predict_values(run: Run, X: np.ndarray) -> np.ndarray:
    """Regression predictions in the target's own units (the model predicts the standardised target)."""
    from ..autograd import no_grad
    run.model.eval()
    with no_grad():
        out = np.asarray(run.model(X)._data, np.float64).reshape(-1)
    ys = run.config.get("y_scaler") or {"mean": 0.0, "scale": 1.0}
    return out * ys["scale"] + ys["mean"]


def _scaler(X: np.ndarray) -> dict:
    """Mean and std per column, in float64 (float32 squares overflow for values near 1e20)."""
    X64 = X.astype(np.float64)
    mean, scale = X64.mean(axis=0), X64.std(axis=0)
    scale[scale == 0] = 1.0  # constant columns (digits' border pixels): leave them at 0, not NaN
    if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
        j = int(np.flatnonzero(~(np.isfinite(mean) & np.isfinite(scale)))[0])
        raise ValueError(f"column {j} cannot be standardised (mean {mean[j]:.3g}, std {scale[j]:.3g}): rescale it")
    return {"mean": mean.tolist(), "scale": scale.tolist()}


def fingerprint(ds) -> str:
    """SHA-256 of a data set's split arrays (train then test, features then targets): what a run was
    trained on, kept in config.json as ``data_sha256``."""
    h = hashlib.sha256()
    for a in (ds.X_train, ds.y_train, ds.X_test, ds.y_test):
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def prepare(cfg: dict):
    """Data set, scalers and the train/val/test arrays of a config (deterministic given its seed).
    Features are standardised with the training split's mean and std; so is a regression target.
    A config that records ``data_sha256`` (a trained run) is refused if the data no longer matches it:
    resuming would mix two data sets in one model (and re-standardise with the new one's scaler)."""
    from sklearn.model_selection import train_test_split

    from .. import datasets
    ds = datasets.load(cfg["data"], target=cfg["target"], seed=cfg["seed"], task=cfg.get("task", "auto"))
    if cfg.get("data_sha256") is not None and (now := fingerprint(ds)) != cfg["data_sha256"]:
        raise ValueError(f"{cfg['data'].removeprefix('csv:')} has changed since the run was trained (its data_sha256 "
                         f"{cfg['data_sha256'][:12]}... in config.json, {now[:12]}... now): restore the data the run "
                         "was trained on, or train a new run on this data")
    scaler = _scaler(ds.X_train)
    Xtr, Xte = standardize(ds.X_train, scaler), standardize(ds.X_test, scaler)
    ytr, yte, y_scaler, strat = ds.y_train, ds.y_test, None, None
    n_val = int(round(cfg["val_fraction"] * len(Xtr)))
    if ds.task == "regression":
        s = _scaler(ytr.reshape(-1, 1))
        y_scaler = {"mean": s["mean"][0], "scale": s["scale"][0]}
        ytr, yte = ((y - y_scaler["mean"]) / y_scaler["scale"] for y in (ytr, yte))
    else:
        counts = np.bincount(ytr)
        strat = ytr if counts.min() >= 2 and n_val >= len(counts) else None
    if n_val < 1 or len(Xtr) - n_val < 1:
        raise ValueError(f"{ds.name}: {len(Xtr)} training rows cannot be split into training and validation "
                         f"(val_fraction {cfg['val_fraction']}): need more rows")
    Xtr, Xva, ytr, yva = train_test_split(Xtr, ytr, test_size=cfg["val_fraction"], stratify=strat, random_state=cfg["seed"])
    return ds, scaler, y_scaler, (Xtr, ytr), (Xva, yva), (Xte, yte)
