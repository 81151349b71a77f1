"""`chainrule export RUN_DIR --format onnx`: a trained run as an ONNX file that takes raw features."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .. import onnx as cr_onnx
from ..nn import Module, Sequential
from ..tensor import Tensor
from .rundir import read_config

EXAMPLES = """examples:
  chainrule export runs/mine --format onnx                  # writes runs/mine/model.onnx
  chainrule export runs/mine --out mine.onnx --opset 20

The graph takes raw feature rows (input "input", float32, shape (batch, n_features)): the run's
standardisation (config.json's scaler) is its first step unless --no-standardize. Its output
"output" is the model's logits: argmax is the class (class names are in the file's metadata,
"target_names"); softmax (sigmoid for one logit) gives the probabilities. After writing, the file is
run in onnxruntime on random rows and compared with chainrule."""


class Standardize(Module):
    """``(x - mean) / scale``: the CLI's feature scaling (chainrule.cli.rundir.standardize) as a layer."""

    def __init__(self, mean: Any, scale: Any):
        super().__init__()
        self.mean, self.scale = Tensor(np.asarray(mean, np.float32)), Tensor(np.asarray(scale, np.float32))

    def forward(self, x: Any) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, np.float32))
        return (x - self.mean) / self.scale


@cr_onnx.register("Standardize")
def _standardize(g, m, name, inp, x):
    centred = g.node("Sub", [inp, g.const(f"{name}.mean", m.mean)], name)
    return g.node("Div", [centred, g.const(f"{name}.scale", m.scale)], name)



def configure(p) -> None:
    p.description = "Export a trained run's model (ONNX), including its feature standardisation."
    p.epilog = EXAMPLES
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by chainrule train")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="the file format (default onnx)")
    p.add_argument("--out", help="output file (default RUN_DIR/model.onnx)")
    p.add_argument("--opset", type=int, default=cr_onnx.DEFAULT_OPSET,
                   help=f"ONNX opset version (default {cr_onnx.DEFAULT_OPSET})")
    p.add_argument("--no-standardize", action="store_true",
                   help="export the bare model, which expects features already standardised")


def run(args) -> int:
    from .. import io
    cfg = read_config(args.run_dir)  # the validated reader every run command uses
    model_path = os.path.join(args.run_dir, "model.safetensors")
    if not os.path.exists(model_path):
        raise FileNotFoundError(f"no {model_path}: the run has not finished; complete it with "
                                f"chainrule train --resume {args.run_dir}")
    model = io.load_model(model_path)
    scaler = cfg.get("scaler")
    if not args.no_standardize and scaler:
        model = Sequential(Standardize(scaler["mean"], scaler["scale"]), model)
    n = int(cfg["n_features"])
    out = args.out or os.path.join(args.run_dir, "model.onnx")
    meta = {"target_names": json.dumps(cfg.get("target_names")), "feature_names": json.dumps(cfg.get("feature_names")),
            "standardized_inside": json.dumps(bool(not args.no_standardize and scaler))}
    proto = cr_onnx.export(model, np.zeros((1, n), np.float32), out, opset=args.opset, metadata=meta)
    print(f"wrote {out} (ONNX opset {args.opset}, {len(proto.graph.node)} nodes, input (batch, {n}) float32)")
    rng = np.random.default_rng(0)
    mean, scale = (np.asarray(scaler[k]) for k in ("mean", "scale")) if scaler else (0.0, 1.0)
    rows = (mean + scale * rng.standard_normal((64, n))).astype(np.float32)  # rows at the data's own scale
    try:
        diff = cr_onnx.check(model, out, rows)
    except ImportError:
        print("not verified: onnxruntime is not installed (pip install 'chainrule[onnx]')")
        return 0
    print(f"onnxruntime reproduces chainrule's outputs on 64 random rows: max |difference| {diff:.2g}")
    return 0 if diff <= 1e-4 else 1
